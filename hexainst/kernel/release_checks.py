"""Checks of a release folder beyond the row schema: the balance of its cells and its card's counts.

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
