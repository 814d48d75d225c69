"""The counting primitives of the hooks: the int8 matrix-product count, the masked reduction it
falls back to, and the 16-bit transfer of counts to the host."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hexainst.analysis.recording.adapters import adapter_for
from hexainst.analysis.recording.hooks import CountingHooks
from hexainst.analysis.recording.testing import tiny_model


@pytest.fixture
def hooks():
    model = tiny_model("llama")
    with CountingHooks(model, adapter_for(model)) as attached:
        yield attached


@pytest.mark.parametrize("use_int_mm", [True, False])
@pytest.mark.parametrize("shape", [(8, 24, 48), (3, 7, 40), (1, 5, 13), (40, 2, 16)])
def test_count_positive_equals_a_plain_reference(hooks, device, use_int_mm, shape):
    batch, seq, width = shape
    gen = torch.Generator().manual_seed(batch * 1000 + seq)
    act = torch.randn(shape, generator=gen).to(device)
    lengths = torch.randint(1, seq + 1, (batch,), generator=gen)
    lengths[0] = seq  # the padded length is the longest row's
    if batch > 1:
        lengths[1] = seq // 2  # and some row is padded, with positive values under its padding
    valid = torch.arange(seq)[None, :] < lengths[:, None]
    hooks._int_mm_ok = use_int_mm
    hooks.start_batch(valid.to(device))
    got = hooks._count_positive(act, hooks._state.on(act.device))
    assert hooks._int_mm_ok == use_int_mm  # the int8 product ran, where asked, without falling back
    a, v = act.cpu().numpy(), valid.numpy()
    expected = ((a > 0) & v[:, :, None]).sum(axis=1)
    assert got.dtype == torch.int32 and got.shape == (batch, width)
    np.testing.assert_array_equal(got.cpu().numpy(), expected)
    if batch > 1:  # an unmasked count would differ: padding positions hold positive values too
        assert not np.array_equal(expected, (a > 0).sum(axis=1))


def test_counts_above_32767_survive_the_16_bit_transfer(hooks):
    hooks.start_batch(torch.ones((2, 3), dtype=torch.bool))
    for block in hooks._blocks:
        block.counts = torch.full((2, block.width), 40_000, dtype=torch.int32)
        block.counts[1] = 65_535
    counts = hooks.collect()["counts"]
    assert counts.dtype == np.uint16
    assert (counts[0] == 40_000).all() and (counts[1] == 65_535).all()


def test_counts_stay_int32_for_sequences_of_65536_tokens_or_more(hooks):
    hooks.start_batch(torch.ones((1, 2**16), dtype=torch.bool))
    for block in hooks._blocks:
        block.counts = torch.full((1, block.width), 2**16, dtype=torch.int32)
    counts = hooks.collect()["counts"]
    assert counts.dtype == np.int32 and (counts == 2**16).all()


@pytest.mark.parametrize("kind", ["qwen2moe", "mixtral"])
def test_moe_counts_are_the_same_with_padding_kept_or_filtered(kind, tokenizer, rows, device):
    # On a GPU the experts hook keeps padding tokens (routed to a discard row) so as never to
    # wait for the device; elsewhere it selects the counted tokens first. Same counts either way.
    from hexainst.analysis.recording.recorder import run_batch

    model = tiny_model(kind).to(device)
    adapter = adapter_for(model)
    decoder = adapter.decoder_module(model)
    batch = [tokenizer(r["instruction"])["input_ids"] for r in rows[:8]]
    assert len({len(ids) for ids in batch}) > 1  # really padded
    results = {}
    for sync_free in (True, False):
        with CountingHooks(model, adapter) as hooks:
            hooks.sync_free = sync_free
            results[sync_free], _ = run_batch(decoder, hooks, batch, [0] * len(batch), 0, "right",
                                              decoder.get_input_embeddings().weight.device)
    np.testing.assert_array_equal(results[True]["counts"], results[False]["counts"])
    np.testing.assert_array_equal(results[True]["routing"], results[False]["routing"])
    assert results[True]["counts"].sum() > 0


def _grouped_mm_moe(seed: int = 0):
    model = tiny_model("qwen2moe", seed=seed)
    model.config._experts_implementation = "grouped_mm"  # transformers' default: one act_fn call per layer
    return model


def test_grouped_mm_experts_are_counted_from_their_own_activations(tokenizer, rows, tmp_path, device):
    """After one batch where both ways agree, the experts' own act_fn output is counted (no recomputation),
    with the same counts as the recomputing path on the eager experts (checked against a plain reference
    in test_counts_reference.py)."""
    from hexainst.analysis.recording import record

    model = _grouped_mm_moe().to(device)
    with CountingHooks(model, adapter_for(model)) as hooks:
        assert set(hooks.expert_path.values()) == {"verify"}
        from hexainst.analysis.recording.recorder import run_batch

        decoder = model.model
        batch = [[1, 5, 6, 7, 8], [1, 9, 10]]
        run_batch(decoder, hooks, batch, [0, 0], 0, "right", device)
        assert set(hooks.expert_path.values()) == {"act_fn"}
    grouped = record(model, rows, tmp_path / "grouped", tokenizer=tokenizer, progress=False, with_sums=True,
                     batch_size=4)
    eager = tiny_model("qwen2moe").to(device)  # same seed and weights, eager experts: the recomputing path
    reference = record(eager, rows, tmp_path / "eager", tokenizer=tokenizer, progress=False, with_sums=True,
                       batch_size=4)
    assert (grouped.counts() != reference.counts()).nnz == 0
    np.testing.assert_array_equal(grouped.routing, reference.routing)
    np.testing.assert_allclose(grouped.sums(), reference.sums(), rtol=1e-6, atol=1e-6)


def test_experts_whose_act_fn_output_is_not_act_fn_of_the_gate_are_recomputed(tokenizer, rows, device):
    """If something changes the act_fn output (here another hook), the verification fails and the layer
    keeps recomputing the gate activations."""
    from hexainst.analysis.recording.recorder import run_batch

    model = _grouped_mm_moe().to(device)
    moe_layers = [layer.mlp.experts for layer in model.model.layers if hasattr(layer.mlp, "experts")]
    handles = [experts.act_fn.register_forward_hook(lambda m, a, out: out + 1.0) for experts in moe_layers]
    try:
        with CountingHooks(model, adapter_for(model)) as hooks:
            run_batch(model.model, hooks, [[1, 5, 6, 7, 8], [1, 9, 10]], [0, 0], 0, "right", device)
            assert set(hooks.expert_path.values()) == {"recompute"}
    finally:
        for h in handles:
            h.remove()
