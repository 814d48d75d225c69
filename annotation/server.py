"""Local Label Studio servers: find the binary, migrate a template data dir, start, wait, stop by PID.

Each server runs from its own virtual environment (``.ls-venv`` next to the repository root, or
the binary named by ``HEXAINST_LABEL_STUDIO``), offline: no Sentry, no analytics, no version
check. It listens on 127.0.0.1 only.

Private by default: a server runs under umask 077, so every file Label Studio makes (its
database, uploads, exports) is readable by the account that runs it only; our own files (log,
PID file) are 0600 and every data dir 0700 (:func:`make_private` also repairs an older round).
Its request log is off (Label Studio's settings with ``django.server`` at WARNING, see
``ls_site/``): it would print every URL served, an invite link's token included. Label Studio
silently moves to port+1 when its port is busy, so :meth:`LabelStudioServer.start` checks that the
server answering is this one: its admin token works and names its admin account (every instance
has its own admin token).

Migrating a fresh database takes minutes (about 100 s here), so a deployment migrates one
*template* data dir once (``label-studio version`` applies the migrations and exits, creating no
account) and every instance starts from a copy of it, in seconds. A copy gets its own secret key
(the template's ``.env`` is not copied) and its own admin account, made on its first start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from tqdm import tqdm

from hexainst.kernel import atomic, environment
from hexainst.kernel.errors import UserError
from hexainst.kernel.processes import ProcessStartError, free_port, stop_process, wait_until_ready
from hexainst.kernel.settings import SettingError

#: The pinned server version (see annotation/server-requirements.txt).
SERVER_VERSION = "1.23.2"
REPO_ROOT = Path(__file__).resolve().parents[1]
PID_FILE = "hexainst-server.pid"
LOG_FILE = "hexainst-server.log"
#: Written last into a template data dir once its migrations succeeded.
TEMPLATE_MARKER = "hexainst-template.json"
#: The server's umask, and the modes of our own files and folders (owner only).
UMASK = 0o077
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
#: Label Studio's settings plus a quiet request log (see ls_site/hexainst_label_studio_settings.py).
SETTINGS_DIR = Path(__file__).resolve().parent / "ls_site"
SETTINGS_MODULE = "hexainst_label_studio_settings"
#: Files of a template that a copy must not share (the secret key) or carry over (our own files).
NOT_COPIED = (".env", TEMPLATE_MARKER, PID_FILE, LOG_FILE)


class ServerError(UserError):
    """The Label Studio server cannot be found, started, reached or stopped."""


class PortSettingError(ServerError, SettingError):
    """The port the ``port`` setting gave a server is busy (the command line names its flag)."""


def find_binary() -> Path:
    """The ``label-studio`` executable: ``$HEXAINST_LABEL_STUDIO`` or ``.ls-venv/bin/label-studio``."""
    env = environment.label_studio_binary()
    candidate = env or REPO_ROOT / ".ls-venv" / "bin" / "label-studio"
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        where = f"${environment.LABEL_STUDIO}={env}" if env else str(candidate)
        raise ServerError(
            f"Label Studio server not found at {where}; install it with 'make install-server' "
            f"(or point ${environment.LABEL_STUDIO} at a label-studio {SERVER_VERSION} executable)"
        )
    return candidate


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


def make_private(folder: str | os.PathLike[str]) -> None:
    """Take every group and other permission off ``folder`` and everything under it (links untouched)."""
    root = Path(folder)
    if not root.is_dir() or root.is_symlink():
        return
    for path in [root, *root.rglob("*")]:
        try:
            st = path.lstat()
        except OSError:
            continue  # removed meanwhile (a server may be writing)
        if path.is_symlink() or not (st.st_mode & 0o077):
            continue
        os.chmod(path, st.st_mode & 0o700)


def private_dir(folder: str | os.PathLike[str]) -> Path:
    """``folder`` (and missing parents), the folder itself owner-only."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, PRIVATE_DIR)
    return folder


def open_private_log(path: str | os.PathLike[str]):
    """A log opened for appending, mode 0600 (an existing log is made 0600 too)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return os.fdopen(fd, "ab")


def offline_environment() -> dict[str, str]:
    """The server's process environment: ours, minus API keys, plus "no network calls"."""
    env = environment.without_api_keys()
    env.update(
        {
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            "PYTHONUNBUFFERED": "1",
            # No request log: it prints every URL served, an invite link's token included.
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "PYTHONPATH": os.pathsep.join(p for p in (str(SETTINGS_DIR), env.get("PYTHONPATH", "")) if p),
        }
    )
    return env


# ---- the template ------------------------------------------------------------------------------


def template_ready(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is a migrated template of this server version."""
    try:
        marker = json.loads((Path(folder) / TEMPLATE_MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("label_studio") == SERVER_VERSION


def migrate_template(folder: str | os.PathLike[str], timeout: float = 900.0, progress: bool = True) -> Path:
    """Create the database of a fresh data dir (all migrations, no account) and mark it ready.

    Idempotent: a ready template is left as it is; an unfinished one is migrated again (Django
    applies only the missing migrations).
    """
    folder = Path(folder).resolve()
    if template_ready(folder):
        return folder
    binary = find_binary()
    private_dir(folder)
    log_path = folder / LOG_FILE

    with open_private_log(log_path) as log:
        process = subprocess.Popen(
            [str(binary), "version", "--data-dir", str(folder)],
            env={**offline_environment(), "LABEL_STUDIO_BASE_DATA_DIR": str(folder)},
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, umask=UMASK,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    with tqdm(desc="Label Studio: creating the database (once)", unit="s", disable=not progress,
              bar_format="{desc}: {elapsed}") as bar:  # fmt: skip
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    raise ServerError(f"Label Studio's migrations did not finish within {timeout:.0f} s; see {log_path}")
                time.sleep(1.0)
                bar.update(1)
        except BaseException:
            stop_process(process, group=True)
            raise
    if process.returncode != 0:
        raise ServerError(f"Label Studio's migrations failed (status {process.returncode}); see {log_path}")
    atomic.write_text(folder / TEMPLATE_MARKER, json.dumps({"label_studio": SERVER_VERSION}) + "\n", mode=PRIVATE_FILE)
    make_private(folder)
    return folder


def copy_template(template: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> Path:
    """A new instance's data dir: a copy of the template, without its secret key or our files.

    Copies into a temporary sibling first, so an interrupted copy never looks like an instance.
    """
    template, data_dir = Path(template), Path(data_dir)
    if not template_ready(template):
        raise ServerError(f"{template} is not a migrated Label Studio template")
    if data_dir.exists():
        raise ServerError(f"{data_dir} already exists; it is not replaced")
    tmp = data_dir.with_name(f".{data_dir.name}.copying")
    if tmp.exists():
        shutil.rmtree(tmp)  # our own unfinished copy (named by us, never a user's folder)
    shutil.copytree(template, tmp, ignore=lambda _dir, names: [n for n in names if n in NOT_COPIED])
    make_private(tmp)
    os.replace(tmp, data_dir)
    return data_dir


# ---- one server ----------------------------------------------------------------------------------


@dataclass
class Admin:
    """The instance's owner account, made on its first start (its token is a legacy API token)."""

    email: str
    password: str
    token: str


class LabelStudioServer:
    """One Label Studio process serving ``data_dir`` on ``host:port``.

    ``start()`` launches it in its own process group and waits until it answers as this
    server; ``stop()`` signals that process group (by its own PID) and waits for it to exit.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        admin: Admin,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str | os.PathLike[str] | None = None,
        name: str = "Label Studio",
        fixed_port: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.admin = admin
        self.host = host
        self.port = port
        self.binary = Path(binary) if binary else None
        self.name = name
        #: A port recorded for this instance: it must serve there (never silently on port+1).
        self.fixed_port = fixed_port
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
        env = offline_environment()
        env.update(
            {
                "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
                "LABEL_STUDIO_USERNAME": self.admin.email,
                "LABEL_STUDIO_PASSWORD": self.admin.password,
                "LABEL_STUDIO_USER_TOKEN": self.admin.token,
                "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            }
        )
        return env

    def start(self, timeout: float = 300.0) -> LabelStudioServer:
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
        if not self.data_dir.is_dir():
            raise ServerError(f"{self.data_dir}: no such Label Studio data dir")
        if self.port is None:
            self.port = free_port(self.host)
        elif not port_is_free(self.port, self.host):
            if self.fixed_port:
                raise ServerError(
                    f"port {self.port} on {self.host}, where {self.name} served before, is busy (another program "
                    "took it); free it and start again: the annotators' links name that port"
                )
            raise PortSettingError("port", f"{self.port} on {self.host} (for {self.name}) is busy; choose another")
        cmd = [
            str(binary), "start", "--no-browser",
            "--internal-host", self.host, "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--enable-legacy-api-token",
        ]  # fmt: skip
        os.chmod(self.data_dir, PRIVATE_DIR)
        with open_private_log(self.log_path) as log:
            self.process = subprocess.Popen(
                cmd, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, umask=UMASK,
            )  # fmt: skip
        self._write_pid_file()
        try:
            self._wait_ready(timeout)
        except ProcessStartError as exc:
            self.stop()
            raise ServerError(f"{str(exc).splitlines()[0]}; see {self.log_path}") from None
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
        assert self.process is not None and self.port is not None
        wanted = self.port
        with httpx.Client(timeout=5.0) as http:

            def ready() -> bool:
                if self._ours(http, wanted):
                    return True
                # Label Studio silently takes port+1 when its port was grabbed in the meantime.
                if self._ours(http, wanted + 1):
                    if self.fixed_port:
                        raise ProcessStartError(f"port {wanted} was taken while {self.name} started (it moved to {wanted + 1})")
                    self.port = wanted + 1
                    self._write_pid_file()
                    return True
                return False

            wait_until_ready(self.process, ready, timeout=timeout, what=f"{self.name} on {self.url}", log_path=self.log_path)

    def _write_pid_file(self) -> None:
        """``PID port start-time``: the start time tells this server from a later process given the same PID."""
        assert self.process is not None
        started = process_start_time(self.process.pid)
        atomic.write_text(self.pid_path, f"{self.process.pid} {self.port} {started if started is not None else '-'}\n", mode=PRIVATE_FILE)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server process (SIGTERM to its own process group, SIGKILL after ``timeout``)."""
        stop_process(self.process, timeout=timeout, group=True)
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

    def detach(self) -> None:
        """Leave the process running after this object goes away (its PID file stays)."""
        self.process = None

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    # The child was started with start_new_session=True, so its process group id is its pid:
    # this reaches the server and any worker it forked, and nothing else.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _command_line(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return None


def serves(pid: int, started: int | None, data_dir: str | os.PathLike[str]) -> bool:
    """Whether live process ``pid`` is the Label Studio server started on ``data_dir``.

    Its command line must name ``data_dir`` after ``--data-dir`` and, when the PID file recorded
    it, its start time must be the one recorded: a process that reused the PID is not ours.
    Where /proc is missing (not Linux) only liveness can be checked.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another account's process is never a server we started
    if not Path("/proc/self/stat").exists():
        return True
    cmd = _command_line(pid)
    if cmd is None:
        return False
    want = str(Path(data_dir).resolve())
    if not any(a == "--data-dir" and b == want for a, b in zip(cmd, cmd[1:])):
        return False
    return started is None or process_start_time(pid) == started


def running_pid(data_dir: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(PID, port) of the live server recorded in ``data_dir``'s PID file, else None.

    A PID file whose process is gone, or is some other process now (see :func:`serves`), counts as none.
    """
    try:
        fields = (Path(data_dir) / PID_FILE).read_text().split()
        pid, port = int(fields[0]), int(fields[1])
        started = int(fields[2]) if len(fields) > 2 and fields[2] != "-" else None
    except (OSError, ValueError, IndexError):
        return None
    return (pid, port) if serves(pid, started, data_dir) else None


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (reaping it when it is our own child, as after ``--detach``)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return True
    except ChildProcessError:
        pass  # not our child: ask the kernel whether it still exists
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def stop_by_pid_files(data_dirs: list[str | os.PathLike[str]], timeout: float = 30.0) -> list[bool]:
    """Stop the detached servers recorded in these data dirs' PID files, all at once.

    SIGTERM to each server's process group, then wait; SIGKILL what is left after ``timeout``.
    Returns, per data dir, whether a server was running there.
    """
    pids: list[int | None] = []
    for data_dir in data_dirs:
        running = running_pid(data_dir)
        if running is None:
            (Path(data_dir) / PID_FILE).unlink(missing_ok=True)
        else:
            _signal_group(running[0], signal.SIGTERM)
        pids.append(None if running is None else running[0])
    deadline = time.monotonic() + timeout
    waiting = [pid for pid in pids if pid is not None]
    while waiting and time.monotonic() < deadline:
        waiting = [pid for pid in waiting if not _gone(pid)]
        if waiting:
            time.sleep(0.2)
    for pid in waiting:
        _signal_group(pid, signal.SIGKILL)
    for data_dir, pid in zip(data_dirs, pids):
        if pid is not None:
            (Path(data_dir) / PID_FILE).unlink(missing_ok=True)
    return [pid is not None for pid in pids]


def stop_by_pid_file(data_dir: str | os.PathLike[str], timeout: float = 30.0) -> bool:
    """Stop a detached server recorded in ``data_dir``'s PID file; False if none was running."""
    return stop_by_pid_files([data_dir], timeout)[0]
