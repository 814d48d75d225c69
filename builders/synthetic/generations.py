"""The raw generations of a build, as one file to publish with the release, and back into a cache.

Alpaca and Self-Instruct publish their raw generations beside the filtered data; HexaInst does
the same. :func:`export_generations` writes every answer a build used (its
``synthetic-requests.json`` lists their cache keys) as JSON Lines, one line per request, sorted
by key, with sorted object keys: the same cache and build give the same bytes. Each line::

    {"key": "<sha256 cache key>",
     "request": {"model": ..., "route": "completions"|"chat", "payload": <prompt or messages>,
                 "params": {...sampling...}, "prompt_version": ...},
     "answer": {"content": ..., "finish_reason": ..., "reasoning_content": ..., "usage": {...}, "model": ...}}

:func:`import_generations` fills a request cache from such a file (each key is recomputed from its
request and must match), so that a build with the same settings replays every answer and sends no
request: ``build(..., offline=True)`` rebuilds byte-identical pools from the file alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hexainst.builders.synthetic.cache import RequestCache, request_key
from hexainst.builders.synthetic.config import REQUESTS_NAME
from hexainst.kernel import atomic
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import iter_jsonl, read_json

#: Fields of a cache entry that form the published answer.
ANSWER_FIELDS = ("content", "reasoning_content", "finish_reason", "usage", "model")
REQUEST_FIELDS = ("model", "route", "payload", "params", "prompt_version")


class GenerationsError(UserError):
    """A generations file or a cache entry that cannot be exported or imported."""


def _used_keys(used_only_for: Path) -> list[str]:
    """The keys a build used: from its pools folder (or a ``synthetic-requests.json`` file given directly)."""
    path = Path(used_only_for)
    file = path / REQUESTS_NAME if path.is_dir() else path
    if not file.is_file():
        raise GenerationsError(f"{file}: no {REQUESTS_NAME}; point at the pools folder of a synthetic build")
    doc = read_json(file, what="synthetic requests list")
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, str) and len(k) == 64 for k in keys):
        raise GenerationsError(f"{file}: expected {{\"keys\": [<64-hex cache keys>]}}")
    return sorted(set(keys))


def export_generations(cache_dir: Path, out_file: Path, used_only_for: Path | None = None) -> int:
    """Write the generations of ``cache_dir`` to ``out_file`` (JSON Lines, sorted by key); return the line count.

    ``used_only_for``: the pools folder of a build (or its ``synthetic-requests.json``): only the
    answers that build used. Without it, every entry of the cache. An entry that is missing, or
    was cached before requests were stored with answers, is an error naming its key.
    """
    cache = RequestCache(cache_dir)
    if used_only_for is not None:
        keys = _used_keys(used_only_for)
    else:
        keys = sorted(p.stem for p in cache.dir.glob("*/*.json")) if cache.dir.is_dir() else []
    lines = []
    for key in keys:
        entry = cache.get(key)
        if entry is None:
            raise GenerationsError(f"cache {cache.dir}: no entry for key {key}")
        request = entry.get("request")
        if not isinstance(request, dict):
            raise GenerationsError(f"cache {cache.dir}: entry {key} holds no request (cached by an older version); "
                                   "rebuild it with the current builder")
        doc = {"key": key, "request": {k: request.get(k) for k in REQUEST_FIELDS},
               "answer": {k: entry.get(k) for k in ANSWER_FIELDS}}
        lines.append(json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n")
    atomic.write_text(out_file, "".join(lines))
    return len(lines)


def import_generations(file: Path, cache_dir: Path) -> int:
    """Fill the request cache ``cache_dir`` from a generations file; return how many entries were written.

    Every key is recomputed from its request (a line whose key does not match is an error naming
    the line). An entry already cached is left as it is.
    """
    cache = RequestCache(cache_dir)

    def check(doc: Any, where: str) -> None:
        req, ans = doc.get("request"), doc.get("answer")
        if not isinstance(req, dict) or not isinstance(ans, dict) or not isinstance(doc.get("key"), str):
            raise GenerationsError(f"{where}: expected an object with 'key', 'request' and 'answer'")
        missing = [k for k in REQUEST_FIELDS if k not in req]
        if missing:
            raise GenerationsError(f"{where}: request lacks {', '.join(missing)}")
        key = request_key(req["model"], req["route"], req["payload"], req["params"], req["prompt_version"])
        if key != doc["key"]:
            raise GenerationsError(f"{where}: key {doc['key']} does not match its request (expected {key})")

    written = 0
    for doc in iter_jsonl(file, what="generations file", check=check):
        if cache.get(doc["key"]) is not None:
            continue
        cache.put(doc["key"], {**{k: doc["answer"].get(k) for k in ANSWER_FIELDS}, "request": doc["request"]})
        written += 1
    return written
