"""Restarts a coordinator can live with, checked without a Label Studio server (issue #24, item 2).

``stop`` must signal only the server it started: a PID file naming a process that reused the PID
(another command line, or the same command line started at another time) is stale, and that
process lives on. An instance that served before keeps its port: a busy recorded port or a
``--port`` that moves it is one line, and nothing on disk changes.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from annotation_helpers import ACCOUNTS

from hexainst.annotation import server as srv
from hexainst.annotation.session import Session
from hexainst.cli import main
from hexainst.kernel.processes import free_port


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _round(folder: Path, ports: dict[str, int] | None = None) -> Path:
    """A saved round whose instance folders exist; ``ports``: the instances that served before."""
    session = Session.create(folder / "round", ACCOUNTS)
    for inst in session.instances:
        if ports and inst.name in ports:
            inst.url = f"http://127.0.0.1:{ports[inst.name]}"
        (folder / "round" / inst.name).mkdir(parents=True)
    session.save()
    return folder / "round"


def _sleeper(*extra: str) -> subprocess.Popen:
    """A process that is not a Label Studio server (its own session, as our servers are)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *extra], start_new_session=True)
    deadline = time.monotonic() + 10
    while srv.process_start_time(proc.pid) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def _pid_file(folder: Path, pid: int, port: int, started: int | None) -> None:
    (folder / srv.PID_FILE).write_text(f"{pid} {port} {started}\n")


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_stop_leaves_a_process_that_reused_the_pid(tmp_path, capsys, procs):
    data = _round(tmp_path)
    junior1 = data / "junior1"
    # Another program now holds the recorded PID (its command line names no data dir of ours).
    other = _sleeper()
    procs.append(other)
    _pid_file(junior1, other.pid, 8080, srv.process_start_time(other.pid))
    assert srv.running_pid(junior1) is None
    assert main(["annotate", "stop", "--data-dir", str(data)]) == 0
    assert "no running server recorded" in capsys.readouterr().out
    assert other.poll() is None  # still alive

    # The same command line as our server, but started at another time than the one recorded.
    twin = _sleeper("--data-dir", str(junior1.resolve()))
    procs.append(twin)
    _pid_file(junior1, twin.pid, 8080, srv.process_start_time(twin.pid) - 1)
    assert srv.running_pid(junior1) is None
    assert main(["annotate", "stop", "--data-dir", str(data)]) == 0
    assert "no running server recorded" in capsys.readouterr().out
    assert twin.poll() is None

    # The process that was recorded (command line and start time): this one is stopped.
    _pid_file(junior1, twin.pid, 8080, srv.process_start_time(twin.pid))
    assert srv.running_pid(junior1) == (twin.pid, 8080)
    assert main(["annotate", "stop", "--data-dir", str(data)]) == 0
    assert "stopped: junior1" in capsys.readouterr().out
    assert twin.wait(10) is not None and other.poll() is None
    assert not (junior1 / srv.PID_FILE).exists()


def test_instances_keep_their_recorded_ports(tmp_path):
    ports = {"junior1": free_port(), "junior2": free_port(), "senior": free_port()}
    session = Session.load(_round(tmp_path, ports))
    servers = session.servers(port=None)
    assert [s.port for s in servers] == [ports["junior1"], ports["junior2"], ports["senior"]]
    assert all(s.fixed_port for s in servers)
    # A round that never served: --port, then the next ones; not fixed (Label Studio may move on).
    fresh = Session.create(tmp_path / "fresh", ACCOUNTS)
    assert [(s.port, s.fixed_port) for s in fresh.servers(port=9000)] == [(9000, False), (9001, False), (9002, False)]


def _one_line_and_unchanged(tmp_path, capsys, args, expected):
    before = _snapshot(tmp_path)
    modes = {p: p.stat().st_mode for p in tmp_path.rglob("*")}
    assert main(["annotate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hexainst annotate: error: ") and "\n" not in err, err
    for part in expected:
        assert part in err, err
    assert _snapshot(tmp_path) == before
    assert {p: p.stat().st_mode for p in tmp_path.rglob("*")} == modes


# labelstudio: the command looks for the label-studio executable (.ls-venv) before it checks the port
@pytest.mark.labelstudio
def test_busy_recorded_port_is_one_line_and_nothing_changes(tmp_path, capsys):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        port = sock.getsockname()[1]
        data = _round(tmp_path, {"junior1": port, "junior2": free_port(), "senior": free_port()})
        _one_line_and_unchanged(
            tmp_path, capsys, ["serve", "--data-dir", str(data), "--detach"],
            [f"port {port} on 127.0.0.1, where junior1's Label Studio served, is busy"],
        )  # fmt: skip
    finally:
        sock.close()


# labelstudio: the command looks for the label-studio executable (.ls-venv) before it checks the port
@pytest.mark.labelstudio
def test_port_option_cannot_move_an_instance(tmp_path, capsys):
    port = free_port()
    data = _round(tmp_path, {"junior1": port})
    other = port + 7 if port < 65000 else port - 7
    _one_line_and_unchanged(
        tmp_path, capsys, ["serve", "--data-dir", str(data), "--detach", "--port", str(other)],
        [f"error: --port {other}: junior1's Label Studio serves on port {port}", f"not {other}", "leave it out"],
    )  # fmt: skip
