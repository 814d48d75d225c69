"""Recorder counts against an independent layer-by-layer reference on tiny random-weight models.

The reference runs each instruction alone (no padding) through the full model, captures the
input of every layer's MLP block with a pre-hook, and recomputes act_fn(gate_proj(x)) and, for
MoE layers, the router's top-k from the weights with plain torch functions.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from hexainst.analysis.recording import record
from hexainst.analysis.recording.testing import KINDS, tiny_model

ACT = {
    "silu": F.silu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


def _act(config):
    name = getattr(config, "hidden_activation", None) or config.hidden_act
    return ACT[name]


def reference(model, tokenizer, rows):
    """counts [n, C] int64, routing [n, L, E] int64 (or None), T [n], in the store's column order."""
    config = model.config
    act = _act(config)
    layers = model.model.layers
    captured: dict[int, torch.Tensor] = {}
    handles = [
        layer.mlp.register_forward_pre_hook(lambda mod, args, j=j: captured.__setitem__(j, args[0].detach().clone()))
        for j, layer in enumerate(layers)
    ]
    n_experts = getattr(config, "num_experts", None) or getattr(config, "num_local_experts", 0) or 0
    all_counts, all_routing, all_t = [], [], []
    try:
        for row in rows:
            ids = tokenizer(row["instruction"])["input_ids"]
            with torch.no_grad():
                model(torch.tensor([ids], device=model.device))
            blocks = []
            routing = np.zeros((len(layers), max(n_experts, 1)), dtype=np.int64)
            for j, layer in enumerate(layers):
                x = captured[j][0].reshape(-1, config.hidden_size)  # (T, H)
                mlp = layer.mlp
                if hasattr(mlp, "experts"):
                    w_router = mlp.gate.weight  # (E, H)
                    probs = torch.softmax(x @ w_router.T, dim=-1)
                    top = torch.topk(probs, config.num_experts_per_tok, dim=-1).indices  # (T, k)
                    # The router module's own answer must agree with the manual one.
                    assert torch.equal(mlp.gate(x)[2], top)
                    inter = mlp.experts.gate_up_proj.shape[1] // 2
                    for e in range(n_experts):
                        routed = (top == e).any(dim=-1)  # (T,)
                        routing[j, e] = int(routed.sum())
                        a = act(x @ mlp.experts.gate_up_proj[e, :inter].T)  # (T, I)
                        blocks.append(((a > 0) & routed[:, None]).sum(dim=0).cpu().numpy())
                    if getattr(mlp, "shared_expert", None) is not None:
                        a = act(x @ mlp.shared_expert.gate_proj.weight.T)
                        blocks.append((a > 0).sum(dim=0).cpu().numpy())
                else:
                    a = act(x @ mlp.gate_proj.weight.T)
                    blocks.append((a > 0).sum(dim=0).cpu().numpy())
            all_counts.append(np.concatenate(blocks).astype(np.int64))
            all_routing.append(routing)
            all_t.append(len(ids))
    finally:
        for h in handles:
            h.remove()
    routing = np.stack(all_routing) if n_experts else None
    return np.stack(all_counts), routing, np.array(all_t)


def dense(counts):
    return counts.toarray() if sp.issparse(counts) else np.asarray(counts)


@pytest.mark.parametrize("kind", KINDS)
def test_counts_equal_independent_reference(kind, tokenizer, rows, tmp_path, device):
    model = tiny_model(kind).to(device)
    store = record(model, rows, tmp_path / "store", tokenizer=tokenizer, batch_size=8, progress=False,
                   rows_per_shard=8)
    ref_counts, ref_routing, ref_t = reference(model, tokenizer, rows)
    assert store.n_tokens.tolist() == ref_t.tolist()
    got = dense(store.counts())
    assert got.shape == ref_counts.shape
    # The activations must not be degenerate for the comparison to mean something.
    assert (ref_counts > 0).mean() > 0 and (ref_counts < ref_t[:, None]).any()
    np.testing.assert_array_equal(got.astype(np.int64), ref_counts)
    if ref_routing is None:
        assert store.routing is None and not store.is_moe
    else:
        assert store.is_moe
        np.testing.assert_array_equal(store.routing.astype(np.int64), ref_routing)
        # Every token picks exactly top_k experts in each MoE layer.
        moe_layers = [j for j, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "experts")]
        np.testing.assert_array_equal(store.routing[:, moe_layers].sum(axis=-1),
                                      np.repeat(ref_t[:, None] * store.top_k, len(moe_layers), axis=1))


@pytest.mark.parametrize("kind", ["qwen2moe", "mixtral"])
def test_expert_counts_only_count_routed_tokens(kind, tokenizer, rows, tmp_path, device):
    model = tiny_model(kind).to(device)
    store = record(model, rows, tmp_path / "s", tokenizer=tokenizer, progress=False)
    counts = dense(store.counts())
    routing = store.routing
    routed_cols = store.neuron_expert >= 0
    routed_cols &= store.neuron_expert < store.n_experts
    layer = store.neuron_layer[routed_cols].astype(int)
    expert = store.neuron_expert[routed_cols].astype(int)
    cap = routing[:, layer, expert]  # tokens routed to each neuron's expert
    assert (counts[:, routed_cols] <= cap).all()
    # Some expert neuron fires on (nearly) all its routed tokens while the expert saw fewer
    # than T tokens: a count that included unrouted tokens would exceed the cap.
    assert (cap < store.n_tokens[:, None]).any()
    # Experts never routed for an instruction have zero counts.
    assert (counts[:, routed_cols][cap == 0] == 0).all()
    if kind == "qwen2moe":
        shared = store.neuron_expert == store.n_experts
        assert shared.any() and (counts[:, shared] <= store.n_tokens[:, None]).all()
        assert (counts[:, shared].max(axis=1) > 0).all()


def test_dense_layer_inside_moe_model_is_recorded_as_dense(tokenizer, rows, tmp_path):
    # qwen2moe tiny config has mlp_only_layers=[1]: that layer is a dense MLP, expert -1.
    model = tiny_model("qwen2moe")
    store = record(model, rows[:4], tmp_path / "s", tokenizer=tokenizer, progress=False)
    layer1 = store.neuron_layer == 1
    assert set(store.neuron_expert[layer1].tolist()) == {-1}
    assert layer1.sum() == model.config.intermediate_size
    assert (store.routing[:, 1] == 0).all()


@pytest.mark.parametrize("impl", ["grouped_mm", "batched_mm"])
def test_moe_counts_do_not_depend_on_the_experts_implementation(impl, tokenizer, rows, tmp_path, device):
    # The fused experts' own kernels differ; the recorder recomputes the gate branch itself.
    model = tiny_model("qwen2moe").to(device)
    model.config._experts_implementation = impl
    for layer in model.model.layers:
        if hasattr(layer.mlp, "experts"):
            layer.mlp.experts.config._experts_implementation = impl
    store = record(model, rows[:10], tmp_path / impl, tokenizer=tokenizer, progress=False)
    ref_counts, ref_routing, _ = reference(model, tokenizer, rows[:10])
    np.testing.assert_array_equal(dense(store.counts()).astype(np.int64), ref_counts)
    np.testing.assert_array_equal(store.routing.astype(np.int64), ref_routing)


def test_moe_counts_without_grouped_mm(monkeypatch, tokenizer, rows, tmp_path):
    # torch builds without torch.nn.functional.grouped_mm take the one-matmul-per-expert path.
    monkeypatch.delattr(torch.nn.functional, "grouped_mm")
    model = tiny_model("qwen2moe")
    store = record(model, rows[:10], tmp_path / "loop", tokenizer=tokenizer, progress=False)
    ref_counts, _, _ = reference(model, tokenizer, rows[:10])
    np.testing.assert_array_equal(dense(store.counts()).astype(np.int64), ref_counts)
