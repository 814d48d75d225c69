"""The held-out causal check's design, as pure functions (arrays in, arrays out; no model).

- :func:`heldout_split`: per category, a seeded set of evaluated rows; the category's ISN set is
  built from the other rows only (:func:`check_disjoint` refuses a design where they overlap);
- :func:`firing_rates`: per neuron, the fraction of tokens on which it fires (counts / T), over the
  rows that build the sets;
- :func:`matched_random`: random neurons of the same layers matched one-for-one on firing rate
  (each chosen neuron is paired with one of its ``pool`` nearest-rate neighbours outside the set);
- :func:`specificity`, :func:`assignment_test`, :func:`bootstrap_specificity`: the statistic
  "own set minus other sets" on an effect matrix, its exact permutation test over the assignment
  of sets to categories, and a row-bootstrap interval.

The effect of zeroing set ``a`` on evaluated row ``r`` is ``D[a, r] = NLL_isn(a, r) - mean_d
NLL_random(a, d, r)`` (nats per scored token); ``E[a, b]`` is its mean over the rows of category
``b``; the specificity is ``mean_b (E[b, b] - mean_{a != b} E[a, b])``: in every column the same
rows are compared under different sets, so a category whose rows are fragile to any zeroing
does not make it positive.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np


class DesignError(ValueError):
    """The held-out design cannot be built as asked (too few rows, overlapping sets, bad shapes)."""


def heldout_split(labels: Sequence[str], categories: Sequence[str], n_eval: int, *, seed: int,
                  eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-category split: (evaluated row indices, set-building row indices), both sorted int64.

    ``eligible`` (bool [n]) limits which rows may be evaluated (e.g. rows with a response); every
    row not evaluated builds its category's set. Each category needs ``n_eval`` eligible rows and
    keeps at least one row to build from.
    """
    labels = np.asarray(labels)
    eligible = np.ones(labels.size, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    if eligible.shape != labels.shape:
        raise DesignError(f"eligible has {eligible.size} entries for {labels.size} rows")
    rng = np.random.default_rng(seed)
    evaluated = []
    for c in categories:
        pool = np.flatnonzero((labels == c) & eligible)
        total = int(np.count_nonzero(labels == c))
        if pool.size < n_eval:
            raise DesignError(f"category {c}: {pool.size} rows can be evaluated, {n_eval} asked")
        if total - n_eval < 1:
            raise DesignError(f"category {c}: {total} rows leave none to build its set from after {n_eval} evaluated")
        evaluated.append(rng.choice(pool, size=n_eval, replace=False))
    ev = np.sort(np.concatenate(evaluated)) if evaluated else np.zeros(0, dtype=np.int64)
    build = np.setdiff1d(np.flatnonzero(np.isin(labels, list(categories))), ev)
    return ev.astype(np.int64), build.astype(np.int64)


def check_disjoint(eval_ids: Sequence[str], build_ids: Sequence[str]) -> None:
    """Refuse a circular design: an evaluated instruction among the ones its sets are built from."""
    both = sorted(set(map(str, eval_ids)) & set(map(str, build_ids)))
    if both:
        raise DesignError(f"circular design: {len(both)} evaluated instructions also build the ISN sets "
                          f"(first: {both[0]}); sets must come from other instructions")


def firing_rates(counts: np.ndarray, n_tokens: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Per neuron, tokens on which it fired / tokens seen, over ``rows``: float64 [n_neurons].

    counts: int [n, n_neurons] (tokens with activation > 0 per instruction); n_tokens: int [n].
    Sums are int64 (exact) before the one division.
    """
    counts = np.asarray(counts)
    n_tokens = np.asarray(n_tokens)
    if rows is not None:
        counts, n_tokens = counts[rows], n_tokens[rows]
    total = int(np.sum(n_tokens, dtype=np.int64))
    if total <= 0:
        raise DesignError("no tokens to compute firing rates from")
    return counts.sum(axis=0, dtype=np.int64).astype(np.float64) / total


def matched_random(chosen: np.ndarray, rates: np.ndarray, neuron_layer: np.ndarray, rng: np.random.Generator,
                   *, pool: int = 5, exclude: np.ndarray | None = None) -> np.ndarray:
    """Random columns matched one-for-one on firing rate, in the same layers: int64 [<= |chosen|], sorted.

    For each chosen column (in a random order), one column of the same layer that is neither
    chosen, excluded nor already drawn, uniformly among the ``pool`` with the nearest firing rate.
    A layer with fewer free columns than chosen ones gives as many as it has.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    rates = np.asarray(rates, dtype=np.float64)
    layer = np.asarray(neuron_layer, dtype=np.int64)
    taken = np.zeros(rates.size, dtype=bool)
    taken[chosen] = True
    if exclude is not None:
        taken[np.asarray(exclude, dtype=np.int64)] = True
    out: list[int] = []
    for col in rng.permutation(chosen):
        free = np.flatnonzero((layer == layer[col]) & ~taken)
        if free.size == 0:
            continue
        gap = np.abs(rates[free] - rates[col])
        near = free[np.lexsort((free, gap))[: max(1, pool)]]
        pick = int(rng.choice(near))
        taken[pick] = True
        out.append(pick)
    return np.sort(np.asarray(out, dtype=np.int64))


def rate_match(chosen: np.ndarray, drawn: np.ndarray, rates: np.ndarray) -> dict[str, float]:
    """How well a draw matches: mean firing rate of each, and the largest gap between their quantiles."""
    a = np.sort(np.asarray(rates)[np.asarray(chosen, dtype=np.int64)])
    b = np.sort(np.asarray(rates)[np.asarray(drawn, dtype=np.int64)])
    if a.size == 0 or b.size == 0:
        return {"mean_rate_set": math.nan, "mean_rate_random": math.nan, "max_quantile_gap": math.nan}
    q = np.linspace(0, 1, 21)
    return {"mean_rate_set": float(a.mean()), "mean_rate_random": float(b.mean()),
            "max_quantile_gap": float(np.max(np.abs(np.quantile(a, q) - np.quantile(b, q))))}


def effect_matrix(D: np.ndarray, row_labels: Sequence[str], categories: Sequence[str]) -> np.ndarray:
    """E[a, b] = mean of D[a, r] over the evaluated rows r of category b: float64 [m, m] (NaN rows left out)."""
    D = np.asarray(D, dtype=np.float64)
    labels = np.asarray(row_labels)
    E = np.full((D.shape[0], len(categories)), np.nan)
    for b, c in enumerate(categories):
        sel = labels == c
        if sel.any():
            E[:, b] = np.nanmean(D[:, sel], axis=1)
    return E


def specificity(E: np.ndarray, assignment: Sequence[int] | None = None) -> float:
    """mean over columns b of (E[s(b), b] - mean of the column's other cells), s = ``assignment`` (identity)."""
    E = np.asarray(E, dtype=np.float64)
    m = E.shape[1]
    s = np.arange(m) if assignment is None else np.asarray(assignment)
    own = E[s, np.arange(m)]
    col_sum = np.nansum(E, axis=0)
    return float(np.mean(own - (col_sum - own) / (E.shape[0] - 1)))


def assignment_test(E: np.ndarray) -> dict[str, float]:
    """Exact permutation test over the assignment of sets to categories (one-sided: own set hurts more).

    Every one of the m! assignments is a draw of the null (the identity included), so
    p = #{assignments with specificity >= observed} / m!, and the smallest p is 1 / m!.
    """
    E = np.asarray(E, dtype=np.float64)
    m = E.shape[1]
    if m < 2 or E.shape[0] != m:
        raise DesignError(f"the assignment test needs a square matrix of >= 2 categories, got {E.shape}")
    if m > 8:
        raise DesignError(f"{m} categories: {math.factorial(m)} assignments is too many to enumerate")
    observed = specificity(E)
    null = np.array([specificity(E, p) for p in itertools.permutations(range(m))])
    exceed = int(np.count_nonzero(null >= observed - 1e-12))
    return {"specificity": observed, "p_value": exceed / null.size, "n_assignments": int(null.size),
            "p_floor": 1.0 / null.size, "null_mean": float(null.mean()), "null_sd": float(null.std())}


def bootstrap_specificity(D: np.ndarray, row_labels: Sequence[str], categories: Sequence[str], *, n_boot: int,
                          seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of :func:`specificity` when the evaluated rows are resampled within their category."""
    D = np.asarray(D, dtype=np.float64)
    labels = np.asarray(row_labels)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(labels == c) for c in categories]
    stats = np.empty(n_boot)
    for k in range(n_boot):
        E = np.stack([np.nanmean(D[:, rng.choice(idx, size=idx.size, replace=True)], axis=1) for idx in members],
                     axis=1)
        stats[k] = specificity(E)
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def own_set_rank(E: np.ndarray) -> list[int]:
    """Per evaluated category (column), the rank of its own set among all sets by damage (1 = most damaging)."""
    E = np.asarray(E, dtype=np.float64)
    return [int(1 + np.count_nonzero(E[:, b] > E[b, b])) for b in range(E.shape[1])]

