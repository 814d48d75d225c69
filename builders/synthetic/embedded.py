"""Start and stop the embedded local generator server (a child process on 127.0.0.1).

>>> with EmbeddedServer("smollm2-135m-instruct") as srv:   # doctest: +SKIP
...     srv.base_url   # 'http://127.0.0.1:<free port>/v1'

The server is our own child: we start it with :class:`subprocess.Popen`, poll
``GET /v1/models`` until it answers 200, and stop it by *its* PID (terminate, then kill after a
grace period). Its log goes to a file, so a failed start can be reported with its last lines.
A build killed with ``SIGKILL`` cannot stop it: the server watches its parent PID and ends itself
when it is orphaned (:func:`hexainst.kernel.processes.exit_when_orphaned`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

from hexainst.builders.synthetic.config import EMBEDDED_BATCH
from hexainst.kernel import environment
from hexainst.kernel.errors import UserError
from hexainst.kernel.processes import ProcessStartError, free_port, stop_process, wait_until_ready


class EmbeddedServerError(UserError):
    """The embedded generator server did not start (the message ends with the tail of its log)."""

    multiline = True


class EmbeddedServer:
    def __init__(self, generator: str, *, threads: int | None = None, max_batch: int = EMBEDDED_BATCH, dtype: str = "auto",
                 start_timeout: float = 600.0, log_path: Path | None = None) -> None:
        self.generator = generator
        # Default: every core. On a machine busy with other jobs, fewer threads avoid oversubscription
        # (measured earlier: 2 threads on 2 busy cores made a batch 20x slower); pass threads=1 there.
        self.threads = threads or os.cpu_count() or 1
        self.max_batch = max_batch
        self.dtype = dtype
        self.start_timeout = start_timeout
        self.log_path = log_path
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("embedded server not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> EmbeddedServer:
        self.port = free_port()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="hexainst-embedded-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        cmd = [sys.executable, "-m", "hexainst.builders.synthetic.local_server", "--generator", self.generator,
               "--port", str(self.port), "--threads", str(self.threads), "--max-batch", str(self.max_batch), "--dtype", self.dtype,
               "--parent-pid", str(os.getpid())]  # it dies with this process, even one killed with -9
        # The child needs no credentials: never hand it the API keys. It writes to its own copy of the
        # log's file descriptor, so this process closes its one once the child has started.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env=environment.without_api_keys())
        self._wait_ready()
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/models", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def _wait_ready(self) -> None:
        try:
            wait_until_ready(self.proc, self._ready, timeout=self.start_timeout,
                             what=f"embedded generator {self.generator!r}", log_path=self.log_path)
        except ProcessStartError as exc:
            self.stop()
            raise EmbeddedServerError(str(exc)) from None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def exit_on_sigterm():
    """Turn SIGTERM into SystemExit (so ``finally`` blocks stop the embedded server); returns an undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise SystemExit(143)

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
