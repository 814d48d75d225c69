"""``hexainst build natural``: build the natural candidate pools."""

from __future__ import annotations

import argparse
import json
import sys

from hexainst.builders.natural import NaturalConfig, run
from hexainst.cli.options import add_progress, add_settings, config_from


def register(stages: argparse._SubParsersAction) -> None:
    parser = stages.add_parser(
        "natural",
        help="extract natural candidate pools from the public sources (Hub or a local mirror)",
        description=(
            "Read the natural sources (FLAN classification and summarization tasks, HumanEval, "
            "TriviaQA, Alpaca, MATH-500) from the Hugging Face Hub, or from a local mirror folder "
            "(--sources DIR or $HEXAINST_SOURCES), extract instructions with the registry's "
            "patterns, drop duplicates, and write <category>.natural.jsonl for the six categories, "
            "natural-report.json (per source: rows read, kept, dropped per reason; per cell: "
            "candidates vs target) and natural.lock.json (the revisions used)."
        ),
    )
    add_settings(parser, NaturalConfig, ["out_dir", "sources_dir", "lock_file", "seed"],
                 flags={"out_dir": "--out", "sources_dir": "--sources", "lock_file": "--lock"}, required=["out_dir"])
    add_progress(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    result = run(config_from(args, NaturalConfig))
    report, missing = result.report, result.missing_sources
    summary = {c: cell["candidates"] for c, cell in report["cells"].items()}
    print(json.dumps({"out": str(args.out_dir), "candidates": summary, "short_cells": report["short_cells"]}))
    if missing:
        short = ", ".join(f"{c} by {n}" for c, n in report["short_cells"].items())
        print(f"hexainst build natural: warning: source(s) {', '.join(missing)} not found; short: {short or 'none'}",
              file=sys.stderr)
    return 0
