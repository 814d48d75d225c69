"""The request cache: one JSON file per answered request, written the moment it arrives.

Key: sha256 of the canonical JSON of (model, route, messages or prompt, sampling parameters,
prompt version). The endpoint URL and the API key are *not* part of the key and are never
stored: the same request to a mirror of the same model is the same request. Files live at
``<dir>/<key[:2]>/<key>.json`` and are written to a temporary file, then renamed, so a
killed run leaves either a whole entry or none.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hexainst.kernel import atomic

CACHE_FORMAT = 1


def request_key(model: str, route: str, payload: Any, params: dict[str, Any], prompt_version: str) -> str:
    """The cache key (64 hex) of one request."""
    blob = json.dumps(
        {"format": CACHE_FORMAT, "model": model, "route": route, "payload": payload, "params": params,
         "prompt_version": prompt_version},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        try:
            text = p.read_text("utf-8")
        except FileNotFoundError:
            return None
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            return None  # cannot happen with atomic writes; treat a damaged entry as missing
        return entry if entry.get("key") == key else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        data = json.dumps({**entry, "key": key}, ensure_ascii=False, sort_keys=True).encode("utf-8")
        atomic.write_bytes(self.path(key), data)

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*/*.json")) if self.dir.is_dir() else 0
