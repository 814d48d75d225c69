"""The paper's claims (SPEC §2.6) restated on the controls: one table per report.

Each row puts the paper's reading (what its figure shows, read as the paper read it) beside ours
(the same quantity as excess over the untrained baseline, beyond length, with its interval), and
gives one verdict from a closed list. The table is read off ``results.json``'s content alone (no
recording, no store), so a rule changed here re-renders every committed report
(:func:`hexainst.analysis.render.rerender`):

- ``holds``;
- ``holds on the paper's reading but confounded (<by what>)``, naming the confound: length,
  lexical overlap, untrained baseline, or one layer;
- ``does not hold``;
- ``not comparable here (<why>)``.

Rules (written down so that a verdict can be checked, never chosen to flatter):

1. *Same-category > cross-category.* Paper: Fig. 3's diagonal above its off-diagonal, free label
   shuffle p < 0.05. Ours: the excess (model - untrained mean) of the length-matched contrast with
   its cluster-bootstrap CI. Does not hold if the paper's reading fails; confounded (untrained
   baseline) if the unmatched excess CI reaches 0; confounded (length) if the length-matched
   excess CI reaches 0; confounded (scale) if the model's same/cross *ratio* on Fig. 3's matrix
   (mean diagonal / mean off-diagonal) is not above the untrained seeds' mean ratio: the excess is
   a difference of Jaccards, and a model whose sets overlap more overall (trained sets share a
   core of always-firing neurons) gets a larger difference from a smaller relative contrast; the
   two scales disagreeing is a finding, not a tie-break; else holds. Without untrained stores:
   not comparable here.
2. *Strongest for CLS, SUM, CODE, MATH.* Paper: the four darkest diagonal cells of Fig. 3. Ours:
   the four largest per-category length-matched excesses. Does not hold if the paper's four differ;
   holds if ours are the same four; else confounded (length) when those four are also the four
   longest categories by mean T, otherwise confounded (untrained baseline).
3. *Dense models: many ISNs early, few in the middle, many at the end.* Paper: mean ISNs per layer
   over all instructions in thirds of the layers, first and last third above the middle. Ours: the
   same on the excess profile (model - untrained mean), and with any one layer left out. Does not
   hold if the paper's reading fails (ours is still computed and shown: the untrained and excess
   thirds, and whether the model's shape survives leaving any one layer out); confounded
   (untrained baseline) if the untrained profile has the same shape; confounded (one layer) if
   leaving one layer out breaks it; else holds.
4. *Fine-tuning changes ISNs substantially, routing stays correlated* (base vs fine-tuned): not
   comparable in a single-model run; with ``--compare`` the paper's reading is given, and ours
   needs a control fine-tune (``hexainst finetune``; see docs/demo-alteration).
5. *A category's ISNs serve that category* (zeroing them hurts its instructions more than others'). The paper's
   reading (the diagonal of a damage matrix whose sets were built from the evaluated instructions
   too) is circular and is not computed. Ours: the held-out check (``--causal``): holds if the
   exact assignment test gives p < 0.05 and the specificity's bootstrap CI lies above 0; else
   does not hold. The specificity is the own set's damage minus the mean of the other sets'; how
   many categories' own set is the *most* damaging is shown beside it. Without ``--causal``: not
   comparable here.

Every rule reads the run's results as ``results.json`` holds them (a dict; ``r["model"]`` is the
first model's section, ``r["controls"]`` the controls', ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hexainst.analysis.causal import heldout_p_text, most_damaging_test
from hexainst.analysis.nulls import format_p
from hexainst.analysis.results import ClaimRow
from hexainst.kernel.vocab import SHORT_NAMES

#: results.json's content (see :func:`hexainst.analysis.render.results_json`).
Results = dict[str, Any]

HOLDS = "holds"
NOT_HOLD = "does not hold"
#: The paper's strongest categories (SPEC §2.6).
PAPER_STRONGEST = ("classification", "summarization", "code", "math")


def confounded(by: str) -> str:
    return f"holds on the paper's reading but confounded ({by})"


def not_comparable(why: str) -> str:
    return f"not comparable here ({why})"


def _ci(v: float, lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None or lo != lo:
        return f"{v:+.4f}"
    return f"{v:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _headline(r: Results, name: str) -> dict[str, Any] | None:
    ctl = r.get("controls")
    if not ctl:
        return None
    return next((h for h in ctl["headlines"] if h["name"] == name), None)


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)


def json_matrix(values: Any) -> np.ndarray:
    """A category matrix as results.json holds it (lists, null for NaN): float64 [m, m]."""
    return np.asarray([[_nan(v) for v in row] for row in values], dtype=np.float64)


def cross_level(matrix: np.ndarray) -> float:
    """A category matrix's mean off-diagonal cell: its cross-category level (NaN with one category)."""
    off = matrix[~np.eye(matrix.shape[0], dtype=bool)]
    return float(np.nanmean(off)) if off.size else float("nan")


def same_cross_ratio(matrix: Any) -> float:
    """Fig. 3's diagonal mean over its off-diagonal mean (the contrast on a ratio scale); NaN if undefined."""
    m = json_matrix(matrix)
    o = cross_level(m)
    return float(np.nanmean(np.diagonal(m))) / o if o > 0 else float("nan")


def scale_readings(r: Results) -> dict[str, Any] | None:
    """The same/cross ratio of the model, each untrained seed and the lexical baseline (Fig. 3's matrices),
    beside the difference the excess is made of, and the cross-category levels of the model and the untrained
    mean; None without untrained stores."""
    ctl = r.get("controls")
    if not ctl or not ctl.get("untrained"):
        return None
    model = same_cross_ratio(ctl["model_matrix"])
    seeds = [same_cross_ratio(u["matrix"]) for u in ctl["untrained"]]
    lexical = same_cross_ratio(ctl["lexical"]["matrix"]) if ctl.get("lexical") else None
    mean_matrix = ctl.get("untrained_mean_matrix")
    return {"model": model, "untrained": seeds, "untrained_mean": float(np.mean(seeds)), "lexical": lexical,
            "excess": model - float(np.mean(seeds)), "model_cross": cross_level(json_matrix(ctl["model_matrix"])),
            "untrained_cross": float("nan") if mean_matrix is None else cross_level(json_matrix(mean_matrix))}


def thirds(profile: np.ndarray) -> tuple[float, float, float]:
    """Mean of the first, middle and last third of a per-layer profile (layers split as evenly as possible)."""
    parts = np.array_split(np.asarray(profile, dtype=np.float64), 3)
    return tuple(float(p.mean()) if p.size else float("nan") for p in parts)  # type: ignore[return-value]


def u_shaped(profile: np.ndarray) -> bool:
    """First and last third above the middle third."""
    return _shape(thirds(profile)) == "U-shaped"


def _shape(t: tuple[float, float, float]) -> str:
    """A profile's thirds in words: U-shaped (first and last third above the middle), peaks in the middle,
    falls or rises."""
    a, b, c = t
    if a > b and c > b:
        return "U-shaped"
    if b > a and b > c:
        return "peaks in the middle"
    return "falls" if a > c else "rises"


def _falls(profile: np.ndarray) -> bool:
    """The first third above the last."""
    a, _, c = thirds(profile)
    return a > c


def _claim_diagonal(r: Results, label: str) -> ClaimRow:
    perm = r[label]["jaccard"]["permutation"]
    diff, p = _nan(perm["difference"]), _nan(perm["p_value"])
    paper_ok = diff == diff and diff > 0 and p < 0.05
    paper_value = (f"diagonal {_nan(perm['diagonal']):.4f} vs off {_nan(perm['off_diagonal']):.4f} "
                   f"({format_p(p, perm['n_permutations'])})")
    claim = "Same-category ISN Jaccard higher than cross-category (darker diagonal)"
    paper_reading = "Fig. 3 diagonal > off-diagonal (free label shuffle)"
    our_reading = "excess over the untrained model (mean of seeds), length-matched, 95% cluster-bootstrap CI"
    un, lm = _headline(r, "unmatched"), _headline(r, "length_matched")
    if not paper_ok:
        return ClaimRow(claim, paper_reading, paper_value, our_reading, "n/a", NOT_HOLD)
    if un is None or un["values"].get("excess") is None or lm is None:
        return ClaimRow(claim, paper_reading, paper_value, our_reading, "n/a",
                        not_comparable("no untrained baseline given (--untrained)"))
    ue = (un["values"]["excess"], un["ci_low"].get("excess"), un["ci_high"].get("excess"))
    le = (lm["values"]["excess"], lm["ci_low"].get("excess"), lm["ci_high"].get("excess"))
    value = f"unmatched {_ci(*ue)}; length-matched {_ci(*le)}"
    if un["values"].get("lexical") is not None:
        value += f"; the lexical baseline alone: {un['values']['lexical']:+.4f} unmatched"
    scale = scale_readings(r)
    if scale is not None:
        value += (f"; same/cross ratio: model {scale['model']:.3f}, untrained "
                  + " / ".join(f"{x:.3f}" for x in scale["untrained"]))
    if not _nan(ue[1]) > 0:
        verdict = confounded("untrained baseline")
    elif not _nan(le[1]) > 0:
        verdict = confounded("length")
    elif scale is not None and not scale["model"] > scale["untrained_mean"]:
        verdict = confounded("scale: on the same/cross ratio the untrained model shows as much contrast or "
                             "more; the excess comes with the trained model's higher overall overlap")
    else:
        verdict = HOLDS
    return ClaimRow(claim, paper_reading, paper_value, our_reading, value, verdict)


def _claim_strongest(r: Results, label: str) -> ClaimRow:
    cats = r[label]["jaccard"]["categories"]
    short = [SHORT_NAMES.get(c, c) for c in cats]
    diag = np.array([_nan(r[label]["jaccard"]["matrix"][i][i]) for i in range(len(cats))], dtype=np.float64)
    claim = "Strongest for CLS, SUM, CODE, MATH"
    paper_reading = "the four darkest diagonal cells of Fig. 3"
    our_reading = "the four largest per-category length-matched excesses over the untrained model"
    want = {c for c in PAPER_STRONGEST if c in cats}
    if len(cats) < 5 or len(want) < 4:
        return ClaimRow(claim, paper_reading, "n/a", our_reading, "n/a",
                        not_comparable("fewer than the six categories analysed"))
    top = [cats[i] for i in np.argsort(-diag, kind="stable")[:4]]
    paper_value = "top four: " + ", ".join(SHORT_NAMES.get(c, c) for c in top)
    if set(top) != want:
        return ClaimRow(claim, paper_reading, paper_value, our_reading, "n/a", NOT_HOLD)
    lm = _headline(r, "length_matched")
    if lm is None or "excess" not in (lm.get("per_category") or {}):
        return ClaimRow(claim, paper_reading, paper_value, our_reading, "n/a",
                        not_comparable("no untrained baseline given (--untrained)"))
    ex = np.array([_nan(v) for v in lm["per_category"]["excess"]], dtype=np.float64)
    order = [i for i in np.argsort(-np.where(np.isnan(ex), -np.inf, ex), kind="stable")]
    ours = [cats[i] for i in order[:4]]
    our_value = ", ".join(f"{short[i]} {ex[i]:+.4f}" for i in order)
    lengths = r["lengths"][label]
    longest = sorted(cats, key=lambda c: -lengths[c]["mean"])[:4]
    if set(ours) == want:
        verdict = HOLDS
    elif set(longest) == want:
        verdict = confounded("length: they are the four longest categories")
    else:
        verdict = confounded("untrained baseline")
    return ClaimRow(claim, paper_reading, paper_value, our_reading, our_value, verdict)


def _claim_layers(r: Results, label: str) -> ClaimRow:
    m = r[label]
    claim = "Dense models: many ISNs in early layers, few in the middle, many at the end"
    paper_reading = "mean ISNs per layer in thirds of the layers: first and last above the middle"
    our_reading = "the same on the excess over the untrained model, and with any one layer left out"
    if m["is_moe"]:
        return ClaimRow(claim, paper_reading, "n/a", our_reading, "n/a", not_comparable("an MoE model"))
    if m["n_layers"] < 3:
        return ClaimRow(claim, paper_reading, "n/a", our_reading, "n/a", not_comparable("fewer than 3 layers"))
    cats = m["jaccard"]["categories"]
    n = r["instructions"]["per_category"]
    weights = np.array([n[c] for c in cats], dtype=np.float64)

    def profile_of(per_layer: dict[str, Any]) -> np.ndarray:
        return np.average(np.array([[_nan(v) for v in per_layer[x]] for x in cats], dtype=np.float64), axis=0,
                          weights=weights)

    profile = profile_of(m["isn_per_layer"])
    a, b, c = thirds(profile)
    paper_value = f"thirds {a:.1f} / {b:.1f} / {c:.1f}"
    paper_ok = u_shaped(profile)
    if not paper_ok:
        paper_value += f" (not U-shaped: {'falls' if a > c else 'rises'})"
    ctl = r.get("controls")
    if not ctl or not ctl.get("untrained_per_layer"):
        return ClaimRow(claim, paper_reading, paper_value, our_reading, "n/a",
                        NOT_HOLD if not paper_ok else not_comparable("no untrained baseline given (--untrained)"))
    untrained = profile_of(ctl["untrained_per_layer"])
    excess = profile - untrained
    ua, ub, uc = thirds(untrained)
    ea, eb, ec = thirds(excess)
    our_value = f"untrained thirds {ua:.1f} / {ub:.1f} / {uc:.1f}; excess thirds {ea:+.1f} / {eb:+.1f} / {ec:+.1f}"
    if not paper_ok:
        # the model's own shape (falls or rises) and whether one layer carries it
        falls = a > c
        drop = [j for j in range(profile.size) if _falls(np.delete(profile, j)) != falls]
        if drop:
            t = thirds(np.delete(profile, drop[0]))
            our_value += (f"; the model's {'fall' if falls else 'rise'} rests on layer {drop[0]} "
                          f"(without it thirds {t[0]:.1f} / {t[1]:.1f} / {t[2]:.1f}: {_shape(t)})")
        return ClaimRow(claim, paper_reading, paper_value, our_reading, our_value, NOT_HOLD)
    drop = [j for j in range(profile.size) if not u_shaped(np.delete(profile, j))]
    if drop:
        our_value += f"; without layer {drop[0]} not U-shaped"
    if u_shaped(untrained) or not u_shaped(excess):
        verdict = confounded("untrained baseline")
    elif drop:
        verdict = confounded(f"one layer: without layer {drop[0]} it does not hold")
    else:
        verdict = HOLDS
    return ClaimRow(claim, paper_reading, paper_value, our_reading, our_value, verdict)


def _claim_alteration(r: Results) -> list[ClaimRow]:
    claim1 = "Fine-tuning changes ISNs substantially (low Jaccard base vs fine-tuned)"
    claim2 = "Routing (ISEs) stays highly correlated across fine-tuning"
    our = "against a control fine-tune on the same rows without instructions"
    alt = r.get("alteration")
    if alt is None:
        why = not_comparable("one model in this run; base vs fine-tuned needs --compare")
        return [ClaimRow(claim1, "Table 1 mean Jaccard", "n/a", our, "n/a", why),
                ClaimRow(claim2, "Table 2 mean Pearson r", "n/a", our, "n/a", why)]
    overall = _nan(alt["table1_overall"])
    rows = [ClaimRow(claim1, "Table 1 mean Jaccard < 0.5", f"{overall:.3f}", our, "n/a",
                     not_comparable("this run has no control fine-tune; see docs/demo-alteration")
                     if overall < 0.5 else NOT_HOLD)]
    if alt.get("table2_pearson") is None:
        rows.append(ClaimRow(claim2, "Table 2 mean Pearson r", "n/a", our, "n/a", not_comparable("a dense model")))
    else:
        pr = float(np.nanmean([_nan(v["mean"]) for v in alt["table2_pearson"].values()]))
        rows.append(ClaimRow(claim2, "Table 2 mean Pearson r high", f"{pr:.3f}", our, "n/a",
                             not_comparable("this run has no control fine-tune")))
    return rows


def _claim_causal(r: Results) -> ClaimRow:
    claim = ("A category's ISNs serve that category (zeroing them hurts its instructions more than zeroing "
             "other categories' ISNs)")
    paper_reading = "own-category damage above the others' (sets built from the evaluated instructions too)"
    paper_value = "n/a (circular: not computed)"
    our_reading = ("held out: sets from other instructions, rate-matched random neurons, exact test over the "
                   "assignment of sets to categories, bootstrap CI of the specificity")
    c = r.get("causal")
    if c is None:
        return ClaimRow(claim, paper_reading, paper_value, our_reading, "n/a",
                        not_comparable("no causal check in this run (--causal)"))
    ranks = c.get("own_set_rank") or []
    value = (f"specificity (own set minus the mean of the others) {_ci(c['specificity'], c['ci_low'], c['ci_high'])}"
             f" nats/token; {heldout_p_text(c['p_value'], c['n_assignments'])}; own set the most damaging in "
             f"{sum(1 for k in ranks if k == 1)} of {len(ranks)} categories")
    if c.get("effect") and len(c["effect"]) <= 8:
        count, p_most, _ = most_damaging_test(c["effect"])
        value += f" (chance 1; {count} or more: p = {p_most:.4f})"
    verdict = HOLDS if _nan(c["p_value"]) < 0.05 and _nan(c["ci_low"]) > 0 else NOT_HOLD
    return ClaimRow(claim, paper_reading, paper_value, our_reading, value, verdict)


def first_label(r: Results) -> str:
    """The first model's label in results.json ("model", or "base" when base and fine-tuned are compared)."""
    return next(k for k in ("model", "base") if k in r)


def restate_claims(r: Results) -> list[ClaimRow]:
    """The claims table of a run, from results.json's content (see the module docstring for the rules)."""
    label = first_label(r)
    if len(r[label]["jaccard"]["categories"]) < 2:
        return []
    return [_claim_diagonal(r, label), _claim_strongest(r, label), _claim_layers(r, label),
            *_claim_alteration(r), _claim_causal(r)]
