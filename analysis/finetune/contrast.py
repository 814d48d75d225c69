"""Does instruction tuning alter ISNs more than the control fine-tune does? (pure functions)

Both fine-tunes start from the same base model and are recorded on the same instructions, so each
instruction i has two paired Jaccards: ``a_i = J(S_base(i), S_tuned(i))`` and
``b_i = J(S_base(i), S_control(i))``. The per-instruction difference ``d_i = b_i - a_i`` is
positive when instruction tuning moved instruction i's ISN set further from the base than the
control did. Instruction length, category and content are the same on both sides of every pair.

- :func:`paired_sign_flip`: per category, mean of ``d_i`` with a sign-flip permutation p-value
  (under the null, tuned and control are exchangeable for each instruction), two-sided, and
  Holm-adjusted over the categories; plus the overall mean over categories.
- :func:`category_heterogeneity`: does the tuned-minus-control effect differ between categories?
  The spread of the category means of ``d`` against shuffles of the category labels
  (:func:`scipy.stats.permutation_test`).

:func:`paired_sign_flip` keeps its own loop: one set of sign flips gives the per-category p-values and
the overall one jointly, and ``scipy.stats.permutation_test`` takes one scalar statistic per test (a
vector statistic is refused) and would draw other signs for each, changing every published p.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats


def holm(p: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class PairedContrast:
    """Per category: mean J(base, tuned), mean J(base, control), mean difference (control - tuned), p-values."""

    categories: list[str]
    tuned: list[float]
    control: list[float]
    difference: list[float]
    p_values: list[float]
    p_holm: list[float]
    overall_difference: float
    overall_p: float
    n_permutations: int

    def as_dict(self) -> dict:
        return asdict(self)


def paired_sign_flip(a: np.ndarray, b: np.ndarray, labels: Sequence[str], categories: Sequence[str], *,
                     n_permutations: int = 2000, seed: int = 0) -> PairedContrast:
    """Paired test of ``b - a`` per category (two-sided sign flips) and over all (mean of category means).

    a, b: float [n] per-instruction values (NaN rows are left out); labels: category of each row.
    p = (1 + #{|null| >= |observed|}) / (1 + n_permutations).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    labels = np.asarray(labels)
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b, labels = a[ok], b[ok], labels[ok]
    d = b - a
    cats = list(categories)
    onehot = np.stack([labels == c for c in cats]).astype(np.float64)  # [m, n]
    n_c = onehot.sum(axis=1)
    if np.any(n_c == 0):
        raise ValueError(f"no rows for categories {[c for c, k in zip(cats, n_c) if k == 0]}")
    obs = onehot @ d / n_c
    overall = float(obs.mean())
    rng = np.random.default_rng(seed)
    exceed = np.zeros(len(cats), dtype=np.int64)
    exceed_all = 0
    for _ in range(n_permutations):
        signs = rng.integers(0, 2, size=d.size) * 2 - 1
        null = onehot @ (d * signs) / n_c
        exceed += np.abs(null) >= np.abs(obs) - 1e-12
        exceed_all += abs(null.mean()) >= abs(overall) - 1e-12
    p = ((1 + exceed) / (1 + n_permutations)).tolist()
    return PairedContrast(
        categories=cats,
        tuned=(onehot @ a / n_c).tolist(),
        control=(onehot @ b / n_c).tolist(),
        difference=obs.tolist(),
        p_values=p,
        p_holm=holm(p),
        overall_difference=overall,
        overall_p=(1 + exceed_all) / (1 + n_permutations),
        n_permutations=n_permutations,
    )


@dataclass(frozen=True)
class Heterogeneity:
    """Spread (variance) of the category means of a per-instruction value, and its label-shuffle p-value."""

    spread: float
    p_value: float
    n_permutations: int

    def as_dict(self) -> dict:
        return asdict(self)


def category_heterogeneity(values: np.ndarray, labels: Sequence[str], categories: Sequence[str], *,
                           n_permutations: int = 2000, seed: int = 0) -> Heterogeneity:
    """Do the category means of ``values`` differ more than under shuffled labels? (one-sided)"""
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    ok = ~np.isnan(values)
    values, labels = values[ok], labels[ok]
    onehot = np.stack([labels == c for c in categories]).astype(np.float64)
    n_c = onehot.sum(axis=1)

    def spread(w: np.ndarray) -> float:
        return float(np.var(w @ values / n_c))

    obs = spread(onehot)
    # scipy's "pairings" shuffles of one sample draw one rng.permutation(n) per shuffle, the draws of the
    # loop this replaced (same p to the bit, tests/analysis/finetune/test_contrast.py)
    test = scipy_stats.permutation_test((np.arange(values.size),), lambda order: spread(onehot[:, order]),
                                        permutation_type="pairings", vectorized=False, n_resamples=n_permutations,
                                        alternative="greater", rng=np.random.default_rng(seed))
    return Heterogeneity(spread=obs, p_value=float(test.pvalue), n_permutations=n_permutations)
