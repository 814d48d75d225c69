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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


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


def assemble(parts: list[Part], template: Any) -> tuple[Any, torch.Tensor]:
    """One cache and one attention mask holding the chosen rows of ``parts``, in order.

    ``template`` is a cache whose layer objects are reused for the result (its tensors are
    replaced): any part's cache, or an empty ``DynamicCache`` of the model.
    """
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
        for name in ("keys", "values"):
            out = torch.zeros((total, heads, n_out, dim), dtype=dtype)
            r0 = 0
            for part, m in zip(parts, masks):
                if part.cache is not None:
                    src = getattr(part.cache.layers[li], name)
                    n = min(src.shape[2], n_out, m.shape[1])
                    if n:
                        for k, row in enumerate(part.rows):
                            out[r0 + k, :, n_out - n:] = src[row, :, src.shape[2] - n:]
                r0 += m.shape[0]
            setattr(layer, name, out)
        layer.is_initialized, layer.device = True, out.device
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
