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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.report import evaluate_pair

    recipe = _recipe(args)
    doc = evaluate_pair(recipe, args.out, sources=args.sources, release=args.release, root=args.root,
                        progress=not args.quiet)
    for name, m in doc["nll"].items():
        print(f"{name}: NLL/token given the instruction {m['instruction']['nll_per_token']:.4f}, "
              f"without {m['none']['nll_per_token']:.4f}")
    print(f"wrote {args.out}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.report import write_alteration_report

    if args.permutations < 1:
        raise UserError("--permutations must be positive")
    write_alteration_report(
        args.out, evaluation=args.evaluation, tuned=args.tuned, control=args.control,
        second=args.second, second_name=args.second_name, first=args.first,
        n_permutations=args.permutations, seed=args.seed, note=args.note,
    )
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
        help="fine-tune a model into a base/fine-tuned pair (recipe as data), evaluate it, report the alteration demo",
        description=(
            "Make a base/fine-tuned pair on this machine for the alteration analysis: a recipe (a JSON file: model, "
            "rows, prompt format, steps, learning rate, seed) is run with transformers.Trainer in float32, twice: "
            "'tuned' (instruction -> response) and 'control' (the same responses without their instructions). "
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

    ev = sub.add_parser("evaluate", help="NLL of held-out responses (base, tuned, control) and greedy answers",
                        description=(
                            "Scores the recipe's held-out rows under the base model and both finished fine-tunes: "
                            "NLL per response token given the instruction (the recipe's prompt format) and given "
                            "nothing (BOS alone), with paired bootstrap intervals; plus greedy answers to a few "
                            "held-out instructions. Writes one JSON file."))
    ev.add_argument("--out", required=True, help="output JSON file (written atomically)")
    ev.add_argument("--steps", type=int, default=None, help="the --steps override the runs used, if any")
    _common(ev)
    ev.set_defaults(handler=_cmd_evaluate)

    rep = sub.add_parser("report", help="the alteration demo's report from two --compare analyses and an evaluation",
                         description=(
                             "Writes OUT/report.md, OUT/results.json, OUT/figures and OUT/tables: the fine-tuning "
                             "figures, Tables 1 and 2 and Fig. 5 of base vs tuned beside base vs control, a paired "
                             "permutation test per category (does instruction tuning alter ISNs more than the "
                             "control?), the length-matched category comparisons, and optionally a second model's "
                             "single-model analysis beside the first's."))
    rep.add_argument("--out", required=True, help="report folder (its report.md, results.json, figures/, tables/)")
    rep.add_argument("--evaluation", required=True, help="JSON written by 'hexainst finetune evaluate'")
    rep.add_argument("--tuned", required=True,
                     help="analysis folder of base vs tuned (hexainst analyze --compare, with its ISN sets)")
    rep.add_argument("--control", required=True, help="analysis folder of base vs control (the same base store)")
    rep.add_argument("--first", default=None,
                     help="the base model's single-model analysis (e.g. docs/demo): its causal check joins the comparison")
    rep.add_argument("--second", default=None, help="single-model analysis folder of a second model (e.g. docs/demo-smollm2)")
    rep.add_argument("--second-name", default="second model", help="name of the second model in the report")
    rep.add_argument("--permutations", type=int, default=2000, help="sign flips of the paired permutation tests")
    rep.add_argument("--seed", type=int, default=None, help="seed of the tests (default: the toolkit's)")
    rep.add_argument("--note", default="", help="a line quoted at the top of the report")
    rep.set_defaults(handler=_cmd_report)
