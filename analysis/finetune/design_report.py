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

from hexainst.kernel.atomic import staged_dir, write_text
from hexainst.kernel.errors import UserError
from hexainst.kernel.jsonfiles import dumps_stable, read_json
from hexainst.kernel.log import STDOUT

from .design import FORMAT, MIN_SEEDS, arms, seed_test
from .recipe import VARIANTS, Recipe

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
FORMATS = ("raw", "recipe")
#: The same kind as the single-run report it replaces in docs/demo-alteration.
OUTPUT_KIND = "alteration report"


def design_rows(release: PathLike | None, per_category: int, seed: int) -> list[dict[str, Any]]:
    """A seeded sample of ``per_category`` release rows per category (id, category, source, instruction)."""
    import numpy as np

    from hexainst.analysis.stats import sample_per_category
    from hexainst.kernel.release import read_release_rows

    rows = read_release_rows(release)
    labels = [str(r["category"]) for r in rows]
    cats = sorted(set(labels))
    pick = sample_per_category(labels, cats, per_category, seed=seed)
    return [{k: rows[int(i)][k] for k in ("id", "category", "source", "instruction")} for i in np.sort(pick)]


def formatted(recipe: Recipe, rows: Sequence[dict[str, Any]], fmt: str) -> list[dict[str, Any]]:
    """The rows as fed in format ``fmt``: ``raw`` unchanged, ``recipe`` inside the recipe's prompt format."""
    from .data import prompt_text

    if fmt == "raw":
        return [dict(r) for r in rows]
    if fmt != "recipe":
        raise UserError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return [dict(r, instruction=prompt_text(recipe, {"instruction": r["instruction"], "input": ""})) for r in rows]


def record_runs(recipe: Recipe, stores: PathLike, rows: Sequence[dict[str, Any]], runs: dict[str, Any], *,
                formats: Sequence[str] = FORMATS, batch_size: int = 8, progress: bool = True) -> dict[str, dict[str, str]]:
    """Record base + each run in each format; returns {format: {model: store path}}."""
    from hexainst.analysis.recording import record
    from hexainst.analysis.recording.loading import resolve_model

    models = {"base": resolve_model(recipe.model), **{name: str(run.path) for name, run in runs.items()}}
    out: dict[str, dict[str, str]] = {}
    for fmt in formats:
        fed = formatted(recipe, rows, fmt)
        for name, path in models.items():
            target = Path(stores) / fmt / name
            if progress:
                log.info("recording %s (%s) into %s", name, fmt, target, extra=STDOUT)
            record(path, fed, target, batch_size=batch_size, progress=progress)
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


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)]


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


def _markdown(s: dict[str, Any], evaluation: dict[str, Any], note: str) -> str:
    recipe = evaluation["recipe"]
    n = s["runs_per_arm"]
    lines = ["# Alteration design: tuned, control and shuffled fine-tunes of one base model", ""]
    if note:
        lines += [f"> {note}", ""]
    lines += [
        f"Recipe `{recipe['name']}` ({recipe['model']}, {recipe['training']['steps']} steps of "
        f"{recipe['training']['batch_size']}); held-out rows: {evaluation['rows']['eval']}. Runs finished: "
        + ", ".join(f"**{v} {n[v]}** (seeds {s['seeds'][v] or 'none'})" for v in VARIANTS)
        + f" of the {len(evaluation['seeds'])} seeds asked ({evaluation['seeds']}). A p-value over runs is printed only "
        f"where both arms have >= {MIN_SEEDS} runs; below that every number is one run's and says nothing about "
        "the fine-tuning procedure.", "",
        "## 1. What the data supports", "",
        *_table(["statement", "what these runs say"], [[a, b] for a, b in verdicts(s)]), "",
        "## 2. Instruction following that format cannot explain", "",
        "NLL per response token of held-out Alpaca responses given their own instruction, given another "
        "held-out row's instruction (same format, a fixed derangement), and given nothing. **Gain** = mismatched - "
        "own: how much the model uses *this* instruction; both contexts share the format, so learning the format "
        "alone cannot raise it. Format benefit = none - own. Intervals: rows resampled within one model.", "",
    ]
    rows = []
    for name in sorted(evaluation["models"], key=lambda k: (k != "base", k)):
        m = evaluation["models"][name]
        rows.append([name, _f(m["nll_own"], ".4f"), _f(m["nll_mismatched"], ".4f"), _f(m["nll_none"], ".4f"),
                     f"{_f(m['gain'])} [{_f(m['gain_ci'][0])}, {_f(m['gain_ci'][1])}]", _f(m["format_benefit"]),
                     m["n_rows"]])
    lines += _table(["model", "NLL own", "NLL mismatched", "NLL none", "gain (95% CI, rows)", "format benefit",
                     "rows"], rows)
    lines += ["", "Arms (mean over runs):", ""]
    arm_rows = []
    for v in VARIANTS:
        g = s["arms"][v]["gain"]
        arm_rows.append([v, len(g), _f(sum(g) / len(g)) if g else "n/a", ", ".join(_f(x) for x in g) or "none"])
    lines += _table(["arm", "runs", "mean gain", "per run"], arm_rows)
    lines += [""]
    for key, c in s["gain_contrasts"].items():
        if c["n_a"] and c["n_b"]:
            p = (f"exact p = {c['p_value']:.3f} over {c['n_relabelings']} relabelings of the runs" if c["p_value"]
                 is not None else f"no p-value: {c['no_p_because']}")
            lines.append(f"- gain {key}: {_f(c['difference'])} nats/token; {p}.")
        else:
            lines.append(f"- gain {key}: not computed ({c['n_a']} and {c['n_b']} runs).")
    lines += ["", "## 3. Which neurons enter and leave the ISN sets, in each arm", ""]
    changes = s.get("changes")
    if not changes:
        lines += ["No stores of the runs were analysed (hexainst finetune record, then finetune changes).", ""]
    else:
        for fmt, ch in changes.items():
            label = {"raw": "raw (BOS + instruction: the control's training format)",
                     "recipe": "recipe (the chat turn the tuned and shuffled arms were trained on)"}.get(fmt, fmt)
            lines += [f"### Recorded as {label}: {ch['n_instructions']} instructions, eps {ch['eps']}", ""]
            lines += _table(["run", "J(base, run)", "entering per instruction", "leaving per instruction"],
                            [[k, _f(v["jaccard_with_base"], ".3f"), _f(v["entering"], ".1f"), _f(v["leaving"], ".1f")]
                             for k, v in ch["runs"].items()])
            if ch["by_kind"]:
                lines += ["", "Overlap of the changes between runs (mean per-instruction Jaccard of the entering, "
                              "and of the leaving, neurons; chance = random changes of the same sizes):", ""]
                lines += _table(["pair of runs", "pairs", "entering J", "chance", "leaving J", "chance"],
                                [[k, v["pairs"], _f(v["entering_jaccard"], ".3f"), _f(v["entering_chance"], ".3f"),
                                  _f(v["leaving_jaccard"], ".3f"), _f(v["leaving_chance"], ".3f")]
                                 for k, v in ch["by_kind"].items()])
            lines += [""]
    lines += ["## 4. Runs", ""]
    run_rows = []
    for name in sorted(evaluation["models"]):
        m = evaluation["models"][name]
        if name == "base":
            continue
        tr = m["training"]
        run_rows.append([name, tr["steps"], _f(tr["loss_first8_mean"], ".3f"), _f(tr["loss_last8_mean"], ".3f"),
                         _f(tr["train_runtime"] / 60, ".1f")])
    lines += _table(["run", "steps", "loss (first 8)", "loss (last 8)", "minutes"], run_rows) if run_rows else \
        ["No run has finished."]
    return "\n".join(lines) + "\n"


def write_design_report(out: PathLike, *, evaluation: PathLike, changes: PathLike | None = None, note: str = ""
                        ) -> dict[str, Any]:
    """Write ``out/report.md`` and ``out/results.json`` (replacing only this command's own earlier output)."""
    from hexainst.kernel.outputs import claim_output_dir, write_marker

    ev = read_json(evaluation, what="alteration evaluation")
    missing = [k for k in ("recipe", "rows", "seeds", "models") if not isinstance(ev, dict) or k not in ev]
    if not isinstance(ev, dict) or ev.get("format") != FORMAT or missing:
        raise UserError(f"{evaluation}: not a file written by 'hexainst finetune evaluate' (format {FORMAT}"
                        + (f"; no {', '.join(map(repr, missing))}" if missing else "") + ")")
    ch = read_json(changes, what="ISN changes") if changes is not None else None
    s = summarize(ev, ch)
    out = claim_output_dir(out, OUTPUT_KIND, inputs=[evaluation, changes])
    with staged_dir(out) as tmp:
        write_text(tmp / "report.md", _markdown(s, ev, note))
        write_text(tmp / "results.json", dumps_stable(s))
        write_marker(tmp, OUTPUT_KIND)
    return s
