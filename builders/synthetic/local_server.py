"""An OpenAI-compatible server on 127.0.0.1 for the embedded local generators.

Run it as a process (the builder does this for you, see :mod:`hexainst.builders.synthetic.embedded`)::

    python -m hexainst.builders.synthetic.local_server --generator smollm2-135m-instruct --port 8123

Routes: ``GET /v1/models`` (200 once the model is loaded: the readiness probe; 503 before),
``POST /v1/chat/completions`` (needs a chat template; a base model answers 400) and
``POST /v1/completions``. Supported request fields: ``messages``/``prompt``, ``max_tokens``
(or ``max_completion_tokens``), ``temperature`` (0 = greedy, > 0 = sampling: sampling is
switched on explicitly, unlike ``transformers`` where temperature alone does not), ``top_p``,
``n``, ``seed`` and ``stop`` (stop strings are removed from the returned text, as the OpenAI
API does). ``finish_reason`` is ``length`` when ``max_tokens`` ran out.

Concurrent requests are batched (continuous batching: rows leave as they finish, waiting
requests join the running batch; see :meth:`Engine._run`), so dozens of clients cost little
more than a few on a CPU. ``GET /v1/stats`` reports the engine's counters (decode steps, rows per step,
prefill tokens computed and reused). Sampled text depends on the batch it ran in; the builder's
request cache is what makes builds reproducible, not this server.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.utils import logging as hf_logging

from hexainst.builders.synthetic.config import EMBEDDED_BATCH, EMBEDDED_DTYPES
from hexainst.builders.synthetic.generators import generator_registry, resolve_gguf
from hexainst.builders.synthetic.kv_rows import Part, assemble
from hexainst.builders.synthetic.wire import JsonHandler, QuietServer, chat_completion, text_completion
from hexainst.kernel.processes import exit_when_orphaned


def json_object_end(text: str) -> int | None:
    """Index just past the first complete top-level JSON object in ``text`` (which must start
    with it, after whitespace), or None. Braces inside strings are ignored."""
    i = len(text) - len(text.lstrip())
    if i >= len(text) or text[i] != "{":
        return None
    depth, in_str, esc = 0, False, False
    for j in range(i, len(text)):
        ch = text[j]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return None


@dataclass
class Job:
    kind: str  # "chat" or "completions"
    prompt_ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    seed: int
    stop: tuple[str, ...]
    future: Future = field(default_factory=Future)

    def problem(self) -> str | None:
        """Why this request cannot be run (a 400 answer), or None. Checked before it is queued: a
        bad job inside a running batch would fail every request of the batch."""
        if not self.prompt_ids:
            return "bad request: the prompt is empty"
        if self.n < 1:
            return f"bad request: n must be >= 1, got {self.n}"
        if self.max_tokens < 1:
            return f"bad request: max_tokens must be >= 1, got {self.max_tokens}"
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            return f"bad request: temperature must be >= 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}"
        if not all(isinstance(s, str) and s for s in self.stop):
            return f"bad request: stop must be non-empty strings, got {list(self.stop)!r}"
        return None

    def group(self) -> tuple:
        # Requests run in one batch when they sample alike, whatever their prompt: with continuous
        # batching, rows of any category fill the places finished rows leave. A prompt prefix
        # several requests share (a category's header and fixed curated examples) is still
        # computed once: see Engine._prefix.
        return (self.temperature, self.top_p, self.stop)


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX-512 BF16): there bfloat16 decodes
    about 1.7x and prefills about 3x faster than float32 (measured on gemma-3-270m, docs/generators.md)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_dtype(dtype: str) -> str:
    """``auto``: ``bfloat16`` on a CPU with native bfloat16, else ``float32``; any other name as given."""
    if dtype == "auto":
        return "bfloat16" if native_bf16() else "float32"
    if dtype not in EMBEDDED_DTYPES:
        raise ValueError(f"dtype must be auto, float32 or bfloat16, got {dtype!r}")
    return dtype


@dataclass
class _Decoding:
    """The state of one continuous-batching decode (:meth:`Engine._run`): its stop rules and sampler, and
    per row its job (``None``: finished, left until the next compaction), tokens and next input; the
    cache, mask and positions of every row; the finished rows of jobs not yet complete."""

    first: Job
    key: Any
    stops: list[str]
    newline_only: bool
    stop_ids: set[int]
    gen: Any
    done: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    rows: list[tuple[Job, int] | None] = field(default_factory=list)
    tokens: list[list[int]] = field(default_factory=list)
    feed: list[int] = field(default_factory=list)
    cache: Any = None
    mask: Any = None
    pos: Any = None

    def live(self) -> list[int]:
        """Indexes of the rows still decoding."""
        return [j for j, r in enumerate(self.rows) if r is not None]


class Engine:
    """A ``transformers`` causal LM with a batching worker thread (continuous batching, see :meth:`_run`)."""

    def __init__(self, model: Any, tokenizer: Any, max_batch: int, stop_after_json: bool = True,
                 join_min: int | None = None) -> None:
        self.torch = torch
        self.model = model.eval()
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self.tok = tokenizer
        self.tok.padding_side = "left"
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tok.eos_token_id}
        self.has_chat = bool(getattr(self.tok, "chat_template", None))
        self.max_batch = max_batch
        #: Waiting rows join a running batch once this many places are free (a join is a prefill and a copy).
        self.join_min = join_min or max(1, max_batch // 4)
        self.stop_after_json = stop_after_json
        #: Sliding-window attention sees only the last ``window - 1`` positions: padding inside a row
        #: must not push its own opening out of it (see :meth:`_prefill`).
        config = self.model.config
        self.window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
        self.prefixes: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.max_prefixes = 32
        self.recent: deque[tuple[int, ...]] = deque(maxlen=64)
        self._newline_ids: set[int] | None = None
        self.min_prefix = 16
        self.stats: Counter[str] = Counter()
        self.times: Counter[str] = Counter()  # milliseconds, summed unrounded (see :meth:`_timed`)
        self.queue: queue.Queue[Job] = queue.Queue()
        threading.Thread(target=self._worker, daemon=True).start()

    @classmethod
    def load(cls, gguf: Path, threads: int, max_batch: int, dtype: str = "auto", **options: Any) -> Engine:
        """The engine of a GGUF checkpoint (dequantised, in ``dtype``; see :func:`resolve_dtype`)."""
        hf_logging.disable_progress_bar()
        torch.set_num_threads(threads)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     dtype=getattr(torch, resolve_dtype(dtype)))
        return cls(model, tok, max_batch, **options)

    @contextmanager
    def _timed(self, name: str):
        """Add the block's wall time to ``name`` (milliseconds, reported by ``GET /v1/stats``)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] += (time.perf_counter() - t0) * 1000

    def counters(self) -> dict[str, Any]:
        """The engine's counters and timings, as ``GET /v1/stats`` reports them."""
        return {"dtype": self.dtype, "max_batch": self.max_batch, **self.stats,
                **{k: round(v) for k, v in self.times.items()}}

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        enc = self.tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
        return list(enc["input_ids"])

    def encode_text(self, prompt: str) -> list[int]:
        return list(self.tok(prompt)["input_ids"])

    def submit(self, job: Job) -> Future:
        self.queue.put(job)
        return job.future

    def _worker(self) -> None:
        pending: list[Job] = []
        while True:
            if not pending:
                pending.append(self.queue.get())
            time.sleep(0.02)  # let concurrent requests arrive
            self._drain(pending)
            batch = self._take(pending, pending[0].group(), self.max_batch)
            everyone = list(batch)  # and every job that joins the run
            try:
                self._run(batch, pending, everyone)
            except Exception as exc:  # noqa: BLE001 - reported to each waiting request
                for job in everyone:
                    if not job.future.done():
                        job.future.set_exception(exc)

    def _drain(self, pending: list[Job]) -> None:
        while True:
            try:
                pending.append(self.queue.get_nowait())
            except queue.Empty:
                return

    @staticmethod
    def _take(pending: list[Job], key: tuple, room: int, at_least_one: bool = True) -> list[Job]:
        """Remove from ``pending`` and return the jobs of group ``key`` that fit in ``room`` rows
        (at least one job, even a larger one, when ``at_least_one``: a new run must start)."""
        batch, rest, rows = [], [], 0
        for job in pending:
            if job.group() == key and (rows + job.n <= room or (at_least_one and not batch)):
                batch.append(job)
                rows += job.n
            else:
                rest.append(job)
        pending[:] = rest
        return batch

    def _prefix_for(self, ids: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        """The cached opening to reuse for a prompt and its KV cache (``()``, None if none), learning
        new ones as prompts arrive.

        Requests of one category share their header and fixed curated examples (75-200 tokens of
        gemma's ~150-300): computed once, copied into each row instead of recomputed. An opening
        is learnt as the longest one a new prompt shares with a recent, different prompt (at least
        ``min_prefix`` tokens); identical prompts (a slot's candidates) share their whole prefill
        anyway. Only a prompt that no cached opening fits teaches a new one (two prompts that happen
        to share their first drawn example would otherwise teach ever longer ones). Kept LRU,
        ``max_prefixes`` of them.
        """
        best: tuple[int, ...] = ()
        for prefix in self.prefixes:
            if len(best) < len(prefix) < len(ids) and ids[:len(prefix)] == prefix:
                best = prefix
        shared = 0 if best else max((len(os.path.commonprefix([ids, r])) for r in self.recent if r != ids), default=0)
        shared = min(shared, len(ids) - 1)
        if shared >= self.min_prefix:
            best = ids[:shared]
            with self._timed("prefill_ms"):
                out = self.model(input_ids=self.torch.tensor([best]), use_cache=True, logits_to_keep=1)
            self.prefixes[best] = out.past_key_values
            self.stats["prefill_tokens"] += len(best)
            while len(self.prefixes) > self.max_prefixes:
                self.prefixes.popitem(last=False)
        if ids not in self.recent:
            self.recent.append(ids)
        if not best:
            return (), None
        self.prefixes.move_to_end(best)
        return best, self.prefixes[best]

    def _stop_ids(self) -> set[int]:
        """Token ids whose text holds a line break (the completions route stops there): found once."""
        if self._newline_ids is None:
            vocab = self.tok.get_vocab()
            self._newline_ids = {i for t, i in vocab.items() if "\n" in self.tok.convert_tokens_to_string([t])}
        return self._newline_ids

    def _generate(self, batch: list[Job]) -> list[list[dict[str, Any]]]:
        """Generate every row of ``batch`` (no other job joins); the rows of each job, in job order."""
        self._run(batch, None)
        return [job.future.result() for job in batch]

    def _prefill(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """Prefill ``jobs``: each distinct prompt computed once, in forward passes of similar
        lengths (:meth:`_passes`), each prompt's cached opening (see
        :meth:`_prefix_for`) copied in rather than recomputed. Returns parts, each with its cache,
        mask, last positions and logits (one row per distinct prompt), and ``rows``: the
        ``(job, i)`` of each of a job's ``n`` rows with the index of its prompt in the part.

        Row layout: ``[padding][opening][padding][rest of the prompt]``, the padding masked out and
        positions taken from the mask, so each row reads as its prompt alone. With sliding-window
        attention the padding inside a row counts against the window, so prompts are split into
        separate forward passes (per opening, else per prompt) where one pass would push a row's
        opening out of it before its answer ends.
        """
        distinct: dict[tuple[int, ...], list[tuple[Job, int]]] = {}
        longest: dict[tuple[int, ...], int] = {}
        for job in jobs:
            ids = tuple(job.prompt_ids)
            distinct.setdefault(ids, []).extend((job, i) for i in range(job.n))
            longest[ids] = max(longest.get(ids, 0), job.max_tokens)
        opening, caches = {}, {}
        for ids in distinct:
            opening[ids], caches[opening[ids]] = self._prefix_for(ids)

        def fits(group: list[tuple[int, ...]]) -> bool:
            if self.window is None:
                return True
            q = max(len(ids) - len(opening[ids]) for ids in group)
            return all(len(opening[ids]) + q + longest[ids] <= self.window - 1 for ids in group)

        passes = []
        for group in self._passes(list(distinct), {ids: len(ids) - len(opening[ids]) for ids in distinct}):
            if fits(group):
                passes.append(group)
                continue
            by_opening: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
            for ids in group:
                by_opening.setdefault(opening[ids], []).append(ids)
            for same in by_opening.values():
                passes += [same] if fits(same) else [[ids] for ids in same]
        parts = []
        for group in passes:
            group = sorted(group, key=lambda ids: (len(opening[ids]), opening[ids]))
            parts.append(self._prefill_pass(group, opening, caches))
            parts[-1]["rows"] = [(job, i, k) for k, ids in enumerate(group) for job, i in distinct[ids]]
        return parts

    #: What one more forward pass costs, in padded prompt tokens (measured on gemma-3-270m, bfloat16,
    #: 2 threads: ~120 ms per pass + ~0.36 ms per token; see docs/generators.md).
    PASS_COST_TOKENS = 256

    def _passes(self, prompts: list[tuple[int, ...]], tail: dict[tuple[int, ...], int]) -> list[list[tuple[int, ...]]]:
        """Split the prompts to prefill into forward passes of similar length: a pass pads every
        prompt to its longest, so a 15-token code prompt beside a 190-token math one would cost as
        much as the math one. The split minimises the padded tokens plus ``PASS_COST_TOKENS`` per pass
        (prompts sorted by length, each pass a run of them: exact by dynamic programming)."""
        order = sorted(prompts, key=lambda ids: (-tail[ids], ids))
        n = len(order)
        best = [0.0] + [float("inf")] * n
        cut = [0] * (n + 1)
        for j in range(1, n + 1):
            for i in range(j):
                cost = best[i] + self.PASS_COST_TOKENS + (j - i) * tail[order[i]]
                if cost < best[j]:
                    best[j], cut[j] = cost, i
        passes, j = [], n
        while j > 0:
            passes.append(order[cut[j]:j])
            j = cut[j]
        return passes[::-1]

    def _prefill_pass(self, group: list[tuple[int, ...]], opening: dict[tuple[int, ...], tuple[int, ...]],
                      caches: dict[tuple[int, ...], Any]) -> dict[str, Any]:
        torch = self.torch

        pieces = []  # one Part per run of prompts with the same opening (``group`` is sorted by it)
        for ids in group:
            o = opening[ids]
            if pieces and pieces[-1][0] == o:
                pieces[-1][1].rows.append(0)
            elif o:
                pieces.append((o, Part(caches[o], torch.ones((1, len(o)), dtype=torch.long), [0])))
            else:
                pieces.append((o, Part(None, torch.ones((1, 0), dtype=torch.long), [0])))
        tails = [ids[len(opening[ids]):] for ids in group]
        q = max(len(t) for t in tails)
        cache, head = assemble([part for _, part in pieces], DynamicCache(config=self.model.config), spare=q)
        self.stats["prefix_tokens_reused"] += int(head.sum())
        input_ids = torch.full((len(group), q), self.pad_id, dtype=torch.long)
        tail_mask = torch.zeros((len(group), q), dtype=torch.long)
        for k, t in enumerate(tails):
            input_ids[k, q - len(t):] = torch.tensor(t, dtype=torch.long)
            tail_mask[k, q - len(t):] = 1
        mask = torch.cat([head, tail_mask], dim=1)
        position = (mask.cumsum(-1) - 1).clamp_min(0)
        with self._timed("prefill_ms"):
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position[:, head.shape[1]:],
                             use_cache=True, logits_to_keep=1, cache=cache)
        self.stats["prefill_tokens"] += int(tail_mask.sum())
        self.stats["prefill_passes"] += 1
        return {"cache": out.past_key_values, "mask": mask, "pos": position[:, -1], "logits": out.logits[:, -1, :]}

    def _run(self, batch: list[Job], pending: list[Job] | None, everyone: list[Job] | None = None) -> None:
        """Decode ``batch`` with continuous batching: a finished row's job is answered as soon as
        all its rows are done, and waiting jobs of the same group (``pending`` and the queue) join
        once ``join_min`` places are free, so the batch stays full.

        A finished row stays in the batch (its output ignored) until the next join or until a
        quarter of the rows are finished: then :func:`assemble` keeps the live rows, adds the
        joining ones and drops the padding no row needs any more, in one copy (:meth:`_regroup`).

        Sampling is top-p within the 64 most likely tokens (a full-vocabulary sort per step cost
        more than the model on a CPU with gemma's 262k vocabulary). A row stops at an end token,
        at its own ``max_tokens``, at a stop string (a line break is recognised by token id, with
        no decoding per step), or once it holds a complete JSON object (chat answers): see :meth:`_advance`.
        """
        d = self._decoding(batch)
        joining = batch
        with self.torch.inference_mode():
            while True:
                live = d.live()
                if joining or (len(live) < len(d.rows) and 4 * (len(d.rows) - len(live)) >= len(d.rows)):
                    live = self._regroup(d, live, joining)
                    joining = []
                if not live:
                    joining = self._joiners(d, pending, self.max_batch, at_least_one=True)
                    if joining:
                        if everyone is not None:
                            everyone.extend(joining)
                        continue
                    return
                self._step(d, live)
                room = self.max_batch - sum(r is not None for r in d.rows)
                if room >= self.join_min:
                    joining = self._joiners(d, pending, room, at_least_one=False)
                    if everyone is not None:
                        everyone.extend(joining)

    def _decoding(self, batch: list[Job]) -> _Decoding:
        """The state of a decode of ``batch``: its stop rules and its sampler, seeded from its jobs."""
        first = batch[0]
        stops = list(first.stop)
        newline_only = bool(stops) and all(s == "\n" for s in stops)
        return _Decoding(first=first, key=first.group(), stops=stops, newline_only=newline_only,
                         stop_ids=self._stop_ids() if newline_only else set(),
                         gen=self.torch.Generator().manual_seed(sum(job.seed for job in batch) % (2**31)))

    def _advance(self, d: _Decoding, row: tuple[Job, int], toks: list[int], t: int) -> bool:
        """Add token ``t`` to a row; True when the row is finished (its job answered once complete)."""
        job, i = row
        finish = None
        if t in self.eos_ids or t == self.pad_id:
            finish = "stop"
        else:
            toks.append(t)
            if t in d.stop_ids:
                finish = "stop"
            elif len(toks) >= job.max_tokens:
                finish = "length"
            elif (d.stops and not d.newline_only) or (self.stop_after_json and job.kind == "chat"):
                text = self.tok.decode(toks, skip_special_tokens=True)
                if any(s in text for s in d.stops) or (
                        self.stop_after_json and job.kind == "chat" and json_object_end(text) is not None):
                    finish = "stop"
        if finish is None:
            return False
        results = d.done.setdefault(id(job), {})
        results[i] = self._finish(job, job.prompt_ids, toks, finish)
        if len(results) == job.n:
            job.future.set_result([results[k] for k in range(job.n)])
            del d.done[id(job)]
        return True

    def _regroup(self, d: _Decoding, live: list[int], joining: list[Job]) -> list[int]:
        """Keep the ``live`` rows, prefill the ``joining`` jobs and add their rows (each with its first
        token sampled), in one cache with no padding column that no row needs; return the live rows."""
        torch = self.torch
        with self._timed("join_ms"):
            parts = [Part(d.cache, d.mask, live)] if d.cache is not None and live else []
            positions = [d.pos[live]] if parts else []
            d.rows, d.tokens, d.feed = [d.rows[j] for j in live], [d.tokens[j] for j in live], [d.feed[j] for j in live]
            for p in self._prefill(joining) if joining else []:
                pick = [k for _, _, k in p["rows"]]
                first_tokens = self._sample(p["logits"][pick], d.first.temperature, d.first.top_p, d.gen).tolist()
                parts.append(Part(p["cache"], p["mask"], pick))
                positions.append(p["pos"][pick])
                for (job, i, _), t in zip(p["rows"], first_tokens):
                    toks: list[int] = []
                    d.rows.append(None if self._advance(d, (job, i), toks, t) else (job, i))
                    d.tokens.append(toks)
                    d.feed.append(t)
            if parts:
                d.cache, d.mask = assemble(parts, parts[0].cache)
                d.pos = torch.cat(positions)
                self.stats["max_width"] = max(self.stats["max_width"], d.mask.shape[1])
                self.stats["compactions" if not joining else "joins"] += 1
            else:
                d.cache = d.mask = d.pos = None
            return d.live()

    def _step(self, d: _Decoding, live: list[int]) -> None:
        """One decode step of every row (finished ones ride along, their output ignored); the live rows
        take their next token."""
        torch = self.torch
        with self._timed("decode_ms"):
            step_ids = torch.tensor(d.feed, dtype=torch.long)[:, None]
            d.mask = torch.cat([d.mask, torch.ones((len(d.rows), 1), dtype=torch.long)], dim=1)
            d.pos = d.pos + 1
            out = self.model(input_ids=step_ids, attention_mask=d.mask, position_ids=d.pos[:, None],
                             use_cache=True, logits_to_keep=1, cache=d.cache)
            d.cache = out.past_key_values
            nxt = self._sample(out.logits[:, -1, :], d.first.temperature, d.first.top_p, d.gen).tolist()
            self.stats["decode_steps"] += 1
        self.stats["row_steps"] += len(d.rows)
        self.stats["live_row_steps"] += len(live)
        self.stats["max_rows"] = max(self.stats["max_rows"], len(d.rows))
        for j in live:
            if self._advance(d, d.rows[j], d.tokens[j], nxt[j]):  # type: ignore[arg-type]
                d.rows[j] = None
            else:
                d.feed[j] = nxt[j]

    def _joiners(self, d: _Decoding, pending: list[Job] | None, room: int, *, at_least_one: bool) -> list[Job]:
        """Waiting jobs of the decode's group (``pending`` and the queue) that join it, up to ``room`` rows;
        none when this decode takes no joiners (``pending`` is None)."""
        if pending is None:
            return []
        self._drain(pending)
        if not any(j.group() == d.key for j in pending):
            return []
        return self._take(pending, d.key, room, at_least_one=at_least_one)

    def _sample(self, logits: Any, temperature: float, top_p: float, gen: Any) -> Any:
        torch = self.torch
        if temperature <= 0:
            return logits.argmax(dim=-1)
        top, idx = torch.topk(logits, k=min(64, logits.shape[-1]), dim=-1)
        probs = torch.softmax(top.float() / temperature, dim=-1)
        if top_p < 1.0:
            before = probs.cumsum(-1) - probs
            probs = probs.masked_fill(before >= top_p, 0.0)
            probs = probs / probs.sum(-1, keepdim=True)
        choice = torch.multinomial(probs, 1, generator=gen)
        return idx.gather(-1, choice).squeeze(-1)

    def _finish(self, job: Job, prompt_ids: list[int], kept: list[int], finish: str) -> dict[str, Any]:
        text = self.tok.decode(kept, skip_special_tokens=True)
        if finish == "length" and self.stop_after_json and job.kind == "chat":
            end = json_object_end(text)
            if end is not None:
                text, finish = text[:end], "stop"
        cut = min((text.find(s) for s in job.stop if s in text), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        return {"text": text, "finish_reason": finish, "prompt_tokens": len(prompt_ids), "completion_tokens": len(kept)}


def make_handler(state: dict[str, Any]):
    class Handler(JsonHandler):
        def do_GET(self) -> None:  # stdlib naming
            if self.path.rstrip("/") == "/v1/stats" and state.get("engine") is not None:
                self.send_json(200, state["engine"].counters())
            elif self.path.rstrip("/") in ("/v1/models", "/health"):
                if state.get("engine") is None:
                    self.send_error_json(503, "model is loading")
                else:
                    self.send_json(200, {"object": "list", "data": [{"id": state["name"], "object": "model"}]})
            else:
                self.send_error_json(404, f"no route {self.path}")

        def do_POST(self) -> None:
            engine: Engine | None = state.get("engine")
            if engine is None:
                self.send_error_json(503, "model is loading")
                return
            route = self.path.rstrip("/")
            try:
                body = self.read_json()
            except json.JSONDecodeError as exc:
                self.send_error_json(400, f"request body is not JSON: {exc}")
                return
            try:
                if route == "/v1/chat/completions":
                    if not engine.has_chat:
                        self.send_error_json(400, f"{state['name']} has no chat template; use /v1/completions")
                        return
                    ids = engine.encode_chat(body["messages"])
                    kind = "chat"
                elif route == "/v1/completions":
                    ids = engine.encode_text(body["prompt"])
                    kind = "completions"
                else:
                    self.send_error_json(404, f"no route {self.path}")
                    return
                stop = body.get("stop") or ()
                job = Job(
                    kind=kind,
                    prompt_ids=ids,
                    max_tokens=int(next((body[k] for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None), 256)),
                    temperature=float(body.get("temperature", 1.0)),
                    top_p=float(body.get("top_p", 1.0)),
                    n=int(body.get("n", 1)),
                    seed=int(body.get("seed") or 0),
                    stop=(stop,) if isinstance(stop, str) else tuple(stop),
                )
                problem = job.problem()
            except (KeyError, TypeError, ValueError) as exc:
                problem = f"bad request: {exc!r}"
            if problem:
                self.send_error_json(400, problem)
                return
            try:
                results = engine.submit(job).result()
            except Exception as exc:  # noqa: BLE001
                self.send_error_json(500, f"generation failed: {exc!r}")
                return
            ptok = results[0]["prompt_tokens"]
            ctok = sum(r["completion_tokens"] for r in results)
            if kind == "chat":
                choices = [{"content": r["text"], "finish_reason": r["finish_reason"]} for r in results]
                self.send_json(200, chat_completion(state["name"], choices, ptok, ctok))
            else:
                self.send_json(200, text_completion(state["name"], results, ptok, ctok))

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="OpenAI-compatible server for an embedded generator (127.0.0.1 only).")
    p.add_argument("--generator", default=generator_registry()["default"], help="name in data/generators.json")
    p.add_argument("--gguf", type=Path, help="a GGUF file to serve instead of a registered generator")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: more oversubscribe a shared CPU)")
    p.add_argument("--max-batch", type=int, default=EMBEDDED_BATCH, help=f"rows decoded together (default {EMBEDDED_BATCH})")
    p.add_argument("--dtype", default="auto", choices=EMBEDDED_DTYPES,
                   help="weights and activations (default auto: bfloat16 where the CPU has native bfloat16, else float32)")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="end this server as soon as that process is no longer its parent (killed with -9, say)")
    args = p.parse_args(argv)
    if args.parent_pid is not None:
        exit_when_orphaned(args.parent_pid)  # before the model loads: a killed build leaves no server behind
    state: dict[str, Any] = {"name": args.generator if args.gguf is None else args.gguf.stem, "engine": None}
    server = QuietServer(("127.0.0.1", args.port), make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gguf = args.gguf or resolve_gguf(args.generator)
    state["engine"] = Engine.load(gguf, threads=args.threads, max_batch=args.max_batch, dtype=args.dtype)
    print(f"ready {state['name']} on 127.0.0.1:{args.port}", flush=True)  # noqa: T201 - the parent process waits for this line
    with suppress(KeyboardInterrupt):
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
