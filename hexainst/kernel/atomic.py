"""Atomic writes: a temporary file (or folder) beside the target, then one ``os.replace``.

Every stage writes its outputs through these, so a crash leaves either the old output or the new
one, never half of one. Files and folders get ordinary modes (``0666``/``0777`` less the umask),
not the ``0600``/``0700`` of :mod:`tempfile`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from hexainst.kernel.errors import UserError


@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode an ordinary new file gets here: ``0o666`` less the umask."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode an ordinary new folder gets here: ``0o777`` less the umask."""
    return 0o777 & ~_umask()


def write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], object], *, fsync: bool = False,
               mode: int | None = None) -> Path:
    """Call ``write(fileobj)`` on a temporary binary file beside ``path``, then rename it to ``path``.

    ``mode`` defaults to :func:`file_mode`; pass ``0o600`` for a file that holds secrets.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_with(path, lambda handle: handle.write(data), fsync=fsync, mode=mode)


def write_text(path: str | os.PathLike[str], text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"), mode=mode)


#: Tags of the hidden folders this module makes beside a target: ``.<name>.<tag>-<pid>-<random>``.
TEMP_TAGS: tuple[str, ...] = ("new", "old", "writing")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another account's live process
        return True
    return True


def stale_temp_dirs(beside: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """The hidden folders a killed run left beside ``beside``, by tag: ours (named ``.<name>.<tag>-<pid>-...``,
    a folder, owned by this account) and stale (that PID is no longer running)."""
    beside = Path(beside)
    found: dict[str, list[Path]] = {}
    try:
        entries = list(beside.parent.iterdir())
    except OSError:
        return found
    for entry in sorted(entries):
        for tag in TEMP_TAGS:
            prefix = f".{beside.name}.{tag}-"
            if not entry.name.startswith(prefix):
                continue
            pid = entry.name[len(prefix):].split("-", 1)[0]
            try:
                info = os.lstat(entry)
            except OSError:
                continue
            if (pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid))
                    and stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()):
                found.setdefault(tag, []).append(entry)
    return found


def clean_stale_temp_dirs(beside: str | os.PathLike[str]) -> None:
    """Finish what a killed run left beside ``beside``: a folder it had moved aside but not yet replaced
    (``beside`` missing, an ``old`` folder there) is put back; every other stale folder of ours is removed."""
    beside = Path(beside)
    stale = stale_temp_dirs(beside)
    olds = stale.get("old", [])
    if olds and not os.path.lexists(beside):
        os.replace(olds.pop(), beside)
    for folders in stale.values():
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def make_temp_dir(beside: str | os.PathLike[str], tag: str = "new") -> Path:
    """An empty folder with an ordinary mode next to ``beside`` (same file system, so it can be renamed onto it).

    Its name carries this process's PID, so that the next run can tell a killed run's leftovers from a
    live run's folder (:func:`clean_stale_temp_dirs`, called here first).
    """
    beside = Path(beside)
    try:
        beside.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temp_dirs(beside)
        tmp = Path(tempfile.mkdtemp(prefix=f".{beside.name}.{tag}-{os.getpid()}-", dir=beside.parent))
    except OSError as exc:  # a read-only or foreign place: say where the output was to go, not the temp name
        raise UserError(f"cannot write {beside}: {exc.strerror or exc} in {beside.parent}") from None
    os.chmod(tmp, dir_mode())
    return tmp


def swap_in_dir(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Put the folder ``new`` where ``target`` is: the old ``target`` is renamed aside, ``new`` renamed in,
    and only then the old one deleted. If the second rename fails, the old folder is put back; if the
    process is killed between the two renames, the next run puts it back (:func:`clean_stale_temp_dirs`)."""
    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return target
    old = make_temp_dir(target, "old")
    os.rmdir(old)
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty folder beside ``target``; when the block succeeds it replaces ``target`` whole.

    When the block raises (or is interrupted), the staged folder is removed and ``target`` is untouched.
    Callers check that ``target`` is theirs to replace first (:mod:`hexainst.kernel.outputs`).
    """
    tmp = make_temp_dir(target)
    try:
        yield tmp
        swap_in_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
