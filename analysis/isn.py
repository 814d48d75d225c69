"""Instruction-specific neuron (ISN) sets: the top-epsilon percentile of each instruction.

SPEC §2.2. For instruction I with T tokens and per-neuron counts c_i (tokens with activation
> 0), p_i = c_i / T. With N neurons in scope and k = ceil(eps * N), the threshold tau(I) is the
k-th largest p; because T is the same for every neuron of one instruction, comparing p is
comparing integer counts, so thresholds are exact (no float rounding decides a tie).

Tie rules (named, explicit):

- ``paper``: S(I) = {i : p_i >= tau(I)}: every neuron tied at the threshold is kept, so
  |S(I)| >= k (on gemma-3-270m often several times k).
- ``exact-k``: exactly k neurons; ties at tau are broken by the larger activation sum
  (mean activation over the instruction's tokens, ``store.sums``), then by the lower column.

A neuron that never fires (p = 0) is never specific: when fewer than k neurons fire, S(I) holds
only the firing ones, under both rules. The scope is ``global`` (one threshold over all
neurons and experts of the model) or ``per-layer`` (one threshold per layer, k per layer).

Sets are stored compactly as CSR-like ``indptr``/``indices`` (sorted column ids per row).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hexainst.analysis.config import DEFAULT_EPS, SCOPES, TIE_RULES
from hexainst.kernel.errors import UserError

__all__ = ["SCOPES", "TIE_RULES", "IsnError", "IsnSets", "category_neuron_set", "compute_isn_sets", "target_size"]
_TIE_TAG = {"paper": "paper-ties", "exact-k": "exact-k"}


class IsnError(UserError, ValueError):
    """ISN sets cannot be computed from the given inputs (bad eps, missing sums, ...)."""


@dataclass(frozen=True)
class IsnSets:
    """ISN sets of n instructions over n_cols neurons, as sorted column ids per instruction.

    indptr: int64 [n + 1]; indices: int32 [nnz]; row r's set is indices[indptr[r]:indptr[r+1]].
    """

    indptr: np.ndarray
    indices: np.ndarray
    n_cols: int
    eps: float
    tie_rule: str
    scope: str
    ids: tuple[str, ...] = ()
    k: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # int64 [n] target size

    @property
    def n(self) -> int:
        return int(self.indptr.shape[0] - 1)

    def row(self, r: int) -> np.ndarray:
        """Sorted column ids of instruction r: int32 [|S(I_r)|]."""
        return self.indices[self.indptr[r] : self.indptr[r + 1]]

    def sizes(self) -> np.ndarray:
        """|S(I)| per instruction: int64 [n]."""
        return np.diff(self.indptr).astype(np.int64)

    def subset(self, rows: Sequence[int] | np.ndarray) -> IsnSets:
        """The sets of the given rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        parts = [self.row(int(r)) for r in rows]
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        indices = np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, np.int32)
        ids = tuple(self.ids[int(r)] for r in rows) if self.ids else ()
        k = self.k[rows] if self.k.size else self.k
        return IsnSets(indptr, indices, self.n_cols, self.eps, self.tie_rule, self.scope, ids, k)

    def to_dense(self, dtype: Any = np.bool_) -> np.ndarray:
        """Membership matrix: dtype [n, n_cols] (only for small cases and tests)."""
        out = np.zeros((self.n, self.n_cols), dtype=dtype)
        rows = np.repeat(np.arange(self.n), self.sizes())
        out[rows, self.indices] = 1
        return out

    def per_layer_counts(self, neuron_layer: np.ndarray, n_layers: int) -> np.ndarray:
        """Number of ISNs per layer: int64 [n, n_layers] (Fig. 5)."""
        rows = np.repeat(np.arange(self.n), self.sizes())
        layers = np.asarray(neuron_layer, dtype=np.int64)[self.indices]
        out = np.zeros((self.n, n_layers), dtype=np.int64)
        np.add.at(out, (rows, layers), 1)
        return out

    def file_name(self) -> str:
        """E.g. ``isn_sets.eps0.01.paper-ties.npz`` (``.per-layer`` added for that scope)."""
        scope = "" if self.scope == "global" else f".{self.scope}"
        return f"isn_sets.eps{self.eps:g}.{_TIE_TAG[self.tie_rule]}{scope}.npz"

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder/<file_name()>`` atomically; return its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.file_name()
        meta = {"n_cols": self.n_cols, "eps": self.eps, "tie_rule": self.tie_rule, "scope": self.scope}
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".isn_", suffix=".npz")
        os.close(fd)
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                indptr=self.indptr,
                indices=self.indices,
                k=self.k,
                ids=np.array(self.ids, dtype=str),
                meta=np.array(json.dumps(meta, sort_keys=True)),
            )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IsnSets:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(
                indptr=z["indptr"],
                indices=z["indices"],
                n_cols=int(meta["n_cols"]),
                eps=float(meta["eps"]),
                tie_rule=str(meta["tie_rule"]),
                scope=str(meta["scope"]),
                ids=tuple(str(x) for x in z["ids"]),
                k=z["k"],
            )


def target_size(eps: float, n_cols: int) -> int:
    """k = ceil(eps * n_cols) (at least 1): the top-eps percentile's size."""
    if not 0 < eps <= 1:
        raise IsnError(f"eps must be in (0, 1], got {eps!r} (1% is 0.01)")
    return max(1, math.ceil(eps * n_cols - 1e-9))


def _select_row(counts: np.ndarray, k: int, tie_rule: str, sums: np.ndarray | None) -> np.ndarray:
    """Positions (sorted, int64) of one row's ISN set within one scope block.

    counts: int [m]; sums: float [m] or None.
    """
    m = counts.shape[0]
    k = min(k, m)
    tau = np.partition(counts, m - k)[m - k]
    if tau <= 0:
        # Fewer than k neurons fire: the set is the firing ones (never a silent neuron).
        return np.flatnonzero(counts > 0)
    chosen = np.flatnonzero(counts >= tau)
    if tie_rule == "paper" or chosen.size == k:
        return chosen
    above = np.flatnonzero(counts > tau)
    tied = np.flatnonzero(counts == tau)
    need = k - above.size
    assert sums is not None
    # Largest activation sum first, then the lower column id: deterministic.
    order = np.lexsort((tied, -sums[tied].astype(np.float64)))
    keep = np.sort(np.concatenate([above, tied[order[:need]]]))
    return keep


def _row_blocks(
    counts_rows: Any, n_cols: int, chunk_rows: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (start_row, dense int32 [r, n_cols]) blocks from a dense array or sparse matrix."""
    n = counts_rows.shape[0]
    for start in range(0, n, chunk_rows):
        block = counts_rows[start : start + chunk_rows]
        if hasattr(block, "toarray"):
            block = block.toarray()
        yield start, np.asarray(block, dtype=np.int32)


def compute_isn_sets(
    counts: Any,
    *,
    eps: float = DEFAULT_EPS,
    tie_rule: str = "paper",
    scope: str = "global",
    neuron_layer: np.ndarray | None = None,
    sums: Any = None,
    ids: Sequence[str] = (),
    chunk_rows: int = 64,
    progress: bool = False,
) -> IsnSets:
    """ISN sets from per-instruction counts.

    counts: integer [n, n_cols] (numpy, or scipy sparse for MoE stores); since T is constant
    within a row, counts order neurons exactly as p = counts / T does.
    neuron_layer: int [n_cols] layer of each column (needed for scope='per-layer').
    sums: float [n, n_cols] activation sums (needed for tie_rule='exact-k').
    """
    if tie_rule not in TIE_RULES:
        raise IsnError(f"unknown tie rule {tie_rule!r}; expected one of {', '.join(TIE_RULES)}")
    if scope not in SCOPES:
        raise IsnError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
    n, n_cols = counts.shape
    if tie_rule == "exact-k" and sums is None:
        raise IsnError(
            "tie rule 'exact-k' breaks ties by mean activation, but this store has no activation "
            "sums; record with sums enabled or use --tie-rule paper"
        )
    if sums is not None and tuple(sums.shape) != (n, n_cols):
        raise IsnError(f"sums have shape {tuple(sums.shape)}, counts {(n, n_cols)}")
    if scope == "per-layer":
        if neuron_layer is None:
            raise IsnError("scope 'per-layer' needs the layer of every column (neuron_layer)")
        layer = np.asarray(neuron_layer, dtype=np.int64)
        if layer.shape != (n_cols,):
            raise IsnError(f"neuron_layer has shape {layer.shape}, expected ({n_cols},)")
        blocks = [np.flatnonzero(layer == lay) for lay in np.unique(layer)]
    else:
        blocks = [None]
    ks = [target_size(eps, n_cols if b is None else b.size) for b in blocks]
    # at most ~128 MB of int32 per block of rows (Qwen1.5-MoE rows hold 2.16M neurons)
    chunk_rows = max(1, min(chunk_rows, (1 << 25) // max(1, n_cols)))
    parts: list[np.ndarray] = []
    sizes = np.zeros(n, dtype=np.int64)
    iterator = _row_blocks(counts, n_cols, chunk_rows)
    if progress:
        iterator = tqdm(iterator, total=math.ceil(n / chunk_rows), desc="ISN sets", unit="block")
    for start, block in iterator:
        sums_block = None
        if tie_rule == "exact-k":
            sb = sums[start : start + block.shape[0]]
            sums_block = np.asarray(sb.toarray() if hasattr(sb, "toarray") else sb, dtype=np.float64)
        for r in range(block.shape[0]):
            row_parts = []
            for cols, k in zip(blocks, ks):
                if cols is None:
                    srow = None if sums_block is None else sums_block[r]
                    row_parts.append(_select_row(block[r], k, tie_rule, srow))
                else:
                    srow = None if sums_block is None else sums_block[r, cols]
                    row_parts.append(cols[_select_row(block[r, cols], k, tie_rule, srow)])
            sel = np.sort(np.concatenate(row_parts)) if len(row_parts) > 1 else row_parts[0]
            parts.append(sel.astype(np.int32))
            sizes[start + r] = sel.size
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    indices = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return IsnSets(
        indptr=indptr,
        indices=indices,
        n_cols=int(n_cols),
        eps=float(eps),
        tie_rule=tie_rule,
        scope=scope,
        ids=tuple(ids),
        k=np.full(n, sum(ks), dtype=np.int64),
    )


def category_neuron_set(sets: IsnSets, rows: np.ndarray) -> np.ndarray:
    """A category's ISNs: the k most frequent members of its instructions' sets.

    k is the median |S(I)| over the rows; ties in frequency go to the lower column id.
    Returns sorted column ids: int64 [k].
    """
    rows = np.asarray(rows, dtype=np.int64)
    freq = np.zeros(sets.n_cols, dtype=np.int64)
    for r in rows:
        freq[sets.row(int(r))] += 1
    k = int(np.median(sets.sizes()[rows])) if rows.size else 0
    k = min(k, int(np.count_nonzero(freq)))
    order = np.lexsort((np.arange(sets.n_cols), -freq))
    return np.sort(order[:k])
