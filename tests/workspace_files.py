"""Helpers for the bad-input tests: made-up candidate pools, a workspace's file digests, and setups
that edit one of its files.

Every bad-input test copies a prepared workspace, breaks one thing, runs a command and asserts that
nothing that existed before was changed or removed; these are the shared pieces of that pattern.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path


def pool_rows(category: str, source: str, n: int) -> list[dict]:
    """``n`` valid made-up candidate rows of one pool (category x natural/synthetic); row ``i`` of a
    pool is the same whatever ``n`` is, so ``pool_rows(c, s, 208)[104:]`` are another build's rows."""
    from hexainst.kernel.records import natural_row, synthetic_row

    rows = []
    for i in range(n):
        text = f"Made-up {source} {category} instruction {i} about item {i * 7 % 13}."
        if source == "natural":
            rows.append(natural_row(category=category, instruction=text, license="MIT", source_name="made_up",
                                    dataset_id="example/made-up", revision="sha256:" + "1" * 64, config=None,
                                    split="test", row_id=str(i), task_name=None, pattern_id="made_up.v1"))
        else:
            rows.append(synthetic_row(category=category, instruction=text, generator_model="made-up-model",
                                      endpoint_host="127.0.0.1", prompt_id=category, prompt_version="v1", seed=0,
                                      request_hash=f"{i:016x}", item_index=0))
    return rows


def write_pools(folder: Path, n: int = 104) -> Path:
    """The 12 candidate pools (every category x source), ``n`` made-up rows each, written into ``folder``."""
    from hexainst.kernel.vocab import CATEGORIES, SOURCES

    folder.mkdir(parents=True, exist_ok=True)
    for c in CATEGORIES:
        for s in SOURCES:
            (folder / f"{c}.{s}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool_rows(c, s, n)))
    return folder


def strangers_folders(root: Path) -> tuple[Path, Path]:
    """Two folders a release must never be written into: ``root/u4``, a user's files named as a release's
    (LICENSE.md, croissant.json, reserve/reserve.jsonl) without a card, and ``root/userdir``, a user's notes."""
    user = root / "u4"
    (user / "reserve").mkdir(parents=True)
    (user / "LICENSE.md").write_text("mine\n")
    (user / "croissant.json").write_text('{"mine": 1}\n')
    (user / "reserve" / "reserve.jsonl").write_text("mine\n")
    notes = root / "userdir"
    notes.mkdir()
    (notes / "notes.txt").write_text("my notes\n")
    return user, notes


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
