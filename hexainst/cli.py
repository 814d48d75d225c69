"""The ``hexainst`` command line: a thin layer that names the stages.

Each stage package contributes its commands through a ``register(subparsers)`` function in
its own ``cli`` module, listed in the two tables below. Handlers import their heavy
dependencies (torch, transformers, datasets) lazily so that ``hexainst --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules adding subcommands under ``hexainst build``; each has register(subparsers).
BUILD_STAGE_MODULES: tuple[str, ...] = (
    "builders.natural.cli",
    "builders.synthetic.cli",
    "builders.assembly.cli",
)

#: Modules adding top-level subcommands; each has register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "hexainst.commands",
    "hexainst.publish",
    "annotation.cli",
    "analysis.recording.cli",
    "analysis.cli",
)


def _register_all(subparsers: argparse._SubParsersAction, modules: Sequence[str]) -> None:
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A stage that is not part of this checkout yet; anything else is a real error.
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hexainst",
        description=(
            "HexaInst: build, validate, annotate and load a balanced dataset of 1,200 instructions "
            "(6 categories x 100 natural + 100 synthetic), and run SPARCOM, the analysis of "
            "instruction-specific neurons and experts in causal LMs."
        ),
        epilog="Run 'hexainst COMMAND --help' for the options of one command.",
    )
    from hexainst import __version__

    parser.add_argument("--version", action="version", version=f"hexainst {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    build = commands.add_parser(
        "build",
        help="build candidate pools and the release (natural, synthetic, release, all)",
        description="Build HexaInst stage by stage: sources -> candidate pools -> release.",
    )
    stages = build.add_subparsers(dest="stage", metavar="STAGE", required=True)
    _register_all(stages, BUILD_STAGE_MODULES)
    _register_all(commands, COMMAND_MODULES)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's one place to turn errors into messages
        from hexainst.errors import UserError

        if isinstance(exc, UserError):
            print(f"hexainst {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
