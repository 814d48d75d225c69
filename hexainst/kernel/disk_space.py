"""A full disk under ``record``, ``record-merge`` or ``analyze``: one line naming the folder, no traceback.

Every writer of these commands writes through a temporary file or a staged folder and renames it
into place, so a write that fails for want of space leaves what was there before as it was; this
module only turns the ``OSError`` into the one line the user needs.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hexainst.kernel.errors import UserError

#: errno values that mean "the device (or the account's quota) is full".
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(UserError):
    """A write failed because the device or the quota is full."""


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
        file = f" ({exc.filename})" if exc.filename else ""
        raise DiskFullError(f"{Path(folder)}: no space left on the device while writing the {what}{file}; "
                            f"{after}") from None
