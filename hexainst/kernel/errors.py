"""Errors that the CLI reports as a one-line message (exit status 2) rather than a traceback."""


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
