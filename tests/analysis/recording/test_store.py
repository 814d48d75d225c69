"""The activation store: round trip, sharding, resumption, checks, merge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from hexainst.analysis.recording.store import (
    ActivationStore,
    StoreError,
    StoreWriter,
    make_layout,
    merge_stores,
    write_store,
)


def _instr(n, prefix="i", category="code"):
    return [{"id": f"{prefix}{k}", "category": category, "source": "natural"} for k in range(n)]


DENSE_BLOCKS = [(0, -1, 3), (1, -1, 4)]
MOE_BLOCKS = [(0, e, 2) for e in range(4)] + [(1, -1, 3)]  # E=3 routed + shared in layer 0, dense layer 1


def test_dense_round_trip_and_columns(tmp_path):
    rng = np.random.default_rng(0)
    n_tokens = rng.integers(5, 9, size=7)
    counts = rng.integers(0, 5, size=(7, 7))
    store = write_store(tmp_path / "s", instructions=_instr(7), n_tokens=n_tokens, counts=counts,
                        blocks=DENSE_BLOCKS, n_layers=2, rows_per_shard=3)
    assert sorted(p.name for p in (tmp_path / "s" / "shards").iterdir()) == [
        "00000.npz", "00000.npz.sha256", "00001.npz", "00001.npz.sha256", "00002.npz", "00002.npz.sha256"]
    # sha256sum format (its '#' line, the shard's binding to this store, is skipped by sha256sum -c):
    # the checksum of the shard's bytes, then its name
    import hashlib
    import subprocess

    from hexainst.analysis.recording.store import shard_binding

    line = (tmp_path / "s" / "shards" / "00001.npz.sha256").read_text()
    assert line == (f"# hexainst-binding {shard_binding(store.header, 3, 6)}\n"
                    + hashlib.sha256((tmp_path / "s" / "shards" / "00001.npz").read_bytes()).hexdigest()
                    + "  00001.npz\n")
    check = subprocess.run(["sha256sum", "--strict", "-c", "00001.npz.sha256"], cwd=tmp_path / "s" / "shards",
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout == "00001.npz: OK\n", check
    again = ActivationStore.open(tmp_path / "s")
    assert again.ids == [f"i{k}" for k in range(7)] and again.categories == ["code"] * 7
    assert again.counts().dtype == np.uint16 and again.n_tokens.dtype == np.int32
    np.testing.assert_array_equal(again.counts(), counts)
    np.testing.assert_array_equal(again.counts([6, 0, 3]), counts[[6, 0, 3]])
    np.testing.assert_array_equal(again.n_tokens, n_tokens)
    assert again.neuron_layer.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert again.neuron_expert.tolist() == [-1] * 7
    assert again.neuron_layer.dtype == np.int16 and again.neuron_expert.dtype == np.int16
    assert (again.n_layers, again.n_experts, again.top_k, again.is_moe) == (2, 0, 0, False)
    assert again.routing is None and again.sums() is None
    np.testing.assert_allclose(again.frequencies(), counts / n_tokens[:, None])
    header = json.loads((tmp_path / "s" / "header.json").read_text())
    assert header["format"] == "hexainst-activations" and header["format_version"] == 3
    assert [row["id"] for row in header["instructions"]] == again.ids
    assert not list((tmp_path / "s").rglob("*.tmp"))


def test_moe_round_trip_is_sparse_integer(tmp_path):
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 3, size=(5, 11)) * (rng.random((5, 11)) < 0.4)
    routing = rng.integers(0, 4, size=(5, 2, 3))
    sums = rng.normal(size=(5, 11)).astype(np.float32) * (counts > 0)
    store = write_store(tmp_path / "m", instructions=_instr(5), n_tokens=np.full(5, 4), counts=counts,
                        routing=routing, sums=sums, blocks=MOE_BLOCKS, n_layers=2, n_experts=3, top_k=2,
                        rows_per_shard=2)
    got = store.counts()
    assert sp.issparse(got) and got.dtype == np.uint16
    np.testing.assert_array_equal(got.toarray(), counts)
    np.testing.assert_array_equal(store.counts([4, 1]).toarray(), counts[[4, 1]])
    assert store.routing.dtype == np.int32 and store.routing.shape == (5, 2, 3)
    np.testing.assert_array_equal(store.routing, routing)
    np.testing.assert_allclose(store.sums(), sums)
    assert store.neuron_expert.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1]
    assert store.is_moe and store.n_experts == 3 and store.top_k == 2


def test_counts_must_fit_uint16_and_t(tmp_path):
    with pytest.raises(StoreError, match="65536"):
        write_store(tmp_path / "a", instructions=_instr(1), n_tokens=[70_000], counts=[[1, 2, 3, 4, 5, 6, 7]],
                    blocks=DENSE_BLOCKS, n_layers=2)
    with pytest.raises(StoreError, match="i0 has a count above its T"):
        write_store(tmp_path / "b", instructions=_instr(1), n_tokens=[3], counts=[[1, 2, 4, 0, 0, 0, 0]],
                    blocks=DENSE_BLOCKS, n_layers=2)
    with pytest.raises(StoreError, match="duplicate instruction id"):
        write_store(tmp_path / "c", instructions=_instr(2) + _instr(1), n_tokens=[3] * 3, counts=np.zeros((3, 7)),
                    blocks=DENSE_BLOCKS, n_layers=2)


def test_layout_checks_column_order():
    with pytest.raises(StoreError, match="ordered"):
        make_layout([(1, -1, 3), (0, -1, 3)], n_layers=2)
    with pytest.raises(StoreError, match="top_k"):
        make_layout([(0, 0, 3)], n_layers=1, n_experts=2)
    with pytest.raises(StoreError, match="expert 3 outside"):
        make_layout([(0, 3, 3)], n_layers=1, n_experts=2, top_k=1)


def test_writer_resumes_after_last_complete_shard(tmp_path):
    layout = make_layout(DENSE_BLOCKS, n_layers=2, rows_per_shard=2)
    writer = StoreWriter(tmp_path / "r", instructions=_instr(5), layout=layout, model={"name_or_path": "m"})
    counts = np.arange(35).reshape(5, 7) % 3
    writer.write_shard(0, n_tokens=np.full(2, 3), counts=counts[:2])
    # A killed run: the store is incomplete and says how to go on.
    with pytest.raises(StoreError, match="incomplete: 2 of 3 shards missing"):
        ActivationStore.open(tmp_path / "r")
    again = StoreWriter(tmp_path / "r", instructions=_instr(5), layout=layout, model={"name_or_path": "m"})
    assert again.pending_shards() == [1, 2]
    for shard in again.pending_shards():
        start, stop = again.ranges[shard]
        again.write_shard(shard, n_tokens=np.full(stop - start, 3), counts=counts[start:stop])
    np.testing.assert_array_equal(again.finish().counts(), counts)
    # A different model or row set never resumes into the same folder.
    with pytest.raises(StoreError, match="different 'model'"):
        StoreWriter(tmp_path / "r", instructions=_instr(5), layout=layout, model={"name_or_path": "other"})
    with pytest.raises(StoreError, match="different 'instructions'"):
        StoreWriter(tmp_path / "r", instructions=_instr(4), layout=layout, model={"name_or_path": "m"})


def test_open_rejects_foreign_folders(tmp_path):
    with pytest.raises(StoreError, match="not an activation store"):
        ActivationStore.open(tmp_path)
    (tmp_path / "header.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(StoreError, match="format is 'other'"):
        ActivationStore.open(tmp_path)


def test_merge_concatenates_in_part_order(tmp_path):
    rng = np.random.default_rng(2)
    a_counts = rng.integers(0, 3, size=(3, 11))
    b_counts = rng.integers(0, 3, size=(4, 11))
    a_routing = rng.integers(0, 3, size=(3, 2, 3))
    b_routing = rng.integers(0, 3, size=(4, 2, 3))
    common = dict(blocks=MOE_BLOCKS, n_layers=2, n_experts=3, top_k=2, model={"name_or_path": "m"})
    a = write_store(tmp_path / "a", instructions=_instr(3, "a"), n_tokens=np.full(3, 5), counts=a_counts,
                    routing=a_routing, rows_per_shard=2, **common)
    write_store(tmp_path / "b", instructions=_instr(4, "b"), n_tokens=np.full(4, 6), counts=b_counts,
                routing=b_routing, rows_per_shard=3, **common)
    merged = merge_stores([a, tmp_path / "b"], tmp_path / "m", rows_per_shard=4)
    assert merged.ids == ["a0", "a1", "a2", "b0", "b1", "b2", "b3"]
    np.testing.assert_array_equal(merged.counts().toarray(), np.vstack([a_counts, b_counts]))
    np.testing.assert_array_equal(merged.routing, np.concatenate([a_routing, b_routing]))
    assert merged.n_tokens.tolist() == [5] * 3 + [6] * 4
    assert merged.header["created_by"]["parts"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    other = write_store(tmp_path / "o", instructions=_instr(1, "o"), n_tokens=[5], counts=a_counts[:1],
                        routing=a_routing[:1], **dict(common, model={"name_or_path": "other"}))
    with pytest.raises(StoreError, match="different 'model'"):
        merge_stores([a, other], tmp_path / "m2")
    with pytest.raises(StoreError, match=r"cannot merge: instruction id .a0. is in .* twice"):
        merge_stores([a, a], tmp_path / "m3")
