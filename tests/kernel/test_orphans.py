"""A child server whose parent is killed with -9 ends itself (the parent cannot stop it any more)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {child!r}.replace("PARENT", str(__import__("os").getpid()))])
print(child.pid, flush=True)
time.sleep(120)
"""
_CHILD = ("from hexainst.kernel.processes import exit_when_orphaned; import time; "
          "{watch}; time.sleep(120)")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state  # exited, not yet reaped by its new parent


def _orphan_after_kill(watch: str) -> tuple[int, bool]:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT.format(child=_CHILD.format(watch=watch))],
                              stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    time.sleep(1.0)
    assert not _gone(pid)  # alive while its parent is
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not _gone(pid):
        time.sleep(0.1)
    gone = _gone(pid)
    if not gone:
        os.kill(pid, signal.SIGKILL)
    return pid, gone


def test_a_child_that_watches_its_parent_dies_with_it() -> None:
    _, gone = _orphan_after_kill("exit_when_orphaned(PARENT, interval=0.1)")
    assert gone, "the orphaned child is still running"


def test_without_the_watch_the_child_outlives_its_parent() -> None:
    """The case the watch exists for (the test above would pass for the wrong reason without it)."""
    _, gone = _orphan_after_kill("None")
    assert not gone
