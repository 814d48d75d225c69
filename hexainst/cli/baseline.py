"""``hexainst baseline PAIR``: parse the options, call :func:`hexainst.analysis.baseline.run`, print the summary.

Options come from :class:`~hexainst.analysis.config.BaselineConfig` and the configs it holds
(``RecordingConfig``, ``AnalysisConfig``); the pair and the paths are written here. The recorder and
the analysis load numpy, scipy and torch inside the handler.
"""

from __future__ import annotations

import argparse

from hexainst.analysis.config import BaselineConfig
from hexainst.analysis.recording.config import RUN_SETTINGS, RecordingConfig
from hexainst.cli.analyze import add_analysis_options, analysis_config, print_summary
from hexainst.cli.options import add_settings, config_from


def _cmd_baseline(args: argparse.Namespace) -> int:
    from hexainst.analysis.baseline import run  # deferred: loads numpy and scipy

    recording = config_from(args, RecordingConfig, out=None)  # --out is the run's folder, not one store
    config = config_from(args, BaselineConfig, recording=recording, analysis=analysis_config(args))
    result = run(config)
    print_summary(result.results, result.out / "analysis")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
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
    add_settings(b, BaselineConfig, ["per_category"])
    b.add_argument("--out", required=True,
                   help="output folder: stores/ and analysis/ (new, empty, or an earlier baseline run, which resumes)")
    add_settings(b, RecordingConfig, RUN_SETTINGS)
    add_analysis_options(b)
    b.set_defaults(handler=_cmd_baseline)
