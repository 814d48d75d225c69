"""The release stage's settings and their defaults (the one home of each; the CLI reads them here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.kernel.settings import setting
from hexainst.kernel.vocab import DEFAULT_SEED, ROWS_PER_CELL


@dataclass(frozen=True)
class ReleaseConfig:
    #: Folders holding the candidate pools (``<category>.<source>.jsonl``) and the stage reports.
    pools: tuple[Path, ...] = setting((), "folder(s) holding the candidate pools and the stage reports", metavar="DIR")
    #: The release folder to write: a new or empty folder, or an earlier HexaInst release.
    out_dir: Path | None = setting(
        None, "release folder to write: a new or empty folder, or an earlier HexaInst release (only its card, "
              "LICENSE.md, data/, reserve/ and croissant.json are replaced; the generations/ it ships are kept)",
        metavar="DIR")
    #: A validation file to apply (``hexainst annotate export``), or ``None``.
    validation_file: Path | None = setting(None, "validation.json from 'hexainst annotate export'", metavar="FILE")
    #: Also write the release report there (a new file or an earlier one), or ``None``.
    report_file: Path | None = setting(
        None, "also write the release report (counts, reserve use, shortfalls) as JSON to FILE "
              "(default: none; the summary is printed either way)", metavar="FILE")
    #: The natural sources' mirror the pools were read from, for the card (``None``: the Hub, or not known).
    sources_dir: Path | None = None
    #: The generations file the release ships (``generations/synthetic.jsonl``); ``None`` keeps the
    #: one an earlier release in ``out_dir`` ships (the release stage alone brings none of its own).
    generations: Path | None = None
    #: An earlier release whose rows and reserve keep their places, new candidates after them (a top-up).
    previous: Path | None = None
    #: Each cell's reserve size (``"<category>/<source>": n``), replacing the planned one (a top-up's sizes).
    reserve_sizes: Mapping[str, int] | None = None
    #: The top-up record the release ships (``{"extra": {cell: n}}``, ``topup.json``), or ``None``.
    topup: Mapping[str, Any] | None = None
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
