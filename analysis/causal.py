"""Causal check (beyond the paper): does zeroing a category's ISNs hurt that category most?

For each category m, its ISNs C(m) (the most frequent members of its instructions' ISN sets,
:func:`analysis.isn.category_neuron_set`) are zeroed on the output of every dense MLP's
``act_fn`` through a forward hook, i.e. ``act_fn(gate_proj(x))[..., C(m)] = 0`` before the
product with ``up_proj``. The control zeroes as many random neurons from the same layers
(seeded, disjoint from C(m)). For every evaluated category m' the mean next-token NLL per
token of its instructions is measured, giving a category x category matrix of
``ΔNLL(ISNs) − ΔNLL(random)`` (ablated category in rows, evaluated category in columns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from analysis.isn import IsnSets, category_neuron_set
from hexainst.errors import UserError


class CausalError(UserError):
    """The causal check cannot run (MoE store, tokenizer mismatch, missing instruction text)."""


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


def mean_nll(model: Any, token_ids: Sequence[Sequence[int]], max_predicted: int | None = 32) -> np.ndarray:
    """Mean next-token NLL (nats per predicted token) of each token sequence: float64 [n].

    One forward pass per sequence (no padding), fp32 cross-entropy. Only the last
    ``max_predicted`` next-token predictions are scored (``logits_to_keep``): the LM head of a
    262k-vocabulary model costs more than the rest of the forward; the zeroing still acts on
    every position. None scores them all.
    """
    import torch

    device = next(model.parameters()).device
    out = np.zeros(len(token_ids), dtype=np.float64)
    with torch.inference_mode():
        for k, ids in enumerate(token_ids):
            if len(ids) < 2:
                out[k] = np.nan
                continue
            x = torch.as_tensor([list(ids)], dtype=torch.long, device=device)
            n_pred = len(ids) - 1 if max_predicted is None else min(len(ids) - 1, max_predicted)
            # logits for the last n_pred + 1 positions; the final one predicts past the end
            logits = model(input_ids=x, use_cache=False, logits_to_keep=n_pred + 1).logits[0, :-1].float()
            targets = x[0, -n_pred:]
            out[k] = float(torch.nn.functional.cross_entropy(logits[-n_pred:], targets, reduction="mean"))
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
    seed: int = 0,
    max_predicted: int | None = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the check; return matrices (lists) and per-condition NLLs.

    sets/set_categories: the analysed ISN sets and their instructions' categories (define C(m));
    eval_rows: dicts with ``category`` and ``instruction`` (the instructions whose NLL is measured).
    """
    from analysis.recording.adapters import adapter_for
    from analysis.recording.recorder import InputPolicy, tokenize

    if np.any(np.asarray(neuron_expert) >= 0):
        raise CausalError("the causal check supports dense MLPs only (this store has expert neurons)")
    act_modules = adapter_for(model).act_modules(model)
    labels = np.asarray(set_categories)
    layer_width = {int(lay): int(np.count_nonzero(np.asarray(neuron_layer) == lay))
                   for lay in np.unique(neuron_layer)}
    policy = InputPolicy.coerce(dict(input_policy) if input_policy else None)
    token_ids = [tokenize(tokenizer, str(r["instruction"]), policy)[0] for r in eval_rows]
    eval_labels = np.asarray([r["category"] for r in eval_rows])
    rng = np.random.default_rng(seed)
    conditions: list[tuple[str, str | None, dict[int, np.ndarray]]] = [("none", None, {})]
    set_sizes = {}
    for c in categories:
        cols = category_neuron_set(sets, np.flatnonzero(labels == c))
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
            nll[(kind, cat)] = mean_nll(model, token_ids, max_predicted)
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
    return {
        "categories": list(categories),
        "set_sizes": set_sizes,
        "per_category": int(min(np.count_nonzero(eval_labels == c) for c in categories)),
        "baseline_nll": {c: float(np.nanmean(base[eval_labels == c])) for c in categories},
        "delta_nll_isn": d_isn,
        "delta_nll_random": d_rand,
        "effect": effect,
        "diagonal_mean": float(np.nanmean(np.diagonal(effect))),
        "off_diagonal_mean": float(np.nanmean(effect[off])),
        "seed": seed,
        "max_predicted_tokens": max_predicted,
        "set_rule": "median-|S(I)| most frequent members of the category's ISN sets",
    }
