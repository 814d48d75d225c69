"""The permutation test is scipy's, and gives what the loop it replaced gave, to the bit.

``permutation_test`` used to draw one ``rng.permutation(n)`` per shuffle; it now calls
``scipy.stats.permutation_test``. The numbers pinned below were printed by the loop (commit
before the change) on the project's statistic (the diagonal-minus-off-diagonal contrast of a
Jaccard matrix of ISN-like sets), and a plain loop in this file reproduces them for other seeds.
The per-category bootstrap stays a loop: scipy's interval differs from it in the last bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from hexainst.analysis.isn import IsnSets
from hexainst.analysis.metrics import diagonal_contrast, jaccard_matrix, one_hot, weighted_category_means
from hexainst.analysis.stats import bootstrap_category_vector, permutation_test

CATS = ["c0", "c1", "c2", "c3", "c4", "c5"]


def _planted(seed: int, strength: float) -> tuple[np.ndarray, list[str]]:
    """Jaccard of 60 sets (10 per category); each set takes ``strength * 30`` neurons of its category's pool."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(60):
        c = i % 6
        base = rng.choice(400, size=30, replace=False)
        own = 400 + c * 50 + rng.choice(50, size=int(strength * 30), replace=False)
        rows.append(np.unique(np.concatenate([base, own])))
        labels.append(CATS[c])
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return jaccard_matrix(IsnSets(indptr, np.concatenate(rows).astype(np.int32), 700, 0.01, "paper", "global")), labels


#: (seed, strength, include_self) -> (p, difference, null mean, null sd), 999 shuffles, seed 11: the loop's output.
BEFORE = {
    (0, 0.1, False): (0.304, 0.0008116579016868783, 4.53869815588659e-06, 0.0015434567699146536),
    (0, 0.1, True): (0.304, 0.09717111353344111, 0.09643239426241275, 0.0014126553487354451),
    (1, 0.05, False): (0.9, -0.0020799699708729594, -3.4971215541787815e-05, 0.0015864681184053666),
    (1, 0.05, True): (0.9, 0.09428993769456816, 0.09616163147063395, 0.0014520216676930475),
    (2, 0.0, False): (0.624, -0.0005468207042441248, 1.3761836009613056e-05, 0.001729662773776557),
    (2, 0.0, True): (0.624, 0.09555756564485177, 0.09607064119016873, 0.0015830811827785432),
}


@pytest.mark.parametrize("case", sorted(BEFORE))
def test_the_same_numbers_as_the_loop_printed(case):
    seed, strength, include_self = case
    jac, labels = _planted(seed, strength)
    res = permutation_test(jac, labels, CATS, include_self=include_self, n_permutations=999, seed=11)
    assert (res.p_value, res.difference, res.null_mean, res.null_sd) == BEFORE[case]
    assert res.n_permutations == 999


def _loop(pair, labels, include_self, n_permutations, seed):
    """The replaced implementation: one rng.permutation per shuffle."""
    w = one_hot(labels, CATS)
    obs = diagonal_contrast(weighted_category_means(pair, w, include_self=include_self))[2]
    rng = np.random.default_rng(seed)
    null = np.array([diagonal_contrast(weighted_category_means(pair, w[rng.permutation(w.shape[0])],
                                                               include_self=include_self))[2]
                     for _ in range(n_permutations)])
    exceed = int(np.count_nonzero(null >= obs - 1e-12))
    return (1 + exceed) / (1 + n_permutations), float(null.mean()), float(null.std(ddof=1))


@pytest.mark.parametrize("seed", [0, 3, 2026])
def test_scipy_draws_the_shuffles_the_loop_drew(seed):
    jac, labels = _planted(5, 0.1)
    res = permutation_test(jac, labels, CATS, n_permutations=300, seed=seed)
    assert (res.p_value, res.null_mean, res.null_sd) == _loop(jac, labels, False, 300, seed)


def test_zero_permutations_is_refused():
    jac, labels = _planted(0, 0.1)
    with pytest.raises(ValueError, match="n_permutations must be 1 or more"):
        permutation_test(jac, labels, CATS, n_permutations=0)


def test_the_bootstrap_is_scipys_percentile_bootstrap_up_to_the_last_bit():
    rng = np.random.default_rng(0)
    values = rng.random(60)
    values[7] = np.nan
    labels = [CATS[i % 6] for i in range(60)]
    low, high = bootstrap_category_vector(values, labels, CATS, n_boot=1000, seed=4)
    draws = np.random.default_rng(4)
    for a, c in enumerate(CATS):
        v = values[(np.asarray(labels) == c) & ~np.isnan(values)]
        ci = scipy_stats.bootstrap((v,), np.mean, n_resamples=1000, method="percentile", rng=draws).confidence_interval
        assert low[a] == pytest.approx(ci.low, abs=1e-15) and high[a] == pytest.approx(ci.high, abs=1e-15)
