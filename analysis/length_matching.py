"""Category comparisons on instructions matched by token length (pure functions: arrays in, arrays out).

Instruction length T differs a lot between HexaInst's categories (a generalqa question has ~15
tokens, a summarization input ~100) and changes how many neurons reach the ISN threshold, so part
of "same-category ISN sets overlap more" can be "instructions of similar length overlap more".
:mod:`hexainst.analysis.stats` adjusts for it with a regression; this module matches instead,
which assumes no functional form:

1. Strata: instructions are cut into ``n_strata`` quantile bins of T (:func:`length_strata`).
2. Cells: a pair of instructions falls into the cell of its two strata (unordered), so a pair of
   a 15-token and a 100-token instruction is only compared with pairs of the same two lengths.
3. Per category c and cell: mean similarity of (c, c) pairs minus mean similarity of pairs with
   exactly one member in c. Cells lacking either kind of pair drop out. The cell differences are
   averaged with the number of (c, c) pairs in the cell as weights (the effect on the
   same-category pairs that have a length match): ``matched[c]``.
4. Overall: the mean over categories of ``matched[c]``; tested one-sided against label shuffles
   (lengths stay with their instructions, so the null keeps every length effect).

With ``n_strata=1`` the same statistic is the unmatched contrast, the "before" number (``unmatched``).
A pure length effect (similarity a function of the two lengths only) vanishes up to the spread of
lengths inside a stratum; ``coverage`` says how many same-category pairs found a match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from hexainst.analysis.nulls import stratified_permutation


def length_strata(n_tokens: np.ndarray, n_strata: int) -> np.ndarray:
    """Stratum id (0..n_strata-1, int64 [n]) of each instruction: quantile bins of T.

    Bin edges are the quantiles of T over all instructions; equal lengths always share a stratum,
    so heavily tied lengths can leave fewer, larger strata (never more than ``n_strata``).
    """
    t = np.asarray(n_tokens, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError("n_tokens must be a non-empty 1-D array")
    if n_strata < 1:
        raise ValueError("n_strata must be >= 1")
    inner = np.quantile(t, np.linspace(0, 1, n_strata + 1)[1:-1])
    edges = np.unique(inner)
    ids = np.searchsorted(edges, t, side="right")
    # Renumber to 0..m-1 without gaps (an edge equal to the maximum leaves an empty top bin).
    return np.unique(ids, return_inverse=True)[1].astype(np.int64)


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


@dataclass(frozen=True)
class _Prepared:
    iu: np.ndarray
    ju: np.ndarray
    y: np.ndarray
    cell: np.ndarray
    n_cells: int


def _prepare(pair: np.ndarray, strata: np.ndarray) -> _Prepared:
    pair = np.asarray(pair, dtype=np.float64)
    n = pair.shape[0]
    if pair.shape != (n, n):
        raise ValueError(f"pair must be square [n, n], got {pair.shape}")
    if strata.shape != (n,):
        raise ValueError(f"strata must have shape ({n},), got {strata.shape}")
    iu, ju = _pairs(n)
    y = pair[iu, ju]
    ok = ~np.isnan(y)
    iu, ju, y = iu[ok], ju[ok], y[ok]
    k = int(strata.max()) + 1
    a, b = np.minimum(strata[iu], strata[ju]), np.maximum(strata[iu], strata[ju])
    return _Prepared(iu=iu, ju=ju, y=y, cell=a * k + b, n_cells=k * k)


def _per_category(prep: _Prepared, codes: np.ndarray, n_cat: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """matched difference, matched same mean, matched cross mean, coverage; each float [n_cat]."""
    ci, cj = codes[prep.iu], codes[prep.ju]
    same = ci == cj
    size = prep.n_cells * n_cat
    # same-category pairs: one entry (cell, c); cross pairs: one entry for each member's category.
    s_key = prep.cell[same] * n_cat + ci[same]
    x_key = np.concatenate([prep.cell[~same] * n_cat + ci[~same], prep.cell[~same] * n_cat + cj[~same]])
    x_val = np.concatenate([prep.y[~same], prep.y[~same]])
    s_n = np.bincount(s_key, minlength=size).reshape(prep.n_cells, n_cat)
    s_sum = np.bincount(s_key, weights=prep.y[same], minlength=size).reshape(prep.n_cells, n_cat)
    x_n = np.bincount(x_key, minlength=size).reshape(prep.n_cells, n_cat)
    x_sum = np.bincount(x_key, weights=x_val, minlength=size).reshape(prep.n_cells, n_cat)
    usable = (s_n > 0) & (x_n > 0)
    w = np.where(usable, s_n, 0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_mean = np.where(usable, s_sum / np.maximum(s_n, 1), 0.0)
        x_mean = np.where(usable, x_sum / np.maximum(x_n, 1), 0.0)
        wsum = w.sum(axis=0)
        same_m = (w * s_mean).sum(axis=0) / wsum
        cross_m = (w * x_mean).sum(axis=0) / wsum
        coverage = wsum / s_n.sum(axis=0)
    return same_m - cross_m, same_m, cross_m, coverage


@dataclass(frozen=True)
class LengthMatchedResult:
    """Same-category minus cross-category similarity on length-matched pairs, per category and overall."""

    categories: list[str]
    n_strata: int
    matched: list[float]
    matched_same: list[float]
    matched_cross: list[float]
    coverage: list[float]
    difference: float
    unmatched: list[float]
    unmatched_difference: float
    p_value: float
    p_values: list[float]
    n_permutations: int
    strata_bounds: list[list[int]]
    null: str = "labels shuffled over all rows"

    def as_dict(self) -> dict:
        return asdict(self)


def length_matched_test(
    pair: np.ndarray,
    labels: Sequence[str],
    n_tokens: np.ndarray,
    *,
    categories: Sequence[str] | None = None,
    n_strata: int = 10,
    n_permutations: int = 1000,
    seed: int = 0,
    shuffle_within_strata: bool = False,
) -> LengthMatchedResult:
    """Length-matched same-category contrast with a label-shuffle p-value (overall and per category).

    pair: float [n, n] pairwise similarities (NaN pairs are left out); labels: category of each
    instruction [n]; n_tokens: T of each instruction [n]. ``p_value`` tests the mean over
    categories of ``matched`` > 0; ``p_values[c]`` tests ``matched[c]`` > 0 with the same
    shuffles. p = (1 + #{null >= observed}) / (1 + n_permutations). A category whose
    same-category pairs find no length match at all has NaN entries (and does not enter the mean).
    ``shuffle_within_strata``: shuffle labels only within the length strata (the null of "beyond
    length", which keeps each stratum's category mix); default a free shuffle.
    """
    labels = np.asarray(labels)
    cats = list(categories) if categories is not None else sorted(set(labels.tolist()))
    index = {c: i for i, c in enumerate(cats)}
    try:
        codes = np.array([index[x] for x in labels.tolist()], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not among the categories") from exc
    t = np.asarray(n_tokens)
    strata = length_strata(t, n_strata)
    prep = _prepare(pair, strata)
    diff, same_m, cross_m, coverage = _per_category(prep, codes, len(cats))
    observed = float(np.nanmean(diff))
    raw = _per_category(_prepare(pair, np.zeros_like(strata)), codes, len(cats))[0]
    rng = np.random.default_rng(seed)
    exceed = 0
    exceed_c = np.zeros(len(cats), dtype=np.int64)
    for _ in range(n_permutations):
        perm = stratified_permutation(strata, rng) if shuffle_within_strata else rng.permutation(codes.size)
        null = _per_category(prep, codes[perm], len(cats))[0]
        if np.nanmean(null) >= observed - 1e-12:
            exceed += 1
        exceed_c += (null >= diff - 1e-12)
    bounds = [[int(t[strata == s].min()), int(t[strata == s].max())] for s in range(int(strata.max()) + 1)]
    return LengthMatchedResult(
        categories=cats,
        n_strata=int(strata.max()) + 1,
        matched=[float(x) for x in diff],
        matched_same=[float(x) for x in same_m],
        matched_cross=[float(x) for x in cross_m],
        coverage=[float(x) for x in coverage],
        difference=observed,
        unmatched=[float(x) for x in raw],
        unmatched_difference=float(np.nanmean(raw)),
        p_value=(1 + exceed) / (1 + n_permutations),
        p_values=[float((1 + e) / (1 + n_permutations)) if not np.isnan(d) else float("nan")
                  for e, d in zip(exceed_c.tolist(), diff)],
        n_permutations=n_permutations,
        strata_bounds=bounds,
        null="labels shuffled within length strata" if shuffle_within_strata else "labels shuffled over all rows",
    )
