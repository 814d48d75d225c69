"""``hexainst build synthetic``: generate the synthetic candidate pools."""

from __future__ import annotations

import argparse
from pathlib import Path

from hexainst.builders.synthetic.config import EMBEDDED_DTYPES, SyntheticConfig
from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import CATEGORIES

D = SyntheticConfig()


def _extra(text: str) -> tuple[str, int]:
    cat, sep, n = text.partition("=")
    if not sep or cat not in CATEGORIES or not n.isdigit():
        raise argparse.ArgumentTypeError(f"expected CATEGORY=N with CATEGORY one of {', '.join(CATEGORIES)}, got {text!r}")
    return cat, int(n)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synthetic",
        help="generate synthetic candidate pools through an OpenAI-compatible endpoint (or the embedded model)",
        description=(
            "Generate synthetic instructions per category: each slot of a seeded plan (category, task type, topic) "
            "asks for several candidates (Self-Instruct-style prompts with in-context examples drawn from the "
            "natural pools for base models, constrained chat meta-prompts otherwise), caches every request, rejects "
            "candidates that are no instruction or not of their category, filters (format, length, blacklist, "
            "near-duplicates, 13-gram contamination), keeps the best-scoring candidate of each slot and writes "
            "<category>.synthetic.jsonl, synthetic-report.json and synthetic-requests.json. The endpoint comes from "
            "--base-url/--model or HEXAINST_BASE_URL/HEXAINST_MODEL; the key from OPENAI_API_KEY or DEEPSEEK_API_KEY. "
            "With DEEPSEEK_API_KEY alone it calls DeepSeek's deepseek-reasoner; with nothing configured it starts the "
            "embedded local model on 127.0.0.1. The output folder is replaced only when the new pools are complete."
        ),
    )
    p.add_argument("--out", type=Path, required=True,
                   help="output folder: new, empty, or an earlier 'build synthetic' output (replaced when complete)")
    p.add_argument("--base-url", help="OpenAI-compatible base URL, e.g. https://api.deepseek.com or http://127.0.0.1:8000/v1")
    p.add_argument("--model", help="model name at that endpoint (default: deepseek-reasoner on DeepSeek, else the first listed)")
    p.add_argument("--generator", help="embedded generator when no endpoint is configured (see builders/synthetic/data/generators.json)")
    p.add_argument("--per-category", type=int, default=D.per_category,
                   help=f"candidates to keep per category (default {D.per_category}: 100 + a reserve of 30)")
    p.add_argument("--extra", type=_extra, action="append", default=[], metavar="CATEGORY=N",
                   help="keep N more for CATEGORY (repeatable): new slots of the same plan, earlier rows unchanged")
    p.add_argument("--candidates", type=int, default=D.candidates,
                   help=f"candidates generated per slot; the best-scoring one that passes the filters is kept (default {D.candidates})")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: per category, from the meta-prompt table)")
    p.add_argument("--top-p", type=float, help="nucleus sampling mass (default: per category)")
    p.add_argument("--offline", action="store_true", help="rebuild from the request cache alone; a missing entry is an error")
    p.add_argument("--natural-pools", type=Path,
                   help="folder with <category>.natural.jsonl: in-context examples, near-duplicate and contamination filters")
    p.add_argument("--cache", type=Path, help="request cache folder (default: $HEXAINST_CACHE/synthetic, ~/.cache/hexainst/synthetic)")
    p.add_argument("--import-generations", type=Path, metavar="FILE",
                   help="fill the request cache from a published generations file first (then nothing is requested twice)")
    p.add_argument("--seed", type=int, default=D.seed, help=f"seed for the slot plan, in-context examples and request seeds (default {D.seed})")
    p.add_argument("--concurrency", type=int, default=D.concurrency, help=f"requests in flight at once (default {D.concurrency})")
    p.add_argument("--max-attempts", type=int, default=D.max_attempts,
                   help=f"requests per candidate when answers are unusable (default {D.max_attempts})")
    p.add_argument("--timeout", type=float, default=D.timeout, help=f"seconds per request before the SDK retries (default {D.timeout:g})")
    p.add_argument("--threads", type=int, help="torch threads of the embedded generator (default: all cores; 1 on a busy machine)")
    p.add_argument("--embedded-batch", type=int, default=D.embedded_batch,
                   help=f"rows the embedded generator decodes together (default {D.embedded_batch}; keep --concurrency above it)")
    p.add_argument("--embedded-dtype", default=D.embedded_dtype, choices=EMBEDDED_DTYPES,
                   help="embedded generator weights (default auto: bfloat16 where the CPU has native bfloat16, else float32)")
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
    from hexainst.builders.synthetic import build, import_generations

    extra: dict[str, int] = {}
    for cat, n in args.extra:
        extra[cat] = extra.get(cat, 0) + n
    config = SyntheticConfig(
        per_category=args.per_category, extra=extra, base_url=args.base_url, model=args.model,
        generator=args.generator, natural_pool_dir=args.natural_pools, cache_dir=args.cache, offline=args.offline,
        seed=args.seed, candidates=args.candidates, temperature=args.temperature, top_p=args.top_p,
        concurrency=args.concurrency, max_attempts=args.max_attempts, timeout=args.timeout,
        embedded_threads=args.threads, embedded_batch=args.embedded_batch, embedded_dtype=args.embedded_dtype,
        membership_model=args.membership_model, membership_k=args.membership_k,
        membership_threshold=args.membership_threshold, progress=not args.no_progress,
    ).check()
    if args.import_generations is not None:
        from hexainst.builders.synthetic.pipeline import default_cache_dir

        if not args.import_generations.is_file():
            raise UserError(f"--import-generations {args.import_generations}: no such file")
        import_generations(args.import_generations, args.cache or default_cache_dir())
    report = build(args.out, config=config)
    short = [c for c, s in report["per_category"].items() if s["kept"] < s["target"]]
    return 1 if short else 0
