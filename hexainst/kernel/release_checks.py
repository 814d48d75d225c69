"""Checks of a release folder beyond the row schema: the balance of its cells, its card's counts, its other files.

``hexainst validate`` reports them; :func:`hexainst.load` and ``hexainst publish`` refuse a release that fails them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hexainst.kernel.vocab import CATEGORIES, ROWS_PER_CELL, SOURCES


def balance_problems(cells: Counter) -> list[str]:
    """Messages for every (category, source) cell that does not hold exactly ROWS_PER_CELL rows."""
    return [
        f"{c}/{s}: {cells[(c, s)]} rows, expected {ROWS_PER_CELL}"
        for c in CATEGORIES
        for s in SOURCES
        if cells[(c, s)] != ROWS_PER_CELL
    ]


def card_problems(folder: Path, rows_by_config: dict[str, int]) -> list[str]:
    """Differences between the card's dataset_info num_examples and the rows actually present."""
    from hexainst.kernel.release import card_yaml

    data = card_yaml(folder)
    infos = data.get("dataset_info") or []
    infos = infos if isinstance(infos, list) else [infos]
    problems = []
    declared = {}
    for info in infos:
        name = info.get("config_name", "default")
        for split in info.get("splits", []):
            declared[name] = split.get("num_examples")
    for name, n in rows_by_config.items():
        if declared.get(name) != n:
            problems.append(f"README.md: config {name!r} declares num_examples={declared.get(name)}, data has {n}")
    return problems


def companion_problems(folder: Path) -> list[str]:
    """What is wrong with the files a release carries beside its data: the licence file and the reserve (always
    written, the reserve possibly empty), ``croissant.json`` (a JSON object), the shipped generations (JSON Lines),
    the validation file (its schema) and the top-up record."""
    import json

    from hexainst.kernel.errors import UserError
    from hexainst.kernel.jsonfiles import iter_jsonl
    from hexainst.kernel.release import GENERATIONS_FILE, RESERVE_FILE

    problems = [f"{name}: missing (every release carries it)" for name in ("LICENSE.md", RESERVE_FILE)
                if not (folder / name).is_file()]
    croissant = folder / "croissant.json"
    if croissant.exists():
        try:
            doc = json.loads(croissant.read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                problems.append("croissant.json: not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"croissant.json: cannot be read as JSON ({exc})")
    from hexainst.kernel.release import TOPUP_FILE, VALIDATION_FILE
    from hexainst.kernel.validation_file import check as check_validation

    for name, check_doc in ((VALIDATION_FILE, lambda doc: check_validation(doc, VALIDATION_FILE)),
                            (TOPUP_FILE, _check_topup)):
        file = folder / name
        if not file.exists():
            continue
        try:
            check_doc(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{name}: cannot be read as JSON ({exc})")
        except UserError as exc:
            problems.append(str(exc))
    generations = folder / GENERATIONS_FILE
    if generations.exists():
        try:
            for _ in iter_jsonl(generations, what="generations file"):
                pass
        except UserError as exc:
            problems.append(str(exc))
    return problems


def _check_topup(doc) -> None:
    from hexainst.kernel.errors import UserError

    cells = {f"{c}/{s}" for c in CATEGORIES for s in SOURCES}
    extra = doc.get("extra") if isinstance(doc, dict) else None
    if not isinstance(extra, dict) or any(k not in cells or not isinstance(v, int) or v < 0 for k, v in extra.items()):
        raise UserError('topup.json: not a top-up record ({"extra": {"math/synthetic": 12, ...}} expected)')
