"""The natural stage: sources -> six candidate pools, a report and a lock file.

``build(out_dir, sources_dir, lock_file, seed)`` reads every registry source (mirror or Hub),
extracts candidates, drops exact duplicates (``hexainst.builders.text.comparison_key``) and near
duplicates (``hexainst.builders.dedup.NearDuplicateIndex`` on each candidate's ``dedup_text``) within
each category, in registry order then source row order, turns the survivors into pending
records (``hexainst.kernel.records.natural_row``), validates them, and orders each pool by a seeded
shuffle of the rows sorted by id (so the order depends on the seed only, never on dict or
file-system order).

Everything is computed in memory first; the files are then written into a hidden temporary
folder inside ``out_dir`` (``.natural-*``) and each is moved into place with ``os.replace``, so
a failed build writes nothing and no file is ever left half-written.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hexainst.builders.dedup import NearDuplicateIndex
from hexainst.builders.natural.extractors import EXTRACTORS, Dropped, Extraction, FlanContext, RowError
from hexainst.builders.natural.flan import task_key
from hexainst.builders.natural.loading import (
    SourceError,
    SourceMissing,
    iter_hub_rows,
    load_mirror_file,
    mirror_files,
    resolve_hub_revision,
)
from hexainst.builders.natural.lock import LOCK_VERSION, check_mirror_files, read_lock
from hexainst.builders.natural.registry import Registry, Source, load_registry
from hexainst.builders.text import comparison_key
from hexainst.kernel import atomic, environment
from hexainst.kernel.errors import UserError
from hexainst.kernel.outputs import claim_output_dir, write_marker
from hexainst.kernel.pools import NATURAL_LOCK, NATURAL_REPORT, pool_name, read_report
from hexainst.kernel.records import natural_row, validate_rows
from hexainst.kernel.settings import SettingError
from hexainst.kernel.vocab import CATEGORIES

REPORT_FILE = NATURAL_REPORT
LOCK_FILE = NATURAL_LOCK
NEAR_DUPLICATE_THRESHOLD = 0.7


def pool_file(category: str) -> str:
    return pool_name(category, "natural")


@dataclass
class Candidate:
    category: str
    extraction: Extraction
    source: Source
    split: str
    row_id: str
    revision: str


@dataclass
class SourceResult:
    source: Source
    status: str = "ok"
    reason: str | None = None
    mode: str = "mirror"
    split: str = ""
    rows_read: int = 0
    dropped: Counter = field(default_factory=Counter)
    candidates: list[Candidate] = field(default_factory=list)
    tasks: dict[str, Counter] = field(default_factory=dict)
    lock: dict[str, Any] | None = None

    @property
    def kept(self) -> int:
        return len(self.candidates)


@dataclass
class _Row:
    row: Mapping[str, Any]
    row_id: str
    revision: str
    where: str


def _iter_mirror(source: Source, mirror: Path, locked: dict[str, Any] | None, lock_path: Path | None,
                 cache: dict[str, Any], result: SourceResult, progress: bool) -> Iterator[_Row]:
    files = mirror_files(source, mirror)
    if not files:
        raise SourceMissing(
            f"no file in the mirror {mirror} matches {', '.join(source.mirror_files)}"
        )
    split = source.mirror_split
    loaded = []
    for path in files:
        rel = path.relative_to(mirror).as_posix()
        if rel not in cache:
            cache[rel] = load_mirror_file(source, path, rel, split, progress)
        loaded.append(cache[rel])
    digests = {f.relpath: f.revision for f in loaded}
    if lock_path is not None:
        check_mirror_files(source.name, locked, digests, lock_path)
    result.lock = {
        "mode": "mirror",
        "dataset_id": source.hub.dataset_id,
        "config": source.hub.config,
        "split": split,
        "files": dict(sorted(digests.items())),
    }
    single = len(loaded) == 1
    for f in loaded:
        for i, row in enumerate(f.rows()):
            if source.row_id_column:
                rid = row.get(source.row_id_column)
                if rid is None or str(rid) == "":
                    raise SourceError(
                        f"source {source.name!r}, split {split!r}, file {f.relpath}, row {i}: "
                        f"column {source.row_id_column!r} (the row id) is missing or null"
                    )
                row_id = str(rid)
            else:
                row_id = str(i) if single else f"{Path(f.relpath).name}:{i}"
            yield _Row(row, row_id, f.revision, f"source {source.name!r}, split {split!r}, file {f.relpath}, row {i}")


def _iter_hub(source: Source, locked: dict[str, Any] | None, result: SourceResult) -> Iterator[_Row]:
    if locked is not None and locked.get("mode") != "hub":
        raise UserError(f"source {source.name!r}: the lock records mirror files, but this build reads the Hub")
    revision = resolve_hub_revision(source, locked.get("revision") if locked else None)
    result.lock = {
        "mode": "hub",
        "dataset_id": source.hub.dataset_id,
        "config": source.hub.config,
        "split": source.hub.split,
        "revision": revision,
    }
    limit = source.hub.max_rows_scanned
    per_task = source.hub.max_rows_per_task
    task_col = source.columns.get("task_name")
    wanted = {t.name for t in source.tasks}
    seen: Counter = Counter()
    for i, row in enumerate(iter_hub_rows(source, revision)):
        if limit is not None and i >= limit:
            break
        where = f"source {source.name!r}, split {source.hub.split!r}, row {i}"
        if source.row_id_column:
            rid = row.get(source.row_id_column)
            if rid is None or str(rid) == "":
                raise SourceError(f"{where}: column {source.row_id_column!r} (the row id) is missing or null")
            row_id = str(rid)
        else:
            row_id = str(i)
        yield _Row(row, row_id, revision, where)
        if task_col and per_task and wanted:
            # Streaming FLAN: stop once every task of this category has enough rows.
            found = source.task(task_key(str(row.get(task_col) or "")))
            if found is not None:
                seen[found.name] += 1
                if all(seen[t] >= per_task for t in wanted):
                    break


def _read_source(source: Source, mirror: Path | None, lock: dict[str, Any] | None, lock_path: Path | None,
                 cache: dict[str, Any], flan_ctx: FlanContext, progress: bool) -> SourceResult:
    result = SourceResult(source=source, mode="mirror" if mirror else "hub")
    result.split = source.mirror_split if mirror else source.hub.split
    locked = (lock or {}).get("sources", {}).get(source.name) if lock else None
    try:
        rows: Iterable[_Row] = (
            _iter_mirror(source, mirror, locked, lock_path, cache, result, progress) if mirror else _iter_hub(source, locked, result)
        )
        extractor = EXTRACTORS[source.extractor]
        for item in tqdm(rows, desc=f"natural {source.name}", unit="row", disable=not progress, leave=False):
            result.rows_read += 1
            try:
                ext = extractor(item.row, source, flan_ctx)
            except Dropped as drop:
                result.dropped[drop.reason] += 1
                if drop.reason != "task_not_in_category" and source.tasks:
                    found = source.task(task_key(str(item.row.get(source.columns["task_name"]))))
                    task_counts = result.tasks.setdefault(found.name if found else "?", Counter())
                    task_counts["rows_read"] += 1
                    task_counts[f"dropped_{drop.reason}"] += 1
                continue
            except RowError as exc:
                raise SourceError(f"{item.where}: {exc}") from None
            if source.tasks and ext.task_name:
                found = source.task(task_key(ext.task_name))
                task_counts = result.tasks.setdefault(found.name if found else ext.task_name, Counter())
                task_counts["rows_read"] += 1
                task_counts["extracted"] += 1
            result.candidates.append(Candidate(source.category, ext, source, result.split, item.row_id, item.revision))
    except SourceMissing as exc:
        return SourceResult(source=source, status="missing", reason=str(exc), mode=result.mode, split=result.split)
    return result


def _earlier_sources(out_dir: Path) -> dict[str, str]:
    """Source name -> status in the report of an earlier natural build in ``out_dir`` ({} if none or unreadable)."""
    try:
        report = read_report(out_dir, REPORT_FILE)
        return {name: str(entry.get("status")) for name, entry in report["sources"].items()}
    except (UserError, TypeError, KeyError, AttributeError):  # none, unreadable, or not a natural report
        return {}


def _deduplicate(results: list[SourceResult]) -> None:
    """Drop exact and near duplicates within each category, first come first kept."""
    by_category: dict[str, list[SourceResult]] = {}
    for r in results:
        by_category.setdefault(r.source.category, []).append(r)
    for category, group in by_category.items():
        exact: set[str] = set()
        near = NearDuplicateIndex(threshold=NEAR_DUPLICATE_THRESHOLD, seed=0)
        for r in group:
            kept = []
            for i, cand in enumerate(r.candidates):
                key = comparison_key(cand.extraction.dedup_text)
                if key in exact:
                    r.dropped["duplicate"] += 1
                    continue
                if near.near(cand.extraction.dedup_text):
                    r.dropped["near_duplicate"] += 1
                    continue
                exact.add(key)
                near.add(f"{r.source.name}/{i}", cand.extraction.dedup_text)
                kept.append(cand)
            r.candidates = kept
        del category


def _record(c: Candidate) -> dict[str, Any]:
    ext = c.extraction
    return natural_row(
        category=c.category,
        instruction=ext.instruction,
        license=ext.license_id or c.source.license.id,
        source_name=c.source.name,
        dataset_id=c.source.hub.dataset_id,
        revision=c.revision,
        config=c.source.hub.config,
        split=c.split,
        row_id=c.row_id,
        task_name=ext.task_name,
        pattern_id=ext.pattern_id,
    )


def _report(results: list[SourceResult], pools: dict[str, list[dict[str, Any]]], registry: Registry,
            mode: str, seed: int) -> dict[str, Any]:
    target = registry.target_per_cell
    sources = {}
    for r in results:
        entry: dict[str, Any] = {
            "category": r.source.category,
            "status": r.status,
            "mode": r.mode,
            "dataset_id": r.source.hub.dataset_id,
            "config": r.source.hub.config,
            "split": r.split,
        }
        if r.status == "missing":
            entry["reason"] = r.reason
        else:
            entry["revision"] = r.lock.get("revision") if r.lock and r.mode == "hub" else None
            entry["files"] = dict(r.lock["files"]) if r.lock and r.mode == "mirror" else None
            entry["rows_read"] = r.rows_read
            entry["kept"] = r.kept
            entry["dropped"] = dict(sorted(r.dropped.items()))
            if r.tasks:
                entry["tasks"] = {k: dict(sorted(v.items())) for k, v in sorted(r.tasks.items())}
        sources[r.source.name] = entry
    cells = {}
    for category in CATEGORIES:
        n = len(pools[category])
        srcs = [r for r in results if r.source.category == category]
        missing = [r.source.name for r in srcs if r.status == "missing"]
        cell: dict[str, Any] = {
            "candidates": n,
            "target": target,
            "shortfall": max(0, target - n),
            "sources": [r.source.name for r in srcs],
        }
        if n < target:
            if missing:
                cell["note"] = f"short by {target - n}: source(s) {', '.join(missing)} missing"
            else:
                cell["note"] = (
                    f"short by {target - n}: the sources hold only {n} eligible rows after filtering "
                    f"and de-duplication"
                )
        cells[category] = cell
    return {
        "stage": "natural",
        "mode": mode,
        "seed": seed,
        "near_duplicate_threshold": NEAR_DUPLICATE_THRESHOLD,
        "target_per_cell": target,
        "cells": cells,
        "short_cells": {c: cells[c]["shortfall"] for c in CATEGORIES if cells[c]["shortfall"] > 0},
        "sources": sources,
    }


def _dump_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


#: The kind of output folder the natural stage writes (its marker; see hexainst.kernel.outputs).
OUTPUT_KIND = "natural pools"


def _write_pools(out_dir: Path, files: dict[str, str]) -> None:
    """Write the pool folder whole: beside ``out_dir`` first, swapped in only when every file is there."""
    try:
        with atomic.staged_dir(out_dir) as tmp:
            for name, text in files.items():
                with open(tmp / name, "w", encoding="utf-8", newline="\n") as fh:
                    fh.write(text)
                    fh.flush()
                    os.fsync(fh.fileno())
            write_marker(tmp, OUTPUT_KIND)
    except OSError as exc:
        raise UserError(f"cannot write the natural pools to {out_dir}: {exc.strerror or exc}") from exc


def resolve_sources_dir(sources_dir: Path | None) -> Path | None:
    """The mirror to read: the argument, else ``$HEXAINST_SOURCES``, else ``None`` (the Hub)."""
    mirror = environment.mirror(sources_dir)
    if mirror is not None and not mirror.is_dir():
        what = "is a file, not a folder" if mirror.exists() else "does not exist"
        if sources_dir is not None:
            raise SettingError("sources_dir", f"{mirror}: the sources folder {what}")
        raise UserError(f"sources folder {mirror} {what} (from ${environment.SOURCES})")
    return mirror


def build(
    out_dir: Path,
    sources_dir: Path | None = None,
    lock_file: Path | None = None,
    seed: int = 0,
    progress: bool = True,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Build the six natural candidate pools into ``out_dir``; return the report.

    Writes ``<category>.natural.jsonl`` (pending records, seeded order), ``natural-report.json``
    and ``natural.lock.json``. ``sources_dir=None`` reads ``$HEXAINST_SOURCES`` or else the Hub.
    ``lock_file`` pins the revisions (Hub commits; mirror file hashes are checked).
    """
    registry = registry or load_registry()
    mirror = resolve_sources_dir(sources_dir)
    lock = read_lock(Path(lock_file)) if lock_file is not None else None  # read before the folder may be replaced
    own_lock = lock_file is not None and Path(lock_file).resolve().parent == Path(out_dir).resolve()
    earlier = _earlier_sources(Path(out_dir))  # read before the folder may be replaced
    out_dir = claim_output_dir(out_dir, OUTPUT_KIND, inputs=[mirror, None if own_lock else lock_file], option="out_dir")
    flan_ctx = FlanContext.from_templates(registry.templates)
    cache: dict[str, Any] = {}

    results = [
        _read_source(src, mirror, lock, Path(lock_file) if lock_file else None, cache, flan_ctx, progress)
        for src in registry.sources
    ]
    if all(r.status == "missing" for r in results):
        reasons = "; ".join(f"{r.source.name}: {r.reason}" for r in results)
        raise UserError(f"no natural source could be read ({reasons})")
    lost = [r for r in results if r.status == "missing" and earlier.get(r.source.name) == "ok"]
    if lost:
        names = ", ".join(r.source.name for r in lost)
        raise UserError(f"source(s) {names} could not be read ({lost[0].reason}), but the earlier pools in {out_dir} "
                        "were built with them: they are kept; fix the mirror, or write to another pools folder")
    _deduplicate(results)

    pools: dict[str, list[dict[str, Any]]] = {c: [] for c in CATEGORIES}
    for r in results:
        pools[r.source.category].extend(_record(c) for c in r.candidates)
    for category in CATEGORIES:
        rows = sorted(pools[category], key=lambda row: row["id"])
        random.Random(f"{seed}:{category}").shuffle(rows)
        pools[category] = list(validate_rows(rows, where=f"natural pool {category}"))

    report = _report(results, pools, registry, "mirror" if mirror else "hub", seed)
    lock_out = {
        "version": LOCK_VERSION,
        "sources": {r.source.name: r.lock for r in results if r.status == "ok" and r.lock is not None},
    }
    files = {pool_file(c): _dump_jsonl(pools[c]) for c in CATEGORIES}
    files[REPORT_FILE] = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    files[LOCK_FILE] = json.dumps(lock_out, indent=2, ensure_ascii=False) + "\n"
    _write_pools(out_dir, files)
    return report
