"""Reading a source's rows through ``datasets``: from the Hub by id, or from a mirror folder.

Side effects live here (files, network); the extraction logic never touches them.

* Mirror: each file matching the source's globs is read with
  ``load_dataset("json", data_files=...)`` (gzip included), one file at a time so that every
  row keeps the file it came from; its revision is ``sha256:<hex>`` of the file's bytes.
* Hub: ``load_dataset(id, config, split=..., revision=commit, streaming=...)``; the commit is
  resolved with ``HfApi().dataset_info`` (or taken from the lock file).

Errors: a source that is absent (no matching file, the Hub unreachable) raises
:class:`SourceMissing`, which the build records and goes on; a source that is present but bad
(unreadable file, malformed JSON, missing column, empty split) raises :class:`SourceError`,
which stops the build before anything is written. Messages name source, split, file and row.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hexainst.builders.natural.registry import Source
from hexainst.kernel.digests import file_sha256
from hexainst.kernel.errors import UserError


class SourceError(UserError):
    """A source is present but unusable; the message names source, split, file and row."""


class SourceMissing(Exception):
    """A source cannot be found (no mirror file, Hub unreachable); the others go on."""


def sha256_file(path: Path) -> str:
    """A mirror file's revision: ``sha256:<hex>``."""
    return "sha256:" + file_sha256(path)


def mirror_files(source: Source, mirror_dir: Path) -> list[Path]:
    """Files of ``source`` in the mirror, in sorted order (each file once)."""
    found: dict[str, Path] = {}
    for pattern in source.mirror_files:
        for path in sorted(mirror_dir.glob(pattern)):
            if path.is_file():
                found.setdefault(path.relative_to(mirror_dir).as_posix(), path)
    return [found[k] for k in sorted(found)]


def _first_bad_line(path: Path) -> str:
    """Find why a JSON-lines file cannot be read: the first bad line, or the I/O problem."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
            for lineno, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    return f"row {lineno} (line {lineno + 1}): not valid JSON ({exc.msg} at column {exc.colno})"
                if not isinstance(value, dict):
                    return f"row {lineno} (line {lineno + 1}): a JSON {type(value).__name__}, not an object"
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        return f"unreadable ({exc.__class__.__name__}: {exc})"
    return "rows could not be read as one table (columns change type between rows?)"


def _first_non_utf8_line(path: Path) -> tuple[int, int] | None:
    """(line number, first bad byte) of the first line that is not UTF-8, or ``None`` (``datasets``' JSON
    reader accepts such bytes and fails only later, on the first row read)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:  # type: ignore[operator]
            for lineno, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return lineno, line[exc.start]
    except (OSError, EOFError):
        return None  # reported by the reader with its own message
    return None


@contextlib.contextmanager
def quiet_datasets(progress: bool) -> Iterator[None]:
    """Silence ``datasets``' own error log (we raise a clearer error) and, unless ``progress``,
    its progress bars; restore both afterwards."""
    import datasets  # deferred: datasets (~0.6 s); `hexainst --help` imports this module

    logger = logging.getLogger("datasets")
    level = logger.level
    bars = not datasets.are_progress_bars_disabled()
    logger.setLevel(logging.CRITICAL)
    if not progress:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        logger.setLevel(level)
        if bars and not progress:
            datasets.enable_progress_bars()


@dataclass
class LoadedFile:
    """One mirror file's rows as a ``datasets.Dataset``, with its path and revision."""

    relpath: str
    revision: str
    dataset: Any
    _rows: list[dict[str, Any]] | None = None

    def rows(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (converted once: much faster than iterating the Dataset)."""
        if self._rows is None:
            self._rows = self.dataset.to_list()
        return self._rows


def load_mirror_file(source: Source, path: Path, relpath: str, split: str, progress: bool = True) -> LoadedFile:
    """Read one mirror file through ``datasets``; :class:`SourceError` naming the row if bad."""
    where = f"source {source.name!r}, split {split!r}, file {relpath}"
    try:
        if path.stat().st_size == 0:
            raise SourceError(f"{where}: empty split (the file has 0 rows)")
        revision = sha256_file(path)
    except OSError as exc:
        raise SourceError(f"{where}: unreadable ({exc.strerror or exc})") from exc
    bad = _first_non_utf8_line(path)
    if bad is not None:
        raise SourceError(f"{where}: line {bad[0]} is not UTF-8 (byte 0x{bad[1]:02x}); the mirror file is damaged or in "
                          "another encoding")
    from datasets import load_dataset  # deferred: datasets (~0.6 s); `hexainst --help` imports this module

    try:
        with quiet_datasets(progress):
            ds = load_dataset("json", data_files={split: str(path)}, split=split)
    except Exception as exc:  # datasets raises many types; find the row ourselves
        raise SourceError(f"{where}: {_first_bad_line(path)}") from exc
    if len(ds) == 0:
        raise SourceError(f"{where}: empty split (0 rows)")
    required = list(source.columns.values()) + ([source.row_id_column] if source.row_id_column else [])
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise SourceError(
            f"{where}, row 0: missing column {', '.join(repr(c) for c in missing)} "
            f"(the rows have: {', '.join(ds.column_names)})"
        )
    return LoadedFile(relpath=relpath, revision=revision, dataset=ds)


def resolve_hub_revision(source: Source, locked: str | None) -> str:
    """The Hub commit to read: the locked one, the registry's pin, or main's current commit."""
    from huggingface_hub import HfApi  # deferred: HfApi (~0.15 s); `hexainst --help` imports this module

    wanted = locked or source.hub.revision
    try:
        info = HfApi().dataset_info(source.hub.dataset_id, revision=wanted)
    except Exception as exc:  # offline, DNS, 404, auth: all mean "not available here"
        raise SourceMissing(
            f"cannot reach {source.hub.dataset_id!r} on the Hugging Face Hub"
            f"{' at revision ' + wanted if wanted else ''} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); to build from a local mirror "
            f"pass --sources DIR or set HEXAINST_SOURCES"
        ) from exc
    if not info.sha:
        raise SourceMissing(f"the Hub did not report a commit for {source.hub.dataset_id!r}")
    return info.sha


def iter_hub_rows(source: Source, revision: str) -> Iterator[dict[str, Any]]:
    """Rows of the source's Hub split at ``revision`` (streamed when the registry says so)."""
    from datasets import load_dataset  # deferred: datasets (~0.6 s); `hexainst --help` imports this module

    spec = source.hub
    where = f"source {source.name!r} ({spec.dataset_id}, config {spec.config!r}), split {spec.split!r}"
    try:
        ds = load_dataset(spec.dataset_id, spec.config, split=spec.split, revision=revision, streaming=spec.streaming)
    except Exception as exc:
        raise SourceMissing(f"{where}: cannot load from the Hub ({exc.__class__.__name__}: {exc})") from exc
    required = list(source.columns.values()) + ([source.row_id_column] if source.row_id_column else [])
    columns = getattr(ds, "column_names", None)
    if columns is not None:
        missing = [c for c in required if c not in columns]
        if missing:
            raise SourceError(f"{where}, row 0: missing column {', '.join(map(repr, missing))} "
                              f"(the rows have: {', '.join(columns)})")
    empty = True
    for row in ds:
        empty = False
        yield row
    if empty:
        raise SourceError(f"{where}: empty split (0 rows)")
