"""Input policy, resumption of a killed recording, and the data-parallel split + merge path."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hexainst.analysis.recording import merge_stores, record
from hexainst.analysis.recording.recorder import InputPolicy, tokenize
from hexainst.analysis.recording.testing import tiny_model
from hexainst.kernel.errors import UserError


def _dense(c):
    return c.toarray() if sp.issparse(c) else c


def test_bos_out_of_t_drops_exactly_the_bos_position(tokenizer, rows, tmp_path):
    model = tiny_model("llama")
    with_bos = record(model, rows[:8], tmp_path / "a", tokenizer=tokenizer, progress=False)
    without = record(model, rows[:8], tmp_path / "b", tokenizer=tokenizer, progress=False,
                     input_policy={"mode": "raw", "bos_in_T": False})
    assert (without.n_tokens == with_bos.n_tokens - 1).all()
    assert without.header["input_policy"] == {"mode": "raw", "add_special_tokens": True, "bos_in_T": False}
    assert with_bos.header["input_policy"]["bos_in_T"] is True
    # The BOS position's own activations, computed by hand from layer 0's MLP input.
    diff = with_bos.counts().astype(int) - without.counts().astype(int)
    assert diff.min() >= 0 and diff.max() <= 1
    captured = {}
    h = model.model.layers[0].mlp.register_forward_pre_hook(lambda m, a: captured.__setitem__("x", a[0]))
    try:
        import torch

        with torch.no_grad():
            model(torch.tensor([[tokenizer.bos_token_id]]))
    finally:
        h.remove()
    bos_fires = (torch.nn.functional.silu(captured["x"][0, 0] @ model.model.layers[0].mlp.gate_proj.weight.T) > 0)
    width = model.config.intermediate_size
    np.testing.assert_array_equal(diff[:, :width], np.tile(bos_fires.numpy().astype(int), (8, 1)))


def test_chat_policy_needs_a_template_and_adds_one_bos(tokenizer, rows):
    with pytest.raises(UserError, match="chat template"):
        tokenize(tokenizer, "write a poem", InputPolicy(mode="chat"))
    chat = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, bos_token="<bos>", eos_token="<eos>",
                               pad_token="<pad>", unk_token="<unk>")
    chat.chat_template = "{{ bos_token }}{% for m in messages %}question {{ m['content'] }}{% endfor %} answer"
    ids, skip = tokenize(chat, "write a poem", InputPolicy(mode="chat"))
    assert ids.count(chat.bos_token_id) == 1 and ids[0] == chat.bos_token_id and skip == 0
    assert chat.convert_ids_to_tokens(ids)[1:] == ["question", "write", "a", "poem", "answer"]
    ids, skip = tokenize(chat, "write a poem", InputPolicy(mode="chat", bos_in_T=False))
    assert skip == 1
    with pytest.raises(UserError, match="unknown input policy mode"):
        InputPolicy(mode="assistant")


def test_killed_recording_resumes_after_last_complete_shard(tokenizer, rows, tmp_path):
    model = tiny_model("qwen2moe")
    full = record(model, rows, tmp_path / "full", tokenizer=tokenizer, progress=False, rows_per_shard=6)
    shards = sorted((tmp_path / "full" / "shards").glob("*.npz"))
    assert len(shards) == 4
    # Simulate a run killed during shard 2: shards 2 and 3 never reached the disk.
    kept = {p.name: p.stat().st_mtime_ns for p in shards[:2]}
    shards[2].unlink()
    shards[3].unlink()
    (tmp_path / "full" / "shards" / ".00002.npz.abc.tmp").write_bytes(b"partial")
    resumed = record(model, rows, tmp_path / "full", tokenizer=tokenizer, progress=False, rows_per_shard=6)
    assert {p.name: p.stat().st_mtime_ns for p in sorted((tmp_path / "full" / "shards").glob("*.npz"))[:2]} == kept
    fresh = record(model, rows, tmp_path / "fresh", tokenizer=tokenizer, progress=False, rows_per_shard=6)
    np.testing.assert_array_equal(_dense(resumed.counts()), _dense(fresh.counts()))
    np.testing.assert_array_equal(resumed.routing, fresh.routing)
    assert full.ids == resumed.ids
    # A different input policy must not resume into that folder.
    with pytest.raises(UserError, match="different 'input_policy'"):
        record(model, rows, tmp_path / "full", tokenizer=tokenizer, progress=False, rows_per_shard=6,
               input_policy={"mode": "raw", "bos_in_T": False})


def _split_like_accelerate(rows, n_processes):
    """Contiguous parts, the first ``len % n`` one longer (accelerate's split_between_processes)."""
    base, extra = divmod(len(rows), n_processes)
    out, start = [], 0
    for rank in range(n_processes):
        stop = start + base + (1 if rank < extra else 0)
        out.append(rows[start:stop])
        start = stop
    return out


@pytest.mark.parametrize("kind", ["llama", "mixtral"])
def test_data_parallel_parts_merge_to_the_single_process_store(kind, tokenizer, rows, tmp_path):
    model = tiny_model(kind)
    single = record(model, rows, tmp_path / "single", tokenizer=tokenizer, progress=False)
    parts = []
    for rank, part in enumerate(_split_like_accelerate(rows, 3)):
        parts.append(record(model, part, tmp_path / "parts" / f"rank-{rank:05d}", tokenizer=tokenizer,
                            progress=False, batch_size=3))
    merged = merge_stores(parts, tmp_path / "merged")
    assert merged.ids == single.ids
    np.testing.assert_array_equal(_dense(merged.counts()), _dense(single.counts()))
    np.testing.assert_array_equal(merged.n_tokens, single.n_tokens)
    if single.is_moe:
        np.testing.assert_array_equal(merged.routing, single.routing)
    assert merged.header["model"] == single.header["model"]
    assert merged.header["tokenizer"]["sha256"] == single.header["tokenizer"]["sha256"]


def test_accelerate_split_matches_the_hand_split(rows):
    from accelerate import PartialState

    state = PartialState(cpu=True)
    with state.split_between_processes(rows) as mine:
        assert mine == rows  # one process: everything
    assert [len(p) for p in _split_like_accelerate(rows, 3)] == [7, 7, 6]


def test_same_inputs_give_the_same_bytes(tokenizer, rows, tmp_path):
    model = tiny_model("mixtral")
    for name in ("a", "b"):
        record(model, rows, tmp_path / name, tokenizer=tokenizer, progress=False, rows_per_shard=8, with_sums=True)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 8  # marker, header, 3 shards and their checksums
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
