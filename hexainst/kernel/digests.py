"""The SHA-256 of a file, read in blocks (memory stays flat for a multi-GB GGUF file or store shard).

One home for the digest that croissant.json, the upload manifest, store checksums, the natural sources'
revisions, the build's done-markers and the model loader all record: the same bytes give the same hex string
everywhere.
"""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
