"""Causal check (beyond the paper): does zeroing a category's ISNs hurt that category most?

For each category m, its ISNs C(m) (the most frequent members of its instructions' ISN sets,
:func:`hexainst.analysis.isn.category_neuron_set`) are zeroed on the output of every dense MLP's
``act_fn`` through a forward hook, i.e. ``act_fn(gate_proj(x))[..., C(m)] = 0`` before the
product with ``up_proj``. The control zeroes as many random neurons from the same layers
(seeded, disjoint from C(m)). For every evaluated category m' the mean next-token NLL per
token of its instructions is measured, giving a category x category matrix of
``ΔNLL(ISNs) − ΔNLL(random)`` (ablated category in rows, evaluated category in columns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hexainst.analysis.config import CausalConfig
from hexainst.analysis.isn import IsnSets, category_neuron_set
from hexainst.kernel.errors import UserError
from hexainst.kernel.vocab import DEFAULT_SEED


class CausalError(UserError):
    """The causal check cannot run (MoE store, tokenizer mismatch, missing instruction text)."""


@dataclass
class CausalResult:
    """The causal check: category x category matrices (zeroed category in rows, evaluated in columns).

    delta_nll_isn, delta_nll_random, effect: float [m, m] (nats per token); effect = isn - random.
    """

    categories: list[str]
    set_sizes: dict[str, int]
    per_category: int
    baseline_nll: dict[str, float]
    delta_nll_isn: np.ndarray
    delta_nll_random: np.ndarray
    effect: np.ndarray
    diagonal_mean: float
    off_diagonal_mean: float
    seed: int
    max_predicted_tokens: int | None
    shared_by_all_categories: int
    exclude_shared: bool
    set_rule: str
    #: The model the check ran on (a name for the report).
    model: str = ""


def layer_indices(
    columns: np.ndarray, neuron_layer: np.ndarray, neuron_index: np.ndarray
) -> dict[int, np.ndarray]:
    """Store columns -> {layer: neuron indices within that layer's act_fn output (int64, sorted)}."""
    columns = np.asarray(columns, dtype=np.int64)
    layers = np.asarray(neuron_layer, dtype=np.int64)[columns]
    index = np.asarray(neuron_index, dtype=np.int64)[columns]
    return {int(lay): np.sort(index[layers == lay]) for lay in np.unique(layers)}


def random_like(
    chosen: Mapping[int, np.ndarray], layer_width: Mapping[int, int], rng: np.random.Generator
) -> dict[int, np.ndarray]:
    """As many random neurons per layer as ``chosen`` has, none of them in ``chosen``."""
    out = {}
    for lay, idx in chosen.items():
        pool = np.setdiff1d(np.arange(layer_width[lay]), idx)
        out[lay] = np.sort(rng.choice(pool, size=min(idx.size, pool.size), replace=False))
    return out


class ZeroNeurons:
    """Context manager: forward hooks that zero given neurons of given layers' act_fn outputs."""

    def __init__(self, act_modules: Sequence[tuple[int, Any]], zero: Mapping[int, np.ndarray]):
        self.modules = dict(act_modules)
        self.zero = zero
        self.handles: list[Any] = []

    def __enter__(self) -> ZeroNeurons:
        import torch

        for lay, idx in self.zero.items():
            if idx.size == 0:
                continue
            if lay not in self.modules:
                raise CausalError(f"layer {lay} has no dense act_fn module to hook")
            index = torch.as_tensor(idx, dtype=torch.long)

            def hook(_module, _inputs, output, index=index):
                out = output.clone()
                out[..., index.to(out.device)] = 0
                return out

            self.handles.append(self.modules[lay].register_forward_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def mean_nll(
    model: Any, token_ids: Sequence[Sequence[int]], max_predicted: int | None = CausalConfig.max_predicted, *,
    batch_size: int = 8,
    pad_id: int = 0,
) -> np.ndarray:
    """Mean next-token NLL (nats per predicted token) of each token sequence: float64 [n].

    Only the last ``max_predicted`` next-token predictions of each sequence are scored, through
    ``logits_to_keep`` (the LM head of a 262k-vocabulary model costs more than the rest of the
    forward); the zeroing still acts on every position. None scores them all. Sequences are
    batched with left padding (masked, explicit positions), so the scored positions are the
    last ones of every row; fp32 cross-entropy.
    """
    import torch

    device = next(model.parameters()).device
    out = np.full(len(token_ids), np.nan, dtype=np.float64)
    order = sorted(range(len(token_ids)), key=lambda k: -len(token_ids[k]))
    order = [k for k in order if len(token_ids[k]) >= 2]
    with torch.inference_mode():
        for b0 in range(0, len(order), batch_size):
            batch = order[b0 : b0 + batch_size]
            width = max(len(token_ids[k]) for k in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            n_pred = []
            for r, k in enumerate(batch):
                seq = list(token_ids[k])
                ids[r, width - len(seq) :] = torch.as_tensor(seq)
                mask[r, width - len(seq) :] = 1
                n_pred.append(len(seq) - 1 if max_predicted is None else min(len(seq) - 1, max_predicted))
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            keep = max(n_pred) + 1
            logits = model(
                input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                use_cache=False, logits_to_keep=keep,
            ).logits[:, :-1].float()  # [b, keep - 1, V]: predictions of the last keep - 1 tokens
            for r, k in enumerate(batch):
                n = n_pred[r]
                targets = ids[r, width - n :].to(logits.device)
                out[k] = float(torch.nn.functional.cross_entropy(logits[r, -n:], targets, reduction="mean"))
    return out


def causal_check(
    model: Any,
    tokenizer: Any,
    *,
    sets: IsnSets,
    set_categories: Sequence[str],
    eval_rows: Sequence[Mapping[str, Any]],
    categories: Sequence[str],
    neuron_layer: np.ndarray,
    neuron_index: np.ndarray,
    neuron_expert: np.ndarray,
    input_policy: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    max_predicted: int | None = CausalConfig.max_predicted,
    exclude_shared: bool = CausalConfig.exclude_shared,
    progress: bool = True,
    model_name: str = "",
) -> CausalResult:
    """Run the check; return its matrices and per-category NLLs.

    sets/set_categories: the analysed ISN sets and their instructions' categories (define C(m));
    eval_rows: dicts with ``category`` and ``instruction`` (the instructions whose NLL is measured).
    """
    from hexainst.analysis.recording.adapters import adapter_for
    from hexainst.analysis.recording.recorder import InputPolicy, tokenize

    if np.any(np.asarray(neuron_expert) >= 0):
        raise CausalError("the causal check supports dense MLPs only (this store has expert neurons)")
    act_modules = adapter_for(model).act_modules(model)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    pad_id = int(pad_id) if pad_id is not None else 0
    labels = np.asarray(set_categories)
    layer_width = {int(lay): int(np.count_nonzero(np.asarray(neuron_layer) == lay))
                   for lay in np.unique(neuron_layer)}
    policy = InputPolicy.coerce(dict(input_policy) if input_policy else None)
    token_ids = [tokenize(tokenizer, str(r["instruction"]), policy)[0] for r in eval_rows]
    eval_labels = np.asarray([r["category"] for r in eval_rows])
    rng = np.random.default_rng(seed)
    conditions: list[tuple[str, str | None, dict[int, np.ndarray]]] = [("none", None, {})]
    set_sizes = {}
    cat_sets = {c: category_neuron_set(sets, np.flatnonzero(labels == c)) for c in categories}
    shared = np.zeros(0, dtype=np.int64)
    if categories:
        shared = cat_sets[categories[0]]
        for c in categories[1:]:
            shared = np.intersect1d(shared, cat_sets[c])
    for c in categories:
        cols = np.setdiff1d(cat_sets[c], shared) if exclude_shared else cat_sets[c]
        chosen = layer_indices(cols, neuron_layer, neuron_index)
        set_sizes[c] = int(cols.size)
        conditions.append(("isn", c, chosen))
        conditions.append(("random", c, random_like(chosen, layer_width, rng)))
    iterator = conditions
    if progress:
        from tqdm import tqdm

        iterator = tqdm(conditions, desc="causal check", unit="condition")
    nll: dict[tuple[str, str | None], np.ndarray] = {}
    for kind, cat, zero in iterator:
        with ZeroNeurons(act_modules, zero):
            nll[(kind, cat)] = mean_nll(model, token_ids, max_predicted, pad_id=pad_id)
    base = nll[("none", None)]
    m = len(categories)
    d_isn = np.full((m, m), np.nan)
    d_rand = np.full((m, m), np.nan)
    for a, ca in enumerate(categories):
        for b, cb in enumerate(categories):
            sel = eval_labels == cb
            if sel.any():
                d_isn[a, b] = float(np.nanmean(nll[("isn", ca)][sel] - base[sel]))
                d_rand[a, b] = float(np.nanmean(nll[("random", ca)][sel] - base[sel]))
    effect = d_isn - d_rand
    off = ~np.eye(m, dtype=bool)
    return CausalResult(
        categories=list(categories),
        set_sizes=set_sizes,
        per_category=int(min(np.count_nonzero(eval_labels == c) for c in categories)),
        baseline_nll={c: float(np.nanmean(base[eval_labels == c])) for c in categories},
        delta_nll_isn=d_isn,
        delta_nll_random=d_rand,
        effect=effect,
        diagonal_mean=float(np.nanmean(np.diagonal(effect))) if m else float("nan"),
        off_diagonal_mean=float(np.nanmean(effect[off])) if off.any() else float("nan"),
        seed=seed,
        max_predicted_tokens=max_predicted,
        shared_by_all_categories=int(shared.size),
        exclude_shared=exclude_shared,
        set_rule="median-|S(I)| most frequent members of the category's ISN sets",
        model=model_name,
    )
