"""The OpenAI wire format, server side: tiny helpers both local servers share.

``JsonHandler`` is a :class:`http.server.BaseHTTPRequestHandler` that reads a JSON body and
writes JSON answers; ``chat_completion`` and ``text_completion`` build response bodies in the
shape the ``openai`` SDK parses. No third-party web framework: the standard library's
``ThreadingHTTPServer`` is enough for 127.0.0.1 and keeps the dependency list short.
"""

from __future__ import annotations

import json
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes on a kept-alive connection; with Nagle's algorithm
    # on, the body waits for the client's delayed ACK of the headers (up to 40 ms on Linux) on
    # every answer. Real servers send with TCP_NODELAY; so do these.
    disable_nagle_algorithm = True
    server_version = "hexainst-local/1"

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass  # keep stderr clean; requests never carry secrets we could leak, but stay silent anyway

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def send_raw(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                 content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_raw(status, json.dumps(obj).encode("utf-8"), headers)

    def send_error_json(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, {"error": {"message": message, "type": "server_error", "code": status}}, headers)


def usage(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    u: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if reasoning_tokens:
        u["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return u


def chat_completion(model: str, choices: list[dict[str, Any]], prompt_tokens: int,
                    completion_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    """``choices``: dicts with ``content``, ``finish_reason`` and optionally ``reasoning_content``."""
    out = []
    for i, c in enumerate(choices):
        msg: dict[str, Any] = {"role": "assistant", "content": c.get("content")}
        if c.get("reasoning_content") is not None:
            msg["reasoning_content"] = c["reasoning_content"]
        out.append({"index": i, "message": msg, "finish_reason": c.get("finish_reason", "stop"), "logprobs": None})
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": out,
        "usage": usage(prompt_tokens, completion_tokens, reasoning_tokens),
    }


def text_completion(model: str, choices: list[dict[str, Any]], prompt_tokens: int,
                    completion_tokens: int) -> dict[str, Any]:
    """``choices``: dicts with ``text`` and ``finish_reason``."""
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:16]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": i, "text": c["text"], "finish_reason": c.get("finish_reason", "stop"), "logprobs": None}
            for i, c in enumerate(choices)
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }
