"""No import cycle among the analysis modules, counting imports inside functions (render -> report,
never back); the report writers import inside a function only to defer a heavy third-party package."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "hexainst.analysis"
#: The modules of this package that write reports; each import inside their functions must say why.
REPORT_WRITERS = ("analysis/report.py", "analysis/render.py", "analysis/finetune/report.py",
                  "analysis/finetune/design_report.py", "hexainst/kernel/card.py")


def _module(file: Path) -> str:
    parts = list(file.relative_to(REPO / "analysis").with_suffix("").parts)
    return ".".join([PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)])


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{a.name}" for a in node.names]


def _graph() -> dict[str, set[str]]:
    files = {_module(f): f for f in sorted((REPO / "analysis").rglob("*.py"))}
    graph = {m: set() for m in files}
    for module, file in files.items():
        for node in ast.walk(ast.parse(file.read_text("utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(node, module, file.name == "__init__.py"):
                    if target in files and target != module and not module.startswith(target + "."):
                        graph[module].add(target)  # a package's own __init__ is not a cycle of its modules
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_analysis_modules_import_each_other_without_a_cycle() -> None:
    graph = _graph()
    assert "hexainst.analysis.report" in graph["hexainst.analysis.render"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_report_writers_import_inside_functions_only_heavy_packages_with_the_reason() -> None:
    for path in REPORT_WRITERS:
        source = (REPO / path).read_text("utf-8")
        lines = source.splitlines()
        for fn in ast.walk(ast.parse(source)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    where = f"{path}:{node.lineno}"
                    assert isinstance(node, ast.Import) or node.level == 0, where
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    assert not any(n.split(".")[0] == "hexainst" for n in names), f"{where}: our own module"
                    assert "# deferred:" in lines[node.lineno - 1], f"{where}: no reason given"
