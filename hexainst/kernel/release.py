"""Write and read a HexaInst release folder.

A release folder holds exactly these entries (everything else in the folder, such as this
package's own code, is left alone)::

    README.md                 the dataset card; its YAML declares the configs and dataset_info
    LICENSE.md                the licences of the rows (the release is "other": one licence per row)
    data/<category>.parquet   the rows of one category, natural then synthetic
    reserve/reserve.jsonl     ordered replacements per (category, source) cell, not part of any config
    croissant.json            Croissant metadata (written when mlcroissant metadata is supplied)

The writer validates every row before anything is written, builds the new release in a temporary
folder beside the target, checks that ``datasets`` loads it, and only then moves its entries into
place, each with an atomic rename.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError
from hexainst.kernel.records import RecordError, validate_row, validate_rows
from hexainst.kernel.vocab import CATEGORIES, SOURCES

#: Files and folders a release consists of, relative to the release folder.
RELEASE_ENTRIES: tuple[str, ...] = ("README.md", "LICENSE.md", "data", "reserve", "croissant.json")
DATA_DIR = "data"
RESERVE_FILE = "reserve/reserve.jsonl"
SPLIT = "train"

#: The release that ships inside this package: the ``hexainst`` package folder itself.
PACKAGE_RELEASE_DIR = Path(__file__).resolve().parents[1]


class ReleaseError(UserError):
    """A release folder is missing, malformed or does not match its card."""


def data_file(category: str) -> str:
    return f"{DATA_DIR}/{category}.parquet"


def _cell_key(row: Mapping[str, Any]) -> tuple[int, int]:
    return CATEGORIES.index(row["category"]), SOURCES.index(row["source"])


def order_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped by category then source, stable within a cell (the reserve's order)."""
    return sorted((dict(r) for r in rows), key=_cell_key)


def canonical_order(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The release order: category, source, then id, so that the same set of rows gives the same bytes."""
    return sorted((dict(r) for r in rows), key=lambda r: (*_cell_key(r), r["id"]))


def write_release(
    rows: Iterable[Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    reserve: Iterable[Mapping[str, Any]] = (),
    build_info: Mapping[str, Any] | None = None,
    croissant: Callable[[Path], Mapping[str, Any]] | None = None,
) -> Path:
    """Validate ``rows`` and write them as a release into ``out_dir``; return ``out_dir``.

    ``reserve`` rows are written, in the given order within each cell, to ``reserve/reserve.jsonl``.
    ``build_info`` feeds the card (see :mod:`hexainst.kernel.card`). ``croissant``, if given, is called with
    the finished temporary folder and returns the Croissant JSON-LD to write as ``croissant.json``.
    Nothing in ``out_dir`` changes unless every step succeeds.
    """
    out_dir = Path(out_dir)
    release_rows = canonical_order(validate_rows(rows, where="release"))
    reserve_rows = order_rows(validate_rows(reserve, where="reserve"))
    release_ids = {r["id"] for r in release_rows}
    for i, row in enumerate(reserve_rows):
        if row["id"] in release_ids:
            raise RecordError(f"reserve row {i}: field 'id': {row['id']!r} is also in the release")
    if not release_rows:
        raise ReleaseError("no rows to write: a release needs at least one row")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_datasets():
        _write(release_rows, reserve_rows, out_dir, build_info, croissant)
    return out_dir


@contextlib.contextmanager
def _quiet_datasets():
    """Silence ``datasets``' per-file progress bars while writing (restored afterwards)."""
    import datasets

    was_disabled = datasets.utils.logging.is_progress_bar_enabled() is False
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _write(release_rows, reserve_rows, out_dir: Path, build_info, croissant) -> None:
    from hexainst.kernel.card import render_card, render_license
    from hexainst.kernel.features import dataset_from_rows

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.writing-", dir=out_dir.parent))
    try:
        (tmp / DATA_DIR).mkdir()
        counts: dict[str, int] = {}
        for category in CATEGORIES:
            cat_rows = [r for r in release_rows if r["category"] == category]
            if not cat_rows:
                continue
            dataset_from_rows(cat_rows).to_parquet(str(tmp / data_file(category)))
            counts[category] = len(cat_rows)
        (tmp / "reserve").mkdir()
        with open(tmp / RESERVE_FILE, "w", encoding="utf-8", newline="\n") as fh:
            for row in reserve_rows:
                fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        card = render_card(release_rows, reserve_rows, counts, dict(build_info or {}))
        card.save(tmp / "README.md")
        (tmp / "LICENSE.md").write_text(render_license(release_rows), encoding="utf-8", newline="\n")
        _check_loads(tmp, counts)
        if croissant is not None:
            metadata = croissant(tmp)
            with open(tmp / "croissant.json", "w", encoding="utf-8", newline="\n") as fh:
                json.dump(metadata, fh, ensure_ascii=False, indent=2, sort_keys=True)
                fh.write("\n")
        _swap_in(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_loads(folder: Path, counts: Mapping[str, int]) -> None:
    """Load the written folder back through ``datasets`` and compare the row counts."""
    import datasets

    for name, expected in [("default", sum(counts.values())), *counts.items()]:
        ds = datasets.load_dataset(str(folder), name, split=SPLIT, download_mode="force_redownload")
        if len(ds) != expected:
            raise ReleaseError(f"config {name!r} loads {len(ds)} rows, expected {expected}")


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Move the release entries of ``tmp`` into ``out_dir``, replacing the old ones.

    Each entry moves with one atomic rename; the old entries are moved aside first and deleted last.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    old = Path(tempfile.mkdtemp(prefix=".release-old-", dir=out_dir))
    try:
        for entry in RELEASE_ENTRIES:
            if (out_dir / entry).exists():
                os.replace(out_dir / entry, old / entry.replace("/", "_"))
        for entry in RELEASE_ENTRIES:
            if (tmp / entry).exists():
                os.replace(tmp / entry, out_dir / entry)
    except BaseException:
        # Put the previous release back where it was.
        for entry in RELEASE_ENTRIES:
            moved = old / entry.replace("/", "_")
            if moved.exists():
                if (out_dir / entry).is_dir():
                    shutil.rmtree(out_dir / entry)
                elif (out_dir / entry).exists():
                    (out_dir / entry).unlink()
                os.replace(moved, out_dir / entry)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- reading


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    folder = Path(path) if path is not None else PACKAGE_RELEASE_DIR
    if not (folder / "README.md").is_file():
        raise ReleaseError(f"{folder}: not a HexaInst release (no README.md with the card)")
    return folder


def config_files(folder: Path) -> dict[str, list[str]]:
    """Map config name -> data files (relative paths) as the card's YAML declares them."""
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(folder / "README.md")
    configs = card.data.to_dict().get("configs") or []
    if not configs:
        raise ReleaseError(f"{folder / 'README.md'}: the card declares no configs")
    out: dict[str, list[str]] = {}
    for config in configs:
        files = config.get("data_files")
        paths: list[str] = []
        for spec in files if isinstance(files, list) else [files]:
            spec_paths = spec["path"] if isinstance(spec, dict) else spec
            paths.extend([spec_paths] if isinstance(spec_paths, str) else spec_paths)
        out[config["config_name"]] = paths
    return out


def _read_parquet_rows(file: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    from hexainst.kernel.features import decode_row, release_features

    try:
        table = pq.read_table(file)
    except Exception as exc:  # noqa: BLE001 - any pyarrow failure means an unreadable file
        raise ReleaseError(f"{file}: cannot read parquet ({exc})") from exc
    features = release_features()
    return [decode_row(r, features) for r in table.to_pylist()]


def read_release_rows(path: str | os.PathLike[str] | None = None, category: str | None = None) -> list[dict[str, Any]]:
    """Every row of a release (or of one category) as schema dicts, each validated.

    Errors name the file and the row number within it.
    """
    folder = _resolve(path)
    configs = config_files(folder)
    name = category or "default"
    if name not in configs:
        raise ReleaseError(f"{folder}: no config {name!r}; the card declares {', '.join(configs)}")
    files: list[Path] = []
    for pattern in configs[name]:
        matched = sorted(folder.glob(pattern))
        if not matched:
            raise ReleaseError(f"{folder / 'README.md'}: config {name!r} names {pattern!r}, which matches no file")
        files.extend(matched)
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for file in files:
        rel = file.relative_to(folder)
        for i, row in enumerate(_read_parquet_rows(file)):
            where = f"{rel} row {i}"
            validate_row(row, where)
            if row["id"] in seen:
                raise ReleaseError(f"{where}: field 'id': duplicate id {row['id']!r} (also in {seen[row['id']]})")
            seen[row["id"]] = where
            rows.append(row)
    return rows


def read_release(path: str | os.PathLike[str] | None = None, category: str | None = None):
    """The release as an in-memory ``datasets.Dataset`` (no cache involved), every row validated."""
    from hexainst.kernel.features import dataset_from_rows

    return dataset_from_rows(read_release_rows(path, category))


def read_reserve(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The ordered reserve rows of a release (empty when the release has no reserve file)."""
    folder = _resolve(path)
    file = folder / RESERVE_FILE
    if not file.exists():
        return []
    rows = []
    with open(file, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReleaseError(f"{file} line {i + 1}: not JSON ({exc.msg})") from exc
            validate_row(row, f"{RESERVE_FILE} row {i}")
            rows.append(row)
    return rows


def cell_counts(rows: Iterable[Mapping[str, Any]]) -> Counter:
    """Counter of (category, source) -> rows."""
    return Counter((r["category"], r["source"]) for r in rows)
