"""Rows of a decode batch and their KV cache, rearranged in one copy.

The embedded server's decode loop (:mod:`hexainst.builders.synthetic.local_server`) keeps every
running row in one ``transformers`` ``DynamicCache``, left-padded to a common length (the padding
masked out, positions given explicitly). Two things change that batch while it runs: rows finish
and new prompts join. :func:`assemble` does both at once: it keeps the chosen rows of each part
(a row may be chosen twice: two candidates of one prompt), drops the columns that are padding
for every row kept (so a batch that runs for an hour does not attend over an hour of padding),
and right-aligns everything in freshly allocated tensors, so each cached key and value is copied
exactly once.

Sliding-window layers (gemma-3's local attention) hold only their last ``sliding_window - 1``
positions; their ``cumulative_length`` is set to the new length, so the masks ``transformers``
builds from it stay consistent.

The layers it builds (:class:`RoomyLayer`, :class:`RoomySlidingLayer`) keep their keys and
values as views of buffers with spare columns: ``transformers``' dynamic layers concatenate on
every update, which copies the whole cache at every decode step (measured on gemma-3-270m,
bfloat16, 48 rows of 450 columns: the copy was a third of the step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

#: Columns a layer's buffers hold beyond its keys: this many decode steps append in place before
#: the buffers are reallocated (a join or a compaction reallocates them anyway).
SPARE_COLUMNS = 64


@dataclass
class Part:
    """Some rows to keep: ``rows`` index the batch dimension of ``cache`` and ``mask`` (repeats allowed).

    ``cache`` may be ``None`` for rows with nothing cached yet (their ``mask`` has 0 columns).
    """

    cache: Any
    mask: torch.Tensor
    rows: list[int]


def layer_length(layer: Any, length: int) -> int:
    """Positions a cache layer holds for a batch of ``length`` columns."""
    if getattr(layer, "is_sliding", False):
        return min(length, layer.sliding_window - 1)
    return length


def leading_padding(mask: torch.Tensor) -> int:
    """Columns at the left of ``mask`` that are 0 in every row."""
    used = mask.any(dim=0).nonzero()
    return int(used[0]) if len(used) else mask.shape[1]


def assemble(parts: list[Part], template: Any, spare: int | None = None) -> tuple[Any, torch.Tensor]:
    """One cache and one attention mask holding the chosen rows of ``parts``, in order.

    ``template`` is a cache whose layers are replaced by the result's (:func:`roomy` layers with
    ``spare`` free columns, :data:`SPARE_COLUMNS` by default: the next ``spare`` positions are
    written in place): any part's cache, or an empty ``DynamicCache`` of the model.
    """
    spare = SPARE_COLUMNS if spare is None else spare
    masks = []
    for part in parts:
        m = part.mask[part.rows] if part.rows else part.mask[:0]
        masks.append(m[:, leading_padding(m):])
    length = max((m.shape[1] for m in masks), default=0)
    total = sum(m.shape[0] for m in masks)
    mask = torch.zeros((total, length), dtype=torch.long)
    r0 = 0
    for m in masks:
        mask[r0:r0 + m.shape[0], length - m.shape[1]:] = m
        r0 += m.shape[0]
    shapes = _layer_shapes(parts)
    for li, layer in enumerate(template.layers):
        if li >= len(shapes) or shapes[li] is None:
            continue
        heads, dim, dtype = shapes[li]
        n_out = layer_length(layer, length)
        bufs = []
        for name in ("keys", "values"):
            out = torch.zeros((total, heads, n_out + spare, dim), dtype=dtype)
            r0 = 0
            for part, m in zip(parts, masks):
                if part.cache is not None:
                    src = getattr(part.cache.layers[li], name)
                    n = min(src.shape[2], n_out, m.shape[1])
                    if n:
                        for k, row in enumerate(part.rows):
                            out[r0 + k, :, n_out - n:n_out] = src[row, :, src.shape[2] - n:]
                r0 += m.shape[0]
            bufs.append(out)
        # Replaced only now: ``template`` may be one of the parts, read above.
        layer = template.layers[li] = roomy(layer)
        if isinstance(layer, _Roomy):
            layer._kbuf, layer._vbuf = bufs
            layer._view(0, n_out)
        else:
            layer.keys, layer.values = (b[:, :, :n_out] for b in bufs)
        layer.is_initialized, layer.device = True, bufs[0].device
        if hasattr(layer, "cumulative_length"):
            layer.cumulative_length = length
    return template, mask


def _layer_shapes(parts: list[Part]) -> list[tuple[int, int, torch.dtype] | None]:
    """(kv heads, head dim, dtype) of every layer, from the first part whose cache has it."""
    shapes: list[tuple[int, int, torch.dtype] | None] = []
    caches = [p.cache for p in parts if p.cache is not None]
    n_layers = max((len(c.layers) for c in caches), default=0)
    for li in range(n_layers):
        found = None
        for c in caches:
            keys = getattr(c.layers[li], "keys", None)
            if keys is not None and keys.dim() == 4:
                found = (keys.shape[1], keys.shape[3], keys.dtype)
                break
        shapes.append(found)
    return shapes


class _Roomy:
    """Keys and values as views ``[start:end]`` of larger buffers; appends are written in place.

    Anything that replaces ``keys`` or ``values`` from outside (``transformers``' own ``crop``,
    ``batch_select_indices``) is noticed at the next update, which then copies them into fresh
    buffers. Writes go only past every view handed out from the same buffers, so a view returned
    by an earlier update is never overwritten. Update under the same ``torch.inference_mode`` the
    buffers were made in (the server runs its whole loop in it).
    """

    def _room(self, key_states: torch.Tensor, value_states: torch.Tensor) -> tuple[int, int]:
        """Write the new states after the kept ones (reallocating if they do not fit); their span."""
        q = key_states.shape[2]
        if getattr(self, "_kview", None) is not self.keys or getattr(self, "_vview", None) is not self.values:
            keys, values = (self.keys, self.values) if self.keys.dim() == 4 else (key_states[:, :, :0], value_states[:, :, :0])
            self._adopt(keys, values, q + SPARE_COLUMNS)
        elif self._end + q > self._kbuf.shape[2]:
            self._adopt(self.keys, self.values, q + SPARE_COLUMNS)
        end = self._end + q
        self._kbuf[:, :, self._end:end] = key_states
        self._vbuf[:, :, self._end:end] = value_states
        return self._start, end

    def _adopt(self, keys: torch.Tensor, values: torch.Tensor, spare: int) -> None:
        n = keys.shape[2]
        self._kbuf = keys.new_empty((keys.shape[0], keys.shape[1], n + spare, keys.shape[3]))
        self._vbuf = values.new_empty((values.shape[0], values.shape[1], n + spare, values.shape[3]))
        self._kbuf[:, :, :n] = keys
        self._vbuf[:, :, :n] = values
        self._view(0, n)

    def _view(self, start: int, end: int) -> None:
        self._start, self._end = start, end
        self.keys = self._kview = self._kbuf[:, :, start:end]
        self.values = self._vview = self._vbuf[:, :, start:end]


class RoomyLayer(_Roomy, DynamicLayer):
    """A full-attention layer that appends in place (see :class:`_Roomy`)."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self._view(*self._room(key_states, value_states))
        return self.keys, self.values


class RoomySlidingLayer(_Roomy, DynamicSlidingWindowLayer):
    """A sliding-window layer that appends in place: returns every kept and new position, then keeps
    the last ``sliding_window - 1`` (as ``DynamicSlidingWindowLayer`` does without recording the past)."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.record_past:
            raise NotImplementedError("RoomySlidingLayer does not record past states")
        self.cumulative_length += key_states.shape[2]
        start, end = self._room(key_states, value_states)
        full = self._kbuf[:, :, start:end], self._vbuf[:, :, start:end]
        self._view(max(start, end - (self.sliding_window - 1)), end)
        return full


def roomy(layer: Any) -> Any:
    """The in-place counterpart of a plain ``transformers`` dynamic layer; any other layer (a
    model's own subclass, with behaviour of its own) as it is."""
    if isinstance(layer, _Roomy):
        return layer
    if type(layer) is DynamicSlidingWindowLayer:
        return RoomySlidingLayer(sliding_window=layer.sliding_window)
    if type(layer) is DynamicLayer:
        return RoomyLayer()
    return layer
