"""``natural.lock.json``: the revisions a build actually used, and checking a build against it.

Shape::

    {"version": 1,
     "sources": {
       "<source name>": {"mode": "mirror", "dataset_id": ..., "config": ..., "split": ...,
                         "files": {"<path in the mirror>": "sha256:<hex>", ...}},
       "<source name>": {"mode": "hub", "dataset_id": ..., "config": ..., "split": ...,
                         "revision": "<commit>"}}}

Only sources that were read appear. A build given a lock reads the Hub at the locked commit;
from a mirror it checks that the files are exactly the locked ones with the locked hashes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_json

LOCK_VERSION = 1


class LockError(UserError):
    """The lock file is unreadable, or the sources differ from what it records."""


def read_lock(path: Path) -> dict[str, Any]:
    data = read_json(path, what="lock file")
    if not isinstance(data, dict) or data.get("version") != LOCK_VERSION or not isinstance(data.get("sources"), dict):
        raise LockError(f"lock file {path}: expected {{'version': {LOCK_VERSION}, 'sources': {{...}}}}")
    for name, entry in data["sources"].items():
        if not isinstance(entry, dict) or entry.get("mode") not in ("mirror", "hub"):
            raise LockError(f"lock file {path}: source {name!r}: 'mode' must be 'mirror' or 'hub'")
        if entry["mode"] == "hub" and not isinstance(entry.get("revision"), str):
            raise LockError(f"lock file {path}: source {name!r}: a hub entry needs a 'revision'")
        if entry["mode"] == "mirror" and not isinstance(entry.get("files"), dict):
            raise LockError(f"lock file {path}: source {name!r}: a mirror entry needs 'files'")
    return data


def check_mirror_files(source_name: str, locked: dict[str, Any] | None, actual: dict[str, str], lock_path: Path) -> None:
    """Raise :class:`LockError` unless ``actual`` (path -> sha256) is what the lock records."""
    if locked is None:
        return
    if locked.get("mode") != "mirror":
        raise LockError(f"source {source_name!r}: the lock {lock_path} records a Hub revision, but this build reads a mirror")
    expected: dict[str, str] = locked["files"]
    for rel, digest in sorted(actual.items()):
        if rel not in expected:
            raise LockError(f"source {source_name!r}: mirror file {rel} is not in the lock {lock_path}")
        if expected[rel] != digest:
            raise LockError(
                f"source {source_name!r}: mirror file {rel} has {digest}, the lock {lock_path} records "
                f"{expected[rel]} (the mirror changed; rebuild without --lock to accept the new files)"
            )
    for rel in sorted(set(expected) - set(actual)):
        raise LockError(f"source {source_name!r}: the lock {lock_path} records mirror file {rel}, which is missing")
