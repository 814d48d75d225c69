"""Small activation stores written with the recording package's real StoreWriter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hexainst.analysis.recording.store import write_store
from hexainst.kernel.vocab import CATEGORIES

N_LAYERS = 4
WIDTH = 60  # neurons per layer (dense)


def _instructions(per_category: int) -> list[dict]:
    return [
        {"id": f"{c}-{k:03d}", "category": c, "source": "natural" if k % 2 else "synthetic"}
        for c in CATEGORIES
        for k in range(per_category)
    ]


def make_dense_store(
    path: Path, *, seed: int = 0, per_category: int = 8, tokenizer_sha: str = "tok-a",
    policy: dict | None = None, with_sums: bool = True, structure: bool = True, model: str = "tiny-base",
    texts: bool = False, edited: tuple[str, ...] = (),
):
    """A dense store where each category's instructions fire a category-specific block of neurons.

    ``texts``: record a text per row (its hash goes into the header); the rows in ``edited`` get another text.
    """
    rng = np.random.default_rng(seed)
    instr = _instructions(per_category)
    if texts:
        instr = [dict(row, instruction=f"the text of {row['id']}" + (" (edited)" if row["id"] in edited else ""))
                 for row in instr]
    n, n_cols = len(instr), N_LAYERS * WIDTH
    n_tokens = rng.integers(10, 30, size=n).astype(np.int32)
    counts = np.zeros((n, n_cols), dtype=np.int64)
    for r, row in enumerate(instr):
        t = n_tokens[r]
        counts[r] = rng.binomial(t, 0.15, size=n_cols)
        if structure:
            a = CATEGORIES.index(row["category"])
            block = np.arange(a * 30, a * 30 + 30)
            counts[r, block] = rng.binomial(t, 0.9, size=block.size)
    sums = counts * rng.uniform(0.5, 1.5, size=counts.shape) if with_sums else None
    return write_store(
        path, instructions=instr, n_tokens=n_tokens, counts=counts.astype(np.uint16),
        blocks=[(layer, -1, WIDTH) for layer in range(N_LAYERS)], n_layers=N_LAYERS,
        sums=None if sums is None else sums.astype(np.float32), rows_per_shard=16,
        model={"name_or_path": model, "revision": "r0", "dtype": "float32", "config_class": "LlamaConfig"},
        tokenizer={"name_or_path": "tok", "sha256": tokenizer_sha},
        input_policy=policy or {"mode": "raw", "add_special_tokens": True, "bos_in_T": True},
    )


def make_moe_store(path: Path, *, seed: int = 0, per_category: int = 6, model: str = "tiny-moe"):
    """An MoE store: 3 layers x (4 routed experts of width 5 + a shared expert of width 5), top-2."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    instr = _instructions(per_category)
    n, n_layers, n_experts, width, top_k = len(instr), 3, 4, 5, 2
    blocks = [(layer, e, width) for layer in range(n_layers) for e in range(n_experts + 1)]
    n_cols = len(blocks) * width
    n_tokens = rng.integers(8, 20, size=n).astype(np.int32)
    routing = np.zeros((n, n_layers, n_experts), dtype=np.int32)
    counts = np.zeros((n, n_cols), dtype=np.int64)
    for r, row in enumerate(instr):
        t = int(n_tokens[r])
        a = CATEGORIES.index(row["category"])
        for layer in range(n_layers):
            pref = np.full(n_experts, 1.0)
            pref[a % n_experts] = 4.0
            for _ in range(t):
                picks = rng.choice(n_experts, size=top_k, replace=False, p=pref / pref.sum())
                routing[r, layer, picks] += 1
            for e in range(n_experts + 1):
                col0 = (layer * (n_experts + 1) + e) * width
                cap = t if e == n_experts else routing[r, layer, e]
                counts[r, col0 : col0 + width] = rng.binomial(cap, 0.5, size=width)
    return write_store(
        path, instructions=instr, n_tokens=n_tokens, counts=sp.csr_matrix(counts.astype(np.uint16)),
        blocks=blocks, n_layers=n_layers, n_experts=n_experts, top_k=top_k, routing=routing, rows_per_shard=16,
        model={"name_or_path": model, "revision": "r0", "dtype": "float32", "config_class": "Qwen2MoeConfig"},
        tokenizer={"name_or_path": "tok", "sha256": "tok-moe"},
    )


@pytest.fixture
def dense_pair(tmp_path: Path):
    base = make_dense_store(tmp_path / "base", seed=1, model="tiny-base")
    ft = make_dense_store(tmp_path / "ft", seed=2, model="tiny-chat")
    return base, ft


@pytest.fixture
def moe_pair(tmp_path: Path):
    return make_moe_store(tmp_path / "moe-base", seed=1), make_moe_store(tmp_path / "moe-ft", seed=2, model="tiny-moe-chat")


@pytest.fixture
def make_dense():
    """The factory :func:`make_dense_store` (test modules cannot import conftest under importlib mode)."""
    return make_dense_store


@pytest.fixture
def make_moe():
    return make_moe_store
