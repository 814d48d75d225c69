"""A local Label Studio server: find the binary, start it on a free port, wait, stop it by PID.

The server runs from its own virtual environment (``.ls-venv`` next to the repository root,
or the binary named by ``HEXAINST_LABEL_STUDIO``), offline: no Sentry, no analytics, no
version check. It listens on 127.0.0.1 only. Label Studio silently moves to port+1 when its
port is busy, so :meth:`LabelStudioServer.start` checks that the server answering on the
chosen port is this one (its admin token works and names its admin account).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from hexainst.kernel.errors import UserError

#: The pinned server version (see annotation/server-requirements.txt).
SERVER_VERSION = "1.23.2"
ENV_BINARY = "HEXAINST_LABEL_STUDIO"
REPO_ROOT = Path(__file__).resolve().parents[1]
PID_FILE = "hexainst-server.pid"
LOG_FILE = "hexainst-server.log"


class ServerError(UserError):
    """The Label Studio server cannot be found, started, reached or stopped."""


def find_binary() -> Path:
    """The ``label-studio`` executable: ``$HEXAINST_LABEL_STUDIO`` or ``.ls-venv/bin/label-studio``."""
    env = os.environ.get(ENV_BINARY)
    candidate = Path(env) if env else REPO_ROOT / ".ls-venv" / "bin" / "label-studio"
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        where = f"${ENV_BINARY}={env}" if env else str(candidate)
        raise ServerError(
            f"Label Studio server not found at {where}; install it with "
            f"'python3 -m venv .ls-venv && .ls-venv/bin/pip install -r annotation/server-requirements.txt' "
            f"(or 'make ls-venv'), or point ${ENV_BINARY} at a label-studio {SERVER_VERSION} executable"
        )
    return candidate


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` (with SO_REUSEADDR, as Label Studio's server does,
    so that connections of a stopped server lingering in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class Admin:
    """The owner account the server creates on first start (its token is a legacy API token)."""

    email: str
    password: str
    token: str


class LabelStudioServer:
    """One Label Studio process serving ``data_dir`` on ``host:port``.

    ``start()`` launches it in its own process group and waits for ``GET /health``;
    ``stop()`` signals that process (by its own PID) and waits for it to exit.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        admin: Admin,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str | os.PathLike[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.admin = admin
        self.host = host
        self.port = port
        self.binary = Path(binary) if binary else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServerError("the server has no port yet: start it first")
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def pid_path(self) -> Path:
        return self.data_dir / PID_FILE

    def environment(self) -> dict[str, str]:
        """The process environment: offline, with the admin account made on first start."""
        env = dict(os.environ)
        env.update(
            {
                "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
                "LABEL_STUDIO_USERNAME": self.admin.email,
                "LABEL_STUDIO_PASSWORD": self.admin.password,
                "LABEL_STUDIO_USER_TOKEN": self.admin.token,
                "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
                "SENTRY_DSN": "",
                "FRONTEND_SENTRY_DSN": "",
                "COLLECT_ANALYTICS": "false",
                "LATEST_VERSION_CHECK": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def start(self, timeout: float = 300.0) -> "LabelStudioServer":
        """Start the server and wait until it answers; raises :class:`ServerError` on failure."""
        if self.process is not None and self.process.poll() is None:
            return self
        binary = self.binary or find_binary()
        running = running_pid(self.data_dir)
        if running is not None:
            raise ServerError(
                f"a Label Studio server (PID {running[0]}, port {running[1]}) already serves {self.data_dir}; "
                "stop it first ('hexainst annotate stop')"
            )
        if self.port is None:
            self.port = free_port(self.host)
        elif not port_is_free(self.port, self.host):
            raise ServerError(f"port {self.port} on {self.host} is busy; choose another with --port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(binary), "start", "--no-browser",
            "--internal-host", self.host, "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--enable-legacy-api-token",
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.process = subprocess.Popen(
                cmd, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        self.pid_path.write_text(f"{self.process.pid} {self.port}\n")
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _ours(self, http: httpx.Client, port: int) -> bool:
        """Whether the server on ``port`` is this one: healthy, and our admin token names our admin."""
        base = f"http://{self.host}:{port}"
        try:
            if http.get(f"{base}/health").status_code != 200:
                return False
            who = http.get(f"{base}/api/current-user/whoami", headers={"Authorization": f"Token {self.admin.token}"})
            return who.status_code == 200 and who.json().get("email") == self.admin.email
        except (httpx.HTTPError, ValueError):
            return False

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None and self.port is not None
        wanted = self.port
        with httpx.Client(timeout=5.0) as http:
            while True:
                if self.process.poll() is not None:
                    raise ServerError(
                        f"Label Studio exited with status {self.process.returncode} while starting; "
                        f"see {self.log_path}:\n{self.log_tail()}"
                    )
                if self._ours(http, wanted):
                    return
                # Label Studio silently takes port+1 when its port was grabbed in the meantime.
                if self._ours(http, wanted + 1):
                    self.port = wanted + 1
                    self.pid_path.write_text(f"{self.process.pid} {self.port}\n")
                    return
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"Label Studio (PID {self.process.pid}) did not answer as this server on {self.url} "
                        f"within {timeout:.0f} s; another process may hold the port; see {self.log_path}"
                    )
                time.sleep(0.5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server process (SIGTERM to its own process group, SIGKILL after ``timeout``)."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        self.process = None
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash or power loss would."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(30)
        self.process = None
        self.pid_path.unlink(missing_ok=True)

    def __enter__(self) -> "LabelStudioServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    # The child was started with start_new_session=True, so its process group id is its pid:
    # this reaches the server and any worker it forked, and nothing else.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def running_pid(data_dir: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(PID, port) of a live server recorded in ``data_dir``'s PID file, else None."""
    try:
        pid_text, port_text = (Path(data_dir) / PID_FILE).read_text().split()[:2]
        pid, port = int(pid_text), int(port_text)
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid, port


def stop_by_pid_file(data_dir: str | os.PathLike[str], timeout: float = 30.0) -> bool:
    """Stop a detached server recorded in ``data_dir``'s PID file; False if none was running."""
    pid_path = Path(data_dir) / PID_FILE
    try:
        pid = int(pid_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pid_path.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        _signal_group(pid, signal.SIGKILL)
    pid_path.unlink(missing_ok=True)
    return True
