"""The headline statistics on the model and its controls, with the nulls and intervals they need.

Pure functions: pairwise matrices in, numbers out (no I/O, no models).

Four headline statistics of "same-category ISN sets overlap more than cross-category ones", each
a function of a pairwise similarity matrix ``pair[n, n]`` (Jaccard of ISN sets) and the labels:

- ``unmatched``: mean of the diagonal minus mean off the diagonal of the category-mean matrix
  (Fig. 3's contrast). Null: labels shuffled over all rows: it tests *any* category structure.
- ``length_adjusted``: the same-category coefficient of the least squares
  ``pair_ij ~ 1 + same_ij + |log T_i - log T_j| + (log T_i + log T_j)`` over all pairs.
  Null: labels shuffled *within length strata* (the null keeps how categories sit on the length
  axis, so it tests "beyond length").
- ``length_matched``: per category, own-pair minus cross-pair mean within cells of equal length
  strata, weighted by own pairs (:mod:`~hexainst.analysis.length_matching`); mean over categories.
  Null: labels shuffled within length strata.
- ``cross_source``: pairs of one natural and one synthetic instruction only (the halves share no
  template or generator): diagonal minus off-diagonal of the natural x synthetic category means.
  Null: labels shuffled within (source half x length stratum).

Every statistic is *linear* in the pair values for fixed labels and weights, so the statistic of
the difference of two matrices is the difference of the statistics. The excess of the model over
its untrained baseline (``model - mean over seeds of untrained``) is therefore computed, tested
and bootstrapped as the statistic of the difference matrix, on the same shuffles and the same
bootstrap draws as the model itself (a paired design: the same rows in every matrix).

Intervals: the two-stage cluster bootstrap of :func:`hexainst.analysis.nulls.cluster_bootstrap_weights`
(clusters within categories, then rows); a row drawn m times weighs m, a pair m_i * m_j, and a
pair of two copies of one row is never formed (as self-pairs are excluded).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from hexainst.analysis.length_matching import length_strata
from hexainst.analysis.nulls import cluster_bootstrap_weights, combine_strata, p_value, stratified_permutation

#: The headline statistics, in report order.
HEADLINES: tuple[str, ...] = ("unmatched", "length_adjusted", "length_matched", "cross_source")

#: What each headline measures (one phrase) and the null its p-value uses.
HEADLINE_TEXT = {
    "unmatched": ("same - cross Jaccard, unmatched (Fig. 3 diagonal - off-diagonal)",
                  "labels shuffled over all rows: any category structure"),
    "length_adjusted": ("same-category coefficient of the length regression",
                        "labels shuffled within length strata: beyond length"),
    "length_matched": ("same - cross Jaccard on length-matched pairs (mean over categories)",
                       "labels shuffled within length strata: beyond length"),
    "cross_source": ("same - cross Jaccard between the natural and synthetic halves",
                     "labels shuffled within source half x length stratum"),
}


def _quantile(draws: np.ndarray, q: float, axis: int = 0) -> np.ndarray:
    """np.nanquantile without the warning for a statistic that is undefined in every draw (NaN)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        return np.nanquantile(draws, q, axis=axis)


def _bincols(key: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Sums of the columns of ``values`` [p, k] by ``key`` [p]: float64 [size, k]."""
    return np.stack([np.bincount(key, weights=values[:, c], minlength=size) for c in range(values.shape[1])],
                    axis=1)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    ok = np.isfinite(x)
    n = ok.sum(axis=axis)
    s = np.where(ok, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


@dataclass
class PairDesign:
    """What the headline statistics need besides the pair values, prepared once for n rows.

    codes: int [n] category of each row (0..n_cat-1); n_tokens: int [n]; natural: bool [n] (source
    half); strata: int [n] length stratum of each row.
    """

    codes: np.ndarray
    n_cat: int
    n_tokens: np.ndarray
    natural: np.ndarray
    strata: np.ndarray
    iu: np.ndarray = field(init=False)
    ju: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.codes.size
        self.iu, self.ju = np.triu_indices(n, k=1)
        lt = np.log(np.asarray(self.n_tokens, dtype=np.float64))
        self._x_len = np.column_stack([np.ones(self.iu.size), np.abs(lt[self.iu] - lt[self.ju]),
                                       lt[self.iu] + lt[self.ju]])
        k = int(self.strata.max()) + 1
        si, sj = self.strata[self.iu], self.strata[self.ju]
        self._cell = np.minimum(si, sj) * k + np.maximum(si, sj)
        self._n_cells = k * k
        nat = np.asarray(self.natural, dtype=bool)
        self._ns = nat[self.iu] != nat[self.ju]
        self._nat_member = np.where(nat[self.iu], self.iu, self.ju)[self._ns]
        self._syn_member = np.where(nat[self.iu], self.ju, self.iu)[self._ns]
        self.length_null_strata = self.strata
        self.source_null_strata = combine_strata(nat.astype(np.int64), self.strata)
        self._src = nat.astype(np.int64)
        self._cache: dict = {}
        self._products: dict = {}

    @classmethod
    def build(cls, labels: Sequence[str], categories: Sequence[str], n_tokens: np.ndarray,
              natural: Sequence[bool], n_strata: int) -> PairDesign:
        index = {c: i for i, c in enumerate(categories)}
        codes = np.array([index[str(x)] for x in labels], dtype=np.int64)
        t = np.asarray(n_tokens)
        return cls(codes=codes, n_cat=len(categories), n_tokens=t, natural=np.asarray(natural, dtype=bool),
                   strata=length_strata(t, n_strata))

    def values(self, pair: np.ndarray) -> np.ndarray:
        """The upper-triangle pair values of a [n, n] matrix: float64 [P]."""
        return np.asarray(pair, dtype=np.float64)[self.iu, self.ju]

    def aux(self) -> np.ndarray:
        """The regression's pair covariates as matrices: float64 [3, n, n] (|log T_i - log T_j|, log T_i + log T_j, 1)."""
        lt = np.log(np.asarray(self.n_tokens, dtype=np.float64))
        return np.stack([np.abs(lt[:, None] - lt[None, :]), lt[:, None] + lt[None, :], np.ones((lt.size, lt.size))])

    def statistics(self, mats: np.ndarray, codes: np.ndarray | None = None, weights: np.ndarray | None = None,
                   which: Sequence[str] = HEADLINES, aux: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Headline statistics of k matrices at once, from group sums (fast; equal to :meth:`statistics_pairs`).

        mats: float [k, n, n] symmetric pairwise matrices; aux: :meth:`aux` (computed when None and
        the regression is asked for). Rows are grouped by (source half, length stratum, category);
        every statistic is a function of the group sums sum_{i in g, j in h, i != j} m_i m_j q_ij of
        the matrices q (the pair values and, for the regression, its covariates), O(n^2) per matrix.
        """
        fixed = codes is None  # the design's own labels: the sorted matrices are cached (bootstrap draws)
        codes = self.codes if codes is None else codes
        n, m, S = codes.size, self.n_cat, int(self.strata.max()) + 1
        k = mats.shape[0]
        reg = "length_adjusted" in which
        raw = mats
        if reg:
            aux = self.aux() if aux is None else aux
            mats = np.concatenate([mats, aux])
        mw = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
        group = (self._src * S + self.strata) * m + codes
        key = (id(raw), reg)
        if fixed and self._cache.get("key") == key:
            order, jo = self._cache["order"], self._cache["jo"]
        else:
            order = np.argsort(group, kind="stable")
            jo = mats[:, order][:, :, order]
            if fixed:
                self._cache = {"key": key, "order": order, "jo": jo, "raw": raw}
        go = group[order]
        starts = np.flatnonzero(np.r_[True, go[1:] != go[:-1]])
        present = go[starts]
        ng = 2 * S * m
        mo = mw[order]
        part = np.add.reduceat(jo * mo[None, None, :], starts, axis=2)  # [k, n, g']
        gs = np.add.reduceat(part * mo[None, :, None], starts, axis=1)  # [k, g', g']
        dsum = np.add.reduceat(np.einsum("kii->ki", jo) * (mo ** 2)[None, :], starts, axis=1)  # [k, g']
        msum = np.add.reduceat(mo, starts)
        m2sum = np.add.reduceat(mo ** 2, starts)
        kk = mats.shape[0]
        G = np.zeros((kk, ng, ng))
        G[:, present[:, None], present[None, :]] = gs
        G[:, present, present] -= dsum
        C = np.zeros((ng, ng))
        C[present[:, None], present[None, :]] = np.outer(msum, msum)
        C[present, present] -= m2sum
        G = G.reshape(kk, 2, S, m, 2, S, m)
        C = C.reshape(2, S, m, 2, S, m)
        out: dict[str, np.ndarray] = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            if "unmatched" in which:
                full = G[:k].sum(axis=(1, 2, 4, 5)) / C.sum(axis=(0, 1, 3, 4))[None]  # [k, m, m]
                diag = np.stack([full[:, a, a] for a in range(m)])  # [m, k]
                off = full[:, ~np.eye(m, dtype=bool)].T
                out["unmatched"] = _nanmean(diag, 0) - _nanmean(off, 0)
                out["unmatched_per_category"] = np.stack(
                    [diag[a] - _nanmean(full[:, a][:, np.arange(m) != a].T, 0) for a in range(m)])
            if "length_matched" in which:
                Gs = G[:k].sum(axis=(1, 4))  # [k, S, m, S, m]
                Cs = C.sum(axis=(0, 3))  # [S, m, S, m]
                ss = np.einsum("ksctc->kcst", Gs)  # same-category sums, ordered strata [k, m, S, S]
                sn = np.einsum("sctc->cst", Cs)
                xs = Gs.sum(axis=4) - np.einsum("ksctc->ksct", Gs)  # first in c at s, other not in c at t
                xn = Cs.sum(axis=3) - np.einsum("sctc->sct", Cs)
                xs = np.transpose(xs, (0, 2, 1, 3))  # [k, m, S, S]
                xn = np.transpose(xn, (1, 0, 2))
                iu_s, ju_s = np.triu_indices(S)
                on = iu_s == ju_s
                half = np.where(on, 0.5, 1.0)
                s_sum = ss[:, :, iu_s, ju_s] * half
                s_n = sn[:, iu_s, ju_s] * half
                x_sum = np.where(on, xs[:, :, iu_s, ju_s], xs[:, :, iu_s, ju_s] + xs[:, :, ju_s, iu_s])
                x_n = np.where(on, xn[:, iu_s, ju_s], xn[:, iu_s, ju_s] + xn[:, ju_s, iu_s])
                usable = (s_n > 1e-12) & (x_n > 1e-12)
                wt = np.where(usable, s_n, 0.0)
                diff = np.where(usable[None], s_sum / np.where(usable, s_n, 1.0)[None]
                                - x_sum / np.where(usable, x_n, 1.0)[None], 0.0)
                per = (wt[None] * diff).sum(axis=2) / wt.sum(axis=1)[None]  # [k, m]
                out["length_matched_per_category"] = per.T
                out["length_matched"] = _nanmean(per.T, 0)
            if "cross_source" in which:
                Gc = G[:k].sum(axis=(2, 5))  # [k, 2, m, 2, m]
                Cc = C.sum(axis=(1, 4))
                cell = Gc[:, 1, :, 0, :] / Cc[1, :, 0, :][None]  # natural row category x synthetic column
                diag = np.stack([cell[:, a, a] for a in range(m)])
                off = cell[:, ~np.eye(m, dtype=bool)].T
                out["cross_source"] = _nanmean(diag, 0) - _nanmean(off, 0)
        if reg:
            out["length_adjusted"] = self._regression(raw, mats, G, mw, k)
        return out

    def _regression(self, raw: np.ndarray, mats: np.ndarray, G: np.ndarray, mw: np.ndarray, k: int) -> np.ndarray:
        """Same-category coefficient of the weighted least squares, from sums over pairs: float [k].

        mats: [k + 3, n, n] (pair values, then |dlog T|, sum log T, ones). Sums over all pairs of
        products are m^T (q1 * q2) m minus the diagonal, halved (unordered pairs); sums over
        same-category pairs come from the group sums G.
        """
        a, b, one = mats[k], mats[k + 1], mats[k + 2]
        if self._products.get("key") != id(raw):  # products of the covariates and the pair values, once
            self._products = {"key": id(raw), "raw": raw, "aa": a * a, "ab": a * b, "bb": b * b,
                              "ay": [a * mats[c] for c in range(k)], "by": [b * mats[c] for c in range(k)]}
        p = self._products

        def total(q: np.ndarray) -> float:
            return float((mw @ q @ mw - np.sum(np.diagonal(q) * mw ** 2)) / 2)

        def same(idx: int) -> float:
            g = G[idx].sum(axis=(0, 1, 3, 4))  # [m, m]
            return float(np.trace(g) / 2)

        n_same, sa, sb = same(k + 2), same(k), same(k + 1)
        n_all, ta, tb = total(one), total(a), total(b)
        taa, tab, tbb = total(p["aa"]), total(p["ab"]), total(p["bb"])
        xtx = np.array([[n_same, n_same, sa, sb], [n_same, n_all, ta, tb], [sa, ta, taa, tab], [sb, tb, tab, tbb]])
        out = np.full(k, np.nan)
        if n_same <= 0 or n_same >= n_all or np.linalg.matrix_rank(xtx) < 4:
            return out  # no same-category pair (or no other): the coefficient is not defined
        for c in range(k):
            y = mats[c]
            xty = np.array([same(c), total(y), total(p["ay"][c]), total(p["by"][c])])
            out[c] = np.linalg.solve(xtx, xty)[0]
        return out

    def statistics_pairs(self, y: np.ndarray, codes: np.ndarray | None = None, weights: np.ndarray | None = None,
                         which: Sequence[str] = HEADLINES) -> dict[str, np.ndarray]:
        """Headline statistics of k matrices at once, pair by pair (the reference implementation).

        y: float [P, k] pair values (columns: matrices); codes: labels (default: the design's;
        a shuffle passes its own); weights: float [n] row multiplicities (bootstrap) or None.
        Returns name -> float [k], plus ``unmatched_per_category`` and ``length_matched_per_category``
        (float [n_cat, k]) when those statistics are asked for.
        """
        codes = self.codes if codes is None else codes
        m = self.n_cat
        w = np.ones(self.iu.size) if weights is None else weights[self.iu] * weights[self.ju]
        wy = y * w[:, None]
        ci, cj = codes[self.iu], codes[self.ju]
        out: dict[str, np.ndarray] = {}
        if "unmatched" in which:
            key = np.minimum(ci, cj) * m + np.maximum(ci, cj)
            cnt = np.bincount(key, weights=w, minlength=m * m)
            with np.errstate(invalid="ignore", divide="ignore"):
                cell = _bincols(key, wy, m * m) / cnt[:, None]
            cell = cell.reshape(m, m, -1)
            full = np.where(np.isnan(cell), np.transpose(cell, (1, 0, 2)), cell)  # symmetric
            diag = np.stack([full[a, a] for a in range(m)])  # [m, k]
            off_mask = ~np.eye(m, dtype=bool)
            off = full[off_mask]  # [m(m-1), k]
            out["unmatched"] = _nanmean(diag, 0) - _nanmean(off, 0)
            out["unmatched_per_category"] = np.stack(
                [diag[a] - _nanmean(full[a][np.arange(m) != a], 0) for a in range(m)])
        if "length_matched" in which:
            same = ci == cj
            size = self._n_cells * m
            s_key = self._cell[same] * m + ci[same]
            xs = ~same
            x_key = np.concatenate([self._cell[xs] * m + ci[xs], self._cell[xs] * m + cj[xs]])
            s_n = np.bincount(s_key, weights=w[same], minlength=size).reshape(self._n_cells, m)
            x_n = np.bincount(x_key, weights=np.concatenate([w[xs], w[xs]]), minlength=size).reshape(self._n_cells, m)
            s_sum = _bincols(s_key, wy[same], size).reshape(self._n_cells, m, -1)
            x_sum = _bincols(x_key, np.concatenate([wy[xs], wy[xs]]), size).reshape(self._n_cells, m, -1)
            usable = (s_n > 0) & (x_n > 0)
            wt = np.where(usable, s_n, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                diff = np.where(usable[..., None], s_sum / np.maximum(s_n, 1e-300)[..., None]
                                - x_sum / np.maximum(x_n, 1e-300)[..., None], 0.0)
                per = (wt[..., None] * diff).sum(axis=0) / wt.sum(axis=0)[:, None]  # [m, k]
            out["length_matched_per_category"] = per
            out["length_matched"] = _nanmean(per, 0)
        if "length_adjusted" in which:
            x = np.column_stack([(ci == cj).astype(np.float64), self._x_len])
            xtw = (x * w[:, None]).T
            beta = np.linalg.lstsq(xtw @ x, xtw @ y, rcond=None)[0]
            out["length_adjusted"] = beta[0]
        if "cross_source" in which:
            a, b = codes[self._nat_member], codes[self._syn_member]
            key = a * m + b
            ws = w[self._ns]
            cnt = np.bincount(key, weights=ws, minlength=m * m)
            with np.errstate(invalid="ignore", divide="ignore"):
                cell = (_bincols(key, wy[self._ns], m * m) / cnt[:, None]).reshape(m, m, -1)
            diag = np.stack([cell[a_, a_] for a_ in range(m)])
            off = cell[~np.eye(m, dtype=bool)]
            out["cross_source"] = _nanmean(diag, 0) - _nanmean(off, 0)
        return out


@dataclass
class HeadlineStat:
    """One headline statistic for every column (model, each untrained seed, their mean, lexical, excess)."""

    name: str
    description: str
    null: str
    values: dict[str, float]
    ci_low: dict[str, float]
    ci_high: dict[str, float]
    p_values: dict[str, float]
    n_permutations: int
    #: per category (unmatched and length-matched only): column -> [m] values, and CIs of those
    per_category: dict[str, list[float]] | None = None
    per_category_low: dict[str, list[float]] | None = None
    per_category_high: dict[str, list[float]] | None = None


def _columns(pairs: Mapping[str, np.ndarray], untrained: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]]:
    """The columns: the given matrices plus 'untrained mean' and 'excess' (model - untrained mean)."""
    cols = dict(pairs)
    if untrained:
        cols["untrained mean"] = np.mean([pairs[u] for u in untrained], axis=0)
        cols["excess"] = pairs["model"] - cols["untrained mean"]
    return list(cols), cols


def headline_statistics(
    pairs: Mapping[str, np.ndarray],
    design: PairDesign,
    *,
    untrained: Sequence[str] = (),
    clusters: np.ndarray | None = None,
    n_permutations: int = 500,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    tested: Sequence[str] | None = None,
    progress: bool = False,
) -> list[HeadlineStat]:
    """Every headline statistic for every matrix, with cluster-bootstrap CIs and permutation p-values.

    pairs: column name -> float [n, n] pairwise similarity ("model" required; the names in
    ``untrained`` are the untrained seeds; e.g. "lexical" too). Adds "untrained mean" and
    "excess" when ``untrained`` is given. clusters: int [n] resampling cluster of each row (None:
    every row its own). CIs and p-values are computed for the columns in ``tested`` (default:
    model, untrained mean, lexical, excess: those present); the seeds get point values.
    """
    names, cols = _columns(pairs, untrained)
    tested = [c for c in (tested or ("model", "untrained mean", "lexical", "excess")) if c in cols]
    aux = design.aux()
    point = design.statistics(np.stack([cols[c] for c in names]), aux=aux)
    y = np.stack([cols[c] for c in tested])
    clusters = np.arange(design.codes.size) if clusters is None else np.asarray(clusters)
    rng = np.random.default_rng(seed)
    boot: dict[str, list[np.ndarray]] = {h: [] for h in HEADLINES}
    boot_cat: dict[str, list[np.ndarray]] = {"unmatched": [], "length_matched": []}
    draws: Any = range(n_boot)
    shuffles: Any = range(n_permutations)
    if progress:
        draws = tqdm(draws, desc="controls: cluster bootstrap", unit="draw")
        shuffles = tqdm(shuffles, desc="controls: shuffles", unit="shuffle")
    for _ in draws:
        wts = cluster_bootstrap_weights(design.codes, clusters, rng)
        s = design.statistics(y, weights=wts, aux=aux)
        for h in HEADLINES:
            boot[h].append(s[h])
        for h in boot_cat:
            boot_cat[h].append(s[f"{h}_per_category"])
    exceed = {h: np.zeros(len(tested), dtype=np.int64) for h in HEADLINES}
    obs = design.statistics(y, aux=aux)
    rng_p = np.random.default_rng(seed + 1)
    for _ in shuffles:
        free = design.codes[rng_p.permutation(design.codes.size)]
        strat = design.codes[stratified_permutation(design.length_null_strata, rng_p)]
        src = design.codes[stratified_permutation(design.source_null_strata, rng_p)]
        s1 = design.statistics(y, codes=free, which=("unmatched",))
        s2 = design.statistics(y, codes=strat, which=("length_adjusted", "length_matched"), aux=aux)
        s3 = design.statistics(y, codes=src, which=("cross_source",))
        for h, s in (("unmatched", s1), ("length_adjusted", s2), ("length_matched", s2), ("cross_source", s3)):
            exceed[h] += (s[h] >= obs[h] - 1e-12)
    alpha = (1 - level) / 2
    out = []
    for h in HEADLINES:
        draws = np.array(boot[h]) if n_boot else np.full((1, len(tested)), np.nan)
        lo = _quantile(draws, alpha, axis=0) if n_boot else draws[0]
        hi = _quantile(draws, 1 - alpha, axis=0) if n_boot else draws[0]
        stat = HeadlineStat(
            name=h, description=HEADLINE_TEXT[h][0], null=HEADLINE_TEXT[h][1],
            values={c: float(point[h][k]) for k, c in enumerate(names)},
            ci_low={c: float(lo[k]) for k, c in enumerate(tested)},
            ci_high={c: float(hi[k]) for k, c in enumerate(tested)},
            p_values={c: (p_value(int(exceed[h][k]), n_permutations) if np.isfinite(obs[h][k]) else float("nan"))
                      for k, c in enumerate(tested)},
            n_permutations=n_permutations,
        )
        if h in boot_cat:
            per = point[f"{h}_per_category"]
            stat.per_category = {c: [float(v) for v in per[:, k]] for k, c in enumerate(names)}
            if n_boot:
                cd = np.array(boot_cat[h])  # [B, m, k]
                stat.per_category_low = {c: [float(v) for v in _quantile(cd[:, :, k], alpha, axis=0)]
                                         for k, c in enumerate(tested)}
                stat.per_category_high = {c: [float(v) for v in _quantile(cd[:, :, k], 1 - alpha, axis=0)]
                                          for k, c in enumerate(tested)}
        out.append(stat)
    return out


def per_layer_intervals(per_layer: np.ndarray, codes: np.ndarray, n_cat: int, clusters: np.ndarray | None, *,
                        n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster-bootstrap CI of each category's mean ISNs per layer (Fig. 5): (low, high) float [n_cat, L].

    per_layer: int [n, L] ISNs per layer of each instruction; codes: int [n] category codes.
    """
    per_layer = np.asarray(per_layer, dtype=np.float64)
    clusters = np.arange(codes.size) if clusters is None else np.asarray(clusters)
    rng = np.random.default_rng(seed)
    onehot = np.zeros((codes.size, n_cat))
    onehot[np.arange(codes.size), codes] = 1.0
    draws = np.empty((n_boot, n_cat, per_layer.shape[1]))
    for b in range(n_boot):
        w = onehot * cluster_bootstrap_weights(codes, clusters, rng)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[b] = (w.T @ per_layer) / w.sum(axis=0)[:, None]
    alpha = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        return np.nanquantile(draws, alpha, axis=0), np.nanquantile(draws, 1 - alpha, axis=0)
