"""The natural stage's settings and their defaults (the one home of each; the CLI reads them here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hexainst.kernel.vocab import DEFAULT_SEED


@dataclass(frozen=True)
class NaturalConfig:
    #: An offline mirror of the sources; ``None`` reads ``$HEXAINST_SOURCES``, else the Hugging Face Hub.
    sources_dir: Path | None = None
    #: A ``natural.lock.json`` of an earlier build: read the same revisions.
    lock_file: Path | None = None
    #: Seed of each pool's order (the assembly ranks rows by its own seeded hash, not by this order).
    seed: int = DEFAULT_SEED
    progress: bool = True
