"""Throughput of the embedded generator as the synthetic builder sees it, against the model's own ceiling.

* **ours**: the builder's request path (``Client`` + ``Planner`` + ``Generation``, a fresh request
  cache) against the embedded server (``EmbeddedServer``, the default generator), the real
  prompts of a seeded plan: ``--slots`` slots per category, ``--candidates`` candidates each.
  Measured: wall time from the first request to the last answer (the model load is not
  counted), generated tokens/s, and usable instructions per minute (answers that parse and pass
  the gate and the text filters, as the build would consider them).
* **ceiling**: the same model in this process (same GGUF, same torch threads), a bare batched
  ``model.generate`` on the same prompts (left padding, greedy, ``--ceiling-tokens`` new tokens,
  no server, no early stop), best tokens/s of batch 1, 8, 16 and 32 in float32 and in bfloat16
  over the first ``--ceiling-prompts`` rows (batch 1 on the first 4 only: it is the slowest and
  the least likely best). Ours may run in either dtype (``auto``: bfloat16 where the CPU has it
  natively), so the ceiling takes the best of both.

The last line is JSON: ``ratio`` = ours tokens/s / ceiling tokens/s (target >= 0.8), with both
figures, usable instructions per minute and the settings. Run it on an idle machine, under the
shared CPU lock: ``flock /tmp/hexainst-cpu.lock .venv/bin/python benchmarks/embedded_generation.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def run_ours(args, slots, natural, pool):
    from hexainst.builders.synthetic import ranking
    from hexainst.builders.synthetic.cache import RequestCache
    from hexainst.builders.synthetic.client import Client
    from hexainst.builders.synthetic.config import SyntheticConfig
    from hexainst.builders.synthetic.embedded import EmbeddedServer
    from hexainst.builders.synthetic.endpoint import resolve_endpoint
    from hexainst.builders.synthetic.filters import CandidateFilter
    from hexainst.builders.synthetic.pipeline import Generation, Planner
    from hexainst.builders.synthetic import prompts
    from hexainst.builders.text import normalize

    cfg = SyntheticConfig(seed=args.seed, candidates=args.candidates, concurrency=args.concurrency,
                          embedded_threads=args.threads, embedded_batch=args.embedded_batch, embedded_dtype=args.dtype)
    endpoint = resolve_endpoint(generator=args.generator, env={})
    server = EmbeddedServer(endpoint.embedded, max_batch=cfg.embedded_batch, threads=args.threads, dtype=cfg.embedded_dtype)
    t_load = time.monotonic()
    server.start()
    load_s = time.monotonic() - t_load
    endpoint.base_url = server.base_url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            client = Client(endpoint, RequestCache(Path(tmp)), offline=False, concurrency=args.concurrency,
                            timeout=3600, max_retries=0)
            planner = Planner(endpoint, cfg, pool)
            gen = Generation(client, planner, cfg)

            async def main():
                return await asyncio.gather(*(gen.slot(s) for s in slots))

            t0 = time.monotonic()
            results = asyncio.run(main())
            wall = time.monotonic() - t0
        with urllib.request.urlopen(server.base_url + "/stats", timeout=10) as resp:
            engine = json.load(resp)
    finally:
        server.stop()
    flat = {f"{c}:{k}": t for c, rows in natural.items() for k, t in rows.items()}
    filt = CandidateFilter(prompts.example_instructions(), flat, seed=args.seed)
    usable = 0
    for s, cands in zip(slots, results):
        for cand in cands:
            if cand.parsed is None or not cand.parsed.instruction:
                continue
            text = normalize(cand.parsed.instruction)
            if text and ranking.gate(s.category, text) is None and filt.check(s.category, text)[0] is None:
                usable += 1
    t = client.tally
    return {"wall_s": round(wall, 2), "model_load_s": round(load_s, 1), "requests": t.requests,
            "completion_tokens": t.completion_tokens, "prompt_tokens": t.prompt_tokens,
            "tokens_per_s": round(t.completion_tokens / wall, 2), "usable": usable,
            "usable_per_min": round(usable / wall * 60, 2), "rejections": dict(t.rejections),
            "engine": engine, "rows_per_decode_step": round(engine["live_row_steps"] / max(1, engine["decode_steps"]), 1)}


def run_ceiling(args, texts):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hexainst.builders.synthetic.generators import resolve_gguf

    torch.set_num_threads(args.threads)
    gguf = resolve_gguf(args.generator)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.padding_side = "left"
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = {}
    for dtype in args.ceiling_dtypes:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype)).eval()
        for batch in (1, 8, 16, 32):
            use = texts[:4] if batch == 1 else texts
            tokens = 0
            t0 = time.monotonic()
            for i in range(0, len(use), batch):
                enc = tok(use[i:i + batch], return_tensors="pt", padding=True)
                with torch.inference_mode():
                    gen = model.generate(**enc, max_new_tokens=args.ceiling_tokens, do_sample=False, pad_token_id=pad)
                new = gen[:, enc["input_ids"].shape[1]:]
                tokens += int((new != pad).sum())
            wall = time.monotonic() - t0
            out[f"{dtype} batch {batch}"] = {"tokens": tokens, "wall_s": round(wall, 2), "tokens_per_s": round(tokens / wall, 2)}
            print(f"ceiling {dtype} batch {batch}: {out[f'{dtype} batch {batch}']}", file=sys.stderr, flush=True)
        del model
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slots", type=int, default=24,
                   help="slots per category (default 24; a build runs ~180, and the fewer slots, the more the end-of-run tail weighs)")
    p.add_argument("--candidates", type=int, default=None, help="candidates per slot (default: the build's default)")
    p.add_argument("--concurrency", type=int, default=None, help="requests in flight (default: the build's default)")
    p.add_argument("--embedded-batch", type=int, default=None, help="rows decoded together (default: the build's default)")
    p.add_argument("--dtype", default=None, choices=("auto", "float32", "bfloat16"),
                   help="embedded generator dtype (default: the build's default, auto)")
    p.add_argument("--ceiling-dtypes", nargs="+", default=["float32", "bfloat16"],
                   help="dtypes the ceiling is measured in; its best counts (default: float32 bfloat16)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, both sides (default: all cores)")
    p.add_argument("--generator", default="gemma-3-270m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--natural-pools", type=Path, help="natural pools folder (in-context examples, as in a build)")
    p.add_argument("--ceiling-tokens", type=int, default=48, help="new tokens per prompt on the ceiling side (default 48)")
    p.add_argument("--ceiling-prompts", type=int, default=64, help="prompts (rows) the ceiling generates per batch size (default 64)")
    p.add_argument("--skip-ceiling", action="store_true", help="measure only ours (ratio needs --ceiling-tps)")
    p.add_argument("--ceiling-tps", type=float, help="a ceiling tokens/s measured earlier")
    args = p.parse_args(argv)

    from hexainst.builders.synthetic import prompts
    from hexainst.builders.synthetic.config import SyntheticConfig
    from hexainst.builders.synthetic.examples import ExamplePool, load_natural
    from hexainst.kernel.vocab import CATEGORIES

    d = SyntheticConfig()
    args.candidates = args.candidates or d.candidates
    args.concurrency = args.concurrency or d.concurrency
    args.embedded_batch = args.embedded_batch or d.embedded_batch
    args.dtype = args.dtype or d.embedded_dtype
    natural = load_natural(args.natural_pools)
    pool = ExamplePool.from_natural(natural)
    slots = [prompts.slot(c, k, args.seed) for k in range(args.slots) for c in CATEGORIES]
    ours = run_ours(args, slots, natural, pool)
    print(f"ours: {ours}", file=sys.stderr, flush=True)
    if args.skip_ceiling:
        ceiling = None
        best = args.ceiling_tps
    else:
        texts = [prompts.completion_prompt(s, pool.draw(s.category, s.index, args.seed))
                 for s in slots for _ in range(args.candidates)][: args.ceiling_prompts]
        ceiling = run_ceiling(args, texts)
        best = max(v["tokens_per_s"] for v in ceiling.values())
    result = {
        "benchmark": "embedded_generation",
        "generator": args.generator,
        "threads": args.threads,
        "slots": len(slots),
        "candidates": args.candidates,
        "concurrency": args.concurrency,
        "embedded_batch": args.embedded_batch,
        "dtype": ours["engine"]["dtype"],
        "ours": ours,
        "ceiling": ceiling,
        "ceiling_tokens_per_s": best,
        "ours_tokens_per_s": ours["tokens_per_s"],
        "usable_instructions_per_min": ours["usable_per_min"],
        "ratio": round(ours["tokens_per_s"] / best, 3) if best else None,
        "load_avg": os.getloadavg()[0],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
