"""Record the alteration design's models and write its report (``docs/demo-alteration/``).

:func:`record_runs` records the base model and every finished run on the same rows twice: ``raw``
(BOS + instruction, the format of the release analyses and of the control's training) and
``recipe`` (the instruction inside the recipe's prompt format, i.e. the chat turn the tuned and
shuffled arms were trained on). Stores go to ``STORES/<format>/<model>`` and resume.

:func:`write_design_report` reads an :func:`~.design.evaluate_runs` file and an
:func:`~.design.isn_changes` file and writes ``report.md`` and ``results.json``. It counts the runs
of each arm; gives each arm's gain and each difference (tuned - base first: the fair contrast, the
shuffled arm falling below the base) with a t interval over the runs and an interval over the
held-out rows; prints a p-value over runs only where every arm compared has
:data:`~.design.MIN_SEEDS` runs (at its floor, ``p = 1/number of relabelings``, the smallest possible); gives the overlap
ratio of the ISN changes per tuned run; and restates the claims with computed verdicts
(:mod:`.design_claims`). :func:`rerender` writes the report again from its own folder (the kept
``evaluation.json`` and ``results.json``'s changes), which is how ``docs/demo-alteration`` is
re-rendered when this module changes, without the runs::

    python -c "from hexainst.analysis.finetune.design_report import rerender; rerender('docs/demo-alteration')"
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

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
from .design import (
    FORMAT,
    LEVEL,
    MIN_SEEDS,
    arms,
    mean_interval,
    overlap_ratio,
    row_bootstrap_difference,
    seed_test,
    welch_interval,
)
from .design_claims import interval_text, restate_claims
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


def _jaccards_with_base(changes: dict[str, Any] | None) -> dict[str, dict[str, list[float]]]:
    """{format: {arm: [mean J(base, run) of each run, in run-name order]}} of an :func:`~.design.isn_changes` file."""
    out: dict[str, dict[str, list[float]]] = {}
    for fmt, ch in (changes or {}).items():
        by_arm: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for name in sorted(ch.get("runs") or {}):
            arm = name.rsplit("-s", 1)[0]
            if arm in by_arm:
                by_arm[arm].append(float(ch["runs"][name]["jaccard_with_base"]))
        out[fmt] = by_arm
    return out


def _difference(a: list[float], b: list[float]) -> dict[str, Any]:
    """mean(a) - mean(b) over runs with its Welch interval (no p: used where the design asks no test)."""
    return {"n_a": len(a), "n_b": len(b), "difference": float(np.mean(a)) - float(np.mean(b)) if a and b else None,
            **welch_interval(a, b)}


def summarize(evaluation: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    """Everything the report states, as numbers: runs per arm, gains with intervals over runs, arm contrasts
    (p only with enough runs), each arm against the base model, the ISN changes, the overlap ratios and the
    claims table (:mod:`.design_claims`)."""
    per_arm = arms(evaluation)
    base = evaluation["models"].get("base")
    base_gain = base["gain"] if base else None
    contrasts = {}
    for a, b in (("tuned", "shuffled"), ("tuned", "control"), ("shuffled", "control")):
        contrasts[f"{a} - {b}"] = seed_test(per_arm[a]["gain"], per_arm[b]["gain"])
    jb = _jaccards_with_base(changes)
    names = {v: [k for k in sorted(evaluation["models"]) if evaluation["models"][k].get("variant") == v] for v in VARIANTS}
    names["base"] = ["base"] if base else []
    rows = {f"{x} - {y}": row_bootstrap_difference(evaluation["models"], names[x], names[y])
            for x, y in (("tuned", "base"), ("control", "base"), ("shuffled", "base"), ("tuned", "shuffled"),
                         ("tuned", "control"), ("shuffled", "control"))}
    s = {
        "runs_per_arm": {v: len(per_arm[v]["seeds"]) for v in VARIANTS},
        "seeds": {v: per_arm[v]["seeds"] for v in VARIANTS},
        "arms": per_arm,
        "base_gain": base_gain,
        "gain_intervals": {v: mean_interval(per_arm[v]["gain"]) for v in VARIANTS},
        "gain_vs_base": ({v: mean_interval(per_arm[v]["gain"], minus=base_gain) for v in VARIANTS}
                         if base_gain is not None else None),
        "gain_contrasts": contrasts,
        "row_intervals": rows,
        "interval_level": LEVEL,
        "normal_quantile": float(scipy_stats.norm.ppf(0.5 + LEVEL / 2)),
        "min_seeds_for_p": MIN_SEEDS,
        "jaccard_with_base": {fmt: {v: mean_interval(js) for v, js in by_arm.items()} for fmt, by_arm in jb.items()},
        "change_contrasts": {fmt: _difference(by_arm["control"], by_arm["tuned"]) for fmt, by_arm in jb.items()},
        "overlap_ratios": {fmt: {other: overlap_ratio(ch, other) for other in ("control", "shuffled")}
                           for fmt, ch in (changes or {}).items()},
        "changes": changes,
    }
    s["claims"] = restate_claims(s, str(evaluation["recipe"].get("model", "the model")))
    return s




def _bracket(x: dict[str, Any] | None, spec: str = "+.3f") -> str:
    """``[+0.179, +0.267]``: an interval alone."""
    ci = (x or {}).get("ci")
    return f"[{format(ci[0], spec)}, {format(ci[1], spec)}]" if ci else "n/a"


def lead(s: dict[str, Any]) -> list[str]:
    """The report's first paragraphs, from the numbers of :func:`summarize`: what instruction tuning taught
    (tuned - base first, the fair contrast), why the shuffled contrast is larger, and what the ISN changes share."""
    n = s["runs_per_arm"]
    vb, gi = s.get("gain_vs_base"), s["gain_intervals"]
    out = []
    if vb is None or not n["tuned"]:
        out.append(f"**Instruction following.** No conclusion: {n['tuned']} tuned runs scored"
                   + ("" if vb is not None else ", and the base model is not scored") + ".")
    else:
        text = (f"**Instruction following.** Fine-tuning on instruction-response pairs raised the instruction-following "
                f"gain (response NLL given another row's instruction minus given its own: how much the model uses "
                f"*this* instruction; both contexts share the format, so format alone cannot raise it) from the base "
                f"model's {s['base_gain']:+.3f} to {gi['tuned']['mean']:+.3f} nats/token: "
                + (f"**tuned - base {vb['tuned']['mean']:+.3f} {_bracket(s['row_intervals']['tuned - base'])}** "
                   f"({LEVEL:.0%} interval with the {s['row_intervals']['tuned - base']['n_rows']} held-out rows "
                   f"resampled; over the {n['tuned']} runs {_bracket(vb['tuned'])}, a t interval that covers seed "
                   "variation only: the runs share one set of training rows, and the base model is one model scored "
                   "once)." if s["row_intervals"].get("tuned - base") else
                   f"**tuned - base {interval_text(vb['tuned'])}** ({LEVEL:.0%} t interval over {n['tuned']} runs: seed "
                   "variation only, the base model being one model scored once)."))
        ts = s["gain_contrasts"]["tuned - shuffled"]
        if n["shuffled"]:
            p_text = ts["p_text"] if ts.get("p_text") else "no p-value: " + ts["no_p_because"]
            text += (f" Against the shuffled arm (the same chat format, responses re-paired at random) the difference is "
                     f"{interval_text(ts)} (Welch t interval), {p_text}, ")
            sb = vb["shuffled"]["mean"]
            if sb < 0:
                text += (f"larger, because the two contrasts ask different questions (tuned - base: what tuning added over "
                         "the base model; tuned - shuffled: what the pairing of instruction and response did) and "
                         f"training on mismatched pairs lowers the gain *below* the base model's (shuffled "
                         f"{gi['shuffled']['mean']:+.3f}; shuffled - base {interval_text(vb['shuffled'])}): its training rewards "
                         "predicting a response that the instruction before it says nothing about. The arithmetic: "
                         f"tuned - shuffled = (tuned - base) + (base - shuffled) = {vb['tuned']['mean']:+.3f} "
                         f"{'+' if sb <= 0 else '-'} {abs(sb):.3f}.")
            else:
                text += "the shuffled arm keeping the base model's gain or more (shuffled - base " \
                        f"{interval_text(vb['shuffled'])})."
        if n["control"]:
            text += (f" The control arm (the responses alone, no instruction before them) loses gain too, less "
                     f"(control - base {interval_text(vb['control'])}).")
        out.append(text)
    ratios = s.get("overlap_ratios") or {}
    shown = [(fmt, r["control"]) for fmt, r in ratios.items() if r.get("control") is not None]
    if shown:
        jb = s["jaccard_with_base"]
        parts = []
        for fmt, r in shown:
            by_kind = (s["changes"][fmt].get("by_kind") or {}).get("tuned ~ control") or {}
            span = f", {r['range'][0]:.2f} to {r['range'][1]:.2f} over the tuned runs" if r["range"] else ""
            parts.append(f"recorded {FORMAT_SHORT.get(fmt, fmt)}, J(base, tuned) {jb[fmt]['tuned']['mean']:.3f} "
                         f"against J(base, control) {jb[fmt]['control']['mean']:.3f}; the neurons entering a tuned and a "
                         f"control run's sets overlap {r['across']:.3f} (mean Jaccard) against {r['within']:.3f} between two "
                         "tuned runs "
                         f"(ratio {r['ratio']:.2f}{span}; chance {by_kind.get('entering_chance', float('nan')):.3f}"
                         + ("; every tuned ~ control pair below every tuned ~ tuned pair"
                            if r["across_range"][1] < r["within_range"][0] else "") + ")")
        out.append("**ISN changes.** " + "; ".join(parts)[0].upper() + "; ".join(parts)[1:] + ". A ratio near 1 says "
                   "that what instruction tuning changes reproducibly in the ISN sets, a fine-tune without instructions "
                   "changes too; a ratio near 0, that the change is instruction tuning's own.")
    return out


#: How each recording format is named in the report's first paragraphs.
FORMAT_SHORT = {"raw": "raw", "recipe": "in the chat format"}
#: How each recording format is named in the report.
FORMAT_LABELS = {"raw": "raw (BOS + instruction: the control's training format)",
                 "recipe": "recipe (the chat turn the tuned and shuffled arms were trained on)"}
_ENV = environment(TEMPLATES, filters={"na": _f}, functions={"interval": lambda x: interval_text(x, "+.4f"),
                                                                   "bracket": lambda x: _bracket(x, "+.4f")})


def render_markdown(s: dict[str, Any], evaluation: dict[str, Any], note: str) -> str:
    """report.md: the summary ``s`` (:func:`summarize`) and the evaluation it came from, laid out by
    ``templates/alteration_design.md.j2``."""
    models = evaluation["models"]
    return _ENV.get_template("alteration_design.md.j2").render(
        s=s, normal_quantile=s["normal_quantile"], evaluation=evaluation, recipe=evaluation["recipe"], note=note,
        variants=VARIANTS, min_seeds=MIN_SEEDS,
        lead=lead(s), format_labels=FORMAT_LABELS,
        models=[(name, models[name]) for name in sorted(models, key=lambda k: (k != "base", k))],
        runs=[(name, models[name]["training"]) for name in sorted(models) if name != "base"],
    )


def _read_evaluation(path: PathLike) -> dict[str, Any]:
    ev = read_json(path, what="alteration evaluation")
    missing = [k for k in ("recipe", "rows", "seeds", "models") if not isinstance(ev, dict) or k not in ev]
    if not isinstance(ev, dict) or ev.get("format") != FORMAT or missing:
        raise UserError(f"{path}: not a file written by 'hexainst finetune evaluate' (format {FORMAT}"
                        + (f"; no {', '.join(map(repr, missing))}" if missing else "") + ")")
    return ev


def rerender(folder: PathLike, note: str = "") -> dict[str, Any]:
    """Write ``folder/report.md`` and ``folder/results.json`` again from what the report folder keeps: its
    ``evaluation.json`` and the ISN changes inside its ``results.json`` (no model, no store): how a new
    version of this module restates a committed report (``docs/demo-alteration``) without the runs."""
    folder = Path(folder)
    ev = _read_evaluation(folder / EVALUATION_COPY)
    previous = read_json(folder / "results.json", what="alteration report results")
    if not isinstance(previous, dict) or "changes" not in previous:
        raise UserError(f"{folder / 'results.json'}: not written by 'hexainst finetune report' (no 'changes')")
    s = summarize(ev, previous["changes"])
    write_text(folder / "report.md", render_markdown(s, ev, note))
    write_text(folder / "results.json", dumps_stable(s))
    return s


def write_design_report(out: PathLike, *, evaluation: PathLike, changes: PathLike | None = None, note: str = ""
                        ) -> dict[str, Any]:
    """Write ``out/report.md``, ``out/results.json`` and ``out/evaluation.json`` (a copy of the evaluation: the
    per-row NLLs behind every gain, and what ``finetune evaluate --resume-from`` continues from on another
    machine), replacing only this command's own earlier output."""
    ev = _read_evaluation(evaluation)
    ch = read_json(changes, what="ISN changes") if changes is not None else None
    s = summarize(ev, ch)
    out = claim_output_dir(out, OUTPUT_KIND, inputs=[evaluation, changes])
    with staged_dir(out) as tmp:
        write_text(tmp / "report.md", render_markdown(s, ev, note))
        write_text(tmp / "results.json", dumps_stable(s))
        write_text(tmp / EVALUATION_COPY, dumps_stable(ev))
        write_marker(tmp, OUTPUT_KIND)
    return s
