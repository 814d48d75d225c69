"""Errors that the CLI reports as a one-line message (exit status 2) rather than a traceback."""


class UserError(Exception):
    """Bad input a user can fix: a wrong path, a malformed file, an invalid row.

    Subclass it for errors that should reach the user as a message; the message must name
    what is wrong and where (the file, the row, the source).
    """
