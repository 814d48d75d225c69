"""``hexainst build topup``: after validation, more candidates for the cells it leaves short."""

from __future__ import annotations

import argparse

from hexainst.builders.natural.config import NaturalConfig
from hexainst.builders.release.config import ReleaseConfig
from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.whole_build import TopupConfig, topup
from hexainst.cli.build.all import stage_configs
from hexainst.cli.options import add_progress, add_settings, config_from


def register(stages: argparse._SubParsersAction) -> None:
    top = stages.add_parser(
        "topup",
        help="after validation: more candidates for the cells it leaves short, appended to their reserves",
        description=(
            "When a validation file rejects more rows of a cell than its reserve can replace, produce that many new "
            "candidates for those cells only (natural: the next pool rows by rank; synthetic: new slots of the same "
            "seeded plan, same filters, every earlier answer reused), append them to the reserve without moving "
            "anything already selected or annotated, and rewrite the release. Send the new candidates to the "
            "annotators with 'hexainst annotate sync --release OUT'. Give the options the build was made with."
        ),
    )
    add_settings(top, TopupConfig, ["validation", "out", "work"], required=["validation", "out"])
    add_settings(top, NaturalConfig, ["sources_dir"], flags={"sources_dir": "--sources"})
    add_settings(top, SyntheticConfig, ["base_url", "model"])
    add_settings(top, TopupConfig, ["per_category"])
    add_settings(top, ReleaseConfig, ["rejection_rates"])
    add_settings(top, TopupConfig, ["seed"])
    add_settings(top, SyntheticConfig, ["embedded_threads"], flags={"embedded_threads": "--threads"})
    add_settings(top, TopupConfig, ["oversample"])
    add_progress(top)
    top.set_defaults(handler=_topup)


def _topup(args: argparse.Namespace) -> int:
    result = topup(config_from(args, TopupConfig, **stage_configs(args)))
    if not result.added:
        print("no cell is short: every cell has at least 100 rows that validation did not reject"
              + (" (pending rows counted at their cell's acceptance)" if args.oversample else "") + "; nothing to do")
        return 0
    for cell, n in result.added.items():
        v = result.cells[cell]
        print(f"{cell}: {v['usable']} usable rows ({v['pending']} of them pending), short by {v['short']}: "
              f"{n} new candidates added to its reserve")
    print(f"{len(result.new_ids)} new candidates (validation pending) in {args.out}; send them to the annotators with:")
    print(f"  hexainst annotate sync --release {args.out}")
    return 0
