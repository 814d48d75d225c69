"""The in-place cache layers of the decode loop against ``transformers``' own dynamic layers.

``RoomyLayer`` and ``RoomySlidingLayer`` must return and keep exactly what ``DynamicLayer`` and
``DynamicSlidingWindowLayer`` do, update after update (across the window and across buffer
reallocations), while writing appends into their buffer instead of copying the cache.
"""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from hexainst.builders.synthetic import kv_rows
from hexainst.builders.synthetic.kv_rows import Part, RoomyLayer, RoomySlidingLayer, assemble

# Update widths: a prefill, single decode steps, then chunks that cross the window (7) and the spare room.
WIDTHS = [5, 1, 1, 3, 1, 9, 1, 1, 2, 1, 1, 1, 12, 1]


def states(gen: torch.Generator, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(3, 2, q, 4, generator=gen), torch.randn(3, 2, q, 4, generator=gen)


@pytest.mark.parametrize("make", [
    lambda: (DynamicLayer(), RoomyLayer()),
    lambda: (DynamicSlidingWindowLayer(sliding_window=8), RoomySlidingLayer(sliding_window=8)),
], ids=["full", "sliding"])
def test_roomy_layers_return_and_keep_what_dynamic_layers_do(make, monkeypatch):
    monkeypatch.setattr(kv_rows, "SPARE_COLUMNS", 4)  # reallocate often
    ref, ours = make()
    gen = torch.Generator().manual_seed(0)
    handed_out = []  # every view an update returned, with what it held then
    for q in WIDTHS:
        k, v = states(gen, q)
        want = ref.update(k, v)
        got = ours.update(k.clone(), v.clone())
        for w, g in zip(want, got):
            assert torch.equal(w, g)
            handed_out.append((g, g.clone()))
        assert torch.equal(ref.keys, ours.keys) and torch.equal(ref.values, ours.values)
        assert ref.get_seq_length() == ours.get_seq_length()
        assert ref.get_mask_sizes(1) == ours.get_mask_sizes(1)
    for view, then in handed_out:  # later appends never wrote into an earlier answer
        assert torch.equal(view, then)


def test_roomy_layer_appends_in_place_until_its_spare_room_is_used(monkeypatch):
    monkeypatch.setattr(kv_rows, "SPARE_COLUMNS", 4)
    layer = RoomyLayer()
    gen = torch.Generator().manual_seed(1)
    layer.update(*states(gen, 5))  # buffers of 5 + 4 columns
    base = layer.keys.data_ptr()
    for _ in range(4):
        layer.update(*states(gen, 1))
        assert layer.keys.data_ptr() == base  # written into the same buffer, not concatenated
    layer.update(*states(gen, 1))  # the tenth column does not fit: new buffers
    assert layer.keys.data_ptr() != base
    assert layer.keys.shape[2] == 10


def test_a_layer_replaced_from_outside_is_adopted_at_the_next_update():
    ref, ours = DynamicLayer(), RoomyLayer()
    gen = torch.Generator().manual_seed(2)
    first = states(gen, 6)
    ref.update(*first)
    ours.update(*first)
    keep = torch.tensor([2, 0])
    ref.batch_select_indices(keep)
    ours.batch_select_indices(keep)  # transformers' own method replaces ``keys`` and ``values``
    k, v = torch.randn(2, 2, 1, 4, generator=gen), torch.randn(2, 2, 1, 4, generator=gen)
    for want, got in zip(ref.update(k, v), ours.update(k, v)):
        assert torch.equal(want, got)
    ours.values = ours.values * 2  # only the values replaced: noticed too
    ref.values = ref.values * 2
    for want, got in zip(ref.update(k, v), ours.update(k, v)):
        assert torch.equal(want, got)


def test_assemble_leaves_spare_columns_the_next_updates_fill_in_place():
    gen = torch.Generator().manual_seed(3)
    source = RoomyLayer()
    source.update(*states(gen, 6))

    class Cache:  # the one attribute assemble reads of a cache
        def __init__(self, layers):
            self.layers = layers

    mask = torch.ones((3, 6), dtype=torch.long)
    mask[1, :2] = 0  # row 1 is shorter
    cache, out_mask = assemble([Part(Cache([source]), mask, [1, 2])], Cache([DynamicLayer()]), spare=3)
    layer = cache.layers[0]
    assert isinstance(layer, RoomyLayer)
    assert torch.equal(out_mask, mask[[1, 2]])
    assert torch.equal(layer.keys, source.keys[[1, 2]])
    base = layer.keys.data_ptr()
    for _ in range(3):
        layer.update(*(t[:2] for t in states(gen, 1)))
    assert layer.keys.data_ptr() == base and layer.keys.shape[2] == 9
