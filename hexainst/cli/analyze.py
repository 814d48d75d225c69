"""``hexainst analyze``: parse the options, call :func:`hexainst.analysis.run.run`, print the summary.

Options come from :class:`~hexainst.analysis.config.AnalyzeConfig` and the configs it holds
(:class:`~hexainst.analysis.config.AnalysisConfig`, ``CausalConfig``); the store and text paths are
written here. Modules that load numpy, scipy, matplotlib or torch load inside the handler.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hexainst.analysis.config import AnalysisConfig, AnalyzeConfig, CausalConfig
from hexainst.cli.options import add_progress, add_quiet_alias, add_settings, config_from

#: The analysis settings both ``analyze`` and ``baseline`` take, in the order of their help.
ANALYSIS_SETTINGS = ("eps", "tie_rule", "scope", "seed", "sample", "include_self_pairs", "sweep_eps", "n_permutations",
                     "n_sweep_permutations", "n_boot", "length_matched", "length_strata", "venn_ids", "save_sets",
                     "note")
ANALYSIS_FLAGS = {"n_permutations": "--permutations", "n_sweep_permutations": "--sweep-permutations",
                  "n_boot": "--bootstrap", "venn_ids": "--venn-id"}
CAUSAL_FLAGS = {"per_category": "--causal-per-category", "max_predicted": "--causal-max-tokens",
                "n_random": "--causal-draws"}


def add_analysis_options(p: argparse.ArgumentParser) -> None:
    """The options of :data:`ANALYSIS_SETTINGS` (``analyze`` and ``baseline``), in one group."""
    g = p.add_argument_group("ISN sets and statistics")
    add_settings(g, AnalysisConfig, ANALYSIS_SETTINGS, flags=ANALYSIS_FLAGS, repeated=("venn_ids",))
    add_progress(g)
    add_quiet_alias(g)  # the same as hexainst -q


def analysis_config(args: argparse.Namespace) -> AnalysisConfig:
    """The run's analysis settings; a value out of range is one line naming its option (before any work)."""
    return config_from(args, AnalysisConfig)


def _num(value: Any, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


def print_summary(results: dict[str, Any], out: Any) -> None:
    """The headline numbers of an analysis (results.json's content) and where its report is."""
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


def _cmd_analyze(args: argparse.Namespace) -> int:
    from hexainst.analysis.run import run  # deferred: loads numpy and scipy

    config = config_from(args, AnalyzeConfig, analysis=analysis_config(args),
                         causal_check=config_from(args, CausalConfig))
    result = run(config)
    print_summary(result.results, result.out)
    for line in result.warnings:
        print(f"hexainst analyze: warning: {line}", file=sys.stderr)
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
    add_analysis_options(p)
    k = p.add_argument_group("controls (issue 22: what an untrained model and the words alone show)")
    k.add_argument("--untrained", nargs="+", default=[], metavar="STORE",
                   help="stores of the same architecture with random weights, one per seed (record each with "
                        "'hexainst record --model M --random-init SEED'; 3 or more): every headline statistic is "
                        "reported for them and as the model's excess over their mean, with a CI")
    add_settings(k, AnalyzeConfig, ["tokenizer", "lexical"])
    c = p.add_argument_group("causal check (held out: zero a category's ISNs, measure NLL on other instructions)")
    add_settings(c, AnalyzeConfig, ["causal", "causal_model"])
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
