"""``hexainst analyze`` and ``hexainst baseline``.

Heavy modules (matplotlib, torch, transformers) load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hexainst.kernel.errors import UserError

_DEFAULT_SWEEP = "0.005,0.01,0.02,0.05"


def _eps_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from exc
    if not values or any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"eps values must be in (0, 1]: {text!r}")
    return values


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ISN sets and statistics")
    g.add_argument("--eps", type=float, default=0.01, help="top-eps fraction per instruction (default 0.01 = 1%%)")
    g.add_argument("--tie-rule", default="paper", choices=("paper", "exact-k"),
                   help="paper: keep every neuron tied at the threshold (default); exact-k: exactly k, ties "
                        "broken by mean activation (needs a store recorded with --with-sums)")
    g.add_argument("--scope", default="global", choices=("global", "per-layer"),
                   help="one threshold over all neurons (default) or one per layer")
    g.add_argument("--seed", type=int, default=0, help="seed of sampling, permutations, bootstrap (default 0)")
    g.add_argument("--sample", type=int, default=None, metavar="N",
                   help="analyse a seeded sample of N instructions per category (the paper: 50); default all")
    g.add_argument("--include-self-pairs", action="store_true",
                   help="include J(I, I) = 1 in the diagonal category means, as the paper did")
    g.add_argument("--sweep-eps", type=_eps_list, default=_eps_list(_DEFAULT_SWEEP),
                   help=f"eps values of the sweep, comma-separated (default {_DEFAULT_SWEEP})")
    g.add_argument("--permutations", type=int, default=2000, help="label shuffles of the permutation test")
    g.add_argument("--sweep-permutations", type=int, default=500, help="label shuffles per sweep cell")
    g.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    g.add_argument("--venn-id", action="append", default=[], metavar="ID",
                   help="instruction id for Fig. 6 (repeatable; default: the first of each category)")
    g.add_argument("--no-save-sets", action="store_true", help="do not write the ISN set files (isn_sets/)")
    g.add_argument("--note", default="", help="a line quoted at the top of the report (what this run is)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace):
    from hexainst.analysis.pipeline import AnalysisConfig

    if args.sample is not None and args.sample <= 0:
        raise UserError("--sample must be positive")
    return AnalysisConfig(
        eps=args.eps, tie_rule=args.tie_rule, scope=args.scope, seed=args.seed, sample=args.sample,
        include_self_pairs=args.include_self_pairs, sweep_eps=tuple(args.sweep_eps),
        n_permutations=args.permutations, n_sweep_permutations=args.sweep_permutations, n_boot=args.bootstrap,
        venn_ids=tuple(args.venn_id), save_sets=not args.no_save_sets, note=args.note, progress=not args.quiet,
    )


def _summary(results: dict[str, Any], out: Path) -> None:
    for label in ("model", "base", "fine-tuned"):
        if label in results:
            perm = results[label]["jaccard"]["permutation"]
            print(f"{label}: diagonal {perm['diagonal']:.4f} vs off-diagonal {perm['off_diagonal']:.4f}, "
                  f"p = {perm['p_value']:.4g}")
    if "alteration" in results:
        print(f"base vs fine-tuned Jaccard (all): {results['alteration']['table1_overall']:.4f}")
    print(f"report: {out / 'report.md'}")


def _texts(args: argparse.Namespace) -> dict[str, str]:
    """id -> instruction text, from --rows (JSONL) or the release."""
    if getattr(args, "rows", None):
        from hexainst.kernel.jsonfiles import read_jsonl

        rows = read_jsonl(args.rows, what="rows file")
    else:
        from hexainst.kernel.release import read_release_rows

        rows = read_release_rows(args.release)
    return {str(r["id"]): str(r["instruction"]) for r in rows}


def _cmd_analyze(args: argparse.Namespace) -> int:
    from hexainst.analysis.data import open_store
    from hexainst.analysis.pipeline import CausalSpec, analyze

    config = _config(args)
    store_a = open_store(args.store)
    causal = None
    if args.causal:
        from hexainst.analysis.recording.loading import load_model, resolve_model, tokenizer_sha256

        name = args.causal_model or store_a.header.get("model", {}).get("name_or_path")
        if not name:
            raise UserError("--causal: the store header names no model; pass --causal-model")
        loaded = load_model(resolve_model(str(name)), dtype="float32", progress=not args.quiet)
        sha = tokenizer_sha256(loaded.tokenizer)
        want = store_a.header.get("tokenizer", {}).get("sha256")
        if sha != want:
            raise UserError(f"--causal: the tokenizer of {name} (sha256 {sha[:12]}) is not the one the store "
                            f"was recorded with ({str(want)[:12]})")
        causal = CausalSpec(model=loaded.model, tokenizer=loaded.tokenizer, texts=_texts(args),
                            per_category=args.causal_per_category, model_name=str(name),
                            max_predicted=args.causal_max_tokens or None,
                            exclude_shared=args.causal_exclude_shared)
    results = analyze(store_a, args.out, store_b=args.compare, config=config, causal=causal)
    _summary(results, Path(args.out))
    return 0


def _read_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.rows:
        from hexainst.kernel.jsonfiles import read_jsonl

        rows = read_jsonl(args.rows, what="rows file")
    else:
        from hexainst.kernel.release import read_release_rows

        rows = read_release_rows(args.release)
    if args.per_category is not None:
        kept: dict[str, int] = {}
        out = []
        for row in rows:
            c = str(row["category"])
            if kept.get(c, 0) < args.per_category:
                kept[c] = kept.get(c, 0) + 1
                out.append(row)
        rows = out
    if not rows:
        raise UserError("no rows to record")
    return rows


def _cmd_baseline(args: argparse.Namespace) -> int:
    from hexainst.analysis.baseline import run_baseline

    rows = _read_rows(args)
    results = run_baseline(
        args.pair, rows, args.out, pairs_file=args.pairs_file, model_root=args.model_root,
        record_kwargs=dict(batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                           device_map=args.device_map, with_sums=args.with_sums, progress=not args.quiet),
        config=_config(args),
    )
    _summary(results, Path(args.out) / "analysis")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="SPARCOM metrics, statistics, figures and report from activation store(s)",
        description=(
            "Find instruction-specific neurons (top-eps per instruction) in an activation store, compare "
            "them across categories (Fig. 3/4 with bootstrap CIs, permutation test, chance level, eps sweep) "
            "and, with --compare, between a base and a fine-tuned model (Tables 1, 2, 6, Fig. 5, 6). Writes "
            "figures (PNG+SVG), tables (CSV+Markdown), report.md and results.json into --out."
        ),
    )
    p.add_argument("--store", required=True, help="activation store folder (the base model with --compare)")
    p.add_argument("--compare", default=None, metavar="STORE",
                   help="store of the fine-tuned model (same tokenizer, input policy and instructions)")
    p.add_argument("--out", required=True, help="output folder (replaced when complete)")
    _add_analysis_options(p)
    c = p.add_argument_group("causal check (zero a category's ISNs, measure NLL)")
    c.add_argument("--causal", action="store_true", help="run the causal check on --store's model (dense only)")
    c.add_argument("--causal-model", default=None,
                   help="model to load (default: the store header's name_or_path; 'gemma3-270m-gguf' works)")
    texts = c.add_mutually_exclusive_group()
    texts.add_argument("--release", default=None, help="release folder with the instruction texts (default: bundled)")
    texts.add_argument("--rows", default=None, help="JSONL rows with id and instruction (instead of a release)")
    c.add_argument("--causal-per-category", type=int, default=10, help="instructions per category (default 10)")
    c.add_argument("--causal-max-tokens", type=int, default=32,
                   help="score the last N next-token predictions of each instruction (default 32; 0 = all)")
    c.add_argument("--causal-exclude-shared", action="store_true",
                   help="leave out of every category's set the neurons in all six categories' sets")
    p.set_defaults(handler=_cmd_analyze)

    b = subparsers.add_parser(
        "baseline",
        help="record and analyse one of the paper's base/fine-tuned model pairs",
        description=(
            "Record a base and a fine-tuned model (a pair from the pairs file: the paper's Llama-2-7b/13b, "
            "Mistral-7B and Qwen1.5-MoE-A2.7B with their chat versions) on the release, then analyse them "
            "together. Models load from --model-root when a folder is there, else from the Hub."
        ),
    )
    b.add_argument("pair", help="pair name, e.g. llama2-7b, llama2-13b, mistral-7b, qwen1.5-moe-a2.7b")
    b.add_argument("--pairs-file", default=None, help="pairs JSON (default: the bundled analysis/pairs/pairs.json)")
    b.add_argument("--model-root", default=None,
                   help="folder holding the models as <hub id> or <last part of the hub id>")
    src = b.add_mutually_exclusive_group()
    src.add_argument("--release", default=None, help="release folder (default: the bundled release)")
    src.add_argument("--rows", default=None, help="JSONL rows with id, category, source, instruction")
    b.add_argument("--per-category", type=int, default=None, metavar="N", help="only the first N rows per category")
    b.add_argument("--out", required=True, help="output folder: stores/ and analysis/")
    b.add_argument("--batch-size", type=int, default=8)
    b.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    b.add_argument("--device", default="cpu")
    b.add_argument("--device-map", default=None, help="'auto' to spread a large model over all devices")
    b.add_argument("--with-sums", action="store_true", help="record activation sums (enables --tie-rule exact-k)")
    _add_analysis_options(b)
    b.set_defaults(handler=_cmd_baseline)
