"""HexaInst: the dataset's record format, release reader and writer, and command line.

The folder this package lives in is also the published dataset: ``hexainst/README.md`` (the
card) and ``hexainst/data/`` (the release). ``datasets.load_dataset("hexainst")`` run from the
repository root loads it; :func:`load` loads it by explicit path and checks every row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hexainst.kernel.release import read_release, read_reserve
from hexainst.kernel.version import __version__
from hexainst.kernel.vocab import CATEGORIES, SOURCES

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = ["CATEGORIES", "SOURCES", "__version__", "load", "load_reserve"]


def load(path=None, category: str | None = None) -> datasets.Dataset:
    """Load a HexaInst release (default: the one inside this package) and validate every row."""
    return read_release(path, category=category)


def load_reserve(path=None) -> list[dict]:
    """The ordered reserve of a release: rows that replace rejected ones, per cell, in order."""
    return read_reserve(path)
