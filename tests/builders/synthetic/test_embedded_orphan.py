"""The real embedded server (the smallest generator) ends itself when the build that started it is killed with -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_BUILD = """
import sys, time
from hexainst.builders.synthetic.embedded import EmbeddedServer
server = EmbeddedServer("smollm2-135m-instruct", threads=1, start_timeout=600, log_path=sys.argv[1]).start()
print(server.proc.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_embedded_server_dies_with_a_killed_build(tmp_path: Path) -> None:
    build = subprocess.Popen([sys.executable, "-c", _BUILD, str(tmp_path / "server.log")], stdout=subprocess.PIPE,
                             text=True)
    line = build.stdout.readline()
    assert line.strip().isdigit(), (tmp_path / "server.log").read_text()
    server = int(line)
    try:
        assert not _gone(server)  # ready and serving
        os.kill(build.pid, signal.SIGKILL)
        build.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _gone(server):
            time.sleep(0.2)
        assert _gone(server), "the embedded server outlived the build that started it"
    finally:
        if not _gone(server):
            os.kill(server, signal.SIGKILL)
