"""``hexainst build``: one module per subcommand as typed (natural, synthetic, release, all, topup)."""

from __future__ import annotations

import argparse

from hexainst.cli.build import all, natural, release, synthetic, topup


def register(commands: argparse._SubParsersAction) -> None:
    build = commands.add_parser(
        "build",
        help="build candidate pools and the release (natural, synthetic, release, all, topup)",
        description="Build HexaInst stage by stage: sources -> candidate pools -> release.",
    )
    stages = build.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for module in (natural, synthetic, release, all, topup):
        module.register(stages)
