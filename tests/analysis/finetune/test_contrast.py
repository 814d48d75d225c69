"""Paired tuned-vs-control test and category heterogeneity (analysis/finetune/contrast.py) on planted data."""

from __future__ import annotations

import numpy as np
import pytest

from hexainst.analysis.finetune.contrast import category_heterogeneity, holm, paired_sign_flip

CATS = ["a", "b", "c"]


def _data(effect, n_per=60, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(CATS, n_per)
    base = rng.uniform(0.3, 0.7, labels.size)  # per-instruction level, shared by both fine-tunes
    shift = np.array([effect[c] for c in labels])
    tuned = base - shift + rng.normal(0, 0.03, labels.size)
    control = base + rng.normal(0, 0.03, labels.size)
    return tuned, control, labels


def test_planted_category_effect_is_found_only_where_planted():
    tuned, control, labels = _data({"a": 0.05, "b": 0.0, "c": 0.0})
    res = paired_sign_flip(tuned, control, labels, CATS, n_permutations=999, seed=1)
    assert res.difference[0] == pytest.approx(0.05, abs=0.01)
    assert res.p_holm[0] < 0.01
    assert res.p_values[1] > 0.05 and res.p_values[2] > 0.05
    assert res.tuned[0] == pytest.approx(np.mean(tuned[labels == "a"]))
    assert res.control[0] == pytest.approx(np.mean(control[labels == "a"]))
    het = category_heterogeneity(control - tuned, labels, CATS, n_permutations=499, seed=1)
    assert het.p_value < 0.01


def test_tests_hold_their_level_under_the_null():
    """40 datasets without any effect: each test rejects at 5% in about 5% of them, not more."""
    rejected = {"overall": 0, "category": 0, "heterogeneity": 0}
    for seed in range(40):
        tuned, control, labels = _data({"a": 0.0, "b": 0.0, "c": 0.0}, n_per=30, seed=100 + seed)
        res = paired_sign_flip(tuned, control, labels, CATS, n_permutations=199, seed=seed)
        rejected["overall"] += res.overall_p < 0.05
        rejected["category"] += min(res.p_holm) < 0.05
        shared = _data({"a": 0.03, "b": 0.03, "c": 0.03}, n_per=30, seed=200 + seed)
        het = category_heterogeneity(shared[1] - shared[0], labels, CATS, n_permutations=199, seed=seed)
        rejected["heterogeneity"] += het.p_value < 0.05
    assert all(v <= 6 for v in rejected.values()), rejected


def test_a_shared_shift_is_overall_but_not_heterogeneous():
    tuned, control, labels = _data({"a": 0.04, "b": 0.04, "c": 0.04}, seed=4)
    res = paired_sign_flip(tuned, control, labels, CATS, n_permutations=499, seed=1)
    assert res.overall_difference == pytest.approx(0.04, abs=0.01) and res.overall_p < 0.01
    assert all(p < 0.01 for p in res.p_holm)


def test_holm_against_hand_values():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_layer_shape_of_known_profiles():
    from hexainst.analysis.finetune.report import _layer_shape

    u = _layer_shape({"a": [9, 9, 1, 1, 8, 8], "b": [9, 9, 1, 1, 8, 8]})
    assert (u["early"], u["middle"], u["late"]) == (9, 1, 8) and u["u_shape"] and u["shape"].startswith("U")
    falling = _layer_shape({"a": [5, 5, 3, 3, 1, 1]})
    assert falling["shape"] == "falling" and not falling["u_shape"] and falling["peak_layer"] == 0
    assert _layer_shape({"a": [1, 1, 3, 3, 5, 5]})["shape"] == "rising"
    assert _layer_shape({"a": [1, 1, 7, 7, 1, 2]})["shape"].startswith("inverted U")
    # Mean over categories first: two opposite profiles average to a flat-ish one.
    assert _layer_shape({"a": [1, 1, 3, 3, 5, 5], "b": [5, 5, 3, 3, 1, 1]})["per_layer"] == [3.0] * 6


def test_heterogeneity_p_is_the_plain_label_shuffle_loop_it_replaced():
    """scipy's permutation_test draws the same shuffles as one rng.permutation(n) per draw: the p of the
    plain loop (written out here) to the bit, NaN rows left out first."""
    rng = np.random.default_rng(5)
    labels = np.repeat(CATS, 20)
    values = rng.normal(size=labels.size) + (labels == "a") * 0.4
    values[3] = np.nan
    for n_perm, seed in [(499, 1), (200, 0)]:
        ok = ~np.isnan(values)
        v, lab = values[ok], labels[ok]
        onehot = np.stack([lab == c for c in CATS]).astype(np.float64)
        n_c = onehot.sum(axis=1)
        obs = np.var(onehot @ v / n_c)
        draws = np.random.default_rng(seed)
        exceed = sum(np.var(onehot[:, draws.permutation(v.size)] @ v / n_c) >= obs - 1e-15 for _ in range(n_perm))
        het = category_heterogeneity(values, labels, CATS, n_permutations=n_perm, seed=seed)
        assert het.spread == obs
        assert het.p_value == (1 + exceed) / (1 + n_perm)
        assert 0 < exceed < n_perm  # a p inside the range, where a different draw would show
