"""Record the alteration design's models and write its report (``docs/demo-alteration/``).

:func:`record_runs` records the base model and every finished run on the same rows twice: ``raw``
(BOS + instruction, the format of the release analyses and of the control's training) and
``recipe`` (the instruction inside the recipe's prompt format, i.e. the chat turn the tuned and
shuffled arms were trained on). Stores go to ``STORES/<format>/<model>`` and resume.

:func:`write_design_report` reads an :func:`~.design.evaluate_runs` file and an
:func:`~.design.isn_changes` file and writes ``report.md`` and ``results.json``. It counts the runs
of each arm, prints a p-value over runs only where every arm compared has
:data:`~.design.MIN_SEEDS` runs, and states which conclusions the runs that exist can carry.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# The recording package loads its recorder (torch, transformers, datasets) on first use of `recording.record`.
from hexainst.analysis import recording
from hexainst.analysis.recording.loading import resolve_model
from hexainst.analysis.stats import sample_per_category
from hexainst.kernel.atomic import staged_dir, write_text
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import dumps_stable, read_json
from hexainst.kernel.log import STDOUT
from hexainst.kernel.outputs import claim_output_dir, write_marker
from hexainst.kernel.release import read_release_rows
from hexainst.kernel.templating import environment

from .data import prompt_text
from .design import FORMAT, MIN_SEEDS, arms, seed_test
from .recipe import VARIANTS, Recipe

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
FORMATS = ("raw", "recipe")
#: The report templates (package data of hexainst.analysis).
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
#: The same kind as the single-run report it replaces in docs/demo-alteration.
OUTPUT_KIND = "alteration report"
#: The report's copy of the evaluation it was made from.
EVALUATION_COPY = "evaluation.json"


def design_rows(release: PathLike | None, per_category: int, seed: int) -> list[dict[str, Any]]:
    """A seeded sample of ``per_category`` release rows per category (id, category, source, instruction)."""
    rows = read_release_rows(release)
    labels = [str(r["category"]) for r in rows]
    cats = sorted(set(labels))
    pick = sample_per_category(labels, cats, per_category, seed=seed)
    return [{k: rows[int(i)][k] for k in ("id", "category", "source", "instruction")} for i in np.sort(pick)]


def formatted(recipe: Recipe, rows: Sequence[dict[str, Any]], fmt: str) -> list[dict[str, Any]]:
    """The rows as fed in format ``fmt``: ``raw`` unchanged, ``recipe`` inside the recipe's prompt format."""
    if fmt == "raw":
        return [dict(r) for r in rows]
    if fmt != "recipe":
        raise UserError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return [dict(r, instruction=prompt_text(recipe, {"instruction": r["instruction"], "input": ""})) for r in rows]


def record_runs(recipe: Recipe, stores: PathLike, rows: Sequence[dict[str, Any]], runs: dict[str, Any], *,
                formats: Sequence[str] = FORMATS, batch_size: int = 8, progress: bool = True) -> dict[str, dict[str, str]]:
    """Record base + each run in each format; returns {format: {model: store path}}."""
    models = {"base": resolve_model(recipe.model), **{name: str(run.path) for name, run in runs.items()}}
    out: dict[str, dict[str, str]] = {}
    for fmt in formats:
        fed = formatted(recipe, rows, fmt)
        for name, path in models.items():
            target = Path(stores) / fmt / name
            if progress:
                log.info("recording %s (%s) into %s", name, fmt, target, extra=STDOUT)
            recording.record(path, fed, target, batch_size=batch_size, progress=progress)
            out.setdefault(fmt, {})[name] = str(target)
    return out


def store_layout(stores: PathLike) -> dict[str, dict[str, str]]:
    """{format: {model: store folder}} found under ``STORES/<format>/<model>``."""
    root = Path(stores)
    if not root.is_dir():
        raise UserError(f"{root}: no such stores folder (hexainst finetune record writes it)")
    out = {}
    for fmt in FORMATS:
        if (root / fmt).is_dir():
            found = {p.name: str(p) for p in sorted((root / fmt).iterdir()) if p.is_dir()}
            if found:
                out[fmt] = found
    if not out:
        raise UserError(f"{root}: holds no <format>/<model> stores ({', '.join(FORMATS)})")
    return out


# --- the report ------------------------------------------------------------------------------------


def _f(v: Any, spec: str = "+.4f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def summarize(evaluation: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    """Everything the report states, as numbers: runs per arm, gains, arm contrasts (p only with enough runs)."""
    per_arm = arms(evaluation)
    base = evaluation["models"].get("base")
    contrasts = {}
    for a, b in (("tuned", "shuffled"), ("tuned", "control"), ("shuffled", "control")):
        contrasts[f"{a} - {b}"] = seed_test(per_arm[a]["gain"], per_arm[b]["gain"])
    return {
        "runs_per_arm": {v: len(per_arm[v]["seeds"]) for v in VARIANTS},
        "seeds": {v: per_arm[v]["seeds"] for v in VARIANTS},
        "arms": per_arm,
        "base_gain": base["gain"] if base else None,
        "gain_contrasts": contrasts,
        "min_seeds_for_p": MIN_SEEDS,
        "changes": changes,
    }


def verdicts(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(statement, what the data says) for the conclusions this design is meant to carry."""
    n = s["runs_per_arm"]
    out = []
    c = s["gain_contrasts"]["tuned - shuffled"]
    if n["tuned"] == 0 or n["shuffled"] == 0:
        out.append(("Instruction tuning teaches the model to use the instruction, beyond the answer format",
                    f"not testable here: {n['tuned']} tuned and {n['shuffled']} shuffled runs finished"))
    elif c["p_value"] is None:
        out.append(("Instruction tuning teaches the model to use the instruction, beyond the answer format",
                    f"no conclusion: gain tuned - shuffled {_f(c['difference'])} nats/token on {n['tuned']} and "
                    f"{n['shuffled']} runs; {c['no_p_because']}"))
    else:
        word = "supported" if c["p_value"] <= 0.05 and c["difference"] > 0 else "not supported"
        out.append(("Instruction tuning teaches the model to use the instruction, beyond the answer format",
                    f"{word}: gain tuned - shuffled {_f(c['difference'])} nats/token over {n['tuned']} vs "
                    f"{n['shuffled']} runs, exact p = {c['p_value']:.3f}"))
    ch = (s.get("changes") or {}).get("raw", {}).get("by_kind", {})
    across = ch.get("tuned ~ control")
    within = ch.get("tuned ~ tuned (other seed)")
    claim = "Most of the ISN change of instruction tuning is what any fine-tuning does (README)"
    if across is None:
        out.append((claim, "not testable here: no tuned and control runs recorded"))
    elif within is None:
        out.append((claim, "no conclusion: the overlap of tuned and control changes "
                           f"(entering J {across['entering_jaccard']:.3f}, leaving J {across['leaving_jaccard']:.3f}; "
                           f"chance {across['entering_chance']:.3f} / {across['leaving_chance']:.3f}) has no "
                           "seed-to-seed reference: it needs >= 2 tuned runs"))
    else:
        share = across["entering_jaccard"] / within["entering_jaccard"] if within["entering_jaccard"] else math.nan
        out.append((claim, f"measured: tuned and control changes overlap {across['entering_jaccard']:.3f} (entering) "
                           f"against {within['entering_jaccard']:.3f} between two tuned seeds (ratio {share:.2f}); "
                           "a ratio near 1 says the shared part is the fine-tuning, not the instructions"))
    return out


#: How each recording format is named in the report.
FORMAT_LABELS = {"raw": "raw (BOS + instruction: the control's training format)",
                 "recipe": "recipe (the chat turn the tuned and shuffled arms were trained on)"}
_ENV = environment(TEMPLATES, filters={"na": _f})


def render_markdown(s: dict[str, Any], evaluation: dict[str, Any], note: str) -> str:
    """report.md: the summary ``s`` (:func:`summarize`) and the evaluation it came from, laid out by
    ``templates/alteration_design.md.j2``."""
    models = evaluation["models"]
    return _ENV.get_template("alteration_design.md.j2").render(
        s=s, evaluation=evaluation, recipe=evaluation["recipe"], note=note, variants=VARIANTS, min_seeds=MIN_SEEDS,
        verdicts=verdicts(s), format_labels=FORMAT_LABELS,
        models=[(name, models[name]) for name in sorted(models, key=lambda k: (k != "base", k))],
        runs=[(name, models[name]["training"]) for name in sorted(models) if name != "base"],
    )


def write_design_report(out: PathLike, *, evaluation: PathLike, changes: PathLike | None = None, note: str = ""
                        ) -> dict[str, Any]:
    """Write ``out/report.md``, ``out/results.json`` and ``out/evaluation.json`` (a copy of the evaluation: the
    per-row NLLs behind every gain, and what ``finetune evaluate --resume-from`` continues from on another
    machine), replacing only this command's own earlier output."""
    ev = read_json(evaluation, what="alteration evaluation")
    missing = [k for k in ("recipe", "rows", "seeds", "models") if not isinstance(ev, dict) or k not in ev]
    if not isinstance(ev, dict) or ev.get("format") != FORMAT or missing:
        raise UserError(f"{evaluation}: not a file written by 'hexainst finetune evaluate' (format {FORMAT}"
                        + (f"; no {', '.join(map(repr, missing))}" if missing else "") + ")")
    ch = read_json(changes, what="ISN changes") if changes is not None else None
    s = summarize(ev, ch)
    out = claim_output_dir(out, OUTPUT_KIND, inputs=[evaluation, changes])
    with staged_dir(out) as tmp:
        write_text(tmp / "report.md", render_markdown(s, ev, note))
        write_text(tmp / "results.json", dumps_stable(s))
        write_text(tmp / EVALUATION_COPY, dumps_stable(ev))
        write_marker(tmp, OUTPUT_KIND)
    return s
