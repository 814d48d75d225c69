"""``hexainst analyze`` and ``hexainst baseline``.

Options come from :class:`~hexainst.analysis.config.AnalysisConfig`, ``CausalConfig`` and
``RecordingConfig``. Modules that load numpy, scipy, matplotlib or torch load inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hexainst.analysis.causal_responses import natural_responses
from hexainst.analysis.config import AnalysisConfig, CausalConfig
from hexainst.analysis.recording.config import RUN_SETTINGS, RecordingConfig
from hexainst.analysis.recording.loading import load_model, load_tokenizer, resolve_model, tokenizer_sha256
from hexainst.cli.options import add_quiet_alias, add_settings, config_from
from hexainst.kernel.environment import SOURCES, sources_dir
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_jsonl
from hexainst.kernel.release import read_release_rows

#: The analysis settings both ``analyze`` and ``baseline`` take, in the order of their help.
ANALYSIS_SETTINGS = ("eps", "tie_rule", "scope", "seed", "sample", "include_self_pairs", "sweep_eps", "n_permutations",
                     "n_sweep_permutations", "n_boot", "length_matched", "length_strata", "venn_ids", "save_sets",
                     "note", "progress")
ANALYSIS_FLAGS = {"n_permutations": "--permutations", "n_sweep_permutations": "--sweep-permutations",
                  "n_boot": "--bootstrap", "venn_ids": "--venn-id"}
CAUSAL_FLAGS = {"per_category": "--causal-per-category", "max_predicted": "--causal-max-tokens",
                "n_random": "--causal-draws"}


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ISN sets and statistics")
    add_settings(g, AnalysisConfig, ANALYSIS_SETTINGS, flags=ANALYSIS_FLAGS, repeated=("venn_ids",))
    add_quiet_alias(g)  # deprecated: --no-progress


def _config(args: argparse.Namespace) -> AnalysisConfig:
    """The run's config; a value out of range is one line naming its option (before any work)."""
    return config_from(args, AnalysisConfig)


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
        rows = read_jsonl(args.rows, what="rows file")
    else:
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
    return load_tokenizer(resolve_model(name))


def _controls_inputs(args: argparse.Namespace, store_a: Any) -> tuple[Any, dict[str, str] | None, str | None]:
    """(lexical spec or None, id -> provenance cluster or None, why the lexical baseline is missing).

    The release (or --rows) gives the texts and the provenance. Asked for explicitly (--tokenizer,
    --release or --rows), a missing piece is an error; by default a baseline that cannot be built
    is named in the report, never silently dropped.
    """
    # deferred: numpy and scipy ('hexainst --help' stays fast)
    from hexainst.analysis.compute import LexicalSpec  # deferred: loads numpy and scipy
    from hexainst.analysis.nulls import provenance_cluster  # deferred: loads numpy

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
    from hexainst.analysis.data import check_comparable  # deferred: numpy

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
    # deferred: numpy, scipy and matplotlib ('hexainst --help' stays fast)
    from hexainst.analysis.compute import check_causal_counts  # deferred: loads numpy and scipy
    from hexainst.analysis.data import open_store  # deferred: loads numpy and scipy
    from hexainst.analysis.pipeline import CausalSpec, analyze, claim_analysis_dir  # deferred: loads numpy and scipy

    config = _config(args)
    causal_config = config_from(args, CausalConfig) if args.causal else None
    inputs = _text_inputs(args)
    claim_analysis_dir(args.out, inputs=[args.store, args.compare, *args.untrained, *inputs])
    store_a = open_store(args.store)
    store_b = open_store(args.compare) if args.compare else None
    untrained = [open_store(u) for u in args.untrained]
    warnings = _check_stores(store_a, store_b)
    lexical, clusters, lexical_skipped = _controls_inputs(args, store_a)
    causal = None
    if args.causal:
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
        loaded = load_model(resolve_model(str(name)), dtype="float32", progress=args.progress)
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
    # deferred: the recorder and the analysis load numpy, scipy and datasets ('hexainst --help' stays fast)
    from hexainst.analysis.baseline import (  # deferred: loads numpy and scipy
        PairsError,
        check_model_root,
        claim_baseline_dir,
        load_pairs,
        run_baseline,
    )

    config = _config(args)
    recording = config_from(args, RecordingConfig, out=None)  # --out is the run's folder, not one store
    pairs = load_pairs(args.pairs_file)
    if args.pair not in pairs:
        raise PairsError(f"unknown pair {args.pair!r}; the pairs file lists: {', '.join(sorted(pairs))}")
    check_model_root(args.model_root)
    claim_baseline_dir(args.out, inputs=[args.rows, args.release, args.pairs_file, args.model_root])
    rows = _baseline_rows(args)
    results = run_baseline(
        args.pair, rows, args.out, pairs_file=args.pairs_file, model_root=args.model_root,
        recording=recording, progress=config.progress, config=config,
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
    add_settings(c, CausalConfig, ["per_category", "max_predicted", "n_random"], flags=CAUSAL_FLAGS)
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
    add_settings(b, RecordingConfig, RUN_SETTINGS)
    _add_analysis_options(b)
    b.set_defaults(handler=_cmd_baseline)
