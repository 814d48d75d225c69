"""The layout of a HexaInst release folder: its entries, their names, and the swap that replaces them.

What every reader and writer of a release folder agrees on, with no reading or writing of rows:
the entries a release consists of (:data:`RELEASE_ENTRIES`, :data:`RELEASE_LAYOUT`), the card's
YAML header (:func:`card_yaml`), and the swap that moves a new release's entries into place, each
with an atomic rename, with a journal so that a run killed half way is finished or undone by the
next one (:func:`swap_in`, :func:`recover_swap`). :mod:`hexainst.kernel.release` writes and reads
releases on top of it; :mod:`hexainst.kernel.outputs` and :mod:`hexainst.kernel.release_checks` use
it without depending on the writer.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hexainst.kernel import atomic
from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import CATEGORIES

#: Files and folders a release consists of, relative to the release folder.
RELEASE_ENTRIES: tuple[str, ...] = ("README.md", "LICENSE.md", "data", "reserve", "generations", "validation.json",
                                    "topup.json", "rejection_rates.json", "croissant.json")
DATA_DIR = "data"
RESERVE_FILE = "reserve/reserve.jsonl"
GENERATIONS_FILE = "generations/synthetic.jsonl"
#: The validation file a release ships (what its rows' outcomes came from), so that a fresh clone rebuilds it.
VALIDATION_FILE = "validation.json"
#: The top-up record a topped-up release ships: ``{"extra": {"<category>/<source>": n}}``.
TOPUP_FILE = "topup.json"
#: The expected rejection rates a release's reserves were planned with (``{"source": ..., "cells": {cell: rate}}``),
#: so that a rebuild plans the same reserves whatever rates the toolkit bundles by then.
RATES_FILE = "rejection_rates.json"
#: What each sub-folder of a release may hold (glob patterns relative to it): anything else there is not ours.
RELEASE_LAYOUT: dict[str, tuple[str, ...]] = {
    "data": tuple(f"{c}.parquet" for c in CATEGORIES),
    "reserve": ("reserve.jsonl",),
    "generations": ("synthetic.jsonl",),
}
SPLIT = "train"

#: The release that ships inside this package: the ``hexainst`` package folder itself.
PACKAGE_RELEASE_DIR = Path(__file__).resolve().parents[1]


class ReleaseError(UserError):
    """A release folder is missing, malformed or does not match its card."""


def data_file(category: str) -> str:
    return f"{DATA_DIR}/{category}.parquet"


#: The journal of a swap in progress, in the release folder: which entries existed and where they were moved.
SWAP_JOURNAL = ".hexainst-release-swap.json"
_OLD_PREFIX = ".release-old-"


def swap_in(tmp: Path, out_dir: Path) -> None:
    """Move the release entries of ``tmp`` into ``out_dir``, replacing the old ones.

    The folder may hold other things (the package's code), so it cannot be renamed whole: each entry
    moves with one atomic rename, the old entries aside first, deleted last. A journal written before
    the first rename says what the folder held, so that a run killed half way is finished or undone by
    the next one (:func:`recover_swap`): the folder is always the old release or the new one, complete.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    recover_swap(out_dir)
    old = Path(tempfile.mkdtemp(prefix=f"{_OLD_PREFIX}{os.getpid()}-", dir=out_dir))
    before = [e for e in RELEASE_ENTRIES if os.path.lexists(out_dir / e)]
    new = [e for e in RELEASE_ENTRIES if os.path.lexists(tmp / e)]
    atomic.write_text(out_dir / SWAP_JOURNAL, json.dumps({"old": old.name, "before": before, "new": new}) + "\n")
    try:
        for entry in before:
            os.replace(out_dir / entry, old / _aside_name(entry))
        for entry in sorted(new, key=lambda e: e == "README.md"):  # the card last
            os.replace(tmp / entry, out_dir / entry)
    except BaseException:
        _roll_back(out_dir, old, before)
        raise
    (out_dir / SWAP_JOURNAL).unlink()
    shutil.rmtree(old, ignore_errors=True)


def _aside_name(entry: str) -> str:
    return entry.replace("/", "_")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _roll_back(out_dir: Path, old: Path, before: list[str]) -> None:
    """Put the entries moved aside into ``old`` back, and remove the new entries already moved in."""
    for entry in RELEASE_ENTRIES:
        moved = old / _aside_name(entry)
        if os.path.lexists(moved):
            _remove(out_dir / entry)
            os.replace(moved, out_dir / entry)
        elif entry not in before:
            _remove(out_dir / entry)
    (out_dir / SWAP_JOURNAL).unlink(missing_ok=True)
    shutil.rmtree(old, ignore_errors=True)


def recover_swap(out_dir: str | os.PathLike[str]) -> str | None:
    """Finish or undo the swap of a killed ``write_release`` in ``out_dir``; return what was done, or ``None``.

    Finished ("completed") when every old entry had been moved aside and every new one moved in (only the
    clean-up was left); otherwise undone ("restored": the old release put back). Old-entry folders
    without a journal (killed during the clean-up) are removed. A swap of a live process is left alone.
    """
    out_dir = Path(out_dir)
    journal = out_dir / SWAP_JOURNAL
    done = None
    if journal.is_file():
        try:
            doc = json.loads(journal.read_text("utf-8"))
            name = str(doc["old"])
            # only a folder of ours, directly in the release folder, is ever put back or deleted
            if not name.startswith(_OLD_PREFIX) or Path(name).name != name:
                raise ValueError(f"'old' is {name!r}, not a {_OLD_PREFIX}* folder of this release")
            old = out_dir / name
            before, new = list(doc["before"]), list(doc["new"])
            if not set(before) | set(new) <= set(RELEASE_ENTRIES):
                raise ValueError("it names entries that are not a release's")
            pid = int(name[len(_OLD_PREFIX):].split("-", 1)[0])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReleaseError(f"{journal}: an interrupted release swap whose journal cannot be read ({exc}); "
                               "check the folder and remove the file") from None
        if pid != os.getpid() and atomic.pid_alive(pid):
            raise ReleaseError(f"{out_dir}: another hexainst run (PID {pid}) is replacing this release; "
                               "wait for it to finish")
        if all(os.path.lexists(old / _aside_name(e)) for e in before) and all(os.path.lexists(out_dir / e) for e in new):
            journal.unlink()
            shutil.rmtree(old, ignore_errors=True)
            done = "completed"
        else:
            _roll_back(out_dir, old, before)
            done = "restored"
    live = False
    for leftover in out_dir.glob(f"{_OLD_PREFIX}*") if out_dir.is_dir() else ():
        pid = leftover.name[len(_OLD_PREFIX):].split("-", 1)[0]
        if not (leftover.is_dir() and not leftover.is_symlink() and pid.isdigit()
                and leftover.stat().st_uid == os.getuid()):  # ours: our name, a real folder, this account's
            continue
        if int(pid) == os.getpid() or atomic.pid_alive(int(pid)):
            live = True
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    if not live:  # a journal killed before its own rename (atomic.write_text's temporary file)
        for half in out_dir.glob(f".{SWAP_JOURNAL}.*.tmp") if out_dir.is_dir() else ():
            half.unlink(missing_ok=True)
    return done


def resolve_release(path: str | os.PathLike[str] | None) -> Path:
    """The release folder ``path`` names (``None``: the one inside this package); not a release: :class:`ReleaseError`."""
    folder = Path(path) if path is not None else PACKAGE_RELEASE_DIR
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "the folder does not exist"
        raise ReleaseError(f"{folder}: not a HexaInst release ({what})")
    if not (folder / "README.md").is_file():
        raise ReleaseError(f"{folder}: not a HexaInst release (no README.md with the card)")
    return folder


def card_yaml(folder: Path) -> dict[str, Any]:
    """The YAML header of the release's card as a dict; a card that cannot be parsed is a :class:`ReleaseError`."""
    from huggingface_hub import DatasetCard  # deferred: DatasetCard (~0.16 s); `import hexainst` imports this module

    readme = Path(folder) / "README.md"
    try:
        data = DatasetCard.load(readme).data.to_dict()
    except UnicodeDecodeError as exc:
        raise ReleaseError(f"{readme}: the dataset card is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReleaseError(f"{readme}: the dataset card's YAML header cannot be read ({first})") from exc
    if not isinstance(data, dict):
        raise ReleaseError(f"{readme}: the dataset card has no YAML header")
    return data
