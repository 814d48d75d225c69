"""``hexainst analyze`` and ``hexainst baseline``.

Heavy modules (matplotlib, torch, transformers) load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hexainst.analysis.config import DEFAULT_SWEEP, SCOPES, TIE_RULES, AnalysisConfig, CausalConfig
from hexainst.analysis.recording.config import DTYPES, RecordingConfig
from hexainst.kernel.errors import UserError

_A = AnalysisConfig
_C = CausalConfig
_R = RecordingConfig


def _eps_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from exc
    return values


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ISN sets and statistics")
    g.add_argument("--eps", type=float, default=_A.eps,
                   help=f"top-eps fraction per instruction, in (0, 1) (default {_A.eps:g} = {_A.eps * 100:g}%%)")
    g.add_argument("--tie-rule", default=_A.tie_rule, choices=TIE_RULES,
                   help=f"paper: keep every neuron tied at the threshold (default {_A.tie_rule}); exact-k: exactly k, "
                        "ties broken by mean activation (needs a store recorded with --with-sums)")
    g.add_argument("--scope", default=_A.scope, choices=SCOPES,
                   help=f"one threshold over all neurons (global) or one per layer (default {_A.scope})")
    g.add_argument("--seed", type=int, default=_A.seed,
                   help=f"seed of sampling, permutations, bootstrap (default {_A.seed})")
    g.add_argument("--sample", type=int, default=_A.sample, metavar="N",
                   help="analyse a seeded sample of N instructions per category (the paper: 50); default all")
    g.add_argument("--include-self-pairs", action="store_true",
                   help="include J(I, I) = 1 in the diagonal category means, as the paper did")
    sweep = ",".join(f"{v:g}" for v in DEFAULT_SWEEP)
    g.add_argument("--sweep-eps", type=_eps_list, default=DEFAULT_SWEEP,
                   help=f"eps values of the sweep, comma-separated, each in (0, 1) (default {sweep})")
    g.add_argument("--permutations", type=int, default=_A.n_permutations,
                   help=f"label shuffles of the permutation test (default {_A.n_permutations})")
    g.add_argument("--sweep-permutations", type=int, default=_A.n_sweep_permutations,
                   help=f"label shuffles per sweep cell and for the length-adjusted test (default {_A.n_sweep_permutations})")
    g.add_argument("--bootstrap", type=int, default=_A.n_boot,
                   help=f"bootstrap resamples for the CIs (default {_A.n_boot})")
    g.add_argument("--length-matched", action="store_true",
                   help="also compare categories on instructions matched by token length (quantile strata of T; "
                        "beside the length-adjusted regression, same number of label shuffles)")
    g.add_argument("--length-strata", type=int, default=_A.length_strata, metavar="N",
                   help=f"length strata of --length-matched (default {_A.length_strata})")
    g.add_argument("--venn-id", action="append", default=[], metavar="ID",
                   help="instruction id for Fig. 6 (repeatable; default: the first of each category)")
    g.add_argument("--no-save-sets", action="store_true", help="do not write the ISN set files (isn_sets/)")
    g.add_argument("--note", default=_A.note, help="a line quoted at the top of the report (what this run is)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _config(args: argparse.Namespace) -> AnalysisConfig:
    """The run's config; a value out of range is one line naming its option (before any work)."""
    return AnalysisConfig(
        eps=args.eps, tie_rule=args.tie_rule, scope=args.scope, seed=args.seed, sample=args.sample,
        include_self_pairs=args.include_self_pairs, sweep_eps=tuple(args.sweep_eps),
        n_permutations=args.permutations, n_sweep_permutations=args.sweep_permutations, n_boot=args.bootstrap,
        length_matched=args.length_matched, length_strata=args.length_strata,
        venn_ids=tuple(args.venn_id), save_sets=not args.no_save_sets, note=args.note, progress=not args.quiet,
    )


def _num(value: Any, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


def _summary(results: dict[str, Any], out: Path) -> None:
    for label in ("model", "base", "fine-tuned"):
        if label in results:
            perm = results[label]["jaccard"]["permutation"]
            if perm["difference"] is None:
                print(f"{label}: no across-category test (one category, or one instruction per category); "
                      f"same-category mean Jaccard {_num(perm['diagonal'])}")
                continue
            print(f"{label}: diagonal {perm['diagonal']:.4f} vs off-diagonal {perm['off_diagonal']:.4f}, "
                  f"p = {perm['p_value']:.4g}")
    if "alteration" in results:
        print(f"base vs fine-tuned Jaccard (all): {_num(results['alteration']['table1_overall'])}")
    ctl = results.get("controls") or {}
    for h in ctl.get("headlines", []):
        if "excess" in h["values"]:
            print(f"excess over the untrained model, {h['name']}: {_num(h['values']['excess'], '+.4f')} "
                  f"[{_num(h['ci_low'].get('excess'), '+.4f')}, {_num(h['ci_high'].get('excess'), '+.4f')}]")
    if ctl and not ctl.get("untrained"):
        print("no untrained baseline (--untrained): the report cannot say how much of the effect is learned")
    if ctl and ctl.get("lexical") is None:
        print(f"lexical baseline not computed: {ctl.get('lexical_skipped')}")
    print(f"report: {out / 'report.md'}")


def _read_rows(args: argparse.Namespace, *, what: str) -> list[dict[str, Any]]:
    """Rows from --rows (JSONL) or --release (default: the packaged release)."""
    if getattr(args, "rows", None):
        from hexainst.kernel.jsonfiles import read_jsonl

        rows = read_jsonl(args.rows, what="rows file")
    else:
        from hexainst.kernel.release import read_release_rows

        rows = read_release_rows(args.release)
    for n, row in enumerate(rows, 1):
        missing = [k for k in ("id", "category", "instruction") if k not in row]
        if missing:
            where = args.rows or args.release or "the packaged release"
            raise UserError(f"{where}: row {n} ({row.get('id', 'no id')}) has no {', '.join(missing)} ({what})")
    return rows


def _texts(args: argparse.Namespace) -> dict[str, str]:
    """id -> instruction text, from --rows (JSONL) or the release."""
    return {str(r["id"]): str(r["instruction"]) for r in _read_rows(args, what="the causal check's texts")}


def _text_inputs(args: argparse.Namespace) -> list[str | None]:
    return [getattr(args, "rows", None), getattr(args, "release", None), getattr(args, "sources", None)]


def _causal_responses(args: argparse.Namespace, store_a: Any) -> tuple[dict[str, str] | None, str | None]:
    """(id -> reference response of the store's natural rows, the mirror's folder), or (None, None)
    without --sources and $HEXAINST_SOURCES (then every row is scored on its instruction)."""
    from hexainst.analysis.causal_responses import natural_responses
    from hexainst.kernel.environment import SOURCES, sources_dir

    folder = Path(args.sources) if args.sources else sources_dir()
    if folder is None:
        return None, None
    where = "--sources" if args.sources else f"${SOURCES}"
    if not folder.is_dir():
        raise UserError(f"{where} {folder}: not a folder (the offline mirror of the natural sources)")
    ids = set(store_a.ids)
    rows = [r for r in _read_rows(args, what="the causal check's responses") if str(r["id"]) in ids]
    return natural_responses(rows, folder), str(folder)


def _load_tokenizer(name: str) -> Any:
    """The tokenizer of a model name, path or alias (a GGUF model's cached conversion), without its weights."""
    from hexainst.analysis.recording.loading import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model(name))


def _controls_inputs(args: argparse.Namespace, store_a: Any) -> tuple[Any, dict[str, str] | None, str | None]:
    """(lexical spec or None, id -> provenance cluster or None, why the lexical baseline is missing).

    The release (or --rows) gives the texts and the provenance. Asked for explicitly (--tokenizer,
    --release or --rows), a missing piece is an error; by default a baseline that cannot be built
    is named in the report, never silently dropped.
    """
    from hexainst.analysis.compute import LexicalSpec
    from hexainst.analysis.nulls import provenance_cluster

    explicit = bool(args.tokenizer or args.release or args.rows)
    try:
        rows = _read_rows(args, what="the lexical baseline's texts and the clusters' provenance")
    except UserError as exc:
        if explicit:
            raise
        return None, None, f"no release rows: {exc}"
    by_id = {str(r["id"]): r for r in rows}
    ids = list(store_a.ids)
    missing = [i for i in ids if i not in by_id]
    if missing:
        msg = (f"{len(missing)} of the store's ids are not in {args.rows or args.release or 'the packaged release'} "
               f"(first: {missing[0]})")
        if explicit:
            raise UserError(msg + "; pass the release the store was recorded from")
        return None, None, msg
    clusters = {i: provenance_cluster(by_id[i]) for i in ids}
    if args.no_lexical:
        return None, clusters, "--no-lexical"
    name = args.tokenizer or (store_a.header.get("model") or {}).get("name_or_path")
    try:
        tokenizer = _load_tokenizer(str(name))
    except (UserError, OSError, ValueError) as exc:
        if args.tokenizer:
            raise
        return None, clusters, f"the tokenizer of {name} could not be loaded ({str(exc).splitlines()[0][:160]}); " \
                               "pass --tokenizer"
    texts = {i: str(by_id[i]["instruction"]) for i in ids}
    return LexicalSpec(tokenizer=tokenizer, texts=texts), clusters, None


def _check_stores(store_a: Any, store_b: Any) -> list[str]:
    """Before any work: the two stores of --compare must be comparable (texts included). Returns the
    warnings to print once the report is written: stores whose weights and texts cannot be checked."""
    from hexainst.analysis.data import check_comparable

    if store_b is not None:
        check_comparable(store_a, store_b)
    return [f"hexainst analyze: warning: {store.path}: {store.unchecked}"
            for store in (store_a, store_b) if store is not None and getattr(store, "unchecked", None)]


def _check_recorded_path(name: str, store_path: Path) -> None:
    """A model path an old store recorded relative to where it was made is not a Hub id: say so (one line)."""
    path = Path(name).expanduser()
    if path.is_absolute() or path.exists():
        return
    pathlike = name.startswith((".", "~")) or name.count("/") > 1 or (Path(store_path).parent / name).exists()
    if pathlike:
        raise UserError(f"--causal: the store header names the model {name!r}, a path relative to where the store "
                        f"was recorded, not found from {Path.cwd()}; pass --causal-model with the model's folder")


def _cmd_analyze(args: argparse.Namespace) -> int:
    from hexainst.analysis.data import open_store
    from hexainst.analysis.pipeline import CausalSpec, analyze, claim_analysis_dir

    config = _config(args)
    if args.causal and args.causal_max_tokens is not None and args.causal_max_tokens < 0:
        raise UserError(f"--causal-max-tokens must be >= 0 (0 = all), got {args.causal_max_tokens}")
    causal_config = CausalConfig(per_category=args.causal_per_category,
                                 max_predicted=args.causal_max_tokens or None,
                                 n_random=args.causal_draws) if args.causal else None
    inputs = _text_inputs(args)
    claim_analysis_dir(args.out, inputs=[args.store, args.compare, *args.untrained, *inputs])
    store_a = open_store(args.store)
    store_b = open_store(args.compare) if args.compare else None
    untrained = [open_store(u) for u in args.untrained]
    warnings = _check_stores(store_a, store_b)
    lexical, clusters, lexical_skipped = _controls_inputs(args, store_a)
    causal = None
    if args.causal:
        from hexainst.analysis.compute import check_causal_counts
        from hexainst.analysis.recording.loading import load_model, resolve_model, tokenizer_sha256

        texts = _texts(args)
        responses, responses_source = _causal_responses(args, store_a)
        name = args.causal_model or store_a.header.get("model", {}).get("name_or_path")
        if not name:
            raise UserError("--causal: the store header names no model; pass --causal-model")
        if store_a.is_moe:
            raise UserError(f"--causal supports dense models only; store {store_a.path} is an MoE store")
        if not args.causal_model:
            _check_recorded_path(str(name), store_a.path)
        check_causal_counts(list(store_a.categories), causal_config.per_category, config.sample)
        loaded = load_model(resolve_model(str(name)), dtype="float32", progress=not args.quiet)
        sha = tokenizer_sha256(loaded.tokenizer)
        want = store_a.header.get("tokenizer", {}).get("sha256")
        if sha != want:
            raise UserError(f"--causal: the tokenizer of {name} (sha256 {sha[:12]}) is not the one the store "
                            f"was recorded with ({str(want)[:12]})")
        causal = CausalSpec(model=loaded.model, tokenizer=loaded.tokenizer, texts=texts, model_name=str(name),
                            config=causal_config, responses=responses, responses_source=responses_source)
    results = analyze(store_a, args.out, store_b=store_b, config=config, causal=causal, inputs=inputs,
                      untrained=untrained, lexical=lexical, clusters=clusters, lexical_skipped=lexical_skipped)
    _summary(results, Path(args.out))
    for line in warnings:
        print(line, file=sys.stderr)
    return 0


def _baseline_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = _read_rows(args, what="rows to record")
    if args.per_category is not None:
        if args.per_category < 1:
            raise UserError(f"--per-category must be an integer >= 1, got {args.per_category}")
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
    from hexainst.analysis.baseline import check_model_root, claim_baseline_dir, load_pairs, run_baseline

    config = _config(args)
    recording = RecordingConfig(batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                                device_map=args.device_map, with_sums=args.with_sums)
    pairs = load_pairs(args.pairs_file)
    if args.pair not in pairs:
        from hexainst.analysis.baseline import PairsError

        raise PairsError(f"unknown pair {args.pair!r}; the pairs file lists: {', '.join(sorted(pairs))}")
    check_model_root(args.model_root)
    claim_baseline_dir(args.out, inputs=[args.rows, args.release, args.pairs_file, args.model_root])
    rows = _baseline_rows(args)
    results = run_baseline(
        args.pair, rows, args.out, pairs_file=args.pairs_file, model_root=args.model_root,
        recording=recording, progress=not args.quiet, config=config,
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
    p.add_argument("--out", required=True,
                   help="output folder: new, empty, or an earlier 'hexainst analyze' report (replaced only when the "
                        "new one is complete; never a store or another folder)")
    _add_analysis_options(p)
    k = p.add_argument_group("controls (issue 22: what an untrained model and the words alone show)")
    k.add_argument("--untrained", nargs="+", default=[], metavar="STORE",
                   help="stores of the same architecture with random weights, one per seed (record each with "
                        "'hexainst record --model M --random-init SEED'; 3 or more): every headline statistic is "
                        "reported for them and as the model's excess over their mean, with a CI")
    k.add_argument("--tokenizer", default=None,
                   help="tokenizer for the lexical baseline (default: the store header's model; "
                        "'gemma3-270m-gguf' works)")
    k.add_argument("--no-lexical", action="store_true",
                   help="skip the lexical baseline (token-type sets of the instructions under the model's tokenizer, "
                        "built like ISN sets; computed by default from --release/--rows or the packaged release)")
    c = p.add_argument_group("causal check (held out: zero a category's ISNs, measure NLL on other instructions)")
    c.add_argument("--causal", action="store_true", help="run the causal check on --store's model (dense only)")
    c.add_argument("--causal-model", default=None,
                   help="model to load (default: the store header's name_or_path; 'gemma3-270m-gguf' works)")
    texts = c.add_mutually_exclusive_group()
    texts.add_argument("--release", default=None,
                       help="release folder with the instruction texts and provenance (lexical baseline, cluster "
                            "bootstrap, causal check; default: bundled)")
    texts.add_argument("--rows", default=None,
                       help="JSONL rows with id, instruction and provenance (instead of a release)")
    c.add_argument("--causal-per-category", type=int, default=_C.per_category,
                   help=f"evaluated instructions per category, held out: each category's set is built from its "
                        f"other instructions only (default {_C.per_category})")
    c.add_argument("--causal-max-tokens", type=int, default=_C.max_predicted,
                   help=f"score the first N tokens of a row's response, or the last N of its instruction where it has "
                        f"none (default {_C.max_predicted}; 0 = all)")
    c.add_argument("--causal-draws", type=int, default=_C.n_random,
                   help=f"random neuron sets per category, matched on firing rate in the same layers "
                        f"(default {_C.n_random})")
    c.add_argument("--sources", default=None, metavar="DIR",
                   help="offline mirror of the natural sources, for the natural rows' responses (default: "
                        "$HEXAINST_SOURCES; without either, every row is scored on its instruction and the report "
                        "says so)")
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
    b.add_argument("--out", required=True,
                   help="output folder: stores/ and analysis/ (new, empty, or an earlier baseline run, which resumes)")
    b.add_argument("--batch-size", type=int, default=_R.batch_size,
                   help=f"instructions per forward pass (default {_R.batch_size})")
    b.add_argument("--dtype", default=_R.dtype, choices=DTYPES, help=f"model weights dtype (default {_R.dtype})")
    b.add_argument("--device", default=_R.device, help=f"torch device, e.g. cpu or cuda (default {_R.device})")
    b.add_argument("--device-map", default=_R.device_map, help="'auto' to spread a large model over all devices")
    b.add_argument("--with-sums", action="store_true", help="record activation sums (enables --tie-rule exact-k)")
    _add_analysis_options(b)
    b.set_defaults(handler=_cmd_baseline)
