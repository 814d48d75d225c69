"""Helpers for the bad-input tests: a workspace's file digests, and setups that edit one of its files.

Every bad-input test copies a prepared workspace, breaks one thing, runs a command and asserts that
nothing that existed before was changed or removed; these are the shared pieces of that pattern.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file below ``root``, keyed by its path relative to ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files of ``before`` that are missing from ``after`` or differ in it (new files are not counted)."""
    return [name for name, digest in before.items() if after.get(name) != digest]


def edit_bytes(rel: str, fn: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """A case setup that rewrites ``rel`` (relative to the workspace) through ``fn``."""
    def setup(ws: Path) -> None:
        path = ws / rel
        path.write_bytes(fn(path.read_bytes()))
    return setup


def fill_disk(disk: Path) -> Path:
    """Write ``disk/filler`` until the device is full; return it (delete it to free the space)."""
    import errno
    import os

    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (65536, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler
