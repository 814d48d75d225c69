"""Compare embedded generators on the answers already in a request cache (no model is run).

For each generator, every cached answer to the current meta-prompts (slots 0..N-1, candidates
0..C-1, attempts 0..A-1, seed 0) is parsed, gated and filtered as the builder does, in
(category, slot, candidate, attempt) order with one near-duplicate index per generator. Reported per generator and
category: answers, parsed, passed all filters, the share that passed, mean completion tokens
per answer and per passing instruction.

    python benchmarks/compare_generators.py --cache work/cache/synthetic [--natural-pools work/natural] [--slots 400]

The last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from hexainst.builders.synthetic import prompts, ranking
from hexainst.builders.synthetic.cache import RequestCache
from hexainst.builders.synthetic.client import Client
from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.synthetic.endpoint import resolve_endpoint
from hexainst.builders.synthetic.examples import ExamplePool, load_natural
from hexainst.builders.synthetic.filters import CandidateFilter
from hexainst.builders.synthetic.pipeline import Generation, Planner
from hexainst.builders.text import normalize
from hexainst.kernel.vocab import CATEGORIES


def compare(cache_dir: Path, generators: list[str], slots: int, attempts: int, natural_dir: Path | None = None,
            candidates: int = SyntheticConfig().candidates) -> dict:
    cache = RequestCache(cache_dir)
    natural = load_natural(natural_dir)
    pool = ExamplePool.from_natural(natural)
    out: dict = {}
    for name in generators:
        endpoint = resolve_endpoint(generator=name, env={})
        config = SyntheticConfig(seed=0, candidates=candidates, max_attempts=attempts)
        planner = Planner(endpoint, config, pool)
        gen = Generation(Client(endpoint, cache, offline=True, concurrency=1, timeout=1.0, max_retries=0), planner, config)
        filt = CandidateFilter(prompts.example_instructions(),
                               {f"{c}:{k}": t for c, rows in natural.items() for k, t in rows.items()})
        per_cat = {}
        total = Counter()
        for c in CATEGORIES:
            n = Counter()
            for k in range(slots):
                s = prompts.slot(c, k, 0)
                payload = planner.payload(s)
                for a in [(cand, att) for cand in range(candidates) for att in range(attempts)]:
                    key = planner.request(s, a[0], a[1], payload).key
                    entry = cache.get(key)
                    if entry is None:
                        continue
                    n["answers"] += 1
                    n["completion_tokens"] += int(entry["usage"].get("completion_tokens") or 0)
                    parsed = gen.parse(entry)
                    if parsed.instruction is None:
                        n[f"rejected:{parsed.reason}"] += 1
                        continue
                    n["parsed"] += 1
                    text = normalize(parsed.instruction)
                    reason = ranking.gate(c, text) or filt.check(c, text)[0] or filt.check_kept(c, text)[0]
                    if reason:
                        n[f"rejected:{reason}"] += 1
                        continue
                    n["passed"] += 1
                    filt.keep(c, f"{c}:{k}:{a}", text)
            total.update(n)
            per_cat[c] = dict(n)
        share = total["passed"] / total["answers"] if total["answers"] else None
        out[name] = {
            "answers": total["answers"],
            "parsed": total["parsed"],
            "passed": total["passed"],
            "pass_share": None if share is None else round(share, 3),
            "tokens_per_answer": round(total["completion_tokens"] / total["answers"], 1) if total["answers"] else None,
            "tokens_per_passed": round(total["completion_tokens"] / total["passed"], 1) if total["passed"] else None,
            "rejections": {k.split(":", 1)[1]: v for k, v in sorted(total.items()) if k.startswith("rejected:")},
            "per_category": per_cat,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, required=True, help="request cache folder")
    p.add_argument("--generators", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    p.add_argument("--slots", type=int, default=600, help="slots per category to look up")
    p.add_argument("--attempts", type=int, default=SyntheticConfig().max_attempts)
    p.add_argument("--candidates", type=int, default=SyntheticConfig().candidates)
    p.add_argument("--natural-pools", type=Path, help="natural pools of the build (its prompts show them)")
    args = p.parse_args(argv)
    figures = compare(args.cache, args.generators, args.slots, args.attempts, args.natural_pools, args.candidates)
    for name, f in figures.items():
        print(f"{name}: {f['passed']}/{f['answers']} answers passed all filters ({f['pass_share']}); "
              f"{f['tokens_per_passed']} completion tokens per passing instruction", file=sys.stderr)
    print(json.dumps({name: {k: v for k, v in f.items() if k != "per_category"} for name, f in figures.items()},
                     sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
