"""``hexainst build release`` and ``hexainst build all`` (what ``make dataset`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hexainst.builders.assembly.config import AssemblyConfig
from hexainst.cli.build_all import DEFAULT_WORK
from hexainst.kernel import environment
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
                              "(only its card, LICENSE.md, data/, reserve/, generations/ and croissant.json are replaced)")
    release.add_argument("--seed", type=int, default=AssemblyConfig.seed, help=f"selection seed (default {AssemblyConfig.seed})")
    release.add_argument("--reserve", type=_non_negative, default=AssemblyConfig.reserve, metavar="N",
                         help=f"reserve rows kept per cell (default {AssemblyConfig.reserve})")
    release.set_defaults(handler=_release)

    every = stages.add_parser(
        "all",
        help="run every stage: natural, synthetic, release (resumable)",
        description=(
            "Build HexaInst end to end: natural candidates (the Hub, or an offline mirror with --sources), synthetic "
            "candidates (the configured OpenAI-compatible endpoint, else the embedded local model), then the "
            "release. Finished stages are skipped on a rerun with the same inputs, and the synthetic stage's request "
            "cache means no request is sent twice. Prints what it built and how to load it."
        ),
    )
    every.add_argument("--work", type=Path, default=Path(DEFAULT_WORK), metavar="DIR",
                       help=f"working folder for pools, cache and stage markers (default {DEFAULT_WORK})")
    every.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="release folder: a new or empty folder, or an earlier HexaInst release ('make dataset' uses hexainst/)")
    every.add_argument("--sources", type=Path, metavar="DIR", default=environment.sources_dir(),
                       help="offline mirror of the natural sources (default: $HEXAINST_SOURCES, else the Hub)")
    every.add_argument("--base-url", default=None, metavar="URL",
                       help="OpenAI-compatible endpoint (default: $HEXAINST_BASE_URL, else the embedded local model)")
    every.add_argument("--model", default=None, help="model name at the endpoint (default: $HEXAINST_MODEL)")
    every.add_argument("--per-category", type=int, default=130,
                       help="synthetic candidates to keep per category, reserve included (default 130)")
    every.add_argument("--validation", type=Path, metavar="FILE", help="validation.json to apply at assembly")
    every.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed for every stage (default {DEFAULT_SEED})")
    every.add_argument("--threads", type=int, default=None, metavar="N",
                       help="torch threads of the embedded generator (default 1: more oversubscribe a busy CPU)")
    every.add_argument("--force", action="store_true", help="rerun finished stages too (the request cache still applies)")
    from hexainst.cli.synthetic import add_membership_arguments

    add_membership_arguments(every)
    every.set_defaults(handler=_all)


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def _release(args: argparse.Namespace) -> int:
    from hexainst.builders.assembly.assemble import ASSEMBLY_REPORT, assemble, write_report

    report = assemble(args.pools, args.out, validation=args.validation,
                      config=AssemblyConfig(seed=args.seed, reserve=args.reserve))
    write_report(report, args.pools[0] / ASSEMBLY_REPORT)
    _print_summary(report, args.out)
    return 0


def _all(args: argparse.Namespace) -> int:
    from hexainst.cli.build_all import build_all

    report = build_all(
        work=args.work,
        out=args.out,
        sources=args.sources,
        base_url=args.base_url,
        model=args.model,
        per_category=args.per_category,
        validation=args.validation,
        seed=args.seed,
        force=args.force,
        embedded_threads=args.threads,
        membership={"model": args.membership_model, "k": args.membership_k, "threshold": args.membership_threshold},
    )
    _print_summary(report, args.out)
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
