"""``hexainst finetune``: make a base/fine-tuned pair from a recipe, evaluate it, report the alteration demo.

Options come from :class:`~hexainst.analysis.finetune.config.FinetuneConfig`. Modules that load numpy,
torch or transformers load inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hexainst.analysis.finetune import finished, run
from hexainst.analysis.finetune.config import FinetuneConfig
from hexainst.analysis.finetune.data import load_split
from hexainst.analysis.finetune.train import manifest_summary
from hexainst.cli.options import add_quiet_alias, add_settings, config_from
from hexainst.kernel.atomic import write_text
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import dumps_stable


def _config(args: argparse.Namespace) -> FinetuneConfig:
    return config_from(args, FinetuneConfig)


def _cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    done = run(config)
    state = "already finished" if done.reused else "finished"
    print(f"{done.manifest['recipe']['name']} {config.variant}: {state}: {manifest_summary(done.manifest)}")
    print(done.path)
    return 0


def _cmd_path(args: argparse.Namespace) -> int:
    config = _config(args)
    recipe = config.load_recipe()
    done = finished(recipe, config.variant, load_split(recipe, config.sources, config.release), config.root)
    if done is None:
        raise UserError(f"{recipe.name} {config.variant} is not fine-tuned yet (hexainst finetune run --variant "
                        f"{config.variant})")
    print(done.path)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.design import evaluate_runs  # deferred: numpy

    config = _config(args)
    doc = evaluate_runs(config.load_recipe(), args.out, seeds=config.seeds, sources=config.sources,
                        release=config.release, root=config.root, progress=config.progress, threads=config.threads,
                        resume_from=args.resume_from)
    for name, m in sorted(doc["models"].items()):
        print(f"{name}: NLL/token own {m['nll_own']:.4f}, mismatched {m['nll_mismatched']:.4f}, "
              f"none {m['nll_none']:.4f}; gain {m['gain']:+.4f}")
    print(f"wrote {args.out}")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.design import finished_runs  # deferred: loads numpy and scipy
    from hexainst.analysis.finetune.design_report import design_rows, record_runs  # deferred: loads numpy and scipy

    config = _config(args)
    recipe = config.load_recipe()
    runs = finished_runs(recipe, load_split(recipe, config.sources, config.release), config.seeds, config.root)
    rows = design_rows(config.release, config.per_category, config.sample_seed)
    done = record_runs(recipe, args.stores, rows, runs, batch_size=config.batch_size, progress=config.progress)
    for fmt, by_model in done.items():
        print(f"{fmt}: {', '.join(by_model)}")
    return 0


def _cmd_changes(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.design import isn_changes  # deferred: loads numpy and scipy
    from hexainst.analysis.finetune.design_report import store_layout  # deferred: loads numpy and scipy

    doc = isn_changes(store_layout(args.stores), eps=_config(args).eps)
    write_text(args.out, dumps_stable(doc))
    print(f"wrote {args.out}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from hexainst.analysis.finetune.design_report import write_design_report  # deferred: numpy

    s = write_design_report(args.out, evaluation=args.evaluation, changes=args.changes, note=_config(args).note)
    print("runs per arm: " + ", ".join(f"{k} {v}" for k, v in s["runs_per_arm"].items()))
    print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def _common(p: argparse.ArgumentParser, *, rows: bool = True) -> None:
    add_settings(p, FinetuneConfig, ["recipe", "root", *(("sources", "release") if rows else ()), "progress"])
    add_quiet_alias(p)  # hidden --quiet: the same as hexainst -q (it once meant --no-progress)


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
    add_settings(run, FinetuneConfig, ["variant", "steps", "seed"], required=["variant"])
    _common(run)
    run.set_defaults(handler=_cmd_run)

    path = sub.add_parser("path", help="print the folder of a finished fine-tune (exit 2 if none)")
    add_settings(path, FinetuneConfig, ["variant", "steps", "seed"], required=["variant"])
    _common(path)
    path.set_defaults(handler=_cmd_path)

    ev = sub.add_parser("evaluate", help="instruction following of the base model and every finished run",
                        description=(
                            "Scores the recipe's held-out rows under the base model and every finished run of every "
                            "arm (tuned, control, shuffled) and seed: NLL per response token given its own "
                            "instruction, given another held-out row's instruction (same format), and given nothing. "
                            "mismatched - own is the instruction-following gain, which format alone cannot explain. "
                            "Resumes: models already scored in --out are kept."))
    ev.add_argument("--out", required=True, help="output JSON file (rewritten atomically after each model)")
    ev.add_argument("--resume-from", metavar="FILE", default=None,
                    help="an earlier evaluation whose models are kept (e.g. a report's evaluation.json, made on a "
                         "machine whose fine-tunes are gone); models already in --out win")
    add_settings(ev, FinetuneConfig, ["steps", "seeds", "threads"], spaced=["seeds"])
    _common(ev)
    ev.set_defaults(handler=_cmd_evaluate)

    rec = sub.add_parser("record", help="record the base model and every finished run, raw and in the recipe's format",
                         description=(
                             "Records a seeded sample of the release (--per-category rows per category) with the base "
                             "model and every finished run, twice: raw (BOS + instruction) and inside the recipe's "
                             "prompt format (the chat turn the tuned and shuffled arms were trained on). Stores go to "
                             "STORES/<raw|recipe>/<model> and resume."))
    rec.add_argument("--stores", required=True, help="folder of the stores")
    add_settings(rec, FinetuneConfig, ["per_category", "sample_seed", "batch_size", "steps", "seeds"],
                 spaced=["seeds"])
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
    add_settings(chg, FinetuneConfig, ["eps"])
    chg.set_defaults(handler=_cmd_changes)

    rep = sub.add_parser("report", help="the alteration design's report from 'evaluate' and 'changes'",
                         description=(
                             "Writes OUT/report.md and OUT/results.json: runs per arm and seed, the instruction-"
                             "following gain per model and per arm, each arm against the base model and arm contrasts "
                             "with intervals over runs and rows (a p-value only where both arms have 3 or more runs), "
                             "the ISN changes and their overlap, and the claims table with computed verdicts."))
    rep.add_argument("--out", required=True, help="report folder (report.md, results.json)")
    rep.add_argument("--evaluation", required=True, help="JSON written by 'hexainst finetune evaluate'")
    rep.add_argument("--changes", default=None, help="JSON written by 'hexainst finetune changes'")
    add_settings(rep, FinetuneConfig, ["note"])
    rep.set_defaults(handler=_cmd_report)
