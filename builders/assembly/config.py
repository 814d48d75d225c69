"""The assembly stage's settings and their defaults (the one home of each; the CLI reads them here)."""

from __future__ import annotations

from dataclasses import dataclass

from hexainst.kernel.vocab import DEFAULT_SEED, ROWS_PER_CELL

#: Reserve rows kept per cell when no expected rejection rate is known.
RESERVE_PER_CELL = 30


@dataclass(frozen=True)
class AssemblyConfig:
    #: Seed of the rank that selects rows (sha256 of the seed and the row id).
    seed: int = DEFAULT_SEED
    #: Rows per (category, source) cell of the release.
    rows_per_cell: int = ROWS_PER_CELL
    #: Reserve rows kept per cell (``None``: every remaining candidate).
    reserve: int | None = RESERVE_PER_CELL
