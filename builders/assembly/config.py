"""The assembly stage's settings and their defaults (the one home of each; the CLI reads them here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hexainst.kernel.vocab import DEFAULT_SEED, ROWS_PER_CELL


@dataclass(frozen=True)
class AssemblyConfig:
    #: Seed of the rank that selects rows (sha256 of the seed and the row id).
    seed: int = DEFAULT_SEED
    #: Rows per (category, source) cell of the release.
    rows_per_cell: int = ROWS_PER_CELL
    #: Reserve rows kept per cell; ``None`` sizes each cell's reserve from its expected rejection rate
    #: (see :mod:`hexainst.builders.assembly.reserve`).
    reserve: int | None = None
    #: Expected rejection rates: a rates file or a pilot's validation file (``None``: the bundled rates).
    rejection_rates: Path | None = None
    #: The largest reserve a rate may ask for: every reserve row costs two annotations, and a cell
    #: whose rate asks for more is better served by a top-up round (``hexainst build topup``).
    max_reserve: int = 50
