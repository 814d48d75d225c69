"""``hexainst build synthetic``: generate the synthetic candidate pools."""

from __future__ import annotations

import argparse
from pathlib import Path

from hexainst.builders.synthetic import SyntheticConfig, import_generations, run
from hexainst.builders.synthetic.pipeline import default_cache_dir
from hexainst.cli.options import add_progress, add_settings, config_from, help_of
from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import CATEGORIES

#: The membership-score settings, shared with ``hexainst build all``.
MEMBERSHIP = ["membership_model", "membership_k", "membership_threshold"]


def _extra(text: str) -> tuple[str, int]:
    cat, sep, n = text.partition("=")
    if not sep or cat not in CATEGORIES or not n.isdigit():
        raise argparse.ArgumentTypeError(f"expected CATEGORY=N with CATEGORY one of {', '.join(CATEGORIES)}, got {text!r}")
    return cat, int(n)


def register(stages: argparse._SubParsersAction) -> None:
    p = stages.add_parser(
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
    add_settings(p, SyntheticConfig, ["out_dir", "base_url", "model", "generator", "per_category"],
                 flags={"out_dir": "--out"}, required=["out_dir"])
    p.add_argument("--extra", dest="extra", type=_extra, action="append", default=[], metavar="CATEGORY=N",
                   help=help_of(SyntheticConfig, "extra"))
    add_settings(p, SyntheticConfig, ["candidates", "temperature", "top_p", "offline", "natural_pool_dir", "cache_dir"],
                 flags={"natural_pool_dir": "--natural-pools", "cache_dir": "--cache"})
    p.add_argument("--import-generations", type=Path, metavar="FILE",
                   help="fill the request cache from a published generations file first (then nothing is requested twice)")
    add_settings(p, SyntheticConfig, ["seed", "concurrency", "max_attempts", "timeout", "embedded_threads",
                                      "embedded_batch", "embedded_dtype"],
                 flags={"embedded_threads": "--threads"})
    add_progress(p)
    add_membership_settings(p)
    p.set_defaults(handler=_run)


def add_membership_settings(p: argparse.ArgumentParser) -> None:
    """The optional Min-K%++ membership score options (shared with ``hexainst build all``)."""
    g = p.add_argument_group(
        "membership scores (optional)",
        "Min-K%++ (Zhang et al., 2024) under a local reference model: the mean of the lowest k fraction of "
        "standardised token log-probabilities. Higher means more typical of the model's training data. "
        "Stored as provenance.synthetic.membership_score of every kept candidate; scores are cached.",
    )
    add_settings(g, SyntheticConfig, MEMBERSHIP)


def _run(args: argparse.Namespace) -> int:
    extra: dict[str, int] = {}
    for cat, n in args.extra:
        extra[cat] = extra.get(cat, 0) + n
    config = config_from(args, SyntheticConfig, extra=extra).check()
    if args.import_generations is not None:
        if not args.import_generations.is_file():
            raise UserError(f"--import-generations {args.import_generations}: no such file")
        import_generations(args.import_generations, config.cache_dir or default_cache_dir())
    return 1 if run(config).short else 0
