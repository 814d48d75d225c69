"""Candidate pools, the contract between the builders and their readers (the release stage, annotation).

A build stage writes one ``<category>.<source>.jsonl`` per cell into its output folder, rows in
the record schema; this module names those files and reads them back, checking every row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_json, read_jsonl
from hexainst.kernel.records import upgrade_row, validate_row
from hexainst.kernel.vocab import CATEGORIES, SOURCES

#: The report each build stage writes beside its pools (its numbers go into the card).
NATURAL_REPORT = "natural-report.json"
SYNTHETIC_REPORT = "synthetic-report.json"
#: The revisions the natural stage read, so that a rebuild reads the same ones.
NATURAL_LOCK = "natural.lock.json"
#: The release stage's report, written into the build's working folder (``build release --report``: where asked).
#: The file keeps the stage's older name, "assembly", on disk: every earlier build left ``assembly-report.json``
#: in its working folder and users' scripts read it there; a new name would leave those stale beside the new one.
RELEASE_REPORT = "assembly-report.json"


class PoolError(UserError):
    """A candidate pool is missing, unreadable or holds a row that does not belong to it."""


def pool_name(category: str, source: str) -> str:
    """The file name of the candidate pool of one cell: ``<category>.<source>.jsonl``."""
    return f"{category}.{source}.jsonl"


def pool_file(pools_dir: Path, category: str, source: str) -> Path:
    return Path(pools_dir) / pool_name(category, source)


def read_pool(file: Path, category: str, source: str,
              also: Callable[[dict[str, Any], str], None] | None = None) -> list[dict[str, Any]]:
    """Rows of one pool file, each validated (and passed to ``also`` with its place); errors name the file and line."""

    def check(row: dict[str, Any], where: str) -> None:
        row = upgrade_row(row)
        validate_row(row, where)
        if (row["category"], row["source"]) != (category, source):
            raise PoolError(
                f"{where} (id={row['id']}): a {row['category']}/{row['source']} row in the {category}/{source} pool"
            )
        if also is not None:
            also(row, where)

    return [upgrade_row(r) for r in read_jsonl(file, what="candidate pool", check=check)]


def _find(pools_dirs: Sequence[Path], name: str) -> Path | None:
    found = [d / name for d in pools_dirs if (d / name).exists()]
    if len(found) > 1:
        raise PoolError(f"{name} is in more than one pools folder: {', '.join(map(str, found))}")
    return found[0] if found else None


def read_pools(pools_dirs: Path | Sequence[Path]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every (category, source) pool found in ``pools_dirs`` (one folder or several).

    A missing or duplicated pool file, an invalid row or an id in two pools is an error naming it.
    """
    dirs = [Path(pools_dirs)] if isinstance(pools_dirs, (str, Path)) else [Path(d) for d in pools_dirs]
    files = {(c, s): _find(dirs, pool_file(Path(), c, s).name) for c in CATEGORIES for s in SOURCES}
    missing = [f"{c}.{s}.jsonl" for (c, s), f in files.items() if f is None]
    if missing:
        raise PoolError(f"{', '.join(map(str, dirs))}: missing candidate pools: {', '.join(missing)}")
    seen: dict[str, str] = {}

    def unique(row: dict[str, Any], where: str) -> None:
        if row["id"] in seen:
            raise PoolError(f"{where}: id {row['id']} is also at {seen[row['id']]}; an id may appear once in all pools")
        seen[row["id"]] = where

    return {(c, s): read_pool(f, c, s, also=unique) for (c, s), f in files.items()}


def read_report(pools_dirs: Path | Sequence[Path], name: str) -> dict[str, Any] | None:
    """A stage report (``natural-report.json``, ...) found in one of ``pools_dirs``, or ``None``."""
    dirs = [Path(pools_dirs)] if isinstance(pools_dirs, (str, Path)) else [Path(d) for d in pools_dirs]
    file = _find(dirs, name)
    return None if file is None else read_json(file, what="stage report")
