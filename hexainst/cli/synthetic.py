"""``hexainst build synthetic``: generate the synthetic candidate pools."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synthetic",
        help="generate synthetic candidate pools through an OpenAI-compatible endpoint (or the embedded model)",
        description=(
            "Generate synthetic instructions per category with constrained meta-prompts, cache every request, "
            "filter (format, length, blacklist, near-duplicates, 13-gram contamination) and write "
            "<category>.synthetic.jsonl plus synthetic-report.json. The endpoint comes from --base-url/--model "
            "or HEXAINST_BASE_URL/HEXAINST_MODEL; the key from OPENAI_API_KEY or DEEPSEEK_API_KEY. With "
            "DEEPSEEK_API_KEY alone it calls DeepSeek's deepseek-reasoner; with nothing configured it starts the "
            "embedded local model on 127.0.0.1."
        ),
    )
    p.add_argument("--out", type=Path, required=True, help="output folder for the pools and the report")
    p.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. https://api.deepseek.com or http://127.0.0.1:8000/v1")
    p.add_argument("--model", help="model name at that endpoint (default: deepseek-reasoner on DeepSeek, else the first listed)")
    p.add_argument("--generator", help="embedded generator when no endpoint is configured (see builders/synthetic/data/generators.json)")
    p.add_argument("--per-category", type=int, default=130, help="candidates to keep per category (default 130: 100 + reserve)")
    p.add_argument("--offline", action="store_true", help="rebuild from the request cache alone; a missing entry is an error")
    p.add_argument("--natural-pools", type=Path, help="folder with <category>.natural.jsonl for near-duplicate and contamination filters")
    p.add_argument("--cache", type=Path, help="request cache folder (default: OUT/cache)")
    p.add_argument("--seed", type=int, default=0, help="seed for the topic plan and request seeds (default 0)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight at once (default 16)")
    p.add_argument("--max-attempts", type=int, default=3, help="requests per slot when answers are invalid (default 3)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request before the SDK retries (default 120)")
    p.add_argument("--threads", type=int, help="torch threads of the embedded generator (default 1: more oversubscribe a busy CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_membership_arguments(p)
    p.set_defaults(handler=_run)


def add_membership_arguments(p: argparse.ArgumentParser) -> None:
    """The optional Min-K%++ membership score options (shared with ``hexainst build all``)."""
    g = p.add_argument_group(
        "membership scores (optional)",
        "Min-K%++ (Zhang et al., 2024) under a local reference model: the mean of the lowest k fraction of "
        "standardised token log-probabilities. Higher means more typical of the model's training data. "
        "Stored as provenance.synthetic.membership_score of every kept candidate; scores are cached.",
    )
    g.add_argument("--membership-model", metavar="MODEL",
                   help="reference model: an embedded generator name (e.g. gemma-3-270m), a local folder or a Hub id")
    g.add_argument("--membership-k", type=float, metavar="K", help="fraction of lowest tokens averaged (default 0.2)")
    g.add_argument("--membership-threshold", type=float, metavar="S",
                   help="reject candidates scoring >= S (default: store scores, reject none)")


def _run(args: argparse.Namespace) -> int:
    from hexainst.builders.synthetic.pipeline import build

    report = build(
        out_dir=args.out, per_category=args.per_category, base_url=args.base_url, model=args.model,
        natural_pool_dir=args.natural_pools, cache_dir=args.cache, offline=args.offline, seed=args.seed,
        concurrency=args.concurrency, progress=not args.no_progress, generator=args.generator,
        max_attempts=args.max_attempts, timeout=args.timeout, embedded_threads=args.threads,
        membership_model=args.membership_model, membership_k=args.membership_k,
        membership_threshold=args.membership_threshold,
    )
    short = [c for c, s in report["per_category"].items() if s["kept"] < s["target"]]
    return 1 if short else 0
