"""The alteration design's statistics over runs and its claims table, on made-up evaluations (no model).

Intervals against their textbook formulas; the exact p's floor text; the overlap ratio and the paired
row bootstrap on planted numbers; each claim's verdict flips where its rule says it must.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hexainst.analysis.finetune.design import (
    FORMAT,
    exact_p_text,
    following_summary,
    mean_interval,
    overlap_ratio,
    row_bootstrap_difference,
    seed_test,
    welch_interval,
)
from hexainst.analysis.finetune.design_claims import LOW_JACCARD, MOST
from hexainst.analysis.finetune.design_report import lead, render_markdown, summarize

CLOSED = ("holds", "holds on the paper's reading but confounded (", "does not hold", "not comparable here (")


def test_mean_interval_is_the_t_interval_of_the_runs():
    x = [0.6676, 0.6605, 0.6648]
    got = mean_interval(x, minus=0.4454)
    d = np.asarray(x) - 0.4454
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert got["mean"] == pytest.approx(d.mean())
    assert got["ci"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert got["t_quantile"] == pytest.approx(4.302652729911275)
    assert (got["min"], got["max"]) == pytest.approx((d.min(), d.max()))
    assert mean_interval([0.5])["ci"] is None and mean_interval([0.5, 0.5])["ci"] is None  # no spread: no interval


def test_welch_interval_against_its_formula():
    a, b = np.array([0.6676, 0.6605, 0.6648]), np.array([0.1919, 0.2063, 0.2192])
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    got = welch_interval(a, b)
    diff = a.mean() - b.mean()
    assert got["ci"] == pytest.approx([diff - half, diff + half]) and got["df"] == pytest.approx(df)
    assert got["range"] == pytest.approx([(a[:, None] - b).min(), (a[:, None] - b).max()])


def test_exact_p_at_its_floor_says_so():
    assert exact_p_text(0.05, 20) == "p = 0.0500 (1/20: the smallest possible in an exact test over all 20 relabelings of the runs)"
    assert exact_p_text(0.15, 20) == "p = 0.1500"
    assert exact_p_text(None, None) == "p n/a"
    test = seed_test([1.0, 1.1, 1.2], [0.1, 0.2, 0.3])
    assert test["p_value"] == pytest.approx(1 / 20) and test["p_text"].startswith("p = 0.0500 (1/20")
    assert seed_test([1.0, 0.2, 1.2], [0.1, 1.1, 0.3])["p_text"].startswith("p = ")


def _changes(j_tc: float, j_tt: float, j_ts: float, *, jb_tuned: float = 0.7, jb_control: float = 0.7) -> dict:
    """A made-up change_overlap result: 3 seeds of tuned and control and shuffled, every pair of a kind
    the given entering Jaccard (tuned-s0's pairs 0.02 higher, so the per-run ratios differ)."""
    runs = {f"{v}-s{k}": {"jaccard_with_base": {"tuned": jb_tuned, "control": jb_control}.get(v, 0.7) + 0.002 * k,
                          "entering": 100.0, "leaving": 100.0} for v in ("tuned", "control", "shuffled") for k in range(3)}
    level = {("tuned", "tuned"): j_tt, ("tuned", "control"): j_tc, ("tuned", "shuffled"): j_ts}
    pairs, kinds = {}, {}
    names = sorted(runs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            va, vb = a.rsplit("-s", 1)[0], b.rsplit("-s", 1)[0]
            key = tuple(sorted((va, vb), key=("tuned", "control", "shuffled").index))
            j = level.get(key, 0.3) + (0.02 if "tuned-s0" in (a, b) else 0.0)
            kind = f"{va} ~ {va} (other seed)" if va == vb else f"{key[0]} ~ {key[1]}"
            pairs[f"{a} ~ {b}"] = {"runs": [a, b], "kind": kind, "entering_jaccard": j, "leaving_jaccard": 0.5,
                                   "entering_chance": 0.001, "leaving_chance": 0.08}
            k = kinds.setdefault(kind, {"pairs": 0, "j": []})
            k["pairs"] += 1
            k["j"].append(j)
    by_kind = {k: {"pairs": v["pairs"], "entering_jaccard": float(np.mean(v["j"])), "leaving_jaccard": 0.5,
                   "entering_chance": 0.001, "leaving_chance": 0.08} for k, v in kinds.items()}
    return {"n_instructions": 10, "eps": 0.01, "runs": runs, "pairs": pairs, "by_kind": by_kind}


def test_overlap_ratio_is_across_over_within_and_per_tuned_run():
    ch = _changes(0.2, 0.4, 0.3)
    r = overlap_ratio(ch, "control")
    assert r["within"] == pytest.approx((0.42 + 0.42 + 0.40) / 3)
    assert r["across"] == pytest.approx((3 * 0.22 + 6 * 0.2) / 9)
    assert r["ratio"] == pytest.approx(r["across"] / r["within"])
    assert r["per_run"]["tuned-s0"] == pytest.approx(0.22 / 0.42)
    assert r["per_run"]["tuned-s1"] == pytest.approx(0.2 / 0.41)
    assert r["range"] == pytest.approx([0.2 / 0.41, 0.22 / 0.42])
    assert overlap_ratio({"pairs": {}}, "control") is None


def _entry(gain_per_row: np.ndarray, *, variant: str | None = None, seed: int | None = None) -> dict:
    """An evaluate_runs entry whose rows have 10 response tokens each and the given per-token gain."""
    n = gain_per_row.size
    own = np.full(n, 20.0)
    entry = {"rows": list(range(n)), "partners": [(i + 1) % n for i in range(n)], "n_tokens": [10] * n,
             "own": own.tolist(), "mismatched": (own + 10 * gain_per_row).tolist(), "none": (own + 5).tolist()}
    entry.update(following_summary(entry))
    if variant is not None:
        entry.update(variant=variant, seed=seed, training={"steps": 10, "loss_first8_mean": 2.0, "loss_last8_mean": 1.5,
                                                           "train_runtime": 60.0})
    return entry


def test_row_bootstrap_is_paired_and_centred_on_the_difference():
    rng = np.random.default_rng(1)
    base = rng.normal(0.4, 0.3, 50)
    models = {"base": _entry(base), "tuned-s0": _entry(base + 0.2), "tuned-s1": _entry(base + 0.2)}
    got = row_bootstrap_difference(models, ["tuned-s0", "tuned-s1"], ["base"])
    assert got["difference"] == pytest.approx(0.2)
    assert got["ci"] == pytest.approx([0.2, 0.2])  # a constant shift on every row: paired resamples all agree
    models["other"] = dict(_entry(base), rows=list(range(1, 51)))
    assert row_bootstrap_difference(models, ["other"], ["base"]) is None
    assert row_bootstrap_difference(models, [], ["base"]) is None


def _evaluation(shift_tuned: float, shift_shuffled: float, *, seeds=(0, 1, 2), n=60) -> dict:
    rng = np.random.default_rng(7)
    base = rng.normal(0.4, 0.3, n)
    models = {"base": _entry(base)}
    for k in seeds:
        noise = rng.normal(0, 0.02, n)
        models[f"tuned-s{k}"] = _entry(base + shift_tuned + noise, variant="tuned", seed=k)
        models[f"control-s{k}"] = _entry(base - 0.05 + noise, variant="control", seed=k)
        models[f"shuffled-s{k}"] = _entry(base + shift_shuffled + noise, variant="shuffled", seed=k)
    return {"format": FORMAT, "recipe": {"name": "made-up", "model": "a-dense-model",
                                         "training": {"steps": 10, "batch_size": 2}},
            "rows": {"eval": n}, "seeds": list(seeds), "models": models}


def _verdict(s: dict, starts: str) -> str:
    assert all(c["verdict"].startswith(CLOSED) for c in s["claims"]), s["claims"]
    return next(c["verdict"] for c in s["claims"] if c["claim"].startswith(starts))


def test_instruction_following_holds_only_when_tuned_beats_base_and_shuffled():
    ch = {"raw": _changes(0.2, 0.4, 0.3)}
    learned = summarize(_evaluation(0.2, -0.2), ch)
    assert _verdict(learned, "Fine-tuning on instruction-response pairs") == "holds"
    # the planted case of the review: shuffled far below base, tuned no better than base -> tuned - shuffled is
    # large, but the fair contrast (tuned - base) is not: the claim does not hold
    unlearned = summarize(_evaluation(0.0, -0.3), ch)
    assert unlearned["gain_contrasts"]["tuned - shuffled"]["ci"][0] > 0.2
    assert _verdict(unlearned, "Fine-tuning on instruction-response pairs") == "does not hold"
    few = summarize(_evaluation(0.2, -0.2, seeds=(0, 1)), ch)
    assert _verdict(few, "Fine-tuning on instruction-response pairs").startswith("not comparable here (2 tuned")
    # the first paragraph leads with tuned - base, and says why shuffled falls below the base
    first = lead(learned)[0]
    assert first.index("tuned - base") < first.index("Against the shuffled arm")
    assert "*below* the base model's" in first
    assert "lowers the gain" not in lead(summarize(_evaluation(0.2, 0.05), ch))[0]


def test_specific_change_holds_only_below_half_of_the_tuned_overlap():
    ev = _evaluation(0.2, -0.2)
    shared = summarize(ev, {"raw": _changes(0.3, 0.4, 0.3)})
    assert _verdict(shared, "The ISN change is specific") == "does not hold"
    own = summarize(ev, {"raw": _changes(0.1, 0.4, 0.1)})
    assert max(own["overlap_ratios"]["raw"]["control"]["range"]) < MOST
    assert _verdict(own, "The ISN change is specific") == "holds"
    # a second format where the shuffled arm shares most of it: no longer holds
    both = summarize(ev, {"raw": _changes(0.1, 0.4, 0.1), "recipe": _changes(0.1, 0.4, 0.3)})
    assert _verdict(both, "The ISN change is specific") == "does not hold"
    assert _verdict(summarize(ev, None), "The ISN change is specific").startswith("not comparable here")


def test_table1_reading_then_the_control():
    ev = _evaluation(0.2, -0.2)
    high = summarize(ev, {"raw": _changes(0.2, 0.4, 0.3, jb_tuned=0.74, jb_control=0.69)})
    # J 0.74 is not low, but these runs are short: not comparable, never "does not hold"
    assert _verdict(high, "Fine-tuning changes ISNs").startswith("not comparable here (these short fine-tunes")
    row = next(c for c in high["claims"] if c["claim"].startswith("Fine-tuning changes"))
    assert "raw 0.742 (runs 0.740 to 0.744)" in row["paper_value"]
    low_same = summarize(ev, {"raw": _changes(0.2, 0.4, 0.3, jb_tuned=0.3, jb_control=0.3)})
    assert LOW_JACCARD > 0.3
    assert _verdict(low_same, "Fine-tuning changes ISNs").startswith(
        "holds on the paper's reading but confounded (any fine-tuning")
    low_more = summarize(ev, {"raw": _changes(0.2, 0.4, 0.3, jb_tuned=0.3, jb_control=0.4)})
    assert _verdict(low_more, "Fine-tuning changes ISNs") == "holds"


def test_routing_is_not_comparable_on_a_dense_model_and_the_report_renders():
    ev = _evaluation(0.2, -0.2)
    s = summarize(ev, {"raw": _changes(0.2, 0.4, 0.3)})
    assert _verdict(s, "Routing") == "not comparable here (a-dense-model is a dense model: its recordings hold no " \
                                     "expert routing)"
    md = render_markdown(s, ev, "")
    assert md.index("**Instruction following.**") < md.index("## 1. The claims, restated")
    assert md.count("| holds |") + md.count("| does not hold |") + md.count("| not comparable here (") == 4
    assert "p = 0.0500 (1/20: the smallest possible" in md and "p <= 0.0500" not in md
