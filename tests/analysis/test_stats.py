"""Permutation test, bootstrap, chance level and sampling."""

from __future__ import annotations

import numpy as np
import pytest

from hexainst.analysis.isn import IsnSets
from hexainst.analysis.metrics import category_means, jaccard_matrix
from hexainst.analysis.stats import (
    bootstrap_category_means,
    bootstrap_category_vector,
    chance_jaccard,
    permutation_test,
    random_sets_like,
    sample_per_category,
)

CATS = ["c0", "c1", "c2", "c3", "c4", "c5"]


def _sets(rows: list[np.ndarray], n_cols: int) -> IsnSets:
    sizes = [len(r) for r in rows]
    indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return IsnSets(indptr, np.concatenate(rows).astype(np.int32), n_cols, 0.01, "paper", "global")


def _planted(structure: bool, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Jaccard of 60 sets (10 per category): with structure, a category shares a pool of neurons."""
    rng = np.random.default_rng(seed)
    n_cols = 3000
    labels, rows = [], []
    for a, c in enumerate(CATS):
        pool = np.arange(a * 200, a * 200 + 200)
        for _ in range(10):
            if structure:
                row = np.union1d(rng.choice(pool, 30, replace=False), rng.choice(n_cols, 30, replace=False))
            else:
                row = np.unique(rng.choice(n_cols, 60, replace=False))
            rows.append(np.sort(row))
            labels.append(c)
    return jaccard_matrix(_sets(rows, n_cols)), labels


def test_permutation_detects_planted_structure() -> None:
    jac, labels = _planted(structure=True)
    res = permutation_test(jac, labels, CATS, n_permutations=500, seed=1)
    assert res.difference > 0
    assert res.p_value < 0.01


def test_permutation_without_structure_is_not_significant() -> None:
    jac, labels = _planted(structure=False)
    res = permutation_test(jac, labels, CATS, n_permutations=500, seed=1)
    assert res.p_value > 0.1


def test_permutation_is_deterministic_given_seed() -> None:
    jac, labels = _planted(structure=False, seed=3)
    a = permutation_test(jac, labels, CATS, n_permutations=200, seed=7)
    b = permutation_test(jac, labels, CATS, n_permutations=200, seed=7)
    assert a == b


def test_bootstrap_intervals_bracket_the_estimate() -> None:
    jac, labels = _planted(structure=True)
    est = category_means(jac, labels, CATS)
    low, high = bootstrap_category_means(jac, labels, CATS, n_boot=300, seed=0)
    assert low.shape == high.shape == (6, 6)
    assert np.all(low <= est + 1e-12) and np.all(est <= high + 1e-12)
    assert np.all(high - low > 0)
    values = np.array([float(i % 7) for i in range(60)])
    vlow, vhigh = bootstrap_category_vector(values, labels, CATS, n_boot=300, seed=0)
    means = [values[[lab == c for lab in labels]].mean() for c in CATS]
    assert np.all(vlow <= means) and np.all(means <= vhigh)


def test_chance_level_matches_expected_overlap_of_random_sets() -> None:
    n_cols, k = 2000, 100
    rng = np.random.default_rng(0)
    rows = [np.sort(rng.choice(n_cols, k, replace=False)) for _ in range(60)]
    labels = [CATS[i % 6] for i in range(60)]
    sets = _sets(rows, n_cols)
    rand = random_sets_like(sets, seed=5)
    assert np.array_equal(rand.sizes(), sets.sizes())
    _, overall = chance_jaccard(sets, labels, CATS, seed=5)
    inter = k * k / n_cols  # hypergeometric mean of |A ∩ B|
    assert overall == pytest.approx(inter / (2 * k - inter), rel=0.1)


def test_random_sets_keep_per_layer_sizes() -> None:
    layer = np.repeat(np.arange(4), 50)
    rows = [np.array([0, 1, 2, 60, 199]), np.array([100, 101, 150])]
    sets = _sets(rows, 200)
    rand = random_sets_like(sets, neuron_layer=layer, seed=0)
    for r in range(2):
        assert np.array_equal(
            np.bincount(layer[rand.row(r)], minlength=4), np.bincount(layer[sets.row(r)], minlength=4)
        )


def test_sample_per_category_is_seeded_and_balanced() -> None:
    labels = [CATS[i % 6] for i in range(600)]
    a = sample_per_category(labels, CATS, 50, seed=3)
    b = sample_per_category(labels, CATS, 50, seed=3)
    c = sample_per_category(labels, CATS, 50, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.size == 300
    assert all(sum(labels[i] == cat for i in a) == 50 for cat in CATS)


def test_length_adjusted_test_separates_category_from_length() -> None:
    from hexainst.analysis.stats import length_adjusted_test

    rng = np.random.default_rng(0)
    n = 60
    labels = np.array([CATS[i % 6] for i in range(n)])
    # lengths differ by category, and similarity depends on length only
    t = np.array([10 * (1 + CATS.index(c)) for c in labels]) + rng.integers(0, 3, n)
    lt = np.log(t)
    pair = 0.8 - 0.3 * np.abs(lt[:, None] - lt[None, :]) + 0.01 * rng.standard_normal((n, n))
    pair = (pair + pair.T) / 2
    plain = permutation_test(pair, list(labels), CATS, n_permutations=200, seed=0)
    adjusted = length_adjusted_test(pair, labels, t, n_permutations=200, seed=0)
    assert plain.p_value < 0.01  # the raw diagonal is higher, because of length alone
    assert abs(adjusted.same_category_coef) < 0.005  # no category effect once length is in the model
    assert adjusted.p_value > 0.01
    assert adjusted.length_diff_coef == pytest.approx(-0.3, abs=0.05)
    # a real category effect on top is found
    same = (labels[:, None] == labels[None, :]).astype(float)
    adjusted2 = length_adjusted_test(pair + 0.05 * same, labels, t, n_permutations=200, seed=0)
    assert adjusted2.p_value < 0.01
    assert adjusted2.same_category_coef == pytest.approx(0.05, abs=0.01)
