"""Metric functions against sklearn/scipy and plain loops."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import jaccard_score

from hexainst.analysis.isn import IsnSets
from hexainst.analysis.metrics import (
    category_means,
    diagonal_contrast,
    jaccard_matrix,
    paired_jaccard,
    paired_pearson,
    pearson_matrix,
    venn_counts_per_layer,
)


def _sets_from_dense(x: np.ndarray) -> IsnSets:
    sizes = x.sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    indices = np.concatenate([np.flatnonzero(r) for r in x]).astype(np.int32)
    return IsnSets(indptr, indices, x.shape[1], 0.01, "paper", "global")


@pytest.mark.parametrize("method", ["hybrid", "dense", "sparse"])
def test_jaccard_matrix_equals_sklearn(method: str) -> None:
    rng = np.random.default_rng(1)
    # varied densities, including one empty set and heavy shared columns
    x = rng.random((30, 200)) < rng.uniform(0.01, 0.3, size=(30, 1))
    x[:, :5] |= rng.random((30, 5)) < 0.9
    x[7] = False
    sets = _sets_from_dense(x)
    got = jaccard_matrix(sets, method=method, chunk_cols=37)
    for i in range(30):
        for j in range(30):
            want = jaccard_score(x[i], x[j], zero_division=0.0)
            assert got[i, j] == pytest.approx(want, abs=1e-12), (i, j)


def test_cross_and_paired_jaccard_equal_sklearn() -> None:
    rng = np.random.default_rng(2)
    xa = rng.random((12, 150)) < 0.1
    xb = rng.random((9, 150)) < 0.2
    got = jaccard_matrix(_sets_from_dense(xa), _sets_from_dense(xb))
    assert got.shape == (12, 9)
    for i in range(12):
        for j in range(9):
            assert got[i, j] == pytest.approx(jaccard_score(xa[i], xb[j], zero_division=0.0))
    paired = paired_jaccard(_sets_from_dense(xa[:9]), _sets_from_dense(xb))
    for i in range(9):
        assert paired[i] == pytest.approx(jaccard_score(xa[i], xb[i], zero_division=0.0))


def test_pearson_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    f = rng.random((10, 40))
    g = rng.random((7, 40)) + 0.5 * f[:7]
    got = pearson_matrix(f, g)
    for i in range(10):
        for j in range(7):
            assert got[i, j] == pytest.approx(pearsonr(f[i], g[j]).statistic, abs=1e-12)
    paired = paired_pearson(f[:7], g)
    for i in range(7):
        assert paired[i] == pytest.approx(pearsonr(f[i], g[i]).statistic, abs=1e-12)
    # a constant vector has no correlation
    f[0] = 0.25
    assert np.isnan(pearson_matrix(f)[0]).all()


@pytest.mark.parametrize("include_self", [False, True])
def test_category_means_equal_double_loop(include_self: bool) -> None:
    rng = np.random.default_rng(4)
    cats = ["a", "b", "c"]
    labels = list(rng.choice(cats, size=25))
    pair = rng.random((25, 25))
    pair = (pair + pair.T) / 2
    np.fill_diagonal(pair, 1.0)
    got = category_means(pair, labels, cats, include_self=include_self)
    for x, cx in enumerate(cats):
        for y, cy in enumerate(cats):
            vals = [
                pair[i, j]
                for i in range(25)
                for j in range(25)
                if labels[i] == cx and labels[j] == cy and (include_self or i != j)
            ]
            assert got[x, y] == pytest.approx(sum(vals) / len(vals), abs=1e-12)
    d, o, diff = diagonal_contrast(got)
    assert d == pytest.approx(np.mean(np.diagonal(got)))
    assert diff == pytest.approx(d - o)


def test_venn_counts_per_layer_by_hand() -> None:
    layer = np.array([0, 0, 0, 1, 1, 1])
    a = np.array([0, 1, 3, 4])
    b = np.array([1, 2, 4, 5])
    got = venn_counts_per_layer(a, b, layer, 2)
    # layer 0: a-only {0}, both {1}, b-only {2}; layer 1: a-only {3}, both {4}, b-only {5}
    assert got.tolist() == [[1, 1, 1], [1, 1, 1]]


def test_benchmark_script_prints_json_last_line(repo_root) -> None:
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "metrics.py"), "--n", "60", "--cols", "4000",
         "--naive-n", "20", "--skew", "0.5", "--repeats", "1"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["exact"] is True
    assert {"seconds", "speedup_vs_naive", "naive_seconds_scaled"} <= set(last)


def test_expert_selection_against_a_plain_loop() -> None:
    from hexainst.analysis.metrics import expert_selection

    rng = np.random.default_rng(4)
    n, layers, experts = 12, 3, 8
    base = rng.integers(0, 6, size=(n, layers, experts))
    ft = rng.integers(0, 6, size=(n, layers, experts))
    base[:, :, 7] = 50  # expert 7 dominates in the base model only
    labels = np.array(["a", "b"] * 6)
    got = expert_selection(base, ft, labels, ["a", "b"], k=3)
    for c in ("a", "b"):
        totals_b = [sum(int(base[i, lay, e]) for i in range(n) if labels[i] == c for lay in range(layers))
                    for e in range(experts)]
        totals_f = [sum(int(ft[i, lay, e]) for i in range(n) if labels[i] == c for lay in range(layers))
                    for e in range(experts)]
        want_b = sorted(range(experts), key=lambda e: (-totals_b[e], e))[:3]
        want_f = sorted(range(experts), key=lambda e: (-totals_f[e], e))[:3]
        assert got[c].base_top5 == [[e, totals_b[e]] for e in want_b]
        assert got[c].ft_top5 == [[e, totals_f[e]] for e in want_f]
        assert got[c].base_top5[0][0] == 7
        assert got[c].stable == sorted(set(want_b) & set(want_f))
        for lay in range(layers):
            per = [sum(int(base[i, lay, e]) for i in range(n) if labels[i] == c) for e in range(experts)]
            assert got[c].per_layer[lay].base_top5 == sorted(range(experts), key=lambda e: (-per[e], e))[:3]


def test_top_experts_breaks_ties_by_lower_id() -> None:
    from hexainst.analysis.metrics import top_experts

    assert top_experts(np.array([5, 9, 9, 1, 9]), k=2) == [1, 2]
