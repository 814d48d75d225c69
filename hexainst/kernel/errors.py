"""Errors that the CLI reports as a one-line message (exit status 2) rather than a traceback."""

import errno

#: errno values that mean "the device (or the account's quota) is full".
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class UserError(Exception):
    """Bad input a user can fix: a wrong path, a malformed file, an invalid row.

    Subclass it for errors that should reach the user as a message; the message must name
    what is wrong and where (the file, the row, the source).
    """

    #: A message that is meant to span lines (a server's log tail after the first line); others are one line.
    multiline = False


def one_line(text: str) -> str:
    """``text`` with every control character escaped as Python writes it (a newline in a path shows as
    ``\\n``, a NUL as ``\\x00``), so that an error naming a user's path stays the one line it should be."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def disk_full_cause(exc: BaseException) -> OSError | None:
    """The "no space left" (or "quota exceeded") error behind ``exc``, or ``None``.

    Libraries wrap it (pyarrow's parquet writer raises its own ``OSError`` whose cause is the file
    system's, or only says ``[Errno 28]`` in its text), so the chain of causes and the text are read.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and (current.errno in NO_SPACE
                                             or "No space left on device" in str(current)
                                             or "Disk quota exceeded" in str(current)):
            return current
        current = current.__cause__ or current.__context__
    return None
