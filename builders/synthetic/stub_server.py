"""A programmable OpenAI-compatible stub server, for tests, the benchmark and end-to-end runs.

It speaks the OpenAI wire format on ``GET /v1/models``, ``POST /v1/chat/completions`` and
``POST /v1/completions``, binds 127.0.0.1 only, and needs no model.

Python API
----------
::

    from hexainst.builders.synthetic.stub_server import StubServer, Fault

    with StubServer(latency=0.2) as stub:          # a thread in this process, free port
        stub.base_url                              # 'http://127.0.0.1:<port>/v1'
        stub.add_faults([Fault("rate_limit", retry_after=1), Fault("server_error")])
        ...                                        # point the builder at stub.base_url
        stub.requests                              # log: one dict per request received
        stub.answered_keys()                       # request fingerprints answered with 200

``StubServer(latency=0.0, mode="content", model="stub-model", seed=0)``

* ``latency``: seconds every request sleeps before answering (per fault it can be overridden).
* ``mode``: ``"content"`` answers meta-prompts with deterministic, diverse, category-appropriate
  instructions in the JSON form the meta-prompts ask for (``{"instruction": "..."}``; on the
  completions route, one line). The text depends only on the request (a hash of its messages
  and ``seed``), so a rerun gets the same answer, and varied enough that a full build of 150 per
  category passes the near-duplicate filter. ``"echo"`` answers ``{"instruction": "ok"}``.
  ``"verdict"`` answers an annotation screen's four questions (``hexainst annotate judge``) with a
  deterministic verdict drawn from the request: ``{"category_correct", "errors", "corrected_instruction",
  "decision"}`` (faults apply as in the other modes).
* Faults are consumed in arrival order: ``add_faults([...])`` queues them, the next request
  gets the first queued fault, and so on; requests with no queued fault are answered normally.
  ``set_rule(fn)`` installs ``fn(index, body) -> Fault | None`` for faults chosen per request
  (``index`` counts from 0 over all requests).

Fault kinds (``Fault(kind, retry_after=1.0, delay=None)``):

============== ==========================================================================
rate_limit     429 with a ``Retry-After: <retry_after>`` header
server_error   500 with an error body
hang           sleeps ``delay`` seconds (default 30) before answering normally: a timeout
disconnect     closes the connection without an answer
malformed_json 200 whose body is not JSON
empty_content  200 with ``content: ""``
length         200 with ``finish_reason: "length"`` and a cut-off answer
think_inline   ``<think>reasoning</think>`` before the (valid) JSON answer
think_unclosed ``<think>`` reasoning that never closes, leaking into the content
reasoning      the reasoning in a separate ``reasoning_content`` field (as DeepSeek R1 does)
not_json       200 with a prose answer instead of the JSON object
============== ==========================================================================

``GET /v1/stats`` answers ``{"requests": N, "statuses": {...}}``: how many completion requests
arrived, for callers that run the stub as a process.

As a process::

    python -m hexainst.builders.synthetic.stub_server --port 8000 [--latency 0.2] [--model stub-model]

prints ``ready http://127.0.0.1:8000/v1`` once it listens, and serves until killed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hexainst.builders.synthetic.prompts import metaprompts
from hexainst.builders.synthetic.wire import JsonHandler, QuietServer, chat_completion, text_completion
from hexainst.kernel.processes import free_port

FAULT_KINDS = ("rate_limit", "server_error", "hang", "disconnect", "malformed_json", "empty_content", "length",
               "think_inline", "think_unclosed", "reasoning", "not_json")


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after: float = 1.0
    delay: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; known: {', '.join(FAULT_KINDS)}")


def fingerprint(body: dict[str, Any]) -> str:
    """A stable hash of a request body (what the stub's content depends on)."""
    blob = json.dumps({k: body.get(k) for k in ("model", "messages", "prompt", "seed", "max_tokens", "temperature")},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- content mode: deterministic, varied, category-appropriate instructions -------------------

_NOUNS = """apple anchor badge balcony banner barrel basket beacon bicycle blanket bottle bracelet bridge brush
bucket cabinet camera candle canoe canvas carpet castle cellar chimney clock compass cookie cottage crayon
curtain cushion desk diamond drum engine envelope fabric feather fence fiddle flag flute forest fountain
garden glove gravel hammer harbor helmet hinge honey island jacket jar kettle kite ladder lamp lantern
leaf lemon library locket magnet marble meadow mirror mitten monument mosaic napkin needle notebook oven
paddle palace parcel pebble pencil pepper piano pillow pitcher planet pocket pottery puzzle quilt radio
railway ribbon rocket saddle satchel scarf scooter shovel skillet sled spoon stadium statue sweater
tablet teapot telescope tent thimble ticket tractor trophy trumpet tunnel umbrella valley vase violin
wagon wallet whistle window workshop yacht zipper""".split()
_ADJS = """ancient bright brisk calm careful cheerful clever colorful cozy curious dusty eager elegant fancy
fierce fragile friendly gentle gloomy golden graceful handy hidden humble icy jolly lively lonely loyal
lucky modest narrow noble odd orange patient plain polite proud quiet rapid rare rustic scarlet shiny
silent silver simple sleepy smooth sturdy sunny swift tidy tiny vivid wandering warm wild wooden young""".split()
_NAMES = """Ada Bruno Carla Dmitri Elena Farid Greta Hiro Ines Jonas Kemal Lena Marco Nadia Omar Priya Quinn
Rosa Sven Tariq Uma Viktor Wren Ximena Yusuf Zara""".split()
_LANGS = ["Python", "JavaScript", "Java", "C", "Go", "Rust", "TypeScript", "Ruby"]
_LABELS = [["positive", "negative"], ["positive", "negative", "neutral"], ["urgent", "not urgent"],
           ["formal", "informal"], ["spam", "not spam"], ["joy", "anger", "sadness", "fear"],
           ["complaint", "praise", "question"], ["agree", "disagree", "unsure"]]


def _detect_category(text: str) -> str | None:
    """The category a meta-prompt asks for: every request names it (``category_label``)."""
    low = text.lower()
    for cat, spec in metaprompts()["categories"].items():
        if f"category: {spec['category_label']}." in low or spec["plural"].lower() in low:
            return cat
    return None


def _topic(text: str) -> str:
    """The topic a request names: ``... about <topic>.`` (chat) or the final ``(... about|of|on <topic>)`` (completions)."""
    m = re.search(r"\(([^()]*)\)\s*$", text)
    if m:
        inner = m.group(1)
        for sep in (" about ", " of ", ", on "):
            if sep in inner:
                return inner.rsplit(sep, 1)[1].strip()
        return inner.strip()
    m = re.search(r"about (.+?)\.(?:\s|$)", text)
    return m.group(1).strip() if m else "everyday life"


def make_instruction(category: str | None, topic: str, rng: random.Random) -> str:
    """One instruction of ``category`` about ``topic``; varied by three random content words."""
    n1, n2, n3 = rng.sample(_NOUNS, 3)
    a1, a2 = rng.sample(_ADJS, 2)
    name = rng.choice(_NAMES)
    x, y, z = rng.randint(3, 97), rng.randint(2, 40), rng.randint(5, 900)
    if category == "classification":
        labels = rng.choice(_LABELS)
        text = (f"{name} wrote about {topic}: the {a1} {n1} by the {n2} was {a2}, and the {n3} "
                f"cost {z} coins after {y} days")
        return f"Classify the following message as {', '.join(labels[:-1])} or {labels[-1]}: \"{text}.\""
    if category == "code":
        lang = rng.choice(_LANGS)
        return (f"Write a {lang} function {n1}_{n2}_{x}(items) for a program about {topic} that returns the "
                f"{a1} {n3} entries whose weight exceeds {z}, sorted by their {a2} score.")
    if category == "generalqa":
        return (f"In the story of {topic}, which {a1} {n1} did {name} bring to the {a2} {n2} "
                f"near the {n3} in the year {1500 + z}?")
    if category == "generation":
        return (f"Write a short {a1} poem about {topic} that mentions a {n1}, a {a2} {n2} and "
                f"{name}'s {n3}, in {y % 5 + 3} lines.")
    if category == "math":
        return (f"{name} packs {x} {n1}s and {y} {n2}s for a trip about {topic}. Each {n1} weighs {z} grams and "
                f"each {n2} weighs {x + y} grams. What is the total weight in grams of the {a1} {n3}?")
    if category == "summarization":
        sentences = [
            f"The {a1} {n1} of the town was repaired on Monday after {y} residents asked for help with {topic}.",
            f"Workers brought a {a2} {n2} and {x} crates of supplies from the {n3} depot.",
            f"{name} said the work cost {z} euros and would finish within {y % 6 + 2} weeks.",
            f"Critics argued that the {rng.choice(_NOUNS)} budget should have gone to the "
            f"{rng.choice(_ADJS)} {rng.choice(_NOUNS)} instead.",
            f"Volunteers from {rng.choice(_NAMES)}'s {rng.choice(_NOUNS)} club cleaned the "
            f"{rng.choice(_ADJS)} square every {rng.choice(_ADJS)} evening.",
            f"A survey found that {x} percent of families now visit the {rng.choice(_NOUNS)} at least once a month.",
            f"The mayor promised a {rng.choice(_ADJS)} {rng.choice(_NOUNS)} for the {rng.choice(_NOUNS)} festival next spring.",
            f"Shops near the {rng.choice(_NOUNS)} reported {z % 50 + 5} extra customers a day during the works.",
        ]
        picked = sorted(rng.sample(range(len(sentences)), 4))
        return f"Summarize the following passage in one sentence: \"{' '.join(sentences[i] for i in picked)}\""
    return f"Describe a {a1} {n1} and a {a2} {n2} in the context of {topic}."


class _State:
    def __init__(self, latency: float, mode: str, model: str, seed: int) -> None:
        self.latency = latency
        self.mode = mode
        self.model = model
        self.seed = seed
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.rule: Callable[[int, dict[str, Any]], Fault | None] | None = None
        self.requests: list[dict[str, Any]] = []

    def next_fault(self, body: dict[str, Any]) -> tuple[int, Fault | None]:
        with self.lock:
            index = len(self.requests)
            fault = self.faults.pop(0) if self.faults else None
            if fault is None and self.rule is not None:
                fault = self.rule(index, body)
            self.requests.append({"index": index, "fingerprint": fingerprint(body),
                                  "fault": fault.kind if fault else None, "status": None, "time": time.time()})
            return index, fault

    def set_status(self, index: int, status: int | None) -> None:
        with self.lock:
            self.requests[index]["status"] = status


def _make_handler(state: _State):
    class Handler(JsonHandler):
        server_version = "hexainst-stub/1"

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/health"):
                self.send_json(200, {"object": "list", "data": [{"id": state.model, "object": "model"}]})
            elif self.path.rstrip("/") == "/v1/stats":
                with state.lock:
                    statuses = Counter(str(r["status"]) for r in state.requests)
                    self.send_json(200, {"requests": len(state.requests), "statuses": dict(statuses)})
            else:
                self.send_error_json(404, f"no route {self.path}")

        def do_POST(self) -> None:
            route = self.path.rstrip("/")
            if route not in ("/v1/chat/completions", "/v1/completions"):
                self.send_error_json(404, f"no route {self.path}")
                return
            try:
                body = self.read_json()
            except json.JSONDecodeError:
                self.send_error_json(400, "request body is not JSON")
                return
            index, fault = state.next_fault(body)
            kind = fault.kind if fault else None
            delay = state.latency if fault is None or fault.delay is None else fault.delay
            if kind == "hang" and fault.delay is None:
                delay = 30.0
            if delay:
                time.sleep(delay)
            status = 200
            try:
                if kind == "rate_limit":
                    status = 429
                    self.send_error_json(429, "rate limited", {"Retry-After": f"{fault.retry_after:g}"})
                elif kind == "server_error":
                    status = 500
                    self.send_error_json(500, "internal error")
                elif kind == "disconnect":
                    status = None
                    self.close_connection = True
                    self.connection.shutdown(2)
                elif kind == "malformed_json":
                    self.send_raw(200, b'{"id": "x", "choices": [ {"message": ')
                else:
                    self._answer(route, body, kind)
            except (BrokenPipeError, ConnectionResetError, OSError):
                status = None  # the client gave up (timeout) before we answered
            state.set_status(index, status)

        def _answer(self, route: str, body: dict[str, Any], kind: str | None) -> None:
            fp = fingerprint(body)
            rng = random.Random(f"{state.seed}:{fp}")
            if route == "/v1/chat/completions":
                messages = body.get("messages") or []
                ask = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
            else:
                ask = str(body.get("prompt", ""))
            category = _detect_category(ask)
            if state.mode == "echo":
                instruction = "ok"
            else:
                instruction = make_instruction(category, _topic(ask), rng)
            if route == "/v1/completions":
                text = instruction
                finish = "stop"
                if kind == "empty_content":
                    text = ""
                elif kind == "length":
                    text, finish = instruction[: len(instruction) // 2], "length"
                self.send_json(200, text_completion(state.model, [{"text": text, "finish_reason": finish}],
                                                    len(ask.split()), len(text.split())))
                return
            content = json.dumps({"instruction": instruction}, ensure_ascii=False)
            if state.mode == "verdict":
                content = json.dumps(_verdict(rng), ensure_ascii=False)
            choice: dict[str, Any] = {"content": content, "finish_reason": "stop"}
            reasoning = f"The user wants a {category or 'generic'} instruction; I will vary the details."
            rtok = 0
            if kind == "empty_content":
                choice["content"] = ""
            elif kind == "length":
                choice = {"content": content[: len(content) // 2], "finish_reason": "length"}
            elif kind == "think_inline":
                choice["content"] = f"<think>{reasoning}</think>\n{content}"
                rtok = len(reasoning.split())
            elif kind == "think_unclosed":
                choice["content"] = f"<think>{reasoning} {content}"
            elif kind == "reasoning":
                choice["reasoning_content"] = reasoning
                rtok = len(reasoning.split())
            elif kind == "not_json":
                choice["content"] = f"Sure! Here is an instruction: {instruction}"
            ptok = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
            self.send_json(200, chat_completion(state.model, [choice], ptok,
                                                len(str(choice["content"]).split()) + rtok, rtok))

    return Handler


def _verdict(rng: random.Random) -> dict[str, Any]:
    """A deterministic annotation verdict (mode ``verdict``): what a judge model's answer looks like."""
    decision = rng.choice(("accept", "accept", "revise", "reject"))
    errors = sorted(rng.sample(("grammar", "redundancy", "unclear", "unsound"), k=0 if decision == "accept" else 1))
    return {"category_correct": decision != "reject" or rng.random() < 0.5, "errors": errors,
            "corrected_instruction": "A corrected instruction." if decision == "revise" else None, "decision": decision}


class StubServer:
    """The stub on a free port of 127.0.0.1, served by a background thread."""

    def __init__(self, latency: float = 0.0, mode: str = "content", model: str = "stub-model",
                 seed: int = 0, port: int | None = None) -> None:
        if mode not in ("content", "echo", "verdict"):
            raise ValueError(f"mode must be 'content', 'echo' or 'verdict', got {mode!r}")
        self.state = _State(latency, mode, model, seed)
        self.port = port
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return [dict(r) for r in self.state.requests]

    def answered_keys(self) -> list[str]:
        """Fingerprints of requests answered with status 200, in arrival order."""
        return [r["fingerprint"] for r in self.requests if r["status"] == 200]

    def add_faults(self, faults: list[Fault]) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)

    def set_rule(self, rule: Callable[[int, dict[str, Any]], Fault | None] | None) -> None:
        self.state.rule = rule

    def set_latency(self, seconds: float) -> None:
        self.state.latency = seconds

    def reset_log(self) -> None:
        with self.state.lock:
            self.state.requests.clear()

    def start(self) -> StubServer:
        if self.port is None:
            self.port = free_port()
        self._server = QuietServer(("127.0.0.1", self.port), _make_handler(self.state))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="OpenAI-compatible stub server (127.0.0.1) for tests and benchmarks.")
    p.add_argument("--port", type=int, default=0, help="port (0: a free one, printed on start)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    p.add_argument("--model", default="stub-model", help="model id it reports")
    p.add_argument("--mode", choices=("content", "echo", "verdict"), default="content")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    stub = StubServer(latency=args.latency, mode=args.mode, model=args.model, seed=args.seed,
                      port=args.port or None).start()
    print(f"ready {stub.base_url}", flush=True)  # noqa: T201 - the parent process waits for this line
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
