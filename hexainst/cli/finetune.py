"""``hexainst finetune``: make a base/fine-tuned pair from a recipe, evaluate it, report the alteration demo.

Heavy modules (torch, transformers) load inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hexainst.analysis.finetune.recipe import VARIANTS
from hexainst.kernel.errors import UserError


def _recipe(args: argparse.Namespace):
    from hexainst.analysis.finetune import load_recipe

    recipe = load_recipe(args.recipe)
    if getattr(args, "steps", None) is not None:
        if args.steps <= 0:
            raise UserError("--steps must be positive")
        recipe = recipe.with_overrides(steps=args.steps)
    if getattr(args, "seed", None) is not None:
        recipe = recipe.with_seed(args.seed)
    return recipe


def _cmd_run(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune import fine_tune
    from hexainst.analysis.finetune.train import manifest_summary

    recipe = _recipe(args)
    done = fine_tune(recipe, args.variant, sources=args.sources, release=args.release, root=args.root,
                     progress=not args.quiet)
    state = "already finished" if done.reused else "finished"
    print(f"{recipe.name} {args.variant}: {state}: {manifest_summary(done.manifest)}")
    print(done.path)
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune import finished

    from hexainst.analysis.finetune.data import load_split

    recipe = _recipe(args)
    done = finished(recipe, args.variant, load_split(recipe, args.sources, args.release), args.root)
    if done is None:
        raise UserError(f"{recipe.name} {args.variant} is not fine-tuned yet (hexainst finetune run --variant "
                        f"{args.variant})")
    print(done.path)
    return 0


def _seeds(args: argparse.Namespace) -> list[int]:
    if not args.seeds:
        raise UserError("--seeds needs at least one seed")
    return sorted(set(args.seeds))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.design import evaluate_runs

    recipe = _recipe(args)
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be positive")
    doc = evaluate_runs(recipe, args.out, seeds=_seeds(args), sources=args.sources, release=args.release,
                        root=args.root, progress=not args.quiet, threads=args.threads)
    for name, m in sorted(doc["models"].items()):
        print(f"{name}: NLL/token own {m['nll_own']:.4f}, mismatched {m['nll_mismatched']:.4f}, "
              f"none {m['nll_none']:.4f}; gain {m['gain']:+.4f}")
    print(f"wrote {args.out}")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.data import load_split
    from hexainst.analysis.finetune.design import finished_runs
    from hexainst.analysis.finetune.design_report import design_rows, record_runs

    if args.per_category < 1:
        raise UserError("--per-category must be positive")
    recipe = _recipe(args)
    runs = finished_runs(recipe, load_split(recipe, args.sources, args.release), _seeds(args), args.root)
    rows = design_rows(args.release, args.per_category, args.sample_seed)
    done = record_runs(recipe, args.stores, rows, runs, batch_size=args.batch_size, progress=not args.quiet)
    for fmt, by_model in done.items():
        print(f"{fmt}: {', '.join(by_model)}")
    return 0


def _cmd_changes(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.design import isn_changes
    from hexainst.analysis.finetune.design_report import store_layout
    from hexainst.kernel.atomic import write_text
    from hexainst.kernel.jsonfiles import dumps_stable

    doc = isn_changes(store_layout(args.stores), eps=args.eps)
    write_text(args.out, dumps_stable(doc))
    print(f"wrote {args.out}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.design_report import write_design_report

    s = write_design_report(args.out, evaluation=args.evaluation, changes=args.changes, note=args.note)
    print("runs per arm: " + ", ".join(f"{k} {v}" for k, v in s["runs_per_arm"].items()))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is an integer >= 0, got {text!r}")
    return value


def _common(p: argparse.ArgumentParser, *, rows: bool = True) -> None:
    from hexainst.analysis.finetune import DEFAULT_RECIPE

    p.add_argument("--recipe", default=DEFAULT_RECIPE,
                   help=f"bundled recipe name or recipe JSON file (default {DEFAULT_RECIPE})")
    p.add_argument("--root", default=None,
                   help="where fine-tuned models live (default: $HEXAINST_CACHE/finetuned, i.e. ~/.cache/hexainst/finetuned)")
    if rows:
        p.add_argument("--sources", default=None,
                       help="offline mirror of the natural sources holding the recipe's rows (default $HEXAINST_SOURCES)")
        p.add_argument("--release", default=None,
                       help="release whose instructions are left out of the rows (default: the bundled release)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune a model (recipe as data; tuned, control and shuffled arms, several seeds), evaluate, report",
        description=(
            "Make a base/fine-tuned pair on this machine for the alteration analysis: a recipe (a JSON file: model, "
            "rows, prompt format, steps, learning rate, seed) is run with transformers.Trainer in float32 as three arms: "
            "'tuned' (instruction -> response), 'control' (the same responses without their instructions) and "
            "'shuffled' (the tuned format with responses re-paired), each under several seeds (--seed). "
            "Weights go to the cache, never into the repository; a finished fine-tune is never redone."
        ),
    )
    sub = p.add_subparsers(dest="finetune_command", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="fine-tune one variant (resumes a killed run; reuses a finished one)",
                         description="Fine-tune the recipe's model as one variant; prints the model folder last.")
    run.add_argument("--variant", required=True, choices=VARIANTS,
                     help="tuned: instruction -> response; control: the responses alone (same tokens, steps, schedule); "
                          "shuffled: the tuned format with each instruction paired with another row's response")
    run.add_argument("--steps", type=int, default=None, help="override the recipe's steps (e.g. a short pilot)")
    run.add_argument("--seed", type=_seed, default=None,
                     help="training seed of this run (default: the recipe's); the held-out split stays the recipe's")
    _common(run)
    run.set_defaults(handler=_cmd_run)

    path = sub.add_parser("path", help="print the folder of a finished fine-tune (exit 2 if none)")
    path.add_argument("--variant", required=True, choices=VARIANTS)
    path.add_argument("--steps", type=int, default=None, help="the --steps override the run used, if any")
    path.add_argument("--seed", type=_seed, default=None, help="the run's training seed (default: the recipe's)")
    _common(path)
    path.set_defaults(handler=_cmd_path)

    seeds_help = "training seeds of the runs to use (default 0 1 2); runs not finished are left out and counted"
    ev = sub.add_parser("evaluate", help="instruction following of the base model and every finished run",
                        description=(
                            "Scores the recipe's held-out rows under the base model and every finished run of every "
                            "arm (tuned, control, shuffled) and seed: NLL per response token given its own "
                            "instruction, given another held-out row's instruction (same format), and given nothing. "
                            "mismatched - own is the instruction-following gain, which format alone cannot explain. "
                            "Resumes: models already scored in --out are kept."))
    ev.add_argument("--out", required=True, help="output JSON file (rewritten atomically after each model)")
    ev.add_argument("--steps", type=int, default=None, help="the --steps override the runs used, if any")
    ev.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1, 2], help=seeds_help)
    ev.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the recipe's); 1 is faster where other jobs oversubscribe the CPU")
    _common(ev)
    ev.set_defaults(handler=_cmd_evaluate)

    rec = sub.add_parser("record", help="record the base model and every finished run, raw and in the recipe's format",
                         description=(
                             "Records a seeded sample of the release (--per-category rows per category) with the base "
                             "model and every finished run, twice: raw (BOS + instruction) and inside the recipe's "
                             "prompt format (the chat turn the tuned and shuffled arms were trained on). Stores go to "
                             "STORES/<raw|recipe>/<model> and resume."))
    rec.add_argument("--stores", required=True, help="folder of the stores")
    rec.add_argument("--per-category", type=int, default=50, help="release rows per category (default 50, the paper's)")
    rec.add_argument("--sample-seed", type=_seed, default=0, help="seed of the sample (default 0)")
    rec.add_argument("--batch-size", type=int, default=8, help="instructions per forward pass (default 8)")
    rec.add_argument("--steps", type=int, default=None, help="the --steps override the runs used, if any")
    rec.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1, 2], help=seeds_help)
    _common(rec)
    rec.set_defaults(handler=_cmd_record)

    chg = sub.add_parser("changes", help="which neurons enter and leave the ISN sets in each run, and their overlap",
                         description=(
                             "From the stores 'finetune record' wrote: per run, J(base, run) and the neurons that "
                             "enter and leave each instruction's ISN set; per pair of runs (same arm other seed, "
                             "tuned vs control, tuned vs shuffled, ...), the overlap of those changes against "
                             "random changes of the same sizes. Writes one JSON file."))
    chg.add_argument("--stores", required=True, help="folder written by 'hexainst finetune record'")
    chg.add_argument("--out", required=True, help="output JSON file")
    chg.add_argument("--eps", type=float, default=0.01, help="ISN fraction (default 0.01, the paper's)")
    chg.set_defaults(handler=_cmd_changes)

    rep = sub.add_parser("report", help="the alteration design's report from 'evaluate' and 'changes'",
                         description=(
                             "Writes OUT/report.md and OUT/results.json: runs per arm and seed, the instruction-"
                             "following gain per model and per arm, arm contrasts over runs (a p-value only where both "
                             "arms have 3 or more runs), the ISN changes and their overlap, and what the runs that "
                             "exist can and cannot support."))
    rep.add_argument("--out", required=True, help="report folder (report.md, results.json)")
    rep.add_argument("--evaluation", required=True, help="JSON written by 'hexainst finetune evaluate'")
    rep.add_argument("--changes", default=None, help="JSON written by 'hexainst finetune changes'")
    rep.add_argument("--note", default="", help="a line quoted at the top of the report")
    rep.set_defaults(handler=_cmd_report)
