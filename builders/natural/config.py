"""The natural stage's settings and their defaults (the one home of each; the CLI reads them here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hexainst.kernel.settings import setting
from hexainst.kernel.vocab import DEFAULT_SEED


@dataclass(frozen=True)
class NaturalConfig:
    out_dir: Path | None = setting(
        None, "output folder: new, empty, or an earlier 'build natural' output (replaced when complete)", metavar="DIR")
    sources_dir: Path | None = setting(
        None, "offline mirror of the natural sources (default: $HEXAINST_SOURCES, else the Hub)", metavar="DIR")
    lock_file: Path | None = setting(
        None, "a natural.lock.json from an earlier build: read the same revisions", metavar="FILE")
    #: Seed of each pool's order (the release stage ranks rows by its own seeded hash, not by this order).
    seed: int = setting(DEFAULT_SEED, "seed of the pools' order")
    progress: bool = setting(True, "no progress bars")
    #: The source registry to read (a ``sources.json``; ``None``: the one bundled with the toolkit).
    registry_file: Path | None = None
