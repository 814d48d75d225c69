"""``hexainst build release``: assemble candidate pools (+ validation outcomes) into the balanced release."""

from __future__ import annotations

import argparse
from pathlib import Path

from hexainst.builders.release.assemble import assemble, write_report
from hexainst.builders.release.config import ReleaseConfig
from hexainst.cli.options import add_settings, config_from
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import read_json
from hexainst.kernel.outputs import claim_output_file
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
    release.add_argument("--pools", type=Path, nargs="+", required=True, metavar="DIR",
                         help="folder(s) holding the candidate pools and the stage reports")
    release.add_argument("--validation", type=Path, metavar="FILE", help="validation.json from 'hexainst annotate export'")
    release.add_argument("--out", type=Path, required=True, metavar="DIR",
                         help="release folder to write: a new or empty folder, or an earlier HexaInst release "
                              "(only its card, LICENSE.md, data/, reserve/ and croissant.json are replaced; the "
                              "generations/ it ships are kept)")
    release.add_argument("--report", type=Path, metavar="FILE", default=None,
                         help="also write the assembly report (counts, reserve use, shortfalls) as JSON to FILE "
                              "(default: none; the summary is printed either way)")
    add_settings(release, ReleaseConfig, ["seed", "reserve", "rejection_rates"])
    release.set_defaults(handler=_release)


def _release(args: argparse.Namespace) -> int:
    if args.report is not None:
        _check_report_file(args.report, args.pools, args.out)
    shipped = args.out / GENERATIONS_FILE
    kept = shipped.is_file()
    report = assemble(args.pools, args.out, validation=args.validation, config=config_from(args, ReleaseConfig))
    if args.report is not None:
        write_report(report, args.report)
    print_summary(report, args.out)
    if kept:
        print(f"kept {GENERATIONS_FILE} of the earlier release ({_count_lines(shipped)} answers): "
              "'build release' brings no generations of its own ('build all' ships the ones it used)")
    return 0


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _check_report_file(report: Path, pools: list[Path], out: Path) -> None:
    """Before any work: --report must be a new file or an earlier assembly report, outside the inputs and the release."""

    def is_assembly_report(file: Path) -> bool:
        try:
            earlier = read_json(file, what="assembly report")
        except UserError:
            return False
        return isinstance(earlier, dict) and "cells" in earlier and "seed" in earlier

    claim_output_file(report, is_own=is_assembly_report, own="an earlier assembly report", option="--report",
                      inputs=[("a --pools folder", p) for p in pools] + [("the --out release", out)])


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
