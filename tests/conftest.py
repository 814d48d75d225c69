"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _mirror_dir() -> Path:
    env = os.environ.get("HEXAINST_SOURCES")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "sources"


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """The offline mirror of the natural sources (``../shared/sources``; CI has it too)."""
    path = _mirror_dir()
    if not path.is_dir():
        pytest.fail(f"offline source mirror not found at {path}; set HEXAINST_SOURCES")
    return path


@pytest.fixture(autouse=True)
def _library_messages_shown_as_the_cli_shows_them():
    """Library code logs (hexainst.kernel.log); the command line shows INFO and above. Tests that call
    the library directly see its messages on the same streams, as a user of the command sees them;
    a test that runs ``main(["--quiet", ...])`` in-process leaves nothing behind for the next one."""
    from hexainst.kernel.log import configure

    configure(0)
    yield
    configure(0)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 2 MB tmpfs mounted for the test, so a write really runs out of space (root only; else skipped).

    ``workspace_files.fill_disk(disk)`` then takes the space that is left, with a file of its own.
    """
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
