"""The synthetic build: plan slots, request candidates (cached), parse, gate, filter, rank, write.

Flow per category, in rounds until its target is kept (or the slot budget runs out): slots
``k = next .. next + m`` are planned (:func:`prompts.slot`); each slot asks for ``candidates``
answers (candidate ``c``, attempt ``a`` differ only in the request ``seed``, so each has its own
cache key; an unusable answer is retried up to ``max_attempts``); then every slot of the round
is decided *in slot order*: its candidates are parsed, gated (:mod:`ranking`), filtered
(:mod:`filters`), scored, and the best one that is no near-duplicate of what the category kept
is kept. The pools depend only on the cache contents, the seed and the targets: never on the
order answers arrived in, and a category's rows never on another category's target (so a
top-up with ``extra`` keeps every earlier row and appends new ones).

The output folder is written whole: pools, report and marker go to a folder beside it, swapped
in only when complete, so a failed or interrupted run leaves the previous pools as they were.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hexainst.builders.synthetic import prompts, ranking
from hexainst.builders.synthetic.cache import RequestCache, request_key
from hexainst.builders.synthetic.client import Client, EndpointError, cost, preflight
from hexainst.builders.synthetic.config import OUTPUT_KIND, REQUESTS_NAME, SyntheticConfig
from hexainst.builders.synthetic.embedded import EmbeddedServer, exit_on_sigterm
from hexainst.builders.synthetic.endpoint import Endpoint, resolve_endpoint
from hexainst.builders.synthetic.examples import ExamplePool, load_natural
from hexainst.builders.synthetic.filters import CandidateFilter
from hexainst.builders.synthetic.membership import DEFAULT_K, MembershipScorer
from hexainst.builders.synthetic.parsing import Parsed, parse_chat_answer, parse_list_continuation
from hexainst.builders.text import normalize
from hexainst.kernel import atomic, environment
from hexainst.kernel.errors import UserError
from hexainst.kernel.outputs import claim_output_dir, write_marker
from hexainst.kernel.pools import SYNTHETIC_REPORT, pool_file
from hexainst.kernel.records import synthetic_row, validate_rows
from hexainst.kernel.settings import SettingError
from hexainst.kernel.vocab import CATEGORIES

log = logging.getLogger(__name__)

REPORT_NAME = SYNTHETIC_REPORT
#: Request timeout used with the embedded generator (it answers slowly but surely).
EMBEDDED_TIMEOUT_S = 3600.0
POOL_SUFFIX = ".synthetic.jsonl"


def default_cache_dir() -> Path:
    """The request cache when none is given: ``$HEXAINST_CACHE/synthetic`` (content-addressed, safe to share)."""
    return environment.cache_dir() / "synthetic"


@dataclass(frozen=True)
class Request:
    """One request of one candidate of one slot: its cache key, what is sent, and the sampling parameters."""

    slot: prompts.Slot
    candidate: int
    attempt: int
    key: str
    payload: Any
    params: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.slot.category} slot {self.slot.index} candidate {self.candidate} attempt {self.attempt}"


class Planner:
    """Renders the requests of a build (what :mod:`generations` and the tests render too)."""

    def __init__(self, endpoint: Endpoint, config: SyntheticConfig, pool: ExamplePool) -> None:
        self.endpoint, self.config, self.pool = endpoint, config, pool
        self.model_settings = prompts.model_table()["models"].get(endpoint.model or "", {})

    def payload(self, s: prompts.Slot) -> Any:
        if self.endpoint.route == "chat":
            return prompts.chat_messages(s, prompts.chat_examples(s, self.config.seed))
        return prompts.completion_prompt(s, self.pool.draw(s.category, s.index, self.config.seed))

    def request(self, s: prompts.Slot, candidate: int, attempt: int, payload: Any = None) -> Request:
        spec = prompts.metaprompts()["categories"][s.category]
        params: dict[str, Any] = {
            "max_tokens": self.model_settings.get("max_tokens") or spec["max_tokens"],
            "seed": prompts.stable_int("request", self.config.seed, s.category, s.index, candidate, attempt),
        }
        if self.model_settings.get("sampling_params", True):
            params.update(temperature=spec["temperature"] if self.config.temperature is None else self.config.temperature,
                          top_p=spec["top_p"] if self.config.top_p is None else self.config.top_p)
        if self.endpoint.route != "chat":
            params["stop"] = ["\n"]
        payload = self.payload(s) if payload is None else payload
        key = request_key(self.endpoint.model or "", self.endpoint.route, payload, params,
                          prompts.prompt_version(s.category))
        return Request(s, candidate, attempt, key, payload, params)


@dataclass
class Candidate:
    request: Request
    parsed: Parsed | None


@dataclass(frozen=True)
class Kept:
    slot: prompts.Slot
    key: str
    text: str
    quality: dict[str, Any]
    membership: float | None


class Generation:
    """Asks for every candidate of a slot; parses answers; retries unusable ones."""

    def __init__(self, client: Client, planner: Planner, config: SyntheticConfig) -> None:
        self.client, self.planner, self.config = client, planner, config
        self.schema = prompts.metaprompts()["answer_schema"]

    def parse(self, entry: dict[str, Any], s: prompts.Slot | None = None) -> Parsed:
        if entry.get("finish_reason") == "malformed_response":
            return Parsed(None, "malformed_response", "response body was not valid JSON")
        if self.client.endpoint.route == "chat":
            return parse_chat_answer(entry.get("content"), entry.get("finish_reason"), self.schema)
        return parse_list_continuation(entry.get("content"), entry.get("finish_reason"),
                                       prompts.opener(s) if s is not None else "")

    async def candidate(self, s: prompts.Slot, c: int, payload: Any) -> Candidate:
        req = None
        for attempt in range(self.config.max_attempts):
            req = self.planner.request(s, c, attempt, payload)
            entry = await self.client.answer(req.key, req.payload, req.params, req.where,
                                            prompts.prompt_version(s.category))
            if entry is None:
                return Candidate(req, None)
            parsed = self.parse(entry, s)
            if parsed.instruction is not None:
                return Candidate(req, parsed)
            self.client.tally.rejections[parsed.reason or "invalid"] += 1
        assert req is not None
        return Candidate(req, None)

    async def slot(self, s: prompts.Slot) -> list[Candidate]:
        payload = self.planner.payload(s)
        return list(await asyncio.gather(*(self.candidate(s, c, payload) for c in range(self.config.candidates))))


class Selector:
    """Decides each slot, in slot order: gate, filter, score, keep the best."""

    def __init__(self, config: SyntheticConfig, natural: dict[str, dict[str, str]], tally: Any,
                 scorer: Any = None) -> None:
        flat = {f"{c}:{k}": t for c, rows in natural.items() for k, t in rows.items()}
        self.filter = CandidateFilter(prompts.example_instructions(), flat, seed=config.seed)
        self.config, self.tally, self.scorer = config, tally, scorer

    def screen(self, category: str, cand: Candidate) -> tuple[str | None, str]:
        """The candidate's normalised instruction and the first reason it cannot be kept on its own
        (``empty``, the gate's, the text filters'), or None: what a build would rank. Nothing is kept."""
        if cand.parsed is None or cand.parsed.instruction is None:
            return "unparsed", ""
        text = normalize(cand.parsed.instruction)
        if not text:
            return "empty", text
        reason = ranking.gate(category, text)
        if reason is None:
            reason, _ = self.filter.check(category, text)
        return reason, text

    def decide(self, s: prompts.Slot, candidates: list[Candidate]) -> Kept | None:
        ok: list[tuple[float, int, str, ranking.Scored, Candidate]] = []
        for cand in candidates:
            reason, text = self.screen(s.category, cand)
            if reason == "unparsed":  # counted where the answer was parsed
                continue
            if reason:
                self.tally.rejections[reason] += 1
                continue
            scored = ranking.score(s, text)
            ok.append((-scored.score, cand.request.candidate, text, scored, cand))
        ok.sort(key=lambda t: (t[0], t[1]))
        seen: set[str] = set()
        for _neg, _c, text, scored, cand in ok:
            if text in seen:
                continue
            seen.add(text)
            reason, _ = self.filter.check_kept(s.category, text)
            if reason:
                self.tally.rejections[reason] += 1
                continue
            membership = self.scorer.score(text) if self.scorer is not None else None
            threshold = self.config.membership_threshold
            if membership is not None and threshold is not None and membership >= threshold:
                self.tally.rejections["membership"] += 1
                continue
            self.filter.keep(s.category, f"{s.category}:{s.index}", text)
            quality = {
                "score": scored.score,
                "candidates": len(candidates),
                "components": [{"name": k, "value": v} for k, v in scored.components.items()],
            }
            return Kept(s, cand.request.key, text, quality, membership)
        return None


async def generate(gen: Generation, selector: Selector, config: SyntheticConfig,
                   chunk: int) -> tuple[dict[str, list[Kept]], dict[str, Any]]:
    """Rounds of slots until every category keeps its target (or runs out of slots)."""
    targets = {c: config.target(c) for c in CATEGORIES}
    max_slots = {c: int(targets[c] * config.max_slots_factor) + 20 for c in CATEGORIES}
    kept: dict[str, list[Kept]] = {c: [] for c in CATEGORIES}
    next_slot = {c: 0 for c in CATEGORIES}
    decided = {c: 0 for c in CATEGORIES}
    empty = {c: 0 for c in CATEGORIES}
    surplus = {c: 0 for c in CATEGORIES}
    bar = tqdm(total=sum(targets.values()), desc="synthetic kept", unit="instr",
               disable=not config.progress, file=sys.stderr)
    rounds = 0
    while True:
        plan: list[prompts.Slot] = []
        for c in CATEGORIES:
            need = targets[c] - len(kept[c])
            if need <= 0 or next_slot[c] >= max_slots[c]:
                continue
            rate = max(0.2, (len(kept[c]) + 1) / (decided[c] + 2)) if decided[c] else 0.85
            m = min(max_slots[c] - next_slot[c], max(2, math.ceil(need / rate * 1.05)))
            plan += [prompts.slot(c, next_slot[c] + i, config.seed) for i in range(m)]
            next_slot[c] += m
        if not plan:
            break
        # Slots go out interleaved by category in chunks (a stopped run has progress everywhere);
        # they are decided in (category, slot) order whatever order the answers arrived in.
        by_cat: dict[str, list[prompts.Slot]] = {}
        for s in plan:
            by_cat.setdefault(s.category, []).append(s)
        order: list[prompts.Slot] = []
        while any(by_cat.values()):
            for c in CATEGORIES:
                order += by_cat.get(c, [])[:chunk]
                by_cat[c] = by_cat.get(c, [])[chunk:]
        gen.client.bar = tqdm(total=len(order) * config.candidates, desc=f"round {rounds + 1} requests",
                              unit="req", disable=not config.progress, file=sys.stderr, leave=False)
        try:
            # A task group: when one slot fails for good (a broken endpoint), the others are cancelled.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(gen.slot(s)) for s in order]
            answers = {s: t.result() for s, t in zip(order, tasks)}
        except BaseExceptionGroup as eg:
            first = eg.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        finally:
            gen.client.bar.close()
            gen.client.bar = None
        rounds += 1
        for s in plan:  # (category, slot) order: deterministic
            c = s.category
            if len(kept[c]) >= targets[c]:
                surplus[c] += 1
                continue
            decided[c] += 1
            choice = selector.decide(s, answers[s])
            if choice is None:
                empty[c] += 1
                continue
            kept[c].append(choice)
            bar.update(1)
    bar.close()
    stats = {c: {"target": targets[c], "kept": len(kept[c]), "slots": next_slot[c], "decided": decided[c],
                 "slots_without_candidate": empty[c], "surplus": surplus[c]} for c in CATEGORIES}
    return kept, stats


def _pool_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")


def build(out_dir: Path, config: SyntheticConfig) -> dict[str, Any]:
    """Build the synthetic candidate pools into ``out_dir``; see the module docstring. Returns the report."""
    config.check()
    cache_dir = Path(config.cache_dir) if config.cache_dir is not None else default_cache_dir()
    if cache_dir.exists() and not cache_dir.is_dir():
        raise SettingError("cache_dir", f"{cache_dir}: is a file, not a folder (the request cache is a folder)")
    out = claim_output_dir(out_dir, OUTPUT_KIND, inputs=[config.natural_pool_dir, cache_dir], option="out_dir")
    natural = load_natural(config.natural_pool_dir)
    endpoint = resolve_endpoint(config.base_url, config.model, config.generator, offline=config.offline,
                                listed=preflight)
    cache = RequestCache(cache_dir)
    log.debug("synthetic: generator %s (route %s) at %s; request cache %s; seed %d",
              f"embedded:{endpoint.embedded}" if endpoint.embedded else endpoint.model, endpoint.route,
              "127.0.0.1" if endpoint.embedded else endpoint.host, cache.dir, config.seed)
    pool = ExamplePool.from_natural(natural)
    scorer = None
    if config.membership_model is not None:
        scorer = MembershipScorer(config.membership_model,
                                  k=DEFAULT_K if config.membership_k is None else config.membership_k,
                                  cache_dir=cache.dir.parent / f"{cache.dir.name}-membership")
    started = time.monotonic()
    server = None
    timeout = config.timeout
    restore = exit_on_sigterm()
    try:
        starter = None
        if endpoint.embedded is not None and not config.offline:
            server = EmbeddedServer(endpoint.embedded, max_batch=config.embedded_batch, threads=config.embedded_threads,
                                    dtype=config.embedded_dtype)

            def starter() -> str:
                # Started on the first cache miss; on failure or SIGTERM, ``finally`` below stops it by its PID.
                log.info("synthetic: starting the embedded generator %s on 127.0.0.1", endpoint.embedded)
                return server.start().base_url

            # The local server queues requests behind the batch it is generating; a client
            # timeout would abandon work the server still does, and its retry would queue again.
            timeout = max(timeout, EMBEDDED_TIMEOUT_S)
        client = Client(endpoint, cache, offline=config.offline, concurrency=config.concurrency,
                        timeout=timeout, max_retries=config.max_retries, starter=starter)
        planner = Planner(endpoint, config, pool)
        gen = Generation(client, planner, config)
        selector = Selector(config, natural, client.tally, scorer)
        kept, stats = asyncio.run(generate(gen, selector, config,
                                           chunk=max(1, config.concurrency // config.candidates)))
    finally:
        if server is not None:
            server.stop()
        restore()
    report = _write(out, endpoint, config, kept, stats, client, natural, scorer, started)
    return report


def _write(out: Path, endpoint: Endpoint, config: SyntheticConfig, kept: dict[str, list[Kept]],
           stats: dict[str, Any], client: Client, natural: dict[str, dict[str, str]], scorer: Any,
           started: float) -> dict[str, Any]:
    host = "127.0.0.1" if endpoint.embedded else endpoint.host
    generator_model = f"embedded:{endpoint.embedded}" if endpoint.embedded else endpoint.model
    files: dict[str, bytes] = {}
    for c in CATEGORIES:
        rows = [
            synthetic_row(category=c, instruction=k.text, generator_model=generator_model, endpoint_host=host,
                          prompt_id=f"{c}.{endpoint.route}", prompt_version=prompts.prompt_version(c),
                          seed=config.seed, request_hash=k.key, item_index=0, topic=k.slot.topic_label,
                          membership_score=k.membership, quality=k.quality)
            for k in kept[c]
        ]
        name = pool_file(Path(), c, "synthetic").name
        validate_rows(rows, name)
        files[name] = _pool_bytes(rows)
    t = client.tally
    scores = [k.quality["score"] for c in CATEGORIES for k in kept[c]]
    report = {
        "generator": {"model": generator_model, "endpoint_host": host, "route": endpoint.route,
                      "embedded": endpoint.embedded is not None, "metaprompt_version": prompts.metaprompts()["version"]},
        "seed": config.seed,
        "offline": config.offline,
        "candidates_per_slot": config.candidates,
        "per_category": stats,
        "requests": t.requests,
        "cache_hits": t.cache_hits,
        "request_failures": t.request_failures,
        "tokens": {"prompt": t.prompt_tokens, "completion": t.completion_tokens, "reasoning": t.reasoning_tokens,
                   "cached_prompt": t.cached_prompt_tokens, "cached_completion": t.cached_completion_tokens},
        "cost_usd": cost(endpoint.model, t) if not endpoint.embedded else 0.0,
        "rejections": dict(sorted(t.rejections.items())),
        "ranking": {"weights": ranking.WEIGHTS,
                    "mean_kept_score": round(sum(scores) / len(scores), 4) if scores else None},
        "filters": {"near_duplicate": "word-set Jaccard >= 0.7 (MinHash LSH candidates, exact check)",
                    "contamination": "shared word 13-grams with the natural pools > 0",
                    "natural_rows_indexed": sum(len(v) for v in natural.values()),
                    "membership": scorer.describe(config.membership_threshold) if scorer is not None else None},
        "pools": {c: pool_file(out, c, "synthetic").name for c in CATEGORIES},
    }
    files[REPORT_NAME] = (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8")
    files[REQUESTS_NAME] = (json.dumps({"keys": sorted(client.used)}, indent=0) + "\n").encode("utf-8")
    try:
        with atomic.staged_dir(out) as tmp:
            for name, data in files.items():
                atomic.write_bytes(tmp / name, data)
            write_marker(tmp, OUTPUT_KIND)
    except OSError as exc:
        raise UserError(f"cannot write the synthetic pools to {out}: {exc.strerror or exc}") from exc
    cost_usd = report["cost_usd"]
    wall = round(time.monotonic() - started, 1)
    log.info(
        f"synthetic: {sum(s['kept'] for s in stats.values())} kept in {wall} s; {t.requests} requests, "
        f"{t.cache_hits} cache hits, {t.request_failures} failed; tokens in {t.prompt_tokens} out "
        f"{t.completion_tokens} (reasoning {t.reasoning_tokens}); cost {'n/a' if cost_usd is None else f'${cost_usd:.4f}'}"
    )
    short = {c: s["kept"] for c, s in stats.items() if s["kept"] < s["target"]}
    if short:
        log.warning("synthetic: warning: fewer kept than targeted for %s", short)
    return report


__all__ = ["EndpointError", "Request", "Planner", "build", "default_cache_dir"]
