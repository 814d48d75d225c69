"""Standard output into a reader that exits early (``hexainst info | head -1``), as Unix tools take it.

A reader that has seen enough closes the pipe; the next write raises ``BrokenPipeError``. The
command does not stop for that (a ``build all | head -1`` still finishes the build it was asked
for) and prints no traceback: from the first broken write on, its standard output goes to
``/dev/null``, and the command ends with its own exit status.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO


class PipeSafeStdout:
    """A proxy of a text stream whose writes and flushes swallow ``BrokenPipeError`` (see the module doc)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def _silence(self) -> None:
        self.broken = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())  # the interpreter's last flush goes there too
        finally:
            os.close(devnull)

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_stdout() -> None:
    """Wrap the process's real standard output (not a test's capture of it) in :class:`PipeSafeStdout`."""
    if sys.stdout is sys.__stdout__ and sys.stdout is not None and not isinstance(sys.stdout, PipeSafeStdout):
        sys.stdout = PipeSafeStdout(sys.stdout)
