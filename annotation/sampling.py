"""A round's size: a seeded sample of the candidates, spread over the cells (category x origin).

Each candidate's rank in its cell is ``sha256(seed:id)``: it depends on the seed and the id only,
never on the input order or on the other rows: the same seed picks the same rows, and rows
added later (a top-up) never change the order of the rows already there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from hexainst.annotation.sync import origin_of
from hexainst.kernel.settings import SettingError


def _rank(seed: int, iid: str) -> str:
    return hashlib.sha256(f"{seed}:{iid}".encode()).hexdigest()


def by_cell(rows: Sequence[Mapping[str, Any]], seed: int) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """Rows grouped by (category, origin), each group in its seeded order, cells sorted."""
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        cells.setdefault((str(row["category"]), origin_of(str(row["id"]))), []).append(row)
    return {cell: sorted(group, key=lambda r: _rank(seed, str(r["id"]))) for cell, group in sorted(cells.items())}


def sample(rows: Sequence[Mapping[str, Any]], n: int | None = None, per_cell: int | None = None,
           seed: int = 0) -> list[Mapping[str, Any]]:  # fmt: skip
    """``n`` rows spread as evenly as the cells allow (round-robin over the cells), or ``per_cell``
    rows of every cell (all of a smaller cell); in id order."""
    if (n is None) == (per_cell is None):
        raise ValueError("give n or per_cell")
    cells = by_cell(rows, seed)
    if per_cell is not None:
        picked = [r for group in cells.values() for r in group[:per_cell]]
    else:
        if n > len(rows):
            raise SettingError("sample", f"{n}: only {len(rows)} candidates were given; name a smaller round or leave "
                                         "the sample out")
        picked = []
        depth = 0
        while len(picked) < n:
            for group in cells.values():
                if depth < len(group) and len(picked) < n:
                    picked.append(group[depth])
            depth += 1
    return sorted(picked, key=lambda r: str(r["id"]))
