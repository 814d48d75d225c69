"""Batch size and padding side must not change any count, routing or T."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hexainst.analysis.recording import record
from hexainst.analysis.recording.testing import tiny_model


def _arrays(store):
    counts = store.counts()
    counts = counts.toarray() if sp.issparse(counts) else counts
    return counts, store.routing, store.n_tokens, store.sums()


@pytest.mark.parametrize("kind", ["llama", "gemma3", "qwen2moe", "mixtral"])
def test_batch_size_and_padding_side_do_not_change_counts(kind, tokenizer, rows, tmp_path, device):
    model = tiny_model(kind).to(device)
    runs = {}
    for name, batch_size, side in [("bs1", 1, "right"), ("bs8-right", 8, "right"), ("bs8-left", 8, "left"),
                                   ("bs5-left", 5, "left")]:
        store = record(model, rows, tmp_path / name, tokenizer=tokenizer, batch_size=batch_size,
                       padding_side=side, with_sums=True, progress=False, rows_per_shard=16)
        runs[name] = _arrays(store)
        assert store.header["recording"]["batch_size"] == batch_size and store.header["recording"]["padding_side"] == side
    base_counts, base_routing, base_t, base_sums = runs["bs1"]
    # The rows have different lengths, so batches of 8 really are padded.
    assert len(set(base_t.tolist())) > 5
    for name, (counts, routing, n_tokens, sums) in runs.items():
        np.testing.assert_array_equal(counts, base_counts, err_msg=name)
        np.testing.assert_array_equal(n_tokens, base_t, err_msg=name)
        if base_routing is not None:
            np.testing.assert_array_equal(routing, base_routing, err_msg=name)
        # Sums are float: equal up to rounding, never affected by padding.
        np.testing.assert_allclose(sums, base_sums, rtol=1e-4, atol=1e-4, err_msg=name)


def test_sums_match_counts_support(tokenizer, rows, tmp_path):
    store = record(tiny_model("llama"), rows[:6], tmp_path / "s", tokenizer=tokenizer, with_sums=True, progress=False)
    counts, sums = store.counts(), store.sums()
    assert sums.dtype == np.float32 and sums.shape == counts.shape
    # SiLU is negative where it is not positive: a neuron that never fired has a sum <= 0,
    # one that fired on every token has a sum > 0.
    assert (sums[counts == 0] <= 0).all()
    assert (sums[counts == store.n_tokens[:, None]] > 0).all()


@pytest.mark.parametrize("kind", ["gemma3", "qwen2moe"])
def test_hooks_do_not_change_the_model_output(kind, tokenizer, rows):
    import torch

    from hexainst.analysis.recording.adapters import adapter_for
    from hexainst.analysis.recording.hooks import CountingHooks

    model = tiny_model(kind)
    ids = torch.tensor([tokenizer(rows[0]["instruction"])["input_ids"]])
    with torch.inference_mode():
        bare = model.model(input_ids=ids).last_hidden_state
    hooks = CountingHooks(model, adapter_for(model))
    hooks.start_batch(torch.ones_like(ids, dtype=torch.bool))
    with torch.inference_mode():
        hooked = model.model(input_ids=ids).last_hidden_state
    counted = hooks.collect()["counts"]
    hooks.remove()
    assert torch.equal(bare, hooked)
    assert counted.sum() > 0
    with torch.inference_mode():
        after = model.model(input_ids=ids).last_hidden_state
    assert torch.equal(bare, after)
