"""Every check of a release folder, in one place: ``hexainst validate`` prints them, ``publish`` refuses on any."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.kernel.release import RESERVE_FILE, config_files, data_file, read_release_rows, read_reserve
from hexainst.kernel.release_checks import (
    balance_problems,
    card_problems,
    card_table_problems,
    companion_problems,
    text_problems,
)


@dataclass(frozen=True)
class ReleaseCheck:
    """What :func:`check_release` found: the rows it read, the counts per cell, and the problems."""

    folder: Path
    rows: list[dict[str, Any]]
    reserve: list[dict[str, Any]]
    cells: Counter
    #: Card, companion files and texts: a release with any of these is not valid.
    problems: list[str]
    #: Cells that are not 100 rows: a problem unless the caller allows an unbalanced release.
    balance: list[str]


def check_release(folder: Path) -> ReleaseCheck:
    """Read the release in ``folder`` (schema, unique ids: a :class:`ReleaseError` when it cannot be read
    at all) and check the card's configs, counts and tables against the data, the companion files, the
    texts of every row and reserve row, and the balance."""
    rows = read_release_rows(folder, check_card=False)
    reserve = read_reserve(folder)
    by_config = {"default": len(rows)}
    for name in config_files(folder):
        if name != "default":
            by_config[name] = sum(1 for r in rows if r["category"] == name)
    cells = Counter((r["category"], r["source"]) for r in rows)
    seen: Counter = Counter()
    places = []
    for r in rows:  # each category's rows come from its own file, in the file's order
        places.append(f"{data_file(r['category'])} row {seen[r['category']]}")
        seen[r["category"]] += 1
    problems = (card_problems(folder, by_config) + card_table_problems(folder, cells) + companion_problems(folder)
                + text_problems(rows, places)
                + text_problems(reserve, [f"{RESERVE_FILE} row {i}" for i in range(len(reserve))]))
    return ReleaseCheck(folder=folder, rows=rows, reserve=reserve, cells=cells, problems=problems,
                        balance=balance_problems(cells))
