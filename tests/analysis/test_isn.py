"""ISN set selection: thresholds, tie rules, scopes, files."""

from __future__ import annotations

import numpy as np
import pytest

from hexainst.analysis.isn import IsnError, IsnSets, compute_isn_sets, target_size


def test_target_size_is_ceil() -> None:
    assert target_size(0.01, 36864) == 369  # gemma-3-270m: 18 x 2048 neurons
    assert target_size(0.01, 352256) == 3523
    assert target_size(0.5, 10) == 5
    with pytest.raises(IsnError):
        target_size(0.0, 10)


def test_paper_rule_keeps_ties_and_exact_k_breaks_them_by_sums() -> None:
    counts = np.array([[5, 5, 5, 3, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 2, 7]])
    sums = np.array([[1.0, 3.0, 2.0, 9, 0, 0, 0, 0, 0, 0], [0] * 10], dtype=float)
    paper = compute_isn_sets(counts, eps=0.1)
    assert paper.row(0).tolist() == [0, 1, 2]  # every neuron tied at tau = 5
    assert paper.row(1).tolist() == [9]
    assert paper.sizes().tolist() == [3, 1]
    exact = compute_isn_sets(counts, eps=0.1, tie_rule="exact-k", sums=sums)
    assert exact.row(0).tolist() == [1]  # largest activation sum among the tied
    exact2 = compute_isn_sets(counts, eps=0.2, tie_rule="exact-k", sums=sums)
    assert exact2.row(0).tolist() == [1, 2]
    assert exact2.row(1).tolist() == [8, 9]


def test_exact_k_equal_sums_break_by_lower_column() -> None:
    counts = np.array([[4, 4, 4, 4]])
    sums = np.ones((1, 4))
    assert compute_isn_sets(counts, eps=0.5, tie_rule="exact-k", sums=sums).row(0).tolist() == [0, 1]


def test_silent_neurons_never_selected() -> None:
    counts = np.zeros((1, 100), dtype=np.uint16)
    counts[0, 42] = 1
    sets = compute_isn_sets(counts, eps=0.05)
    assert sets.row(0).tolist() == [42]


def test_exact_k_without_sums_is_a_clear_error() -> None:
    with pytest.raises(IsnError, match="no activation sums"):
        compute_isn_sets(np.ones((2, 10), dtype=np.uint16), tie_rule="exact-k")


def test_per_layer_scope_takes_top_of_each_layer() -> None:
    counts = np.array([[9, 8, 1, 1, 2, 3]])
    layer = np.array([0, 0, 0, 1, 1, 1])
    glob = compute_isn_sets(counts, eps=0.2)  # k = 2 over 6
    assert glob.row(0).tolist() == [0, 1]
    per = compute_isn_sets(counts, eps=0.3, scope="per-layer", neuron_layer=layer)  # k = 1 per layer
    assert per.row(0).tolist() == [0, 5]
    assert per.per_layer_counts(layer, 2).tolist() == [[1, 1]]


def test_sparse_counts_give_the_same_sets() -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    counts = (rng.integers(0, 6, size=(7, 500)) * (rng.random((7, 500)) < 0.2)).astype(np.uint16)
    a = compute_isn_sets(counts, eps=0.02, chunk_rows=3)
    b = compute_isn_sets(sp.csr_matrix(counts), eps=0.02)
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    # reference: a plain loop over rows
    for r in range(7):
        row = counts[r].astype(int)
        tau = sorted(row, reverse=True)[target_size(0.02, 500) - 1]
        want = [i for i in range(500) if row[i] >= tau and row[i] > 0]
        assert a.row(r).tolist() == want


def test_save_and_load_round_trip(tmp_path) -> None:
    counts = np.arange(40, dtype=np.uint16).reshape(2, 20)
    sets = compute_isn_sets(counts, eps=0.1, ids=["x", "y"])
    path = sets.save(tmp_path)
    assert path.name == "isn_sets.eps0.1.paper-ties.npz"
    back = IsnSets.load(path)
    assert back.ids == ("x", "y") and back.tie_rule == "paper"
    assert np.array_equal(back.indices, sets.indices) and np.array_equal(back.indptr, sets.indptr)
