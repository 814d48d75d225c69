"""One writer at a time on a store or an analysis output folder.

:func:`writer_lock` takes an exclusive, non-blocking lock (``filelock``, ``flock`` on Unix) keyed by
the folder's resolved path. The lock file is not beside or inside the folder (a report and an
overwritten store are swapped in whole, and a failed run must leave the user's folders exactly as
they were): it lies in a private per-user folder, ``$XDG_RUNTIME_DIR/hexainst-locks`` or
``<tmp>/hexainst-locks-<uid>`` (0700), named by the SHA-256 of the path. A second writer on the
same folder (two ``record`` into one store, two ``analyze`` onto one report, a ``record-merge``
into a store being written) stops at once with one line naming the folder, before it loads a
model or writes a byte. The lock dies with its process: a killed run leaves no stale lock.

The library takes the lock where it writes (a stage's ``run``, ``build_all``, ``topup``, the
recorder, the analysis), so a Python caller is covered as the command line is. Within one process
the lock is re-entrant: ``build_all`` holds its release folder while the release stage it calls
takes the same lock again, and the inner ``with`` costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from hexainst.kernel import environment
from hexainst.kernel.errors import UserError


class BusyError(UserError):
    """Another run is writing the folder."""


def _lock_dir() -> Path:
    runtime = environment.runtime_dir()
    if runtime is not None:
        return runtime / "hexainst-locks"
    return Path(tempfile.gettempdir()) / f"hexainst-locks-{os.getuid()}"


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The lock file of ``folder`` (see the module doc): one per resolved path, however it is spelled."""
    key = str(Path(folder).expanduser().resolve())
    return _lock_dir() / f"{hashlib.sha256(key.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.lock"


def _private_dir(path: Path) -> None:
    """Create the lock folder 0700; refuse one that is a link or another account's."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise BusyError(f"{path}: the lock folder is not a folder of this account; remove it")


@contextmanager
def writer_lock(folder: str | os.PathLike[str], *, what: str = "output folder") -> Iterator[Path]:
    """Hold the writer's lock on ``folder`` for the ``with`` block; :class:`BusyError` if another run holds it.

    A block of this process that already holds the lock (an outer ``with``) lets an inner one through.
    """
    path = lock_path(folder)
    try:
        _private_dir(path.parent)
        # one FileLock per path in this process (is_singleton), which counts nested acquires: re-entrant
        lock = FileLock(str(path), timeout=0, mode=0o600, is_singleton=True)
        lock.acquire()
    except Timeout:
        raise BusyError(f"{Path(folder).expanduser().resolve()}: another hexainst run is writing this {what}; "
                        "wait for it to finish, or write elsewhere") from None
    except OSError as exc:
        raise BusyError(f"{path}: cannot create the lock of the {what} {folder} ({exc.strerror or exc})") from None
    try:
        yield path
    finally:
        lock.release()
