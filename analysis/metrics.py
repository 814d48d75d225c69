"""Pure metric functions: Jaccard between ISN sets, Pearson between routing vectors, category means.

Arrays in, arrays out, no I/O (SPEC §2.3-2.4).

Exact pairwise Jaccard over all instructions: |A ∩ B| is the Gram matrix X X^T of the 0/1
membership matrix X [n, n_cols]. It is computed with dense float32 BLAS on column chunks;
a chunk holds at most ``chunk_cols`` < 2^24 columns, so every float32 partial sum is an exact
integer, and chunks are added into an int64 accumulator. Never fp16/bf16. Columns that are in
no set are dropped first (on real models the union of all sets is often a fraction of the neurons).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from hexainst.analysis.isn import IsnSets

#: Largest column chunk: float32 represents every integer up to 2^24 exactly.
_MAX_EXACT_F32 = 1 << 24


def _membership_csc(sets: IsnSets, used: np.ndarray) -> sp.csc_matrix:
    """0/1 membership over the used columns: float32 CSC [n, len(used)], sorted row ids per column."""
    lut = np.full(sets.n_cols, -1, dtype=np.int64)
    lut[used] = np.arange(used.size)
    data = np.ones(sets.indices.size, dtype=np.float32)
    csr = sp.csr_matrix((data, lut[sets.indices], sets.indptr), shape=(sets.n, int(used.size)))
    csc = csr.tocsc()
    csc.sort_indices()
    return csc


def _pair_count_gram(indptr: np.ndarray, rows: np.ndarray, n: int, max_keys: int = 1 << 24) -> np.ndarray:
    """Gram matrix of 0/1 columns given as sorted row lists (CSC): int64 [n, n].

    Every column with m members adds 1 to the m(m-1)/2 cells (r_a, r_b), a < b, which are
    counted with one ``bincount`` per batch of columns (exact integer counting, cheap for
    columns that are in few sets: the common case for 1% sets); the diagonal is the number
    of columns each row is in.
    """
    nnz = np.diff(indptr)
    upper = np.zeros(n * n, dtype=np.int64)
    for m in np.unique(nnz):
        if m < 2:
            continue
        cols = np.flatnonzero(nnz == m)
        ia, ib = np.triu_indices(int(m), k=1)
        step = max(1, max_keys // ia.size)
        for c0 in range(0, cols.size, step):
            members = rows[indptr[cols[c0 : c0 + step], None] + np.arange(m)].astype(np.int64)
            keys = members[:, ia] * n + members[:, ib]
            upper += np.bincount(keys.ravel(), minlength=n * n)
    upper = upper.reshape(n, n)
    return upper + upper.T + np.diag(np.bincount(rows, minlength=n).astype(np.int64))


def intersection_counts(
    a: IsnSets,
    b: IsnSets | None = None,
    *,
    chunk_cols: int = 16384,
    method: str = "hybrid",
    progress: bool = False,
) -> np.ndarray:
    """|S_a(i) ∩ S_b(j)| for every pair: int64 [n_a, n_b] (b defaults to a).

    method:
    - ``dense``: float32 BLAS (X X^T) over chunks of the used columns, accumulated in int64;
    - ``sparse``: pair counting per column (integer ``bincount``), fast when every column is
      in few sets;
    - ``hybrid`` (default): columns in more than n/8 sets go through dense BLAS, the rest
      through pair counting. All three are exact and equal.
    With ``b``, the rows of a and b are stacked and the cross block of the Gram matrix returned.
    """
    if b is not None:
        if b.n_cols != a.n_cols:
            raise ValueError(f"sets over different neuron counts: {a.n_cols} vs {b.n_cols}")
        both = IsnSets(
            np.concatenate([a.indptr, a.indptr[-1] + b.indptr[1:]]),
            np.concatenate([a.indices, b.indices]),
            a.n_cols, a.eps, a.tie_rule, a.scope,
        )
        return intersection_counts(both, chunk_cols=chunk_cols, method=method, progress=progress)[: a.n, a.n :]
    if method not in ("hybrid", "dense", "sparse"):
        raise ValueError(f"unknown method {method!r}; expected hybrid, dense or sparse")
    n = a.n
    chunk_cols = int(min(max(chunk_cols, 1), _MAX_EXACT_F32 - 1))
    used = np.flatnonzero(np.bincount(a.indices, minlength=a.n_cols))
    x = _membership_csc(a, used)
    nnz = np.diff(x.indptr)
    if method == "dense" or n * n > (1 << 27):
        heavy = np.ones(used.size, dtype=bool)
    elif method == "sparse":
        heavy = np.zeros(used.size, dtype=bool)
    else:
        heavy = nnz > max(8, n // 8)
    light = np.flatnonzero(~heavy)
    if light.size:
        xl = x[:, light]
        out = _pair_count_gram(xl.indptr, xl.indices, n)
    else:
        out = np.zeros((n, n), dtype=np.int64)
    heavy_cols = np.flatnonzero(heavy)
    starts = range(0, int(heavy_cols.size), chunk_cols)
    if progress:
        starts = tqdm(starts, desc="Jaccard", unit="chunk")
    for c0 in starts:
        dense = x[:, heavy_cols[c0 : c0 + chunk_cols]].toarray()  # float32 [n, chunk]
        out += (dense @ dense.T).astype(np.int64)  # numpy uses SYRK for A @ A.T
    return out


def jaccard_matrix(
    a: IsnSets,
    b: IsnSets | None = None,
    *,
    chunk_cols: int = 16384,
    method: str = "hybrid",
    progress: bool = False,
) -> np.ndarray:
    """Jaccard(S_a(i), S_b(j)) for every pair: float64 [n_a, n_b] (b defaults to a).

    Two empty sets have Jaccard 0 (as sklearn's ``jaccard_score`` with zero_division=0).
    """
    inter = intersection_counts(a, b, chunk_cols=chunk_cols, method=method, progress=progress)
    size_a = a.sizes()
    size_b = size_a if b is None else b.sizes()
    union = size_a[:, None] + size_b[None, :] - inter
    out = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def paired_jaccard(a: IsnSets, b: IsnSets) -> np.ndarray:
    """Jaccard(S_a(i), S_b(i)) row by row (Table 1: base vs fine-tuned): float64 [n]."""
    if a.n != b.n:
        raise ValueError(f"paired sets need the same rows: {a.n} vs {b.n}")
    out = np.zeros(a.n, dtype=np.float64)
    for r in range(a.n):
        ra, rb = a.row(r), b.row(r)
        inter = np.intersect1d(ra, rb, assume_unique=True).size
        union = ra.size + rb.size - inter
        out[r] = inter / union if union else 0.0
    return out


def venn_counts_per_layer(
    a_row: np.ndarray, b_row: np.ndarray, neuron_layer: np.ndarray, n_layers: int
) -> np.ndarray:
    """Per layer: [a only, both, b only] counts of two sets of column ids: int64 [n_layers, 3]."""
    layer = np.asarray(neuron_layer, dtype=np.int64)
    both = np.intersect1d(a_row, b_row, assume_unique=True)
    a_only = np.setdiff1d(a_row, b_row, assume_unique=True)
    b_only = np.setdiff1d(b_row, a_row, assume_unique=True)
    out = np.zeros((n_layers, 3), dtype=np.int64)
    for k, cols in enumerate((a_only, both, b_only)):
        out[:, k] = np.bincount(layer[cols], minlength=n_layers)[:n_layers]
    return out


def pearson_matrix(f: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
    """Pearson r between rows: float64 [n_f, n_g] (g defaults to f).

    f: float [n_f, d], g: float [n_g, d] (routing-frequency vectors F(I), Fig. 4). A constant
    row has no correlation: its entries are NaN (as ``scipy.stats.pearsonr`` warns and returns).
    """
    f = np.asarray(f, dtype=np.float64)
    g = f if g is None else np.asarray(g, dtype=np.float64)
    if f.shape[1] != g.shape[1]:
        raise ValueError(f"vectors of different length: {f.shape[1]} vs {g.shape[1]}")
    fc = f - f.mean(axis=1, keepdims=True)
    gc = g - g.mean(axis=1, keepdims=True)
    fn = np.sqrt(np.einsum("ij,ij->i", fc, fc))
    gn = np.sqrt(np.einsum("ij,ij->i", gc, gc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (fc @ gc.T) / np.outer(fn, gn)
    r[np.outer(fn == 0, gn == 0) | (fn == 0)[:, None] | (gn == 0)[None, :]] = np.nan
    return np.clip(r, -1.0, 1.0)


def paired_pearson(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Pearson r(f[i], g[i]) row by row (Table 2): float64 [n]."""
    f = np.asarray(f, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if f.shape != g.shape:
        raise ValueError(f"paired vectors need the same shape: {f.shape} vs {g.shape}")
    fc = f - f.mean(axis=1, keepdims=True)
    gc = g - g.mean(axis=1, keepdims=True)
    num = np.einsum("ij,ij->i", fc, gc)
    den = np.sqrt(np.einsum("ij,ij->i", fc, fc) * np.einsum("ij,ij->i", gc, gc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[den == 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def one_hot(labels: Sequence[str] | np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """Category membership weights: float64 [n, n_categories]."""
    index = {c: k for k, c in enumerate(categories)}
    missing = sorted({str(x) for x in labels} - set(index))
    if missing:
        raise ValueError(f"labels not among the categories: {', '.join(missing)}")
    out = np.zeros((len(labels), len(categories)), dtype=np.float64)
    out[np.arange(len(labels)), [index[str(x)] for x in labels]] = 1.0
    return out


def weighted_category_means(
    pair: np.ndarray, weights: np.ndarray, *, include_self: bool = False
) -> np.ndarray:
    """Category means of a pairwise matrix under instruction weights: float64 [m, m].

    pair: [n, n] symmetric pairwise values (Jaccard or Pearson); weights: [n, m], weights[i, a]
    = how many times instruction i counts in category a (one-hot, or bootstrap multiplicities).
    Cell (a, b) = sum_{i,j} w_ia w_jb pair_ij / sum_{i,j} w_ia w_jb over pairs of *different*
    instructions unless include_self (the paper's rule, J(I, I) = 1 on the diagonal).
    NaN entries of ``pair`` (constant routing rows) are left out of both sums.
    """
    pair = np.asarray(pair, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    nan = np.isnan(pair)
    if nan.any():
        values = np.where(nan, 0.0, pair)
        mask = (~nan).astype(np.float64)
        count = w.T @ mask @ w
        diag_m = np.diagonal(mask)
    else:
        values = pair
        col = w.sum(axis=0)
        count = np.outer(col, col)
        diag_m = np.ones(pair.shape[0])
    total = w.T @ values @ w
    if not include_self:
        total -= w.T @ (np.diagonal(values)[:, None] * w)
        count -= w.T @ (diag_m[:, None] * w)
    out = np.full(total.shape, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def category_means(
    pair: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    categories: Sequence[str],
    *,
    include_self: bool = False,
) -> np.ndarray:
    """The m x m matrix of category means (Fig. 3 / Fig. 4): float64 [m, m]."""
    return weighted_category_means(pair, one_hot(labels, categories), include_self=include_self)


def diagonal_contrast(means: np.ndarray) -> tuple[float, float, float]:
    """(mean of the diagonal, mean off the diagonal, difference) of a square matrix."""
    m = np.asarray(means, dtype=np.float64)

    def mean(values: np.ndarray) -> float:  # NaN, without a warning, when no value is defined
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else float("nan")

    diag = mean(np.diagonal(m))
    off = mean(m[~np.eye(m.shape[0], dtype=bool)])
    return diag, off, diag - off


def per_category_mean(values: np.ndarray, labels: Sequence[str], categories: Sequence[str]) -> np.ndarray:
    """Mean of per-instruction values within each category (NaN ignored): float64 [m]."""
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels)
    out = np.full(len(categories), np.nan)
    for k, c in enumerate(categories):
        v = values[labels == c]
        v = v[~np.isnan(v)]
        if v.size:
            out[k] = v.mean()
    return out


def top_experts(counts: np.ndarray, k: int = 5) -> list[int]:
    """Ids of the ``k`` largest selection counts, ties to the lower expert id. counts: int [E]."""
    counts = np.asarray(counts)
    order = np.lexsort((np.arange(counts.size), -counts))
    return [int(e) for e in order[:k]]


@dataclass(frozen=True)
class ExpertSelectionLayer:
    """Table 6, one layer: the top experts of each model and those in both."""

    layer: int
    base_top5: list[int]
    ft_top5: list[int]
    stable: list[int]


@dataclass(frozen=True)
class ExpertSelection:
    """Table 6, one category: top experts by token-level selection count as [expert, count] pairs."""

    base_top5: list[list[int]]
    ft_top5: list[list[int]]
    stable: list[int]
    per_layer: list[ExpertSelectionLayer]


def expert_selection(
    routing_base: np.ndarray,
    routing_ft: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    categories: Sequence[str],
    *,
    k: int = 5,
) -> dict[str, ExpertSelection]:
    """Table 6: per category, the experts the two models select most, summed over its instructions.

    routing_base, routing_ft: int [n, L, E] token-level top-k selection counts of the same
    instructions. Over all layers (and per layer), the ``k`` experts with the largest counts
    (ties to the lower id); ``stable`` = experts in both models' top ``k``, sorted.
    """
    labels = np.asarray(labels)
    out = {}
    for c in categories:
        rb = np.asarray(routing_base)[labels == c].astype(np.int64)  # [n_c, L, E]
        rf = np.asarray(routing_ft)[labels == c].astype(np.int64)
        tb, tf = rb.sum(axis=(0, 1)), rf.sum(axis=(0, 1))
        top_b, top_f = top_experts(tb, k), top_experts(tf, k)
        layers = []
        for layer in range(rb.shape[1]):
            lb, lf = top_experts(rb[:, layer].sum(axis=0), k), top_experts(rf[:, layer].sum(axis=0), k)
            layers.append(ExpertSelectionLayer(layer, lb, lf, sorted(set(lb) & set(lf))))
        out[c] = ExpertSelection(
            base_top5=[[e, int(tb[e])] for e in top_b], ft_top5=[[e, int(tf[e])] for e in top_f],
            stable=sorted(set(top_b) & set(top_f)), per_layer=layers,
        )
    return out


def length_stats(n_tokens: np.ndarray, labels: Sequence[str] | np.ndarray,
                 categories: Sequence[str]) -> dict[str, dict[str, float]]:
    """Instruction length T per category: {category: {mean, median, min, max}}. n_tokens: int [n]."""
    labels = np.asarray(labels)
    out = {}
    for c in categories:
        t = np.asarray(n_tokens)[labels == c].astype(np.float64)
        q05, q25, q75, q95 = (float(v) for v in np.quantile(t, [0.05, 0.25, 0.75, 0.95]))
        out[c] = {"mean": float(t.mean()), "median": float(np.median(t)), "min": int(t.min()), "max": int(t.max()),
                  "q05": q05, "q25": q25, "q75": q75, "q95": q95}
    return out
