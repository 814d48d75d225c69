"""``hexainst build all``: every stage, natural -> synthetic -> release (what ``make dataset`` runs)."""

from __future__ import annotations

import argparse
from typing import Any

from hexainst.builders.natural.config import NaturalConfig
from hexainst.builders.release.config import ReleaseConfig
from hexainst.builders.synthetic.config import SyntheticConfig
from hexainst.builders.whole_build import BuildConfig, build_all
from hexainst.cli.build.release import print_summary
from hexainst.cli.build.synthetic import add_membership_settings
from hexainst.cli.options import add_progress, add_settings, config_from


def register(stages: argparse._SubParsersAction) -> None:
    every = stages.add_parser(
        "all",
        help="run every stage: natural, synthetic, release (resumable)",
        description=(
            "Build HexaInst end to end: natural candidates (the Hub, or an offline mirror with --sources), synthetic "
            "candidates (the configured OpenAI-compatible endpoint, else the embedded local model), then the "
            "release. Finished stages are skipped on a rerun with the same inputs, and the synthetic stage's request "
            "cache means no request is sent twice. Rebuilding into a release folder reuses what it ships: its "
            "generations (no request sent again), its validation file (validation.json, applied again unless "
            "--validation names another or --no-validation) and its top-up record (topup.json: the candidates "
            "top-up rounds added, kept in the order the release holds them), so a fresh clone's 'make dataset' "
            "rebuilds the committed release byte for byte. Prints what it built and how to load it."
        ),
    )
    add_settings(every, BuildConfig, ["work", "out"], required=["out"])
    add_settings(every, NaturalConfig, ["sources_dir"], flags={"sources_dir": "--sources"})
    add_settings(every, SyntheticConfig, ["base_url", "model"])
    add_settings(every, BuildConfig, ["per_category"])
    add_settings(every, ReleaseConfig, ["rejection_rates"])
    add_settings(every, BuildConfig, ["validation", "shipped_validation", "seed"],
                 flags={"shipped_validation": "--no-validation"})
    add_settings(every, SyntheticConfig, ["embedded_threads"], flags={"embedded_threads": "--threads"})
    add_settings(every, BuildConfig, ["force"])
    add_progress(every)
    add_membership_settings(every)
    every.set_defaults(handler=_all)


def stage_configs(args: argparse.Namespace) -> dict[str, Any]:
    """The three stage configs of ``build all`` / ``build topup`` from their options (``--per-category`` is the
    whole build's own setting: :class:`~hexainst.builders.whole_build.BuildConfig` applies it)."""
    return {"natural": config_from(args, NaturalConfig), "synthetic": config_from(args, SyntheticConfig,
                                                                                  skip=["per_category"]),
            "release": config_from(args, ReleaseConfig)}


def _all(args: argparse.Namespace) -> int:
    result = build_all(config_from(args, BuildConfig, **stage_configs(args)))
    print_summary(result.report, result.out)
    return 0
