"""The lexical baseline: "ISN sets" of the instructions alone, built the way ISN sets are built.

No model: each instruction is tokenised with the model's own tokenizer under the store's input
policy (:func:`hexainst.analysis.recording.recorder.tokenize`: the same token ids the recorder fed,
the same BOS rule for T). The *units* are the vocabulary's token types; unit v "fires" on the
tokens of type v, so its count is the number of occurrences of v and p_v(I) = count / T, exactly
as a neuron's p_i(I) is the share of tokens it fires on. The set is then
:func:`hexainst.analysis.isn.compute_isn_sets` on these counts with the run's eps and tie rule
(scope global: a vocabulary has no layers). Where k = ceil(eps x vocabulary) exceeds the number of
distinct tokens of an instruction (gemma-3's 262,144 types at eps 1%: k = 2,622), the top-eps rule
keeps every unit that fires, so S_lex(I) is the instruction's set of distinct token types; on a
small vocabulary the threshold cuts as it does for neurons. Jaccard of these sets is plain
token-type overlap: what any function of the input tokens could show without learning anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from hexainst.analysis.isn import IsnSets, target_size
from hexainst.analysis.recording.recorder import InputPolicy, tokenize


def token_counts(token_ids: Sequence[Sequence[int]], skips: Sequence[int], vocab_size: int) -> sp.csr_matrix:
    """Occurrences of every token type in every instruction: int32 CSR [n, vocab_size].

    token_ids: the model input of each instruction; skips: leading tokens left out of T (0 or 1,
    the recorder's BOS rule), which are left out of the counts too.
    """
    rows, cols = [], []
    for r, (ids, skip) in enumerate(zip(token_ids, skips)):
        kept = np.asarray(list(ids)[int(skip):], dtype=np.int64)
        if kept.size and (kept.min() < 0 or kept.max() >= vocab_size):
            raise ValueError(f"instruction {r}: a token id outside the vocabulary of {vocab_size}")
        rows.append(np.full(kept.size, r, dtype=np.int64))
        cols.append(kept)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    out = sp.csr_matrix((np.ones(r.size, dtype=np.int32), (r, c)), shape=(len(skips), vocab_size))
    out.sum_duplicates()
    out.sort_indices()
    return out


def lexical_sets(counts: sp.csr_matrix, *, eps: float, tie_rule: str, ids: Sequence[str] = ()) -> IsnSets:
    """Top-eps sets of token types: the rule of :func:`compute_isn_sets` (scope global) on the token counts.

    Computed on the nonzero entries only (a type that does not occur is never in a set), so a
    262,144-type vocabulary costs no more than the instructions' tokens; equal to
    ``compute_isn_sets(counts, ...)`` (tested). With ``exact-k`` every tied type has the same
    "activation" (its count), so ties go to the lower token id.
    """
    counts = sp.csr_matrix(counts)
    counts.sort_indices()
    n, n_cols = counts.shape
    k = target_size(eps, n_cols)
    parts, sizes = [], np.zeros(n, dtype=np.int64)
    for r in range(n):
        cols = counts.indices[counts.indptr[r]:counts.indptr[r + 1]]
        vals = counts.data[counts.indptr[r]:counts.indptr[r + 1]]
        keep = vals > 0
        cols, vals = cols[keep], vals[keep]
        if cols.size > k:
            tau = np.partition(vals, cols.size - k)[cols.size - k]
            if tie_rule == "paper":
                cols = cols[vals >= tau]
            else:
                above = cols[vals > tau]
                tied = cols[vals == tau]  # sorted by column: the lower ids first
                cols = np.sort(np.concatenate([above, tied[: k - above.size]]))
        parts.append(cols.astype(np.int32))
        sizes[r] = cols.size
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    indices = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    return IsnSets(indptr=indptr, indices=indices, n_cols=int(n_cols), eps=float(eps), tie_rule=tie_rule,
                   scope="global", ids=tuple(ids), k=np.full(n, k, dtype=np.int64))


def tokenize_rows(tokenizer: Any, texts: Mapping[str, str], ids: Sequence[str],
                  input_policy: Mapping[str, Any] | None) -> tuple[list[list[int]], list[int]]:
    """Token ids and BOS skips of ``ids``' texts, exactly as the recorder tokenised them."""
    policy = InputPolicy.coerce(dict(input_policy) if input_policy else None)
    out_ids, skips = [], []
    for i in ids:
        tok, skip = tokenize(tokenizer, texts[i], policy)
        out_ids.append(tok)
        skips.append(skip)
    return out_ids, skips


def vocabulary_size(tokenizer: Any) -> int:
    """Number of token ids the tokenizer can produce (its vocabulary with added tokens)."""
    return int(len(tokenizer))
