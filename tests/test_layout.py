"""The rooms of the house and what each may import (README, "Architecture").

Read from the source with ``ast``, so that a lazy import inside a function counts as much as one
at the top of a module.
"""

from __future__ import annotations

import ast
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
    "hexainst.analysis.recording",
    "hexainst.analysis",
)
#: Modules shared by the builders (text normalisation, near-duplicate indexes): below every stage.
BUILDERS_SHARED = ("hexainst.builders.text", "hexainst.builders.dedup", "hexainst.builders")
TOP_LEVEL_FOLDERS = ("builders", "annotation", "analysis", "cards")


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
