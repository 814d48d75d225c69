"""Ways to count positive activations per instruction, compared for exactness and time on one device.

The recorder's dense hook turns an activation tensor ``A`` (B, S, I) and the mask of real tokens
``valid`` (B, S) into ``counts[b, i] = #{t : valid[b, t] and A[b, t, i] > 0}``; its MoE hook does
the same for rows sorted by expert and scatters them into (instruction, expert) rows. This script
times candidate formulations of both on random data of a named shape, checks each against a
plain int64 reference, and profiles one hooked forward pass, so the choice made in
``analysis/recording/hooks.py`` rests on numbers from the device it runs on.

    python benchmarks/counting_kernels.py --device cuda          # Llama-2-7B widths
    python benchmarks/counting_kernels.py --device cpu --batch 4 --seq 64 --width 2048
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch


def _time(fn: Callable[[], torch.Tensor], device: str, repeats: int) -> float:
    for _ in range(2):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(repeats):
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / 1000)
    else:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def dense_variants(act: torch.Tensor, valid: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    mask = valid.unsqueeze(-1)

    def gt_and_sum_uint8():
        positive = act > 0
        positive &= mask
        return positive.view(torch.uint8).sum(dim=1, dtype=torch.int32)

    def gt_and_sum_int64():
        return ((act > 0) & mask).sum(dim=1)

    def bmm_float32():
        positive = (act > 0).to(torch.float32)
        return torch.bmm(valid.to(torch.float32).unsqueeze(1), positive).squeeze(1).to(torch.int32)

    def bmm_bf16_out_float32():
        positive = (act > 0).to(torch.bfloat16)
        out = torch.bmm(valid.to(torch.bfloat16).unsqueeze(1), positive, out_dtype=torch.float32)
        return out.squeeze(1).to(torch.int32)

    def int_mm_block_diagonal():
        batch, seq, width = act.shape
        positive = (act > 0).view(torch.int8).reshape(batch * seq, width)
        rows = max(batch, 32)
        selector = torch.zeros((rows, batch * seq), dtype=torch.int8, device=act.device)
        index = torch.arange(batch, device=act.device)
        selector.view(rows, batch, seq)[index, index] = valid.to(torch.int8)
        return torch._int_mm(selector, positive)[:batch]

    return {
        "gt_and_sum_uint8 (fallback)": gt_and_sum_uint8,
        "gt_and_sum_int64": gt_and_sum_int64,
        "bmm_float32": bmm_float32,
        "bmm_bf16_out_float32": bmm_bf16_out_float32,
        "int_mm_block_diagonal (used)": int_mm_block_diagonal,
    }


def moe_variants(act: torch.Tensor, key: torch.Tensor, n_rows: int) -> dict[str, Callable[[], torch.Tensor]]:
    """``act`` (R, I) rows sorted by key; counts (n_rows, I) = per key, rows with act > 0."""

    def index_add_int32():
        out = torch.zeros((n_rows, act.shape[1]), dtype=torch.int32, device=act.device)
        out.index_add_(0, key, (act > 0).view(torch.uint8).to(torch.int32))
        return out

    def sparse_mm_float32():
        rows = act.shape[0]
        selector = torch.sparse_coo_tensor(
            torch.stack([key, torch.arange(rows, device=act.device)]),
            torch.ones(rows, device=act.device), (n_rows, rows)).to_sparse_csr()
        return (selector @ (act > 0).to(torch.float32)).to(torch.int32)

    def cumsum_int32():
        positive = (act > 0).to(torch.int32)
        totals = positive.cumsum(0)
        ends = torch.bincount(key, minlength=n_rows).cumsum(0)
        padded = torch.cat([torch.zeros((1, act.shape[1]), dtype=torch.int32, device=act.device), totals])
        starts = torch.cat([torch.zeros(1, dtype=ends.dtype, device=act.device), ends[:-1]])
        return padded[ends] - padded[starts]

    return {"index_add_int32 (used)": index_add_int32, "sparse_mm_float32": sparse_mm_float32,
            "cumsum_int32 (keys sorted)": cumsum_int32}


def transfer_variants(counts: torch.Tensor) -> dict[str, Callable[[], object]]:
    pinned = torch.empty(counts.shape, dtype=torch.uint16, pin_memory=counts.is_cuda)

    def int32_pageable():
        return counts.cpu().numpy()

    def uint16_pinned():
        pinned.copy_(counts.to(torch.uint16), non_blocking=True)
        if counts.is_cuda:
            torch.cuda.current_stream().synchronize()
        return pinned.numpy()

    return {"int32 pageable (before)": int32_pageable, "uint16 pinned (used)": uint16_pinned}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=160)
    parser.add_argument("--width", type=int, default=11008, help="dense FFN width (Llama-2-7B: 11008)")
    parser.add_argument("--experts", type=int, default=60)
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--expert-width", type=int, default=1408)
    parser.add_argument("--transfer-cols", type=int, default=352256, help="columns copied to the host per batch")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator(device="cpu").manual_seed(0)
    act = torch.randn((args.batch, args.seq, args.width), generator=gen).to(args.device, dtype)
    lengths = torch.randint(args.seq // 2, args.seq + 1, (args.batch,), generator=gen)
    valid = (torch.arange(args.seq).unsqueeze(0) < lengths.unsqueeze(1)).to(args.device)
    reference = ((act.float() > 0) & valid.unsqueeze(-1)).sum(dim=1).to(torch.int64)
    result: dict = {"device": args.device, "shape": [args.batch, args.seq, args.width]}
    if args.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name(0)

    def run(section: str, variants: dict, expected: torch.Tensor | None) -> None:
        for name, fn in variants.items():
            try:
                got = fn()
                exact = None if expected is None else bool(torch.equal(torch.as_tensor(got).to(expected.device, torch.int64), expected))
                seconds = _time(fn, args.device, args.repeats)
            # a formulation the device or torch version lacks: torch raises RuntimeError (or its
            # NotImplementedError) for an op or dtype a backend lacks, TypeError / AttributeError for one it predates
            except (RuntimeError, TypeError, AttributeError) as exc:
                print(f"{section:8s} {name:30s} unavailable: {type(exc).__name__}: {str(exc)[:120]}")
                continue
            result[f"{section}:{name}"] = {"ms": round(seconds * 1000, 3), "exact": exact}
            print(f"{section:8s} {name:30s} {seconds * 1000:9.3f} ms  exact={exact}", flush=True)

    run("dense", dense_variants(act, valid), reference)

    tokens = valid.reshape(-1).nonzero().squeeze(-1)
    owner = torch.arange(args.batch, device=args.device).repeat_interleave(args.seq)[tokens]
    picks = torch.rand((tokens.numel(), args.experts), generator=gen).argsort(dim=1)[:, :args.top_k].to(args.device)
    flat_expert = picks.reshape(-1)
    flat_owner = owner.repeat_interleave(args.top_k)
    key = flat_expert * args.batch + flat_owner  # expert-major: rows of one expert stay together
    order = torch.argsort(key, stable=True)
    key = key[order]
    rows = torch.randn((key.numel(), args.expert_width), generator=gen).to(args.device, dtype)
    n_rows = args.experts * args.batch
    moe_reference = torch.zeros((n_rows, args.expert_width), dtype=torch.int64, device=args.device)
    moe_reference.index_add_(0, key, (rows.float() > 0).to(torch.int64))
    run("experts", moe_variants(rows, key, n_rows), moe_reference)

    counts = torch.randint(0, args.seq, (args.batch, args.transfer_cols), generator=gen, dtype=torch.int32).to(args.device)
    run("transfer", transfer_variants(counts), None)
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
