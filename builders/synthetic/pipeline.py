"""The synthetic build: plan slots, request (cached), parse, filter, write pools and a report.

Flow per category, in rounds until ``per_category`` candidates are kept (or the slot budget
runs out): slots ``k = next .. next + m`` are requested concurrently; each slot tries up to
``max_attempts`` requests (attempt ``a`` changes only the ``seed`` parameter, so it has its
own cache key) until the answer parses; then the round's parsed instructions go through the
filters *in (category, slot) order*, so the output depends only on the cache contents and the
seed, never on the order answers arrived in.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hexainst.kernel import atomic
from hexainst.kernel.errors import UserError
from hexainst.kernel.pools import SYNTHETIC_REPORT, pool_file
from hexainst.kernel.records import synthetic_row, validate_rows
from hexainst.kernel.vocab import CATEGORIES

from hexainst.builders.synthetic import prompts
from hexainst.builders.synthetic.answers import Parsed, parse_chat_answer, parse_list_continuation
from hexainst.builders.synthetic.cache import RequestCache, request_key
from hexainst.builders.synthetic.endpoint import Endpoint, resolve_endpoint
from hexainst.builders.synthetic.filters import CandidateFilter
from hexainst.builders.text import normalize

REPORT_NAME = SYNTHETIC_REPORT
#: Request timeout used with the embedded generator (it answers slowly but surely).
EMBEDDED_TIMEOUT_S = 3600.0
POOL_SUFFIX = ".synthetic.jsonl"


class OfflineCacheMiss(UserError):
    """Offline replay needs a request that is not in the cache."""


@dataclass
class Tally:
    requests: int = 0  # HTTP requests answered by the endpoint this run (each SDK retry is not counted)
    cache_hits: int = 0
    request_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    rejections: Counter = field(default_factory=Counter)

    def add_usage(self, usage: dict[str, Any] | None, cached: bool) -> None:
        usage = usage or {}
        p, c = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        if cached:
            self.cached_prompt_tokens += p
            self.cached_completion_tokens += c
        else:
            self.prompt_tokens += p
            self.completion_tokens += c
            self.reasoning_tokens += int(usage.get("reasoning_tokens") or 0)


@dataclass
class SlotResult:
    slot: prompts.Slot
    key: str | None  # cache key of the attempt that parsed (or the last one tried)
    parsed: Parsed | None
    attempts: int


class Generator:
    """Sends (or replays) the requests of slots; one instance per build."""

    def __init__(self, endpoint: Endpoint, cache: RequestCache, *, seed: int, offline: bool,
                 concurrency: int, max_attempts: int, timeout: float, max_retries: int,
                 starter: Any = None) -> None:
        """``starter``: a blocking callable that starts the endpoint (the embedded server) and
        returns its base URL; it is called on the first cache miss only, so a fully cached
        rerun never loads a model."""
        self.endpoint = endpoint
        self.cache = cache
        self.seed = seed
        self.offline = offline
        self.max_attempts = max_attempts
        self.tally = Tally()
        self.sem = asyncio.Semaphore(max(1, concurrency))
        self.client = None
        self.timeout, self.max_retries = timeout, max_retries
        self.starter = starter
        self._start_lock = asyncio.Lock()
        if not offline and endpoint.base_url is not None:
            self._connect()
        settings = prompts.model_table()["models"].get(endpoint.model or "", {})
        self.model_settings = settings
        self.schema = prompts.metaprompts()["answer_schema"]
        self.bar: Any = None  # a tqdm bar over slots, while a round runs

    def _connect(self) -> None:
        from openai import AsyncOpenAI

        self.client = AsyncOpenAI(base_url=self.endpoint.base_url, api_key=self.endpoint.api_key,
                                  timeout=self.timeout, max_retries=self.max_retries)

    async def _ensure_client(self) -> None:
        async with self._start_lock:
            if self.client is None:
                if self.starter is None:
                    raise UserError(f"no endpoint to send requests to ({self.endpoint.model})")
                self.endpoint.base_url = await asyncio.to_thread(self.starter)
                self._connect()

    def request_for(self, s: prompts.Slot, attempt: int) -> tuple[str, Any, dict[str, Any]]:
        spec = prompts.metaprompts()["categories"][s.category]
        params: dict[str, Any] = {"max_tokens": self.model_settings.get("max_tokens") or spec["max_tokens"],
                                  "seed": prompts.stable_int("request", self.seed, s.category, s.index, attempt)}
        if self.model_settings.get("sampling_params", True):
            params.update(temperature=spec["temperature"], top_p=spec["top_p"])
        if self.endpoint.route == "chat":
            payload: Any = prompts.chat_messages(s)
        else:
            payload = prompts.completion_prompt(s)
            params["stop"] = ["\n"]
        key = request_key(self.endpoint.model or "", self.endpoint.route, payload, params,
                          prompts.prompt_version(s.category))
        return key, payload, params

    async def _send(self, payload: Any, params: dict[str, Any]) -> dict[str, Any]:
        """POST one request through the SDK's client (its retries, timeouts and Retry-After
        handling) and read the JSON body ourselves: the SDK's typed request transform and
        response models cost ~10 ms of CPU per call, which is most of the client's time."""
        assert self.client is not None
        if self.endpoint.route == "chat":
            body = {"model": self.endpoint.model, "messages": payload, **params}
            data = await self.client.post("/chat/completions", body=body, cast_to=object)
        else:
            body = {"model": self.endpoint.model, "prompt": payload, **params}
            data = await self.client.post("/completions", body=body, cast_to=object)
        return wire_answer(data, self.endpoint.route)

    async def answer(self, key: str, payload: Any, params: dict[str, Any], where: str) -> dict[str, Any] | None:
        """The cached or fresh answer to a request; None if the request failed for good."""
        entry = self.cache.get(key)
        if entry is not None:
            self.tally.cache_hits += 1
            self.tally.add_usage(entry.get("usage"), cached=True)
            return entry
        if self.offline:
            raise OfflineCacheMiss(
                f"offline replay: no cached answer for {where} (cache key {key}) in {self.cache.dir}; "
                f"run without --offline to request it"
            )
        import openai

        if self.client is None:
            await self._ensure_client()
        async with self.sem:
            try:
                entry = await self._send(payload, params)
            except (openai.APIStatusError, openai.APIConnectionError, openai.APITimeoutError) as exc:
                self.tally.request_failures += 1
                self.tally.rejections["request_failed"] += 1
                status = getattr(exc, "status_code", None)
                print(f"synthetic: request for {where} failed after retries: {type(exc).__name__}"
                      f"{f' {status}' if status else ''}", file=sys.stderr)
                return None
            except (openai.APIResponseValidationError, json.JSONDecodeError, MalformedResponse):
                # A 200 whose body is not the wire format: not cached, so a rerun asks again.
                self.tally.requests += 1
                return {"content": None, "finish_reason": "malformed_response", "usage": {}}
        self.tally.requests += 1
        self.tally.add_usage(entry["usage"], cached=False)
        self.cache.put(key, entry)  # written as soon as it arrives: a killed run loses nothing answered
        return entry

    def parse(self, entry: dict[str, Any]) -> Parsed:
        if entry.get("finish_reason") == "malformed_response":
            return Parsed(None, "malformed_response", "response body was not valid JSON")
        if self.endpoint.route == "chat":
            return parse_chat_answer(entry.get("content"), entry.get("finish_reason"), self.schema)
        return parse_list_continuation(entry.get("content"), entry.get("finish_reason"))

    async def run_slot(self, s: prompts.Slot) -> SlotResult:
        try:
            return await self._run_slot(s)
        finally:
            if self.bar is not None:
                self.bar.update(1)

    async def _run_slot(self, s: prompts.Slot) -> SlotResult:
        key = None
        for attempt in range(self.max_attempts):
            key, payload, params = self.request_for(s, attempt)
            where = f"{s.category} slot {s.index} attempt {attempt}"
            entry = await self.answer(key, payload, params, where)
            if entry is None:
                return SlotResult(s, key, None, attempt + 1)
            parsed = self.parse(entry)
            if parsed.instruction is not None:
                return SlotResult(s, key, parsed, attempt + 1)
            self.tally.rejections[parsed.reason or "invalid"] += 1
        return SlotResult(s, key, None, self.max_attempts)


class MalformedResponse(ValueError):
    """A 200 answer that is JSON but not the OpenAI wire format."""


def wire_answer(data: Any, route: str) -> dict[str, Any]:
    """The cache entry for a response body: content, reasoning, finish reason, usage."""
    try:
        choice = data["choices"][0]
        if route == "chat":
            msg = choice["message"]
            content, reasoning = msg.get("content"), msg.get("reasoning_content")
        else:
            content, reasoning = choice.get("text"), None
        finish = choice.get("finish_reason")
        raw_usage = data.get("usage") or {}
        usage = {"prompt_tokens": int(raw_usage.get("prompt_tokens") or 0),
                 "completion_tokens": int(raw_usage.get("completion_tokens") or 0)}
        details = raw_usage.get("completion_tokens_details") or {}
        if details.get("reasoning_tokens"):
            usage["reasoning_tokens"] = int(details["reasoning_tokens"])
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise MalformedResponse(f"not a {route} completion: {exc!r}") from None
    if content is not None and not isinstance(content, str):
        raise MalformedResponse("content is not a string")
    return {"content": content, "reasoning_content": reasoning, "finish_reason": finish, "usage": usage,
            "model": data.get("model")}


def _load_natural(natural_pool_dir: Path | None) -> dict[str, str]:
    texts: dict[str, str] = {}
    if natural_pool_dir is None:
        return texts
    if not natural_pool_dir.is_dir():
        raise UserError(f"natural pool folder {natural_pool_dir} does not exist")
    for cat in CATEGORIES:
        path = pool_file(natural_pool_dir, cat, "natural")
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    texts[row["id"]] = row["instruction"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise UserError(f"{path} line {n}: not a pool row ({exc})") from None
    return texts


def _write_atomic(path: Path, data: bytes) -> None:
    atomic.write_bytes(path, data)


def _cost(model: str | None, tally: Tally) -> float | None:
    settings = prompts.model_table()["models"].get(model or "")
    if not settings or settings.get("price_input") is None:
        return None
    return round((tally.prompt_tokens * settings["price_input"] + tally.completion_tokens * settings["price_output"]) / 1e6, 6)


async def _generate(gen: Generator, per_category: int, natural: dict[str, str], seed: int,
                    max_slots: int, progress: bool, chunk: int = 16, scorer: Any = None,
                    membership_threshold: float | None = None,
                    ) -> tuple[dict[str, list[tuple[SlotResult, str, float | None]]], dict[str, Any]]:
    from tqdm import tqdm

    filt = CandidateFilter(prompts.example_instructions(), natural, seed=seed)
    kept: dict[str, list[tuple[SlotResult, str, float | None]]] = {c: [] for c in CATEGORIES}
    next_slot = {c: 0 for c in CATEGORIES}
    passed = {c: 0 for c in CATEGORIES}
    tried = {c: 0 for c in CATEGORIES}
    surplus = {c: 0 for c in CATEGORIES}
    rounds = 0
    bar = tqdm(total=per_category * len(CATEGORIES), desc="synthetic kept", unit="instr",
               disable=not progress, file=sys.stderr)
    while True:
        plan: list[prompts.Slot] = []
        for c in CATEGORIES:
            need = per_category - len(kept[c])
            if need <= 0 or next_slot[c] >= max_slots:
                continue
            rate = max(0.15, (passed[c] + 1) / (tried[c] + 2)) if tried[c] else 0.9
            m = min(max_slots - next_slot[c], max(2, math.ceil(need / rate * 1.05)))
            plan += [prompts.slot(c, next_slot[c] + i, seed) for i in range(m)]
            next_slot[c] += m
        if not plan:
            break
        # Requests go out interleaved by category in chunks of `chunk` (one server batch shares
        # one category's prompt prefix), so a run stopped early has progress in every category;
        # results are filtered in (category, slot) order, whatever order they arrived in.
        by_cat: dict[str, list[prompts.Slot]] = {}
        for s in plan:
            by_cat.setdefault(s.category, []).append(s)
        order: list[prompts.Slot] = []
        while any(by_cat.values()):
            for c in CATEGORIES:
                order += by_cat.get(c, [])[:chunk]
                by_cat[c] = by_cat.get(c, [])[chunk:]
        gen.bar = tqdm(total=len(order), desc=f"round {rounds + 1} slots", unit="slot", disable=not progress,
                       file=sys.stderr, leave=False)
        done = dict(zip(order, await asyncio.gather(*(gen.run_slot(s) for s in order))))
        gen.bar.close()
        gen.bar = None
        rounds += 1
        results = [done[s] for s in plan]
        for res in results:  # plan order = (category, slot) order: deterministic
            c = res.slot.category
            tried[c] += 1
            if res.parsed is None or res.parsed.instruction is None:
                continue
            text = normalize(res.parsed.instruction)
            if not text:
                gen.tally.rejections["empty"] += 1
                continue
            if len(kept[c]) >= per_category:
                surplus[c] += 1
                continue
            reason, _detail = filt.check(c, text)
            if reason:
                gen.tally.rejections[reason] += 1
                continue
            score = scorer.score(text) if scorer is not None else None
            if score is not None and membership_threshold is not None and score >= membership_threshold:
                gen.tally.rejections["membership"] += 1
                continue
            passed[c] += 1
            filt.keep(f"{c}:{res.slot.index}", text)
            kept[c].append((res, text, score))
            bar.update(1)
    bar.close()
    stats = {c: {"target": per_category, "kept": len(kept[c]), "slots": next_slot[c], "passed_filters": passed[c],
                 "surplus": surplus[c]} for c in CATEGORIES}
    return kept, stats


def build(out_dir: Path, per_category: int, base_url: str | None = None, model: str | None = None,
          natural_pool_dir: Path | None = None, cache_dir: Path | None = None, offline: bool = False,
          seed: int = 0, concurrency: int = 16, progress: bool = True, *, generator: str | None = None,
          max_attempts: int = 3, timeout: float = 120.0, max_retries: int = 4,
          max_slots_factor: float = 4.0, embedded_threads: int | None = None,
          membership_model: str | None = None, membership_k: float | None = None,
          membership_threshold: float | None = None) -> dict[str, Any]:
    """Build the synthetic candidate pools; see the package docstring. Returns the report.

    ``membership_model`` (a registered embedded generator, a local folder or a Hub id) turns on
    Min-K%++ scores (:mod:`hexainst.builders.synthetic.membership`), stored per candidate; with
    ``membership_threshold`` a candidate scoring at or above it is rejected ("membership").
    """
    if per_category < 1:
        raise UserError(f"per_category must be >= 1, got {per_category}")
    if membership_model is None and (membership_threshold is not None or membership_k is not None):
        raise UserError("--membership-threshold and --membership-k need --membership-model")
    endpoint = resolve_endpoint(base_url, model, generator)
    cache = RequestCache(cache_dir if cache_dir is not None else out_dir / "cache")
    natural = _load_natural(natural_pool_dir)
    scorer = None
    if membership_model is not None:
        from hexainst.builders.synthetic.membership import DEFAULT_K, MembershipScorer

        scorer = MembershipScorer(membership_model, k=DEFAULT_K if membership_k is None else membership_k,
                                  cache_dir=cache.dir.parent / f"{cache.dir.name}-membership")
    max_slots = int(per_category * max_slots_factor) + 20
    started = time.monotonic()
    server = None
    restore = _exit_on_sigterm()
    try:
        starter = None
        if endpoint.embedded is not None and not offline:
            from hexainst.builders.synthetic.embedded import EmbeddedServer

            server = EmbeddedServer(endpoint.embedded, max_batch=max(1, concurrency), threads=embedded_threads)

            def starter() -> str:
                # Started on the first cache miss; on failure or SIGTERM, ``finally`` below
                # stops it by its PID.
                print(f"synthetic: starting the embedded generator {endpoint.embedded} on 127.0.0.1",
                      file=sys.stderr)
                return server.start().base_url

            # The local server queues requests behind the batch it is generating; a client
            # timeout would abandon work the server still does, and its retry would queue again.
            timeout = max(timeout, EMBEDDED_TIMEOUT_S)
        gen = Generator(endpoint, cache, seed=seed, offline=offline, concurrency=concurrency,
                        max_attempts=max_attempts, timeout=timeout, max_retries=max_retries, starter=starter)
        if endpoint.model is None:
            endpoint.model = _first_model(gen)
        kept, stats = asyncio.run(_generate(gen, per_category, natural, seed, max_slots, progress,
                                            chunk=max(1, concurrency), scorer=scorer,
                                            membership_threshold=membership_threshold))
    finally:
        if server is not None:
            server.stop()
        restore()
    host = "127.0.0.1" if endpoint.embedded else endpoint.host
    generator_model = f"embedded:{endpoint.embedded}" if endpoint.embedded else endpoint.model
    written = {}
    for c in CATEGORIES:
        rows = [
            synthetic_row(category=c, instruction=text, generator_model=generator_model, endpoint_host=host,
                          prompt_id=f"{c}.{endpoint.route}", prompt_version=prompts.prompt_version(c), seed=seed,
                          request_hash=res.key, item_index=0, topic=res.slot.topic_label,
                          membership_score=score)
            for res, text, score in kept[c]
        ]
        path = out_dir / f"{c}{POOL_SUFFIX}"
        validate_rows(rows, str(path))
        _write_atomic(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode())
        written[c] = str(path)
    t = gen.tally
    report = {
        "generator": {"model": generator_model, "endpoint_host": host, "route": endpoint.route,
                      "embedded": endpoint.embedded is not None, "metaprompt_version": prompts.metaprompts()["version"]},
        "seed": seed,
        "offline": offline,
        "per_category": stats,
        "requests": t.requests,
        "cache_hits": t.cache_hits,
        "request_failures": t.request_failures,
        "tokens": {"prompt": t.prompt_tokens, "completion": t.completion_tokens, "reasoning": t.reasoning_tokens,
                   "cached_prompt": t.cached_prompt_tokens, "cached_completion": t.cached_completion_tokens},
        "cost_usd": _cost(endpoint.model, t) if not endpoint.embedded else 0.0,
        "rejections": dict(sorted(t.rejections.items())),
        "filters": {"near_duplicate": "word-set Jaccard >= 0.7 (MinHash LSH candidates, exact check)",
                    "contamination": "shared word 13-grams with the natural pools > 0",
                    "natural_rows_indexed": len(natural),
                    "membership": scorer.describe(membership_threshold) if scorer is not None else None},
        "wall_s": round(time.monotonic() - started, 2),
        "pools": written,
    }
    _write_atomic(out_dir / REPORT_NAME, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    cost = report["cost_usd"]
    print(
        f"synthetic: {sum(s['kept'] for s in stats.values())} kept; {t.requests} requests, {t.cache_hits} cache hits, "
        f"{t.request_failures} failed; tokens in {t.prompt_tokens} out {t.completion_tokens} "
        f"(reasoning {t.reasoning_tokens}); cost {'n/a' if cost is None else f'${cost:.4f}'}",
        file=sys.stderr,
    )
    short = {c: s["kept"] for c, s in stats.items() if s["kept"] < per_category}
    if short:
        print(f"synthetic: warning: fewer than {per_category} kept for {short}", file=sys.stderr)
    return report


def _exit_on_sigterm():
    """Turn SIGTERM into SystemExit (so ``finally`` blocks stop the embedded server); returns an undo."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):  # noqa: ARG001
        raise SystemExit(143)

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _first_model(gen: Generator) -> str:
    if gen.client is None:
        raise UserError("offline replay needs --model (or HEXAINST_MODEL): the cache is keyed by model")

    from openai import OpenAI

    client = OpenAI(base_url=gen.endpoint.base_url, api_key=gen.endpoint.api_key, timeout=30, max_retries=2)
    for m in client.models.list().data:
        return m.id
    raise UserError(f"{gen.endpoint.host} lists no model; pass --model")
