"""Statistics the paper lacks: permutation test, bootstrap intervals, chance level, sampling.

Every function takes a ``seed`` and uses its own ``numpy.random.Generator``: same inputs and
seed give the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as scipy_stats

from hexainst.analysis.isn import IsnSets
from hexainst.analysis.metrics import diagonal_contrast, jaccard_matrix, one_hot, weighted_category_means
from hexainst.analysis.nulls import cluster_bootstrap_weights, stratified_permutation
from hexainst.kernel.vocab import DEFAULT_SEED


@dataclass(frozen=True)
class PermutationResult:
    """Diagonal-vs-off-diagonal contrast of a category-mean matrix and its permutation p-value."""

    diagonal: float
    off_diagonal: float
    difference: float
    p_value: float
    n_permutations: int
    null_mean: float
    null_sd: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def permutation_test(
    pair: np.ndarray,
    labels: Sequence[str],
    categories: Sequence[str],
    *,
    include_self: bool = False,
    n_permutations: int = 2000,
    seed: int = DEFAULT_SEED,
) -> PermutationResult:
    """One-sided test of "mean diagonal > mean off-diagonal" of the category means.

    With fewer than two categories present there is nothing to compare: every field but the
    diagonal is NaN (never a p-value).

    pair: float [n, n] pairwise similarities. The null shuffles the category labels over the
    instructions (keeping the category sizes). p = (1 + #{null >= observed}) / (1 + n_permutations),
    computed by :func:`scipy.stats.permutation_test`.
    """
    w = one_hot(labels, categories)
    if w.shape[1] < 2 or np.count_nonzero(w.sum(axis=0)) < 2:
        # One category: there is no off-diagonal to compare with; the test is undefined.
        means = weighted_category_means(pair, w, include_self=include_self)
        diag = float(np.nanmean(np.diagonal(means))) if np.isfinite(np.diagonal(means)).any() else float("nan")
        nan = float("nan")
        return PermutationResult(diag, nan, nan, nan, n_permutations, nan, nan)
    diag, off, obs = diagonal_contrast(weighted_category_means(pair, w, include_self=include_self))
    if not np.isfinite(obs):
        # e.g. one instruction per category without self-pairs: no same-category pair to average.
        nan = float("nan")
        return PermutationResult(diag, off, nan, nan, n_permutations, nan, nan)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be 1 or more, got {n_permutations}")

    def contrast(order: np.ndarray) -> float:
        return diagonal_contrast(weighted_category_means(pair, w[order], include_self=include_self))[2]

    # scipy's shuffles of one sample ("pairings") are the rows of rng.permuted(...), the same Fisher-Yates
    # draws as one rng.permutation(n) per shuffle: the loop it replaces gave the same p and null to the bit
    # (tests/analysis/test_stats_scipy.py). Its p is (1 + #{null >= observed}) / (1 + n_permutations), with
    # ties counted up to 100 ulp of the observed value. With n! <= n_permutations (n <= 6 rows at 2000)
    # scipy enumerates every ordering instead, an exact test of n! permutations.
    test = scipy_stats.permutation_test((np.arange(w.shape[0]),), contrast, permutation_type="pairings",
                                        vectorized=False, n_resamples=n_permutations, alternative="greater",
                                        rng=np.random.default_rng(seed))
    null = np.asarray(test.null_distribution, dtype=np.float64)
    return PermutationResult(
        diagonal=diag,
        off_diagonal=off,
        difference=obs,
        p_value=float(test.pvalue),
        n_permutations=int(null.size),
        null_mean=float(null.mean()),
        null_sd=float(null.std(ddof=1)) if null.size > 1 else float("nan"),
    )


def _bootstrap_weights(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resample instructions with replacement within each category: float64 [n, m] multiplicities."""
    out = np.zeros_like(w)
    for a in range(w.shape[1]):
        members = np.flatnonzero(w[:, a])
        if members.size:
            draw = rng.choice(members, size=members.size, replace=True)
            out[:, a] = np.bincount(draw, minlength=w.shape[0])
    return out


def bootstrap_category_means(
    pair: np.ndarray,
    labels: Sequence[str],
    categories: Sequence[str],
    *,
    include_self: bool = False,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
    clusters: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI for every cell of the category-mean matrix.

    Instructions are resampled with replacement within their category; a pair of two draws of
    the same instruction counts as a self-pair. With ``clusters`` (int [n]), the two-stage
    cluster bootstrap (:func:`hexainst.analysis.nulls.cluster_bootstrap_weights`: clusters within
    categories, then rows). Returns (low, high): float64 [m, m] each.
    """
    w = one_hot(labels, categories)
    rng = np.random.default_rng(seed)
    m = w.shape[1]
    codes = np.argmax(w, axis=1) if w.size else np.zeros(0, np.int64)
    draws = np.empty((n_boot, m, m), dtype=np.float64)
    for k in range(n_boot):
        wk = (_bootstrap_weights(w, rng) if clusters is None
              else w * cluster_bootstrap_weights(codes, clusters, rng)[:, None])
        draws[k] = weighted_category_means(pair, wk, include_self=include_self)
    alpha = (1 - level) / 2
    with warnings.catch_warnings():  # a cell with no defined value (no pair) has no interval: NaN, quietly
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        return np.nanquantile(draws, alpha, axis=0), np.nanquantile(draws, 1 - alpha, axis=0)


def bootstrap_category_vector(
    values: np.ndarray,
    labels: Sequence[str],
    categories: Sequence[str],
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = DEFAULT_SEED,
    clusters: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of per-category means of per-instruction values: ([m], [m]).

    With ``clusters`` (int [n]): the two-stage cluster bootstrap (clusters, then rows). Without,
    this is :func:`scipy.stats.bootstrap` (``method="percentile"``) category by category, drawing
    the same resamples from the same seed; kept as a loop because scipy's quantile differs in the
    last bit (1e-16) from ``np.quantile``, which would change published intervals, and scipy
    refuses a category with a single value (tests/analysis/test_stats_scipy.py).
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    low = np.full(len(categories), np.nan)
    high = np.full(len(categories), np.nan)
    alpha = (1 - level) / 2
    if clusters is not None:
        ok = ~np.isnan(values)
        index = {c: i for i, c in enumerate(categories)}
        codes = np.array([index.get(str(x), -1) for x in labels])
        draws = np.empty((n_boot, len(categories)))
        for b in range(n_boot):
            mult = cluster_bootstrap_weights(codes, np.asarray(clusters), rng) * ok
            for a in range(len(categories)):
                sel = codes == a
                tot = mult[sel].sum()
                draws[b, a] = (mult[sel] * np.where(ok[sel], values[sel], 0.0)).sum() / tot if tot else np.nan
        for a in range(len(categories)):
            d = draws[:, a][np.isfinite(draws[:, a])]
            if d.size:
                low[a], high[a] = np.quantile(d, alpha), np.quantile(d, 1 - alpha)
        return low, high
    for a, c in enumerate(categories):
        v = values[(labels == c) & ~np.isnan(values)]
        if v.size == 0:
            continue
        means = rng.choice(v, size=(n_boot, v.size), replace=True).mean(axis=1)
        low[a], high[a] = np.quantile(means, alpha), np.quantile(means, 1 - alpha)
    return low, high


def random_sets_like(
    sets: IsnSets, *, neuron_layer: np.ndarray | None = None, seed: int = DEFAULT_SEED
) -> IsnSets:
    """Uniformly random sets with the same sizes (per layer too when ``neuron_layer`` is given).

    Global scope: each random set has |S(I)| neurons drawn from all columns. With
    ``neuron_layer``, each set keeps its per-layer sizes, drawn within each layer.
    """
    rng = np.random.default_rng(seed)
    parts = []
    if neuron_layer is not None:
        layer = np.asarray(neuron_layer, dtype=np.int64)
        layers = np.unique(layer)
        members = [np.flatnonzero(layer == lay) for lay in layers]
    for r in range(sets.n):
        row = sets.row(r)
        if neuron_layer is None:
            pick = rng.choice(sets.n_cols, size=row.size, replace=False)
        else:
            per = np.bincount(np.searchsorted(layers, layer[row]), minlength=layers.size)
            pick = np.concatenate(
                [rng.choice(cols, size=int(c), replace=False) for cols, c in zip(members, per) if c]
                or [np.zeros(0, np.int64)]
            )
        parts.append(np.sort(pick).astype(np.int32))
    indices = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return IsnSets(
        sets.indptr.copy(), indices, sets.n_cols, sets.eps, sets.tie_rule, sets.scope, sets.ids, sets.k
    )


def chance_jaccard(
    sets: IsnSets,
    labels: Sequence[str],
    categories: Sequence[str],
    *,
    neuron_layer: np.ndarray | None = None,
    include_self: bool = False,
    seed: int = DEFAULT_SEED,
) -> tuple[np.ndarray, float]:
    """Chance level: category means of Jaccard between random sets of the same sizes.

    Returns (matrix float64 [m, m], overall mean over pairs of different instructions).
    """
    rand = random_sets_like(sets, neuron_layer=neuron_layer, seed=seed)
    jac = jaccard_matrix(rand)
    means = weighted_category_means(jac, one_hot(labels, categories), include_self=include_self)
    off = ~np.eye(jac.shape[0], dtype=bool)
    return means, float(jac[off].mean()) if off.any() else float("nan")


def sample_per_category(
    labels: Sequence[str], categories: Sequence[str], per_category: int | None, *, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """Seeded sample of up to ``per_category`` row indices per category (the paper: 50 each).

    Returns sorted row indices: int64 [k]. None keeps every row.
    """
    labels = np.asarray(labels)
    if per_category is None:
        return np.arange(labels.size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    keep = []
    for c in categories:
        members = np.flatnonzero(labels == c)
        if members.size > per_category:
            members = rng.choice(members, size=per_category, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep)).astype(np.int64)


@dataclass(frozen=True)
class LengthAdjustedResult:
    """Same-category effect on pairwise similarity, adjusted for instruction length."""

    same_category_coef: float
    length_diff_coef: float
    length_sum_coef: float
    p_value: float
    n_permutations: int
    n_pairs: int
    null: str = "labels shuffled over all rows"

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def length_adjusted_test(
    pair: np.ndarray,
    labels: Sequence[str],
    n_tokens: np.ndarray,
    *,
    n_permutations: int = 500,
    seed: int = DEFAULT_SEED,
    strata: np.ndarray | None = None,
) -> LengthAdjustedResult:
    """Is same-category similarity higher once instruction length is accounted for?

    Over all pairs i < j (NaN pairs dropped), least squares of
    pair_ij ~ 1 + same_ij + |log T_i - log T_j| + (log T_i + log T_j);
    the same-category coefficient is tested one-sided against label shuffles (lengths stay
    with their instructions). With ``strata`` (int [n], e.g. length strata) labels are shuffled
    only within a stratum, so the null also keeps how the categories sit on the length axis:
    the test of "beyond length" (a free shuffle tests any category structure).
    pair: float [n, n]; n_tokens: int [n].
    """
    labels = np.asarray(labels)
    codes = np.unique(labels, return_inverse=True)[1]
    if codes.size == 0 or codes.max() < 1:
        # One category: every pair is a same-category pair; the effect is not defined.
        nan = float("nan")
        return LengthAdjustedResult(nan, nan, nan, nan, n_permutations, len(labels) * (len(labels) - 1) // 2)
    iu, ju = np.triu_indices(len(labels), k=1)
    y = np.asarray(pair, dtype=np.float64)[iu, ju]
    ok = ~np.isnan(y)
    iu, ju, y = iu[ok], ju[ok], y[ok]
    lt = np.log(np.asarray(n_tokens, dtype=np.float64))
    base = np.column_stack([np.ones_like(y), np.abs(lt[iu] - lt[ju]), lt[iu] + lt[ju]])

    def fit(same: np.ndarray) -> np.ndarray:
        x = np.column_stack([same.astype(np.float64), base])
        return np.linalg.lstsq(x, y, rcond=None)[0]

    coef = fit(codes[iu] == codes[ju])
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(n_permutations):
        perm = codes[rng.permutation(codes.size) if strata is None else stratified_permutation(strata, rng)]
        if fit(perm[iu] == perm[ju])[0] >= coef[0] - 1e-12:
            exceed += 1
    return LengthAdjustedResult(
        same_category_coef=float(coef[0]),
        length_diff_coef=float(coef[2]),
        length_sum_coef=float(coef[3]),
        p_value=(1 + exceed) / (1 + n_permutations),
        n_permutations=n_permutations,
        n_pairs=int(y.size),
        null="labels shuffled over all rows" if strata is None else "labels shuffled within length strata",
    )
