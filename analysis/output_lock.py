"""One writer at a time on a store or an analysis output folder.

:func:`writer_lock` takes an exclusive, non-blocking lock (``filelock``, ``flock`` on Unix) on a
hidden file beside the folder, ``.<name>-hexainst.lock``: beside, not inside, because an analysis
report and an overwritten store are swapped in whole, and a lock inside would be swapped out with
them. A second writer on the same folder (two ``record`` into one store, two ``analyze`` onto one
report, a ``record-merge`` into a store being recorded) stops at once with one line naming the
folder, before it loads a model or writes a byte. The lock dies with its process (a killed run
leaves no stale lock: the file stays, unlocked, and the next run takes it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hexainst.kernel.errors import UserError


class BusyError(UserError):
    """Another run is writing the folder."""


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder``: ``.<name>-hexainst.lock`` beside it."""
    folder = Path(folder).expanduser().resolve()
    return folder.with_name(f".{folder.name}-hexainst.lock")


@contextmanager
def writer_lock(folder: str | os.PathLike[str], *, what: str = "output folder") -> Iterator[Path]:
    """Hold the writer's lock on ``folder`` for the ``with`` block; :class:`BusyError` if another run holds it."""
    from filelock import FileLock, Timeout

    path = lock_path(folder)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise BusyError(f"{Path(folder).expanduser().resolve()}: another hexainst run is writing this {what} "
                        f"(it holds {path}); wait for it to finish, or write elsewhere") from None
    except OSError as exc:
        raise BusyError(f"{path}: cannot create the lock of this {what} ({exc.strerror or exc})") from None
    try:
        yield path
    finally:
        lock.release()
