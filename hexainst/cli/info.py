"""``hexainst info``: counts per cell, validation status and the annotators' agreement of a release."""

from __future__ import annotations

import argparse
import json
from collections import Counter

from hexainst.cli.validate import print_cells, release_path
from hexainst.kernel.identity import describe
from hexainst.kernel.release import read_release_rows, read_reserve
from hexainst.kernel.release_validation import shipped_validation
from hexainst.kernel.vocab import CATEGORIES, SOURCES, VALIDATION_STATUSES


def register(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser(
        "info",
        help="counts per category x source, validation status and kappa of a release",
        description="Print the rows per category and source, per validation status (overall and per cell), and, "
                    "from the validation file the release ships (validation.json), the juniors' agreement (Cohen's "
                    "kappa) and who the annotators were (people or models).",
    )
    info.add_argument("path", nargs="?", help="release folder (default: the release inside the hexainst package)")
    info.add_argument("--json", action="store_true", help="print the counts as JSON")
    info.set_defaults(handler=_info)


def _info(args: argparse.Namespace) -> int:
    path = release_path(args.path)
    rows = read_release_rows(path, check_card=False)
    cells = Counter((r["category"], r["source"]) for r in rows)
    statuses = Counter(r["validation"]["status"] for r in rows)
    by_cell = Counter((r["category"], r["source"], r["validation"]["status"]) for r in rows)
    reserve = read_reserve(path)
    block = shipped_validation(path, rows)
    if args.json:
        print(
            json.dumps(
                {
                    "rows": len(rows),
                    "cells": {c: {s: cells[(c, s)] for s in SOURCES} for c in CATEGORIES},
                    "validation": {s: statuses[s] for s in VALIDATION_STATUSES},
                    "validation_by_cell": {f"{c}/{s}": {st: by_cell[(c, s, st)] for st in VALIDATION_STATUSES}
                                           for c in CATEGORIES for s in SOURCES},
                    "validation_file": block,
                    "reserve": len(reserve),
                },
                indent=2,
            )
        )
        return 0
    print(f"{len(rows)} rows, {len(reserve)} in reserve")
    print_cells(cells)
    print("validation: " + ", ".join(f"{s} {statuses[s]}" for s in VALIDATION_STATUSES))
    open_cells = [f"{c}/{s} {by_cell[(c, s, 'pending')]}" for c in CATEGORIES for s in SOURCES if by_cell[(c, s, "pending")]]
    if open_cells and len(open_cells) < len(CATEGORIES) * len(SOURCES):
        print("pending per cell: " + ", ".join(open_cells))
    if block is None:
        print("kappa: no validation file in this release (validation.json), so no agreement to report")
        return 0

    def k(value) -> str:
        return "undefined" if value is None else f"{value:.3f}"

    print(f"validation file: {block['outcomes']} candidates decided ({block['n_rejected']} rejected) "
          f"in {len(block['rounds'])} round{'s' if len(block['rounds']) != 1 else ''}")
    for r in block["rounds"]:
        waiting = r["awaiting_senior"]
        waiting_text = ("not listed (an older validation file)" if waiting is None
                        else (", ".join(waiting) if waiting else "none"))
        print(f"round {r['round']}: {r['n_outcomes']} candidates decided ({r['n_rejected']} rejected, {r['n_rows']} rows "
              f"of this release); juniors' Cohen's kappa on "
              f"{r['n_double_annotated']} double-annotated tasks: decision {k(r['kappa_decision'])}, "
              f"category {k(r['kappa_category_correct'])}, unsound {k(r['kappa_unsound'])}; "
              f"{r['n_disagreements']} disagreements, {r['n_senior_decided']} decided by the senior; "
              f"awaiting the senior: {waiting_text}")  # fmt: skip
        for a in r["annotators"]:
            print(f"  {a['role']} {a['annotator']}: {describe(a['identity'])}")
    return 0
