"""The alteration claims restated on the design's runs: one table for ``docs/demo-alteration``.

The same closed list of verdicts as :mod:`hexainst.analysis.claims` (``holds``; ``holds on the
paper's reading but confounded (<by what>)``; ``does not hold``; ``not comparable here (<why>)``),
the paper's reading beside ours. Every verdict is computed from the numbers of
:func:`~.design_report.summarize` by the rules below (written down so that a verdict can be checked,
never chosen to flatter). "Interval" is the 95% t interval over runs of :mod:`.design` (seeds are the
units: a Welch interval between two arms, a one-sample one for an arm against the base model, which
is one model scored once); "in every format" means both recordings, ``raw`` (BOS + instruction) and
``recipe`` (the chat turn the tuned arm was trained on), when both were recorded.

1. *Fine-tuning changes ISNs substantially (low Jaccard base vs fine-tuned)* (SPEC §2.6, the paper's
   Table 1). Paper's reading: mean J(S_base(I), S_tuned(I)) over the instructions below
   :data:`LOW_JACCARD` (0.5, the threshold of :mod:`hexainst.analysis.claims`), here the mean over
   the tuned runs. Ours: the tuned change against a control fine-tune on the same responses without
   instructions, J(base, control) - J(base, tuned) (positive: instruction tuning moved the sets
   further), its interval over runs. Not comparable without recorded tuned runs. Not comparable
   either when the tuned runs' mean J is at or above 0.5 in any format: the design's fine-tunes are
   short (a recipe of minutes on a CPU), the paper's chat models were trained far longer, so a high J
   says these fine-tunes moved the sets less, not that fine-tuning cannot (our reading is still
   shown). Else holds if, in every format, the interval lies above 0; confounded (any fine-tuning) if
   it does not; not comparable without control runs to compare with.
2. *Routing (ISEs) stays highly correlated across fine-tuning* (Table 2). Not comparable here
   unless the changes carry expert routing; the design records neurons of a dense model.
3. *Fine-tuning on instruction-response pairs teaches the model to use the instruction, beyond the
   answer format* (ours; the paper assumes it of its chat models and does not measure it). Ours: the
   instruction-following gain (NLL of a response given another row's instruction minus given its own;
   same format on both sides): tuned - base (interval over the tuned runs) and tuned - shuffled (Welch
   interval, exact permutation p), each also with the held-out rows resampled (paired across models).
   Not comparable with fewer than :data:`~.design.MIN_SEEDS` tuned or shuffled runs, or without the
   base model's score. Holds if all four intervals (seeds and rows, both contrasts) lie above 0; else
   does not hold. tuned - base comes first: the shuffled arm loses gain below the base model's, so tuned -
   shuffled adds that loss to what instruction tuning taught.
4. *The ISN change is specific to instruction tuning* (ours; the paper reads Table 1's change as
   instruction tuning's without a control). Ours: of what two tuned runs' ISN sets gain alike (the
   mean Jaccard of their entering neurons), the share a control run gains too (mean J(tuned ~
   control) / mean J(tuned ~ tuned)), and the same for a shuffled run, with each tuned run's own ratio
   (their range over seeds). Not comparable without two tuned runs and a control run recorded. Holds
   if, in every format, every tuned run's ratio, to the control and to the shuffled arm (where
   recorded), is below :data:`MOST` (0.5: less than half of the reproducible change is shared by a
   fine-tune without (matched) instructions); else does not hold. 0.5 is the plain reading of "most"
   of the change; it was written down after the first ratios (0.63 to 0.75) were seen, so say how
   robust the verdict is: on the committed runs any line below 0.60 gives the same verdict and only
   one above 0.83 would flip it. "Does not hold" is not "no specific part": the table says whether
   every tuned ~ control pair overlaps less than every tuned ~ tuned pair.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hexainst.analysis.claims import HOLDS, NOT_HOLD, confounded, not_comparable
from hexainst.analysis.results import ClaimRow

from .design import MIN_SEEDS

#: The paper's reading of "low Jaccard" (the threshold :mod:`hexainst.analysis.claims` uses for Table 1).
LOW_JACCARD = 0.5
#: A ratio of overlaps at or above this: most of the reproducible tuned change is shared by the other arm.
MOST = 0.5
#: How each recording format is named in the table.
FORMAT_NAMES = {"raw": "raw", "recipe": "chat format"}


def interval_text(x: dict[str, Any] | None, spec: str = "+.3f") -> str:
    """``+0.219 [+0.210, +0.228]``: a summary's value (its ``mean``, else its ``difference``) and its ``ci``;
    the value alone without one; ``n/a`` without a value."""
    if x is None:
        return "n/a"
    v = x.get("mean", x.get("difference"))
    if v is None:
        return "n/a"
    ci = x.get("ci")
    return format(v, spec) + (f" [{format(ci[0], spec)}, {format(ci[1], spec)}]" if ci else "")


def _fmt_name(fmt: str) -> str:
    return FORMAT_NAMES.get(fmt, fmt)


def claim_table1(s: dict[str, Any]) -> ClaimRow:
    claim = "Fine-tuning changes ISNs substantially (low Jaccard base vs fine-tuned)"
    paper_reading = f"Table 1: mean J(base, fine-tuned) < {LOW_JACCARD} (here the mean over the tuned runs)"
    our_reading = ("the tuned change against a control fine-tune on the same responses without instructions: "
                   "J(base, control) - J(base, tuned), 95% Welch t interval over runs")
    jb = s.get("jaccard_with_base") or {}
    formats = [f for f in jb if (jb[f].get("tuned") or {}).get("n")]
    if not formats:
        return ClaimRow(claim, paper_reading, "n/a", our_reading, "n/a",
                        not_comparable("no tuned run recorded (hexainst finetune record, then changes)"))
    paper_value = "; ".join(f"{_fmt_name(f)} {jb[f]['tuned']['mean']:.3f} (runs {jb[f]['tuned']['min']:.3f} to "
                            f"{jb[f]['tuned']['max']:.3f})" for f in formats)
    contrasts = s.get("change_contrasts") or {}
    with_control = [f for f in formats if (contrasts.get(f) or {}).get("n_b")]
    our_value = "; ".join(f"{_fmt_name(f)} {interval_text(contrasts[f], '+.3f')} "
                          f"(control {jb[f]['control']['mean']:.3f})" for f in with_control) or "n/a"
    if any(jb[f]["tuned"]["mean"] >= LOW_JACCARD for f in formats):
        return ClaimRow(claim, paper_reading, paper_value, our_reading, our_value,
                        not_comparable("these short fine-tunes move the ISN sets less than the paper's far longer "
                                       "chat training: a high J here does not refute a low J there"))
    if len(with_control) < len(formats):
        return ClaimRow(claim, paper_reading, paper_value, our_reading, our_value,
                        not_comparable("no control run recorded in every format"))
    above = all(contrasts[f]["ci"] is not None and contrasts[f]["ci"][0] > 0 for f in formats)
    verdict = HOLDS if above else confounded("any fine-tuning: a control fine-tune without instructions changes them "
                                             "as much")
    return ClaimRow(claim, paper_reading, paper_value, our_reading, our_value, verdict)


def claim_table2(s: dict[str, Any], model: str) -> ClaimRow:
    claim = "Routing (ISEs) stays highly correlated across fine-tuning"
    paper_reading = "Table 2: mean Pearson r of expert routing, base vs fine-tuned, high"
    our_reading = "the same against the control fine-tune"
    routed = any("routing" in (ch or {}) for ch in (s.get("changes") or {}).values())
    if not routed:
        return ClaimRow(claim, paper_reading, "n/a", our_reading, "n/a",
                        not_comparable(f"{model} is a dense model: its recordings hold no expert routing"))
    return ClaimRow(claim, paper_reading, "n/a", our_reading, "n/a",  # pragma: no cover - no MoE recipe yet
                    not_comparable("the design does not compare routing yet"))


def claim_following(s: dict[str, Any]) -> ClaimRow:
    claim = "Fine-tuning on instruction-response pairs teaches the model to use the instruction, beyond the answer format"
    paper_reading = "assumed of the chat models, not measured"
    our_reading = ("gain = NLL of the response given another row's instruction - given its own, same format: "
                   "tuned - base (95% t interval over the tuned runs), tuned - shuffled (95% Welch t interval, exact p); "
                   "each also with the held-out rows resampled")
    n = s["runs_per_arm"]
    vs_base = (s.get("gain_vs_base") or {}).get("tuned")
    c = s["gain_contrasts"]["tuned - shuffled"]
    rows = s.get("row_intervals") or {}
    row_b, row_s = rows.get("tuned - base"), rows.get("tuned - shuffled")

    def by_rows(r: dict[str, Any] | None) -> str:
        return f" (rows resampled [{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}])" if r else ""

    parts = []
    if vs_base is not None and vs_base["n"]:
        parts.append(f"tuned - base {interval_text(vs_base, '+.4f')}{by_rows(row_b)}")
    if n["tuned"] and n["shuffled"]:
        parts.append(f"tuned - shuffled {interval_text(c, '+.4f')}{by_rows(row_s)}"
                     + (f", {c['p_text']}" if c.get("p_text") else ""))
    value = "nats/token: " + "; ".join(parts) if parts else "n/a"
    if vs_base is None:
        return ClaimRow(claim, paper_reading, "n/a", our_reading, value, not_comparable("the base model is not scored"))
    if min(n["tuned"], n["shuffled"]) < MIN_SEEDS:
        return ClaimRow(claim, paper_reading, "n/a", our_reading, value,
                        not_comparable(f"{n['tuned']} tuned and {n['shuffled']} shuffled runs; an interval over runs "
                                       f"needs >= {MIN_SEEDS} each"))
    above = all(x is not None and x[0] > 0 for x in (vs_base["ci"], c["ci"], (row_b or {}).get("ci"),
                                                     (row_s or {}).get("ci")))
    return ClaimRow(claim, paper_reading, "n/a", our_reading, value, HOLDS if above else NOT_HOLD)


def claim_specific(s: dict[str, Any]) -> ClaimRow:
    claim = "The ISN change is specific to instruction tuning"
    paper_reading = "Table 1's change read as instruction tuning's (no control)"
    our_reading = ("share of what two tuned runs' ISN sets gain alike (entering neurons, mean Jaccard) that a control "
                   "run (a shuffled run) gains too: J(tuned ~ control) / J(tuned ~ tuned), range over the tuned runs")
    ratios = s.get("overlap_ratios") or {}
    formats = [f for f in ratios if ratios[f].get("control") is not None]
    if not formats:
        return ClaimRow(claim, paper_reading, "n/a", our_reading, "n/a",
                        not_comparable("needs two tuned runs and a control run recorded"))
    parts = []
    for f in formats:
        shown = []
        for other in ("control", "shuffled"):
            r = ratios[f].get(other)
            if r is not None:
                span = f" (tuned runs {r['range'][0]:.2f} to {r['range'][1]:.2f})" if r["range"] else ""
                shown.append(f"{other} {r['ratio']:.2f}{span}")
        r = ratios[f]["control"]
        apart = (f"; all {r['pairs_across']} tuned ~ control pairs below all {r['pairs_within']} tuned ~ tuned pairs"
                 if r["across_range"][1] < r["within_range"][0] else "")
        parts.append(f"{_fmt_name(f)}: {', '.join(shown)} (J tuned ~ control {r['across']:.3f} vs tuned ~ tuned "
                     f"{r['within']:.3f}{apart})")
    value = "; ".join(parts)
    highest = max(r["range"][1] if r["range"] else r["ratio"] for f in formats for r in ratios[f].values()
                  if r is not None)
    return ClaimRow(claim, paper_reading, "n/a", our_reading, value, HOLDS if highest < MOST else NOT_HOLD)


def restate_claims(s: dict[str, Any], model: str) -> list[dict[str, str]]:
    """The claims table of the design (see the module docstring for the rules), as plain dicts."""
    rows = [claim_table1(s), claim_table2(s, model), claim_following(s), claim_specific(s)]
    return [dataclasses.asdict(r) for r in rows]
