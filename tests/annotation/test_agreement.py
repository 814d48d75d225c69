"""Cohen's kappa and percent agreement against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from annotation_helpers import verdict
from sklearn.metrics import cohen_kappa_score

from hexainst.annotation.agreement import cohen_kappa, junior_agreement, percent_agreement


def test_kappa_hand_computed_three_labels():
    # 10 items. A: accept 6, revise 2, reject 2; B: accept 5, revise 2, reject 3.
    # Agreements: 5 accept + 1 revise + 2 reject = 8 -> p_o = 0.8.
    # p_e = (6*5 + 2*2 + 2*3) / 100 = 0.4 -> kappa = 0.4 / 0.6 = 2/3.
    a = ["accept"] * 5 + ["accept", "revise", "revise", "reject", "reject"]
    b = ["accept"] * 5 + ["revise", "revise", "reject", "reject", "reject"]
    assert cohen_kappa(a, b) == pytest.approx(2 / 3, abs=1e-12)


def test_kappa_hand_computed_binary():
    # (T,T) x7, (T,F) x1, (F,F) x2: p_o = 0.9, p_e = (8*7 + 2*3)/100 = 0.62, kappa = 0.28/0.38 = 14/19.
    a = [True] * 8 + [False] * 2
    b = [True] * 7 + [False] * 3
    assert cohen_kappa(a, b) == pytest.approx(14 / 19, abs=1e-12)
    assert percent_agreement(a, b) == pytest.approx(90.0)


def test_kappa_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(7)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        a = rng.choice(["accept", "revise", "reject"], size=n).tolist()
        b = rng.choice(["accept", "revise", "reject"], size=n).tolist()
        expected = cohen_kappa_score(a, b)
        got = cohen_kappa(a, b)
        if math.isnan(expected):
            assert got is None
        else:
            assert got == pytest.approx(expected, abs=1e-12)


def test_kappa_perfect_and_chance_and_undefined():
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == 1.0
    # Systematic opposite labels: p_o = 0, p_e = 0.5 -> -1.
    assert cohen_kappa([True, False], [False, True]) == -1.0
    assert cohen_kappa([], []) is None
    # Both raters use one label throughout: p_e = 1, kappa undefined (sklearn gives nan).
    assert cohen_kappa(["accept"] * 4, ["accept"] * 4) is None
    assert percent_agreement([], []) is None
    with pytest.raises(ValueError, match="length"):
        cohen_kappa([1, 2], [1])


def test_junior_agreement_per_error_type():
    pairs = [
        (verdict("j1", "revise", errors=["grammar"]), verdict("j2", "revise", errors=["grammar", "unclear"])),
        (verdict("j1", "accept", errors=["grammar"]), verdict("j2", "accept")),
        (verdict("j1", "accept"), verdict("j2", "accept")),
        (verdict("j1", "reject", False, ["wrong_category"]), verdict("j2", "reject", False, ["wrong_category"])),
    ]
    out = junior_agreement(pairs)
    # grammar: (1,1), (1,0), (0,0), (0,0): p_o = 3/4, p_e = (2*1 + 2*3)/16 = 1/2, kappa = 1/2.
    assert out["error_type_agreement"]["grammar"] == {"kappa": pytest.approx(0.5), "percent": pytest.approx(75.0)}
    # wrong_category: perfect agreement on one yes and three no.
    assert out["error_type_agreement"]["wrong_category"]["kappa"] == 1.0
    # redundancy: nobody ever marks it -> kappa undefined, agreement 100 %.
    assert out["error_type_agreement"]["redundancy"] == {"kappa": None, "percent": 100.0}
    # unclear: (0,1) once, else (0,0): p_o = 3/4, p_e = (4*3)/16 = 3/4 -> kappa 0.
    assert out["error_type_agreement"]["unclear"]["kappa"] == pytest.approx(0.0)
    assert out["kappa_decision"] == 1.0
    assert set(out) == {"kappa_decision", "kappa_category_correct", "error_type_agreement"}
