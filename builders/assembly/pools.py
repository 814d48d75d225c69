"""Read the candidate pools a build stage wrote: ``<category>.<source>.jsonl`` in one folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from builders.assembly.select import AssemblyError
from hexainst.records import validate_row
from hexainst.vocab import CATEGORIES, SOURCES


def pool_file(pools_dir: Path, category: str, source: str) -> Path:
    return Path(pools_dir) / f"{category}.{source}.jsonl"


def read_pool(file: Path, category: str, source: str) -> list[dict[str, Any]]:
    """Rows of one pool file, each validated; errors name the file and line."""
    rows = []
    try:
        fh = open(file, encoding="utf-8")
    except OSError as exc:
        raise AssemblyError(f"{file}: cannot read the candidate pool ({exc.strerror or exc})") from exc
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AssemblyError(f"{file} line {lineno}: not JSON ({exc.msg})") from exc
            validate_row(row, f"{file} line {lineno}")
            if (row["category"], row["source"]) != (category, source):
                raise AssemblyError(
                    f"{file} line {lineno} (id={row['id']}): a {row['category']}/{row['source']} row "
                    f"in the {category}/{source} pool"
                )
            rows.append(row)
    return rows


def _find(pools_dirs: Sequence[Path], name: str) -> Path | None:
    found = [d / name for d in pools_dirs if (d / name).exists()]
    if len(found) > 1:
        raise AssemblyError(f"{name} is in more than one pools folder: {', '.join(map(str, found))}")
    return found[0] if found else None


def read_pools(pools_dirs: Path | Sequence[Path]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every (category, source) pool found in ``pools_dirs`` (one folder or several).

    A missing or duplicated pool file, an invalid row or an id in two pools is an error naming it.
    """
    dirs = [Path(pools_dirs)] if isinstance(pools_dirs, (str, Path)) else [Path(d) for d in pools_dirs]
    files = {(c, s): _find(dirs, pool_file(Path(), c, s).name) for c in CATEGORIES for s in SOURCES}
    missing = [f"{c}.{s}.jsonl" for (c, s), f in files.items() if f is None]
    if missing:
        raise AssemblyError(f"{', '.join(map(str, dirs))}: missing candidate pools: {', '.join(missing)}")
    pools = {(c, s): read_pool(f, c, s) for (c, s), f in files.items()}
    seen: dict[str, str] = {}
    for (c, s), rows in pools.items():
        for row in rows:
            where = f"{c}.{s}.jsonl"
            if row["id"] in seen:
                raise AssemblyError(f"id {row['id']} appears in {seen[row['id']]} and {where}")
            seen[row["id"]] = where
    return pools


def read_report(pools_dirs: Path | Sequence[Path], name: str) -> dict[str, Any] | None:
    dirs = [Path(pools_dirs)] if isinstance(pools_dirs, (str, Path)) else [Path(d) for d in pools_dirs]
    file = _find(dirs, name)
    if file is None:
        return None
    try:
        return json.loads(file.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise AssemblyError(f"{file}: not JSON ({exc.msg})") from exc
