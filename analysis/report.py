"""``report.md`` of a SPARCOM run, rendered from its results and tables (no computation here).

The layout is the template ``templates/report.md.j2``; this module decides what the numbers say
(the verdict of a test, the plain reading of the excess over the untrained model) and hands the
template results.json's content, the tables' Markdown and those few sentences.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hexainst.analysis.causal import heldout_markdown
from hexainst.analysis.claims import scale_readings
from hexainst.analysis.nulls import format_p
from hexainst.kernel.templating import environment
from hexainst.kernel.vocab import SHORT_NAMES

#: The report's templates (package data of hexainst.analysis).
TEMPLATES = Path(__file__).resolve().parent / "templates"


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _p(p: float | None) -> str:
    return "n/a" if p is None else (f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}")


def _h(ctl: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((h for h in ctl.get("headlines", []) if h["name"] == name), None)


def _ci(h: dict[str, Any], col: str) -> str:
    v = h["values"].get(col)
    lo, hi = h["ci_low"].get(col), h["ci_high"].get(col)
    if v is None:
        return "n/a"
    return f"{v:+.4f}" if lo is None or hi is None else f"{v:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _plain_excess(ctl: dict[str, Any]) -> str:
    """What the excess means, in plain words: its share of the model's effect per statistic, and
    which intervals reach zero (plainly when it is small)."""
    parts, zero, shares = [], [], []
    for name, text in (("unmatched", "unmatched"), ("length_matched", "length-matched"),
                       ("length_adjusted", "by the length regression"), ("cross_source", "across the source halves")):
        h = _h(ctl, name)
        if h is None or h["values"].get("excess") is None or not h["values"].get("model"):
            continue
        share = h["values"]["excess"] / h["values"]["model"]
        shares.append(share)
        parts.append(f"{share:.0%} {text}")
        lo = h["ci_low"].get("excess")
        if lo is None or lo <= 0:
            zero.append(text)
    if not shares:
        return ""
    out = f"The excess is {', '.join(parts)} of the model's own effect."
    if zero:
        out += f" Its interval reaches zero {', '.join(zero)}: there the effect is not distinguishable from an untrained model's."
    if min(shares) < 0.5:
        out += (" It is small: much of what Fig. 3 shows is input structure (length, token overlap) that the same "
                "architecture with random weights turns into overlapping ISN sets too; only the excess is evidence "
                "of learned, category-specific function.")
    else:
        out += " Most of the effect is beyond the untrained model."
    return out


def _verdict(perm: dict[str, Any]) -> str | None:
    """Whether the same-category Jaccard is above the cross-category one; None when there is no difference."""
    if perm["difference"] is None:
        return None
    return "higher" if perm["difference"] > 0 else "not higher"


def _untrained_headlines(ctl: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The unmatched and length-matched headlines, when an untrained baseline was given."""
    if not ctl:
        return None
    un, lm = _h(ctl, "unmatched"), _h(ctl, "length_matched")
    if ctl.get("untrained") and un is not None and lm is not None:
        return un, lm
    return None


def _scale_text(r: dict[str, Any]) -> str:
    """Whether the excess keeps its sign on a ratio scale (same/cross on Fig. 3's matrices), in plain words."""
    s = scale_readings(r)
    if s is None:
        return ""
    seeds = " / ".join(f"{x:.3f}" for x in s["untrained"])
    lexical = "" if s["lexical"] is None else f", the lexical baseline {s['lexical']:.3f}"
    level_m, level_u = s["model_cross"], s["untrained_cross"]
    head = (f"The excess is a difference of Jaccards, so it depends on each model's overall overlap. On a ratio "
            f"scale (same-category over cross-category mean Jaccard, Fig. 3's matrices) the model reads "
            f"**{s['model']:.3f}**, the untrained seeds {seeds}{lexical}; cross-category Jaccard is "
            f"{level_m:.3f} for the model and {level_u:.3f} untrained ({level_m / level_u:.1f}x). ")
    if s["excess"] > 0:
        return head + (f"On the ratio too the model is above the untrained mean (by {s['excess']:.3f}): the two scales "
                       "agree in sign.")
    return head + ("On the ratio the model shows *less* category contrast than the untrained model: the positive "
                   "excess comes with a higher overall overlap, and relative to that level the trained model's "
                   "category contrast is smaller than the untrained model's. Neither scale is privileged; the "
                   "claims table counts the disagreement as a confound (scale).")


def _few_clusters_text(ctl: dict[str, Any]) -> str:
    few = [SHORT_NAMES.get(c, c) for c, n in ctl.get("clusters_per_category", {}).items() if n <= 3]
    if not few or not ctl.get("clusters_per_category"):
        return ""
    return (f" {', '.join(few)} {'has' if len(few) == 1 else 'have'} 3 clusters or fewer: a percentile interval "
            "over so few clusters is lopsided (the estimate can sit near an edge) and depends on the interval "
            "method; read those categories' intervals as rough.")


_ENV = environment(TEMPLATES, filters={"fmt": _fmt, "p": _p, "format_p": format_p,
                                       "short": lambda c: SHORT_NAMES.get(c, c)},
                   functions={"ci": _ci})


def render_report(results: dict[str, Any], tables: dict[str, str]) -> str:
    """The Markdown report. ``tables``: table key -> Markdown text (as written under tables/).

    It renders from results.json's content alone, so that :func:`hexainst.analysis.render.rerender` works
    from the folder; a new analysis adds its section to the template (and what its numbers mean here)."""
    labels = [k for k in ("model", "base", "fine-tuned") if k in results]
    ctl = results.get("controls")
    untrained = _untrained_headlines(ctl)
    return _ENV.get_template("report.md.j2").render(
        r=results,
        tables=tables,
        labels=labels,
        ctl=ctl,
        untrained_headlines=untrained,
        plain_excess=_plain_excess(ctl) if untrained else "",
        scale_text=_scale_text(results) if untrained else "",
        few_clusters=_few_clusters_text(ctl) if ctl else "",
        verdicts={label: _verdict(results[label]["jaccard"]["permutation"]) for label in labels},
        routing=any(f"routing_pearson_{label}" in tables for label in labels),
        causal_text="\n".join(heldout_markdown(results["causal"])) if "causal" in results else "",
    )


def dumps(data: Any) -> str:
    """results.json's text (sorted keys, one space of indent)."""
    return json.dumps(data, indent=1, sort_keys=True) + "\n"
