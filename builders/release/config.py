"""The release stage's settings and their defaults (the one home of each; the CLI reads them here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hexainst.kernel.settings import setting
from hexainst.kernel.vocab import DEFAULT_SEED, ROWS_PER_CELL


@dataclass(frozen=True)
class ReleaseConfig:
    #: Folders holding the candidate pools (``<category>.<source>.jsonl``) and the stage reports.
    pools: tuple[Path, ...] = ()
    #: The release folder to write: a new or empty folder, or an earlier HexaInst release.
    out_dir: Path | None = None
    #: A validation file to apply (``hexainst annotate export``), or ``None``.
    validation_file: Path | None = None
    #: Also write the assembly report there (a new file or an earlier assembly report), or ``None``.
    report_file: Path | None = None
    #: Seed of the rank that selects rows (sha256 of the seed and the row id).
    seed: int = setting(DEFAULT_SEED, "selection seed")
    #: Rows per (category, source) cell of the release.
    rows_per_cell: int = setting(ROWS_PER_CELL, "rows per (category, source) cell of the release", low=1)
    #: ``None`` sizes each cell's reserve from its expected rejection rate (see :mod:`hexainst.builders.release.reserve`).
    reserve: int | None = setting(
        None, "reserve rows kept per cell (default: what each cell's expected rejection rate asks for)",
        low=0, metavar="N")
    rejection_rates: Path | None = setting(
        None, "expected rejection rate per cell, which sizes each reserve: a rates file or a pilot's "
              "validation.json (default: the rates bundled with the toolkit, measured by a blind read)",
        metavar="FILE")
    #: The largest reserve a rate may ask for: every reserve row costs two annotations, and a cell
    #: whose rate asks for more is better served by a top-up round (``hexainst build topup``).
    max_reserve: int = setting(50, "the largest reserve a cell's expected rejection rate may ask for", low=0)
