"""Local server processes: a free port, waiting until a child process is ready, stopping it.

The embedded generator, the test stub and Label Studio are each a child process serving HTTP on
127.0.0.1; the stages start them through these helpers, so that "exited while starting",
"not ready in time" and "stop: TERM, then KILL" behave the same everywhere.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path


class ProcessStartError(RuntimeError):
    """A child server exited before it was ready, or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listened on a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: str | os.PathLike[str] | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, or ``<no log>``."""
    if path is None:
        return "<no log>"
    try:
        return "\n".join(Path(path).read_text("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def wait_until_ready(
    process: subprocess.Popen,
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log_path: str | os.PathLike[str] | None = None,
    interval: float = 0.5,
) -> None:
    """Poll ``ready()`` until it is true; raise :class:`ProcessStartError` if ``process`` exits or time runs out.

    ``what`` names the server in messages ("Label Studio", "embedded generator 'gemma-3-270m'").
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ProcessStartError(
                f"{what} exited with status {process.returncode} while starting; log {log_path}:\n{log_tail(log_path)}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            raise ProcessStartError(f"{what} (PID {process.pid}) not ready after {timeout:.0f} s; log {log_path}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen | None, *, timeout: float = 10.0, group: bool = False) -> None:
    """SIGTERM the process (its whole process group with ``group``), SIGKILL after ``timeout`` s."""
    if process is None or process.poll() is not None:
        return

    def send(sig: int) -> None:
        try:
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait(timeout)


def exit_when_orphaned(parent_pid: int, *, interval: float = 1.0) -> threading.Thread:
    """In a child server: end this process as soon as ``parent_pid`` is no longer its parent.

    A parent killed with ``SIGKILL`` cannot stop its children; the child is then re-parented (to
    init or a subreaper) and its parent PID changes. A daemon thread watches for that every
    ``interval`` s and ends the process at once (``os._exit``: no handler of the dead parent's run
    is left to wait for). If the parent is already gone when this is called, the process ends now.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(0)

    thread = threading.Thread(target=watch, name="exit-when-orphaned", daemon=True)
    thread.start()
    return thread
