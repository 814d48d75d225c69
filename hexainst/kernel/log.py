"""What the library says, and where it is shown: the ``hexainst`` logger.

Library modules (builders, annotation, analysis, kernel) never print; they log::

    log = logging.getLogger(__name__)   # hexainst.builders.synthetic.pipeline, ...
    log.info("synthetic: %d kept", n)

Every module's name starts with ``hexainst.`` (the package maps the top-level folders under it), so
one handler on the ``hexainst`` logger decides what is shown. The command line installs it with
:func:`configure` (``hexainst --quiet`` / ``--verbose``); a Python caller may call it too, or
configure :mod:`logging` its own way. Left unconfigured, Python shows warnings and errors on
standard error as bare text (its last-resort handler) and drops the rest.

What :func:`configure` shows is the message itself, as the ``print`` calls it replaces showed it:
no level, time or logger name. Messages go to standard error, except an INFO message logged with
``extra=STDOUT``, which goes to standard output (the progress notes of the analysis and fine-tune
stages always went there).
"""

from __future__ import annotations

import logging
import sys

ROOT = "hexainst"

#: ``log.info(..., extra=STDOUT)``: shown on standard output instead of standard error.
STDOUT = {"hexainst_stream": "stdout"}

#: verbosity -> the lowest level shown: -1 ``--quiet``, 0 the default, 1 ``--verbose``.
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


class _Handler(logging.Handler):
    """Writes each message to ``sys.stdout`` or ``sys.stderr`` as they are when it is emitted (so a
    test's captured streams, or the CLI's guarded stdout, receive it), and flushes at once."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout if getattr(record, "hexainst_stream", None) == "stdout" else sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: a failed write is reported, never raised
            self.handleError(record)


def configure(verbosity: int = 0) -> logging.Logger:
    """Show the ``hexainst`` logger's messages from the level ``verbosity`` selects (see
    :data:`LEVELS`); calling it again replaces the handler it installed, never adds a second."""
    logger = logging.getLogger(ROOT)
    for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
        logger.removeHandler(old)
    handler = _Handler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(LEVELS[max(-1, min(1, verbosity))])
    logger.propagate = False  # shown once, even when the caller's root logger has handlers too
    return logger
