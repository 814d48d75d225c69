"""Write and read a HexaInst release folder.

A release folder holds exactly these entries (everything else in the folder, such as this
package's own code, is left alone)::

    README.md                 the dataset card; its YAML declares the configs and dataset_info
    LICENSE.md                the licences of the rows (the release is "other": one licence per row)
    data/<category>.parquet   the rows of one category, natural then synthetic
    reserve/reserve.jsonl     ordered replacements per (category, source) cell, not part of any config
    generations/synthetic.jsonl  every generator answer the build used (when the build supplies it)
    validation.json           the validation file the build applied (every verdict, who made it), if any
    topup.json                the candidates top-up rounds added per cell, if any (a rebuild makes them again)
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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from hexainst.kernel import atomic
from hexainst.kernel.card import render_card, render_license
from hexainst.kernel.features import dataset_from_rows, decode_row, release_features
from hexainst.kernel.jsonfiles import read_jsonl
from hexainst.kernel.outputs import claim_release_dir
from hexainst.kernel.records import RecordError, upgrade_row, validate_row, validate_rows
from hexainst.kernel.release_checks import card_problems
from hexainst.kernel.release_layout import (  # noqa: F401 - the layout's names, as the readers of this module know them
    DATA_DIR,
    GENERATIONS_FILE,
    PACKAGE_RELEASE_DIR,
    RATES_FILE,
    RELEASE_ENTRIES,
    RELEASE_LAYOUT,
    RESERVE_FILE,
    SPLIT,
    SWAP_JOURNAL,
    TOPUP_FILE,
    VALIDATION_FILE,
    ReleaseError,
    card_yaml,
    data_file,
    recover_swap,
    resolve_release,
    swap_in,
)
from hexainst.kernel.vocab import CATEGORIES, SOURCES


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
    generations: str | os.PathLike[str] | None = None,
    validation: str | os.PathLike[str] | None = None,
    topup: Mapping[str, Any] | None = None,
    rates: Mapping[str, Any] | None = None,
) -> Path:
    """Validate ``rows`` and write them as a release into ``out_dir``; return ``out_dir``.

    ``reserve`` rows are written, in the given order within each cell, to ``reserve/reserve.jsonl``.
    ``build_info`` feeds the card (see :mod:`hexainst.kernel.card`). ``croissant``, if given, is called with
    the finished temporary folder and returns the Croissant JSON-LD to write as ``croissant.json``.
    ``generations``, if given, is a JSONL file of the generator's answers copied to ``generations/synthetic.jsonl``;
    without it, the generations ``out_dir`` already ships are kept (answers are never dropped by a rebuild).
    ``validation``, if given, is the validation file applied, copied (byte for byte) to ``validation.json``;
    without it a release has no ``validation.json`` (an earlier one is removed with the old entries).
    ``topup``, if given, is the top-up record written to ``topup.json`` (sorted keys, one stable layout).
    ``rates``, if given, are the expected rejection rates the reserves were planned with, written to
    ``rejection_rates.json`` in the same layout.
    Nothing in ``out_dir`` changes unless every step succeeds, and ``out_dir`` must be a new folder
    or a HexaInst release (:func:`hexainst.kernel.outputs.claim_release_dir`).
    """
    out_dir = claim_release_dir(out_dir)
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
        _write(release_rows, reserve_rows, out_dir, build_info, croissant, generations, validation, topup, rates)
    return out_dir


@contextlib.contextmanager
def _quiet_datasets():
    """Silence ``datasets``' per-file progress bars while writing (restored afterwards)."""
    import datasets  # deferred: datasets (~0.6 s); `import hexainst` imports this module

    was_disabled = datasets.utils.logging.is_progress_bar_enabled() is False
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _write(release_rows, reserve_rows, out_dir: Path, build_info, croissant, generations, validation=None,
           topup=None, rates=None) -> None:
    tmp = atomic.make_temp_dir(out_dir, "writing")
    try:
        (tmp / DATA_DIR).mkdir()
        counts: dict[str, int] = {}
        for category in CATEGORIES:
            cat_rows = [r for r in release_rows if r["category"] == category]
            if not cat_rows:
                continue
            dataset_from_rows(cat_rows).to_parquet(str(tmp / data_file(category)))
            counts[category] = len(cat_rows)
        if generations is None and (out_dir / GENERATIONS_FILE).is_file():
            generations = out_dir / GENERATIONS_FILE  # a build without answers of its own keeps the earlier ones
        if generations is not None:
            (tmp / GENERATIONS_FILE).parent.mkdir()
            shutil.copyfile(generations, tmp / GENERATIONS_FILE)
        if validation is not None:
            shutil.copyfile(validation, tmp / VALIDATION_FILE)
        if topup:
            (tmp / TOPUP_FILE).write_text(json.dumps(dict(topup), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if rates:
            (tmp / RATES_FILE).write_text(json.dumps(dict(rates), indent=2, sort_keys=True) + "\n", encoding="utf-8")
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
        swap_in(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_loads(folder: Path, counts: Mapping[str, int]) -> None:
    """Load the written folder back through ``datasets`` and compare the row counts."""
    import datasets  # deferred: datasets (~0.6 s); `import hexainst` imports this module

    for name, expected in [("default", sum(counts.values())), *counts.items()]:
        ds = datasets.load_dataset(str(folder), name, split=SPLIT, download_mode="force_redownload")
        if len(ds) != expected:
            raise ReleaseError(f"config {name!r} loads {len(ds)} rows, expected {expected}")


# --------------------------------------------------------------------------- reading


def config_files(folder: Path) -> dict[str, list[str]]:
    """Map config name -> data files (relative paths) as the card's YAML declares them."""
    configs = card_yaml(folder).get("configs") or []
    if not configs:
        raise ReleaseError(f"{folder / 'README.md'}: the card declares no configs")
    out: dict[str, list[str]] = {}
    for i, config in enumerate(configs):
        if not isinstance(config, dict) or "config_name" not in config or "data_files" not in config:
            raise ReleaseError(f"{folder / 'README.md'}: configs[{i}] needs a config_name and data_files")
        files = config.get("data_files")
        paths: list[str] = []
        for spec in files if isinstance(files, list) else [files]:
            spec_paths = spec.get("path") if isinstance(spec, dict) else spec
            if spec_paths is None:
                raise ReleaseError(f"{folder / 'README.md'}: config {config['config_name']!r} names no data file path")
            paths.extend([spec_paths] if isinstance(spec_paths, str) else spec_paths)
        out[config["config_name"]] = paths
    return out


def _config_paths(folder: Path, configs: Mapping[str, list[str]], name: str) -> list[Path]:
    files: list[Path] = []
    for pattern in configs[name]:
        matched = sorted(folder.glob(pattern))
        if not matched:
            raise ReleaseError(f"{folder / 'README.md'}: config {name!r} names {pattern!r}, which matches no file")
        files.extend(matched)
    return files


def _read_parquet_rows(file: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq  # deferred: pyarrow (~0.15 s); `import hexainst` imports this module

    try:
        table = pq.read_table(file)
        stored = table.to_pylist()  # a damaged page can pass the reader and hold bytes that are not UTF-8 text
    except Exception as exc:  # any pyarrow failure means an unreadable file
        raise ReleaseError(f"{file}: cannot read parquet ({exc})") from exc
    features = release_features()
    rows = []
    for i, row in enumerate(stored):
        try:
            rows.append(decode_row(row, features))
        except (ValueError, TypeError, OverflowError) as exc:  # a ClassLabel integer out of range, say
            field = next((name for name in ("category", "source")
                          if not _is_label(row.get(name), features[name])), None)
            where = f"field {field!r}: {row.get(field)!r} is not one of {features[field].names}" if field else str(exc)
            raise ReleaseError(f"{file} row {i}: {where}") from None
    return rows


def _is_label(value: Any, feature: Any) -> bool:
    """Whether a stored category/source value decodes: a name the ClassLabel knows, or an integer in its range."""
    if isinstance(value, str):
        return value in feature.names
    try:
        return 0 <= int(value) < feature.num_classes
    except (TypeError, ValueError):
        return False


def read_release_rows(path: str | os.PathLike[str] | None = None, category: str | None = None, *,
                      check_card: bool = True) -> list[dict[str, Any]]:
    """Every row of a release (or of one category) as schema dicts, each validated.

    Errors name the file and the row number within it. With ``check_card`` (the default) the rows
    read must be as many as the card declares for that config, and every config's files must exist.
    """
    folder = resolve_release(path)
    configs = config_files(folder)
    name = category or "default"
    if name not in configs:
        raise ReleaseError(f"{folder}: no config {name!r}; the card declares {', '.join(configs)}")
    files = _config_paths(folder, configs, name)
    if name == "default":  # every category config's file must be there, or the default config silently shrinks
        for other in configs:
            _config_paths(folder, configs, other)
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
    if check_card:
        problems = card_problems(folder, {name: len(rows)})
        if problems:
            raise ReleaseError(f"{folder}: {problems[0]} (run 'hexainst validate {folder}')")
    return rows


def read_release(path: str | os.PathLike[str] | None = None, category: str | None = None):
    """The release as an in-memory ``datasets.Dataset`` (no cache involved), every row validated."""
    return dataset_from_rows(read_release_rows(path, category))


def read_reserve(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The ordered reserve rows of a release (empty when the release has no reserve file)."""
    folder = resolve_release(path)
    file = folder / RESERVE_FILE
    if not file.exists():
        return []
    rows = [upgrade_row(r) for r in read_jsonl(file, what="reserve", check=lambda row, where: validate_row(upgrade_row(row), where))]
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row["id"] in seen:
            raise ReleaseError(f"{file} row {i}: field 'id': duplicate id {row['id']!r}")
        seen.add(row["id"])
    return rows


def cell_counts(rows: Iterable[Mapping[str, Any]]) -> Counter:
    """Counter of (category, source) -> rows."""
    return Counter((r["category"], r["source"]) for r in rows)
