"""``hexainst build release`` and ``hexainst build all`` (what ``make dataset`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hexainst.builders.assembly.config import AssemblyConfig
from hexainst.cli.build_all import BuildConfig
from hexainst.cli.options import int_range
from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import DEFAULT_SEED


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
    release.add_argument("--seed", type=int, default=AssemblyConfig.seed, help=f"selection seed (default {AssemblyConfig.seed})")
    release.add_argument("--reserve", type=int_range(0), default=AssemblyConfig.reserve, metavar="N",
                         help="reserve rows kept per cell (default: what each cell's expected rejection rate asks for)")
    release.add_argument("--rejection-rates", type=Path, metavar="FILE",
                         help="expected rejection rate per cell: a rates file or a pilot's validation.json "
                              "(default: the rates bundled with the toolkit)")
    release.set_defaults(handler=_release)

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
    every.add_argument("--work", type=Path, default=BuildConfig.work, metavar="DIR",
                       help=f"working folder for pools, request cache and stage markers (default {BuildConfig.work})")
    every.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="release folder: a new or empty folder, or an earlier HexaInst release ('make dataset' uses hexainst/)")
    every.add_argument("--sources", type=Path, metavar="DIR", default=None,
                       help="offline mirror of the natural sources (default: $HEXAINST_SOURCES, else the Hub)")
    every.add_argument("--base-url", default=None, metavar="URL",
                       help="OpenAI-compatible endpoint (default: $HEXAINST_BASE_URL, else the embedded local model)")
    every.add_argument("--model", default=None, help="model name at the endpoint (default: $HEXAINST_MODEL)")
    every.add_argument("--per-category", type=int_range(1), default=None, metavar="N",
                       help="synthetic candidates to keep per category, reserve included (default: 100 + the reserve "
                            "its expected rejection rate asks for)")
    every.add_argument("--rejection-rates", type=Path, metavar="FILE",
                       help="expected rejection rate per cell, which sizes each reserve: a rates file or a pilot's "
                            "validation.json (default: the rates bundled with the toolkit, measured by a blind read)")
    every.add_argument("--validation", type=Path, metavar="FILE",
                       help="validation.json to apply at assembly (default: the one the --out release ships, "
                            "validation.json in that folder, if any: rebuilding a validated release applies its "
                            "own verdicts again; the new release ships the file applied)")
    every.add_argument("--no-validation", action="store_true",
                       help="apply no validation file, not even the one the --out release ships (every row pending)")
    every.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed for every stage (default {DEFAULT_SEED})")
    every.add_argument("--threads", type=int_range(1), default=None, metavar="N",
                       help="torch threads of the embedded generator (default: every core; 1 on a busy machine)")
    every.add_argument("--force", action="store_true", help="rerun finished stages too (the request cache still applies)")
    from hexainst.cli.synthetic import add_membership_arguments

    add_membership_arguments(every)

    top = stages.add_parser(
        "topup",
        help="after validation: more candidates for the cells it leaves short, appended to their reserves",
        description=(
            "When a validation file rejects more rows of a cell than its reserve can replace, produce that many new "
            "candidates for those cells only (natural: the next pool rows by rank; synthetic: new slots of the same "
            "seeded plan, same filters, every earlier answer reused), append them to the reserve without moving "
            "anything already selected or annotated, and rewrite the release. Send the new candidates to the "
            "annotators with 'hexainst annotate sync --release OUT'."
        ),
    )
    top.add_argument("--validation", type=Path, required=True, metavar="FILE", help="validation.json from 'hexainst annotate export'")
    top.add_argument("--out", type=Path, required=True, metavar="DIR", help="the release folder built earlier ('make dataset': hexainst)")
    top.add_argument("--work", type=Path, default=BuildConfig.work, metavar="DIR",
                     help=f"the working folder of that build (default {BuildConfig.work})")
    top.add_argument("--sources", type=Path, metavar="DIR", default=None, help="the build's offline mirror, if any")
    top.add_argument("--base-url", default=None, metavar="URL", help="the build's endpoint (default as in 'build all')")
    top.add_argument("--model", default=None, help="model name at the endpoint")
    top.add_argument("--per-category", type=int_range(1), default=None, metavar="N", help="as given to 'build all', if it was")
    top.add_argument("--rejection-rates", type=Path, metavar="FILE", help="as given to 'build all', if it was")
    top.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the build's seed (default {DEFAULT_SEED})")
    top.add_argument("--threads", type=int_range(1), default=None, metavar="N", help="torch threads of the embedded generator")
    top.add_argument("--oversample", action="store_true",
                     help="ask for short / acceptance new candidates per cell, the acceptance (accepted or revised over "
                          "decided) measured in that cell by --validation and the cell's pending rows counted at that "
                          "acceptance, so that one more round over the pending and the new rows is expected to fill it "
                          "(default: exactly as many as the cell is short, pending rows counted as usable)")
    top.set_defaults(handler=_topup)
    every.set_defaults(handler=_all)


def _release(args: argparse.Namespace) -> int:
    from hexainst.builders.assembly.assemble import assemble, write_report

    from hexainst.kernel.release import GENERATIONS_FILE

    if args.report is not None:
        _check_report_file(args.report, args.pools, args.out)
    shipped = args.out / GENERATIONS_FILE
    kept = shipped.is_file()
    report = assemble(args.pools, args.out, validation=args.validation,
                      config=AssemblyConfig(seed=args.seed, reserve=args.reserve, rejection_rates=args.rejection_rates))
    if args.report is not None:
        write_report(report, args.report)
    _print_summary(report, args.out)
    if kept:
        print(f"kept {GENERATIONS_FILE} of the earlier release ({_count_lines(shipped)} answers): "
              "'build release' brings no generations of its own ('build all' ships the ones it used)")
    return 0


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _check_report_file(report: Path, pools: list[Path], out: Path) -> None:
    """Before any work: --report must be a new file or an earlier assembly report, outside the inputs and the release."""
    from hexainst.kernel.jsonfiles import read_json
    from hexainst.kernel.outputs import claim_output_file

    def is_assembly_report(file: Path) -> bool:
        try:
            earlier = read_json(file, what="assembly report")
        except UserError:
            return False
        return isinstance(earlier, dict) and "cells" in earlier and "seed" in earlier

    claim_output_file(report, is_own=is_assembly_report, own="an earlier assembly report", option="--report",
                      inputs=[("a --pools folder", p) for p in pools] + [("the --out release", out)])


def _all(args: argparse.Namespace) -> int:
    from hexainst.builders.natural.config import NaturalConfig
    from hexainst.builders.synthetic.config import SyntheticConfig
    from hexainst.cli.build_all import build_all

    if args.validation is not None and args.no_validation:
        raise UserError("--validation FILE and --no-validation contradict each other; give one")
    synthetic = SyntheticConfig(
        base_url=args.base_url, model=args.model, seed=args.seed, embedded_threads=args.threads,
        membership_model=args.membership_model, membership_k=args.membership_k,
        membership_threshold=args.membership_threshold,
        **({"per_category": args.per_category} if args.per_category is not None else {}),
    )
    report = build_all(
        args.out,
        build=BuildConfig(work=args.work, force=args.force),
        natural=NaturalConfig(sources_dir=args.sources, seed=args.seed),
        synthetic=synthetic,
        assembly=AssemblyConfig(seed=args.seed, rejection_rates=args.rejection_rates),
        validation=args.validation,
        per_category_explicit=args.per_category is not None,
        shipped_validation=not args.no_validation,
    )
    _print_summary(report, args.out)
    return 0


def _topup(args: argparse.Namespace) -> int:
    from hexainst.builders.natural.config import NaturalConfig
    from hexainst.builders.synthetic.config import SyntheticConfig
    from hexainst.cli.build_all import topup

    synthetic = SyntheticConfig(base_url=args.base_url, model=args.model, seed=args.seed, embedded_threads=args.threads,
                                **({"per_category": args.per_category} if args.per_category is not None else {}))
    result = topup(args.out, args.validation, build=BuildConfig(work=args.work),
                   natural=NaturalConfig(sources_dir=args.sources, seed=args.seed), synthetic=synthetic,
                   assembly=AssemblyConfig(seed=args.seed, rejection_rates=args.rejection_rates),
                   per_category_explicit=args.per_category is not None, oversample=args.oversample)
    added = result.get("added") or {}
    if not added:
        print("no cell is short: every cell has at least 100 rows that validation did not reject"
              + (" (pending rows counted at their cell's acceptance)" if args.oversample else "") + "; nothing to do")
        return 0
    for cell, n in added.items():
        v = result["cells"][cell]
        print(f"{cell}: {v['usable']} usable rows ({v['pending']} of them pending), short by {v['short']}: "
              f"{n} new candidates added to its reserve")
    print(f"{len(result['new_ids'])} new candidates (validation pending) in {args.out}; send them to the annotators with:")
    print(f"  hexainst annotate sync --release {args.out}")
    return 0


def _print_summary(report: dict, out: Path) -> None:
    cells = report["cells"]
    total = sum(c["release"] for c in cells.values())
    reserve = sum(c["reserve"] for c in cells.values())
    print(f"built {out}: {total} rows ({report['build_mode']} build), {reserve} in reserve")
    print(f"{'cell':<26}{'pool':>6}{'release':>9}{'reserve':>9}{'rejected':>10}{'revised':>9}")
    for name, c in cells.items():
        print(f"{name:<26}{c['pool']:>6}{c['release']:>9}{c['reserve']:>9}{c['rejected']:>10}{c['revised']:>9}")
    load = "hexainst" if Path(out).resolve() == (Path.cwd() / "hexainst").resolve() else str(out)
    print(f'load it with:  datasets.load_dataset("{load}", split="train")   or   hexainst.load("{out}")')
