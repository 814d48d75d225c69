"""How much do counts depend on how instructions were batched? And do ISN sets move because of it?

Records the same release rows with the real gemma-3-270m (float32, CPU) under several batchings
(batch size 1, 8, 32; sorted within 64-row shards as the recorder does, sorted across all rows,
rows shuffled first) and two attention implementations (sdpa, eager), then compares every store
with the recorder's default (sdpa, batch 8, sorted within shards):

- cells: how many of the n x 36,864 counts differ, by how much, in how many instructions;
- ISN sets (eps 0.01, the paper's tie rule, :func:`hexainst.analysis.isn.compute_isn_sets`): how
  many instructions' sets change, how many memberships, the lowest paired Jaccard, and the Fig. 3
  contrast (same-category vs across-category mean Jaccard) against the reference's.

Batch size 1 feeds each instruction alone with no padding: its counts depend on nothing but the
instruction, whatever else is recorded. The last line printed is a JSON object.

    flock /tmp/hexainst-cpu.lock python benchmarks/batch_composition.py --rows 240
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

#: (name, batch size, rows per shard or None for all rows in one shard, row order)
VARIANTS = [
    ("b8", 8, 64, "release"),
    ("b1", 1, 64, "release"),
    ("b32", 32, 64, "release"),
    ("b8-sorted-across-all", 8, None, "release"),
    ("b8-shuffled", 8, 64, "shuffled"),
]


def isn_effect(reference: np.ndarray, other: np.ndarray, labels: list[str], eps: float) -> dict[str, Any]:
    """How the ISN sets of ``other`` differ from those of ``reference`` (same rows, same columns)."""
    from hexainst.analysis.isn import compute_isn_sets
    from hexainst.analysis.metrics import category_means, diagonal_contrast, jaccard_matrix, paired_jaccard

    cats = sorted(set(labels))
    a = compute_isn_sets(reference, eps=eps)
    b = compute_isn_sets(other, eps=eps)
    pj = paired_jaccard(a, b)
    changed = np.flatnonzero(pj < 1.0)
    moved = sum(int(np.setxor1d(a.row(r), b.row(r)).size) for r in changed)
    ca = diagonal_contrast(category_means(jaccard_matrix(a), labels, cats))
    cb = diagonal_contrast(category_means(jaccard_matrix(b), labels, cats))
    return {
        "instructions_with_changed_set": int(changed.size),
        "memberships_changed": moved,
        "mean_set_size": float(a.sizes().mean()),
        "min_paired_jaccard": float(pj.min()),
        "fig3_difference": [round(ca[2], 6), round(cb[2], 6)],
        "fig3_difference_change": float(cb[2] - ca[2]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=240, help="release rows (n/6 per category)")
    parser.add_argument("--attn", default="sdpa,eager", help="attention implementations to compare")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled order")
    args = parser.parse_args(argv)
    import torch

    sys.path.insert(0, str(HERE))
    from peers import release_rows
    from recording import build_gemma
    from transformers import AutoTokenizer

    from hexainst.analysis.recording import record
    from hexainst.analysis.recording.loading import convert_gguf, gemma3_270m_gguf

    torch.set_num_threads(args.threads)
    model = build_gemma("float32", "cpu")
    tokenizer = AutoTokenizer.from_pretrained(convert_gguf(gemma3_270m_gguf(), progress=False))
    rows = release_rows(args.rows)
    ids = [r["id"] for r in rows]
    labels = [r["category"] for r in rows]
    shuffled = [rows[i] for i in np.random.default_rng(args.seed).permutation(len(rows))]
    work = Path(tempfile.mkdtemp(prefix="composition-"))
    stores: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for attn in [a for a in args.attn.split(",") if a]:
        model.set_attn_implementation(attn)
        for name, batch_size, per_shard, order in VARIANTS:
            key = f"{attn} {name}"
            t0 = time.perf_counter()
            store = record(model, shuffled if order == "shuffled" else rows, work / key.replace(" ", "-"),
                           tokenizer=tokenizer, batch_size=batch_size, rows_per_shard=per_shard or len(rows),
                           progress=False)
            seconds[key] = round(time.perf_counter() - t0, 2)
            assert store.header["recording"]["attn_implementation"] == attn
            position = {i: k for k, i in enumerate(store.ids)}
            stores[key] = store.counts()[[position[i] for i in ids]].astype(np.int32)
            print(f"{key:28s} {seconds[key]:7.1f} s", flush=True)
    reference_key = "sdpa b8"
    reference = stores[reference_key]
    report: dict[str, Any] = {}
    print(f"\nagainst {reference_key} ({len(rows)} instructions x {reference.shape[1]:,} neurons = "
          f"{reference.size:,} cells):")
    print("| recording | cells differing | max abs diff | instructions touched | ISN sets changed | "
          "memberships changed | min paired Jaccard | Fig. 3 difference change |")
    print("|---|---|---|---|---|---|---|---|")
    for key, counts in stores.items():
        diff = np.abs(counts - reference)
        entry = {"cells_differing": int(np.count_nonzero(diff)), "max_abs_diff": int(diff.max()),
                 "instructions_touched": int(np.count_nonzero(diff.any(axis=1))), "seconds": seconds[key]}
        entry.update(isn_effect(reference, counts, labels, args.eps))
        report[key] = entry
        print(f"| {key} | {entry['cells_differing']:,} | {entry['max_abs_diff']} | {entry['instructions_touched']} | "
              f"{entry['instructions_with_changed_set']} | {entry['memberships_changed']} | "
              f"{entry['min_paired_jaccard']:.4f} | {entry['fig3_difference_change']:+.2e} |")
    # Batch 1 is the same whatever the other rows: check it against itself on another row set.
    sub = rows[::2]
    model.set_attn_implementation("sdpa")
    alone = record(model, sub, work / "sdpa-b1-half", tokenizer=tokenizer, batch_size=1, progress=False)
    position = {i: k for k, i in enumerate(ids)}
    b1_half_equal = bool(np.array_equal(alone.counts().astype(np.int32),
                                        stores["sdpa b1"][[position[r["id"]] for r in sub]]))
    print(f"\nbatch 1 on half the rows equals batch 1 on all rows: {b1_half_equal}")
    result = {"model": "gemma-3-270m", "dtype": "float32", "device": "cpu", "rows": len(rows),
              "cells": int(reference.size), "reference": reference_key, "eps": args.eps,
              "torch": torch.__version__, "variants": report, "b1_independent_of_other_rows": b1_half_equal}
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
