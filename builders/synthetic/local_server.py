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

Concurrent requests are batched: a worker thread takes up to ``--max-batch`` waiting requests
with the same sampling settings, left-pads them and runs one ``generate`` call, so 16 clients
cost little more than one on a CPU. Sampled text depends on the batch it ran in; the
builder's request cache is what makes builds reproducible, not this server.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import json
import queue
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import transformers

#: transformers 5 renamed generate's ``past_key_values`` to ``cache`` (the old name still works, with a warning).
CACHE_KWARG = "cache" if int(transformers.__version__.split(".")[0]) >= 5 else "past_key_values"

from hexainst.builders.synthetic.generators import generator_registry, resolve_gguf
from hexainst.builders.synthetic.wire import JsonHandler, QuietServer, chat_completion, text_completion


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

    def group(self) -> tuple:
        # Requests run in one batch when they sample alike, whatever their prompt: with continuous
        # batching, rows of any category fill the places finished rows leave. A prompt prefix
        # several requests share (a category's header and fixed curated examples) is still
        # computed once: see Engine._prefix.
        return (self.temperature, self.top_p, self.stop)


class Engine:
    """A ``transformers`` causal LM with a batching worker thread."""

    def __init__(self, gguf: Path, threads: int, max_batch: int, dtype: str = "float32",
                 stop_after_json: bool = True) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.set_num_threads(threads)
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        self.tok.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype)
        ).eval()
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tok.eos_token_id}
        self.has_chat = bool(getattr(self.tok, "chat_template", None))
        self.max_batch = max_batch
        self.stop_after_json = stop_after_json
        self.prefixes: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._newline_ids: set[int] | None = None
        self.min_prefix = 16
        self.queue: queue.Queue[Job] = queue.Queue()
        threading.Thread(target=self._worker, daemon=True).start()

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
    def _take(pending: list[Job], key: tuple, room: int) -> list[Job]:
        """Remove from ``pending`` and return the jobs of group ``key`` that fit in ``room`` rows (at least one job)."""
        batch, rest, rows = [], [], 0
        for job in pending:
            if job.group() == key and (rows + job.n <= room or not batch):
                batch.append(job)
                rows += job.n
            else:
                rest.append(job)
        pending[:] = rest
        return batch

    def _prefix(self, prompts_ids: list[list[int]], create: bool = True) -> tuple[tuple[int, ...], Any]:
        """The longest shared prompt prefix worth caching, and its KV cache (batch 1).

        Requests to one category share the system prompt and the few-shot turns (~300 tokens);
        computing their keys and values once instead of once per row cuts a batch's prefill
        several times over on a CPU. Prefixes are kept (LRU, 16) across batches.
        """
        shortest = min(len(ids) for ids in prompts_ids)
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            n = len(prefix)
            if n < shortest and all(tuple(ids[:n]) == prefix for ids in prompts_ids):
                self.prefixes.move_to_end(prefix)
                return prefix, self.prefixes[prefix]
        if not create:
            return (), None
        n = 0
        first = prompts_ids[0]
        while n < shortest - 1 and all(ids[n] == first[n] for ids in prompts_ids):
            n += 1
        if n < self.min_prefix:
            return (), None
        prefix = tuple(first[:n])
        out = self.model(input_ids=self.torch.tensor([prefix]), use_cache=True)
        self.prefixes[prefix] = out.past_key_values
        while len(self.prefixes) > 16:
            self.prefixes.popitem(last=False)
        return prefix, out.past_key_values

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

    def _start(self, jobs: list[Job]) -> dict[str, Any]:
        """Prefill ``jobs``: one forward per distinct prompt (the longest prefix all share taken from
        the prefix cache), KV rows copied for each of a job's ``n`` rows. Returns the batch state."""
        torch = self.torch
        rows = [(job, i) for job in jobs for i in range(job.n)]
        distinct: dict[tuple[int, ...], int] = {}
        for job, _ in rows:
            distinct.setdefault(tuple(job.prompt_ids), len(distinct))
        prompts_ids = [list(k) for k in distinct]
        # A single distinct prompt (one slot's candidates) reuses a cached prefix but adds none.
        prefix, prefix_cache = self._prefix(prompts_ids, create=len(prompts_ids) > 1)
        p = len(prefix)
        width = p + max(len(ids) - p for ids in prompts_ids)
        d = len(prompts_ids)
        input_ids = torch.full((d, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((d, width), dtype=torch.long)
        for i, ids in enumerate(prompts_ids):
            # [shared prefix][padding][own suffix]: the padding is masked out, positions come
            # from the mask, so each suffix follows its prefix directly.
            if p:
                input_ids[i, :p] = torch.tensor(prefix, dtype=torch.long)
                mask[i, :p] = 1
            input_ids[i, width - (len(ids) - p):] = torch.tensor(ids[p:], dtype=torch.long)
            mask[i, width - (len(ids) - p):] = 1
        position = (mask.cumsum(-1) - 1).clamp_min(0)
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(d)
        else:
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=input_ids[:, p:], attention_mask=mask, position_ids=position[:, p:],
                         use_cache=True, logits_to_keep=1, **{CACHE_KWARG: cache})
        cache = out.past_key_values
        pick = torch.tensor([distinct[tuple(job.prompt_ids)] for job, _ in rows], dtype=torch.long)
        cache.batch_select_indices(pick)
        return {"cache": cache, "mask": mask[pick], "pos": position[pick, -1], "logits": out.logits[pick, -1, :],
                "rows": rows, "tokens": [[] for _ in rows]}

    def _merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """One batch state from two: sequences are left-padded to the longer one (masked out)."""
        torch = self.torch
        la, lb = a["mask"].shape[1], b["mask"].shape[1]
        length = max(la, lb)

        def pad_mask(m: Any, n: int) -> Any:
            return torch.cat([torch.zeros((m.shape[0], n - m.shape[1]), dtype=m.dtype), m], dim=1) if n > m.shape[1] else m

        for layer_a, layer_b in zip(a["cache"].layers, b["cache"].layers):
            for name in ("keys", "values"):
                ta, tb = getattr(layer_a, name), getattr(layer_b, name)
                s = max(ta.shape[2], tb.shape[2])

                def pad(t: Any) -> Any:
                    if t.shape[2] == s:
                        return t
                    z = torch.zeros((t.shape[0], t.shape[1], s - t.shape[2], t.shape[3]), dtype=t.dtype)
                    return torch.cat([z, t], dim=2)

                setattr(layer_a, name, torch.cat([pad(ta), pad(tb)], dim=0))
            if hasattr(layer_a, "cumulative_length"):
                layer_a.cumulative_length = max(layer_a.cumulative_length, layer_b.cumulative_length)
        return {"cache": a["cache"], "mask": torch.cat([pad_mask(a["mask"], length), pad_mask(b["mask"], length)]),
                "pos": torch.cat([a["pos"], b["pos"]]), "logits": torch.cat([a["logits"], b["logits"]]),
                "rows": a["rows"] + b["rows"], "tokens": a["tokens"] + b["tokens"]}

    def _run(self, batch: list[Job], pending: list[Job] | None, everyone: list[Job] | None = None) -> None:
        """Decode ``batch`` with continuous batching: a finished row leaves the batch at once, its job
        is answered as soon as all its rows are done, and waiting jobs of the same group
        (``pending`` and the queue) join while rows run, so the batch stays full.

        Sampling is top-p within the 64 most likely tokens (a full-vocabulary sort per step cost
        more than the model on a CPU with gemma's 262k vocabulary). A row stops at an end token,
        at its own ``max_tokens``, at a stop string (a line break is recognised by token id, with
        no decoding per step), or once it holds a complete JSON object (chat answers).
        """
        torch = self.torch
        first = batch[0]
        key = first.group()
        stops = list(first.stop)
        newline_only = bool(stops) and all(s == "\n" for s in stops)
        stop_ids = self._stop_ids() if newline_only else set()
        gen = torch.Generator().manual_seed(sum(job.seed for job in batch) % (2**31))
        done: dict[int, dict[int, dict[str, Any]]] = {}
        with torch.inference_mode():
            state = self._start(batch)
            steps = 0
            while True:
                nxt = self._sample(state["logits"], first.temperature, first.top_p, gen).tolist()
                keep = []
                for j, (job, i) in enumerate(state["rows"]):
                    t, toks = nxt[j], state["tokens"][j]
                    finish = None
                    if t in self.eos_ids or t == self.pad_id:
                        finish = "stop"
                    else:
                        toks.append(t)
                        if t in stop_ids:
                            finish = "stop"
                        elif len(toks) >= job.max_tokens:
                            finish = "length"
                        elif (stops and not newline_only) or (self.stop_after_json and job.kind == "chat"):
                            text = self.tok.decode(toks, skip_special_tokens=True)
                            if any(s in text for s in stops) or (
                                    self.stop_after_json and job.kind == "chat" and json_object_end(text) is not None):
                                finish = "stop"
                    if finish is None:
                        keep.append(j)
                        continue
                    results = done.setdefault(id(job), {})
                    results[i] = self._finish(job, job.prompt_ids, toks, finish)
                    if len(results) == job.n:
                        job.future.set_result([results[k] for k in range(job.n)])
                        del done[id(job)]
                if keep:
                    if len(keep) < len(state["rows"]):
                        idx = torch.tensor(keep, dtype=torch.long)
                        state["cache"].batch_select_indices(idx)
                        state["mask"], state["pos"] = state["mask"][idx], state["pos"][idx]
                        state["rows"] = [state["rows"][j] for j in keep]
                        state["tokens"] = [state["tokens"][j] for j in keep]
                    step_ids = torch.tensor([[nxt[j]] for j in keep], dtype=torch.long)
                    state["mask"] = torch.cat([state["mask"], torch.ones((len(keep), 1), dtype=torch.long)], dim=1)
                    state["pos"] = state["pos"] + 1
                    out = self.model(input_ids=step_ids, attention_mask=state["mask"], position_ids=state["pos"][:, None],
                                     use_cache=True, logits_to_keep=1, **{CACHE_KWARG: state["cache"]})
                    state["cache"], state["logits"] = out.past_key_values, out.logits[:, -1, :]
                steps += 1
                room = self.max_batch - (len(keep) if keep else 0)
                joined = []
                if pending is not None and room > 0 and (not keep or steps % 4 == 0):
                    self._drain(pending)
                    joined = self._take(pending, key, room) if any(j.group() == key for j in pending) else []
                if joined:
                    if everyone is not None:
                        everyone.extend(joined)
                    new = self._start(joined)
                    state = self._merge(state, new) if keep else new
                elif not keep:
                    return

    def _sample(self, logits: Any, temperature: float, top_p: float, gen: Any) -> Any:
        torch = self.torch
        if temperature <= 0:
            return logits.argmax(dim=-1)
        top, idx = torch.topk(logits.float() / temperature, k=min(64, logits.shape[-1]), dim=-1)
        probs = torch.softmax(top, dim=-1)
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
        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            if self.path.rstrip("/") in ("/v1/models", "/health"):
                if state.get("engine") is None:
                    self.send_error_json(503, "model is loading")
                else:
                    self.send_json(200, {"object": "list", "data": [{"id": state["name"], "object": "model"}]})
            else:
                self.send_error_json(404, f"no route {self.path}")

        def do_POST(self) -> None:  # noqa: N802
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
                    max_tokens=int(body.get("max_completion_tokens") or body.get("max_tokens") or 256),
                    temperature=float(body.get("temperature", 1.0)),
                    top_p=float(body.get("top_p", 1.0)),
                    n=int(body.get("n", 1)),
                    seed=int(body.get("seed") or 0),
                    stop=(stop,) if isinstance(stop, str) else tuple(stop),
                )
            except (KeyError, TypeError, ValueError) as exc:
                self.send_error_json(400, f"bad request: {exc!r}")
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
    p.add_argument("--max-batch", type=int, default=16, help="sequences generated together")
    args = p.parse_args(argv)
    state: dict[str, Any] = {"name": args.generator if args.gguf is None else args.gguf.stem, "engine": None}
    server = QuietServer(("127.0.0.1", args.port), make_handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gguf = args.gguf or resolve_gguf(args.generator)
    state["engine"] = Engine(gguf, threads=args.threads, max_batch=args.max_batch)
    print(f"ready {state['name']} on 127.0.0.1:{args.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
