"""Seeded, deterministic selection of one (category, source) cell, with validation applied.

Pure functions on rows: no I/O. The rank of a row is ``sha256(seed, id)``, so it depends only on
the seed and the row's stable id, never on the order of the pool file. The first
``ROWS_PER_CELL`` rows by rank that validation did not reject form the release; the others,
in rank order, form the cell's reserve. So a rejected row is replaced by the first reserve row
that is not rejected itself, and applying more outcomes never disturbs the other rows.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hexainst.builders.text import normalize
from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import ROWS_PER_CELL


class ReleaseError(UserError):
    """The pools cannot make a balanced release (a cell too small, a duplicate id, ...)."""


def rank_key(seed: int, row_id: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{row_id}".encode()).hexdigest()


@dataclass
class CellSelection:
    """What :func:`select_cell` decided for one cell."""

    category: str
    source: str
    release: list[dict[str, Any]]
    reserve: list[dict[str, Any]]
    pool_size: int
    rejected: list[str] = field(default_factory=list)
    revised: list[str] = field(default_factory=list)
    #: ids of released rows that replaced rejected ones (they came from the reserve).
    replacements: list[str] = field(default_factory=list)
    #: rows the release of this cell should hold.
    size: int = ROWS_PER_CELL

    @property
    def shortfall(self) -> int:
        """Rows missing from the release after validation (0 when the cell is full)."""
        return max(0, self.size - len(self.release))

    def report(self) -> dict[str, Any]:
        return {
            "pool": self.pool_size,
            "release": len(self.release),
            "reserve": len(self.reserve),
            "rejected": len(self.rejected),
            "revised": len(self.revised),
            "replacements": len(self.replacements),
            "shortfall": self.shortfall,
        }


def apply_outcome(row: Mapping[str, Any], outcome: Mapping[str, Any] | None) -> dict[str, Any]:
    """The row with a validation outcome applied (a new dict; ``row`` is not changed).

    ``outcome`` is one entry of a validation file's ``outcomes`` (see ``hexainst.kernel.validation_file``).
    A revised row takes the corrected text and keeps the original in ``validation.original_instruction``.
    """
    new = copy.deepcopy(dict(row))
    if outcome is None:
        return new
    status = outcome["status"]
    original = None
    if status == "revised":
        corrected = normalize(outcome.get("corrected_instruction") or "")
        if not corrected:
            raise ReleaseError(f"validation outcome for {row['id']}: status revised without a corrected instruction")
        original = row["validation"]["original_instruction"] or row["instruction"]
        new["instruction"] = corrected
    new["validation"] = {
        "status": status,
        "original_instruction": original,
        "juniors": [dict(v) for v in outcome.get("juniors", [])][:2],
        "senior": dict(outcome["senior"]) if outcome.get("senior") else None,
    }
    return new


def select_cell(
    category: str,
    source: str,
    pool: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    outcomes: Mapping[str, Mapping[str, Any]] | None = None,
    size: int = ROWS_PER_CELL,
    reserve_size: int | None = None,
    previous: Sequence[str] = (),
) -> CellSelection:
    """Select ``size`` rows of one cell from ``pool``; the next ``reserve_size``, ranked, are the reserve.

    ``reserve_size=None`` keeps every remaining candidate in the reserve. ``previous`` (ids, in
    order: an earlier release's rows, then its reserve) keeps an earlier selection as it was and
    appends new candidates after it by rank: what a top-up round needs, so that nothing already
    annotated moves.

    When fewer than ``size`` rows survive validation the selection is returned short
    (:attr:`CellSelection.shortfall`); :func:`~hexainst.builders.release.make.make_release` reports every short cell at once.
    """
    outcomes = outcomes or {}
    by_id = {r["id"]: r for r in pool}
    kept = [by_id[i] for i in dict.fromkeys(previous) if i in by_id]
    seen = {r["id"] for r in kept}
    ranked = kept + sorted((r for r in pool if r["id"] not in seen), key=lambda r: rank_key(seed, r["id"]))
    initial = {r["id"] for r in ranked[:size]}
    sel = CellSelection(category, source, release=[], reserve=[], pool_size=len(pool), size=size)
    for row in ranked:
        outcome = outcomes.get(row["id"])
        if outcome is not None and outcome["status"] == "rejected":
            sel.rejected.append(row["id"])
            continue
        applied = apply_outcome(row, outcome)
        if outcome is not None and outcome["status"] == "revised":
            sel.revised.append(row["id"])
        if len(sel.release) < size:
            sel.release.append(applied)
            if row["id"] not in initial:
                sel.replacements.append(row["id"])
        elif reserve_size is None or len(sel.reserve) < reserve_size:
            sel.reserve.append(applied)
    return sel


def shortfall_error(selections: Sequence[CellSelection]) -> ReleaseError | None:
    """One error naming every short cell and by how many rows, or ``None`` when every cell is full."""
    short = [s for s in selections if s.shortfall]
    if not short:
        return None
    cells = ", ".join(f"{s.category}/{s.source} by {s.shortfall} ({s.pool_size} candidates, {len(s.rejected)} rejected)"
                      for s in short)
    n = f"{len(short)} cell{'s' if len(short) > 1 else ''}"
    if not any(s.rejected for s in short):  # no validation outcome made them short: the pools are too small
        return ReleaseError(f"the pools leave {n} short: {cells}; build more candidates for these cells "
                             "(a larger --per-category, or sources with more rows)")
    return ReleaseError(
        f"validation leaves {n} short: {cells}; "
        "'hexainst build topup' produces that many more candidates for these cells"
    )
