"""A full disk: one line naming the folder that was being written, no traceback (the one home of that line).

Every writer writes through a temporary file or a staged folder and renames it into place, so a
write that fails for want of space leaves what was there before as it was; this module only finds
the no-space error behind an exception (:func:`disk_full_cause`) and words the one line the user
needs (:func:`disk_full_message`). ``record``, ``record-merge`` and ``analyze`` wrap their writes in
:func:`full_disk_is_one_line`; the CLI words every other command's full disk with the same function.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hexainst.kernel.errors import NO_SPACE, UserError, disk_full_cause

__all__ = ["NO_SPACE", "DiskFullError", "disk_full_cause", "disk_full_message", "full_disk_is_one_line"]

#: What the user can rely on and do after a full disk, when the writer has nothing more specific to say.
AFTER = "whatever was there before is as it was: free some space and rerun"


class DiskFullError(UserError):
    """A write failed because the device or the quota is full."""


def disk_full_message(folder: str | os.PathLike[str] | None, file: str | os.PathLike[str] | None = None,
                      what: str | None = None, after: str = AFTER) -> str:
    """``<folder>: no space left on the device while writing[ the <what>][ (<file>)]; <after>``."""
    where = f"{Path(folder)}: " if folder is not None else ""
    return (f"{where}no space left on the device while writing{f' the {what}' if what else ''}"
            f"{f' ({file})' if file else ''}; {after}")


@contextmanager
def full_disk_is_one_line(folder: str | os.PathLike[str], what: str, after: str) -> Iterator[None]:
    """Turn a no-space ``OSError`` raised in the block into :class:`DiskFullError` naming ``folder``.

    ``what``: what was being written ("activation store"); ``after``: what the user can rely on and do.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        raise DiskFullError(disk_full_message(folder, exc.filename, what, after)) from None
