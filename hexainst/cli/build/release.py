"""``hexainst build release``: assemble candidate pools (+ validation outcomes) into the balanced release."""

from __future__ import annotations

import argparse
from pathlib import Path

from hexainst.builders.release import ReleaseConfig, run
from hexainst.cli.options import add_settings, config_from
from hexainst.kernel.release import GENERATIONS_FILE


def register(stages: argparse._SubParsersAction) -> None:
    release = stages.add_parser(
        "release",
        help="assemble candidate pools (+ validation outcomes) into the balanced release",
        description=(
            "Select 100 natural + 100 synthetic rows per category from the candidate pools "
            "(<category>.<source>.jsonl) with a seeded, deterministic rank; keep the rest as the ordered reserve; "
            "apply a validation file when given (revised rows take the corrected text, rejected rows are replaced "
            "from the reserve in order); write the release folder with its card and croissant.json."
        ),
    )
    add_settings(release, ReleaseConfig, ["pools", "validation_file", "out_dir", "report_file", "seed", "reserve",
                                          "rejection_rates"],
                 flags={"validation_file": "--validation", "out_dir": "--out", "report_file": "--report"},
                 spaced=["pools"], required=["pools", "out_dir"])
    release.set_defaults(handler=_release)


def _release(args: argparse.Namespace) -> int:
    result = run(config_from(args, ReleaseConfig))
    print_summary(result.report, result.out_dir)
    if result.kept_generations is not None:
        print(f"kept {GENERATIONS_FILE} of the earlier release ({result.kept_generations} answers): "
              "'build release' brings no generations of its own ('build all' ships the ones it used)")
    return 0


def print_summary(report: dict, out: Path) -> None:
    """The release's counts per cell and how to load it (what ``build release`` and ``build all`` print)."""
    cells = report["cells"]
    total = sum(c["release"] for c in cells.values())
    reserve = sum(c["reserve"] for c in cells.values())
    print(f"built {out}: {total} rows ({report['build_mode']} build), {reserve} in reserve")
    print(f"{'cell':<26}{'pool':>6}{'release':>9}{'reserve':>9}{'rejected':>10}{'revised':>9}")
    for name, c in cells.items():
        print(f"{name:<26}{c['pool']:>6}{c['release']:>9}{c['reserve']:>9}{c['rejected']:>10}{c['revised']:>9}")
    load = "hexainst" if Path(out).resolve() == (Path.cwd() / "hexainst").resolve() else str(out)
    print(f'load it with:  datasets.load_dataset("{load}", split="train")   or   hexainst.load("{out}")')
