"""The recorder against its peers on the same batches: time, peak memory and exactness of the counts.

Methods (each run in a fresh process, rounds interleaved, so that one method's memory never
counts against another's and the machine's drift spreads over all of them):

- ``bare``: the decoder (``model.model``) alone, no hooks: the floor.
- ``recorder``: ``hexainst.analysis.recording.record`` end to end on a model already loaded
  (tokenising, batching, counting on the device, the store written to disk).
- ``hooks``: plain forward hooks on every ``mlp.act_fn`` that copy the activation to the host
  (``.cpu().numpy()``); counts in numpy after each forward.
- ``nnsight``: ``nnsight.NNsight(model.model)``, ``.save()`` of every ``mlp.act_fn.output`` in one
  trace per batch; counts in numpy. Optional: ``pip install 'hexainst[bench]'``.

Every method sees the recorder's batches (within each 64-row shard, sorted by length, longest
first) with the recorder's padding and explicit positions. Exactness: each method's counts
against the recorder's store, cell by cell. Peak memory: the process's peak RSS (and, on a GPU,
``torch.cuda.max_memory_allocated``), with its growth over the RSS after the model was loaded.

    flock /tmp/hexainst-cpu.lock python benchmarks/peers.py                  # gemma-3-270m, CPU
    python benchmarks/peers.py --device cuda --dtype bfloat16 --shape llama-2-7b --batch-size 32

``--shape`` builds a random-weight model of a named shape (benchmarks/recording.py) fed seeded
token ids instead of release rows; then ``recorder`` is the recorder's per-batch path
(counting hooks, counts to the host) without the store. The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("bare", "recorder", "hooks", "nnsight")
HERE = Path(__file__).resolve()


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_rows(n: int) -> list[dict[str, Any]]:
    """The first n/6 rows of each category of the packaged release, in release order."""
    import hexainst
    from hexainst.kernel.features import decode_rows

    rows = decode_rows(hexainst.load())
    per = max(1, n // 6)
    taken: dict[str, int] = {}
    out = []
    for row in rows:
        if taken.get(row["category"], 0) < per:
            taken[row["category"]] = taken.get(row["category"], 0) + 1
            out.append(row)
    return out


# ------------------------------------------------------------------------------------------ worker
def _load(args: argparse.Namespace):
    """(model, tokenizer or None, token id lists, rows or None)."""
    import torch

    sys.path.insert(0, str(HERE.parent))
    from recording import build_gemma, build_random, make_inputs

    if args.shape:
        model = build_random(args.shape, getattr(torch, args.dtype), args.device, None)
        if args.attn:
            model.set_attn_implementation(args.attn)
        inputs = make_inputs(args.rows, model.config.vocab_size, 16, 160, seed=0)
        return model, None, inputs, None
    from hexainst.analysis.recording.recorder import InputPolicy, tokenize

    model = build_gemma(args.dtype, args.device)
    if args.attn:
        model.set_attn_implementation(args.attn)
    from transformers import AutoTokenizer

    from hexainst.analysis.recording.loading import convert_gguf, gemma3_270m_gguf

    tokenizer = AutoTokenizer.from_pretrained(convert_gguf(gemma3_270m_gguf(), progress=False))
    rows = json.loads(Path(args.workdir, "rows.json").read_text())
    inputs = [tokenize(tokenizer, r["instruction"], InputPolicy())[0] for r in rows]
    return model, tokenizer, inputs, rows


def _batches(inputs: list[list[int]], batch_size: int, rows_per_shard: int) -> list[list[int]]:
    """Global row indices in the recorder's batches: per shard, by length, longest first."""
    from hexainst.analysis.recording.recorder import _batches as shard_batches

    out = []
    for start in range(0, len(inputs), rows_per_shard):
        local = inputs[start:start + rows_per_shard]
        out += [[start + i for i in b] for b in shard_batches([len(x) for x in local], batch_size)]
    return out


def _pad_id(tokenizer: Any) -> int:
    if tokenizer is None:
        return 0
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)


def _numpy_counts(acts: list[np.ndarray], valid: np.ndarray) -> np.ndarray:
    """acts: per layer float (B, S, I) on the host; valid (B, S) bool -> counts int64 (B, L * I)."""
    return np.concatenate([((a > 0) & valid[:, :, None]).sum(axis=1) for a in acts], axis=1)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from hexainst.analysis.recording.adapters import adapter_for
    from hexainst.analysis.recording.hooks import CountingHooks
    from hexainst.analysis.recording.recorder import _pad, record, run_batch

    torch.set_num_threads(args.threads)
    model, tokenizer, inputs, rows = _load(args)
    adapter = adapter_for(model)
    decoder = adapter.decoder_module(model)
    device = decoder.get_input_embeddings().weight.device
    pad_id = _pad_id(tokenizer)
    batches = _batches(inputs, args.batch_size, args.rows_per_shard)
    n = len(inputs)
    skips = {i: 0 for i in range(n)}
    cuda = args.device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    # Warm-up: one bare batch (kernel selection, allocator), the same for every method.
    run_batch(decoder, None, [inputs[i] for i in batches[0]], [0] * len(batches[0]), pad_id, "right", device)
    sync()
    base_rss = _rss_mb()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    counts: np.ndarray | None = None
    elapsed: float | None = None
    method = args.worker
    t0 = time.perf_counter()
    if method == "bare":
        for b in batches:
            run_batch(decoder, None, [inputs[i] for i in b], [skips[i] for i in b], pad_id, "right", device)
        sync()
    elif method == "recorder" and rows is not None:
        store = record(model, rows, Path(args.workdir) / f"store-{args.round}", tokenizer=tokenizer,
                       batch_size=args.batch_size, rows_per_shard=args.rows_per_shard, progress=False,
                       overwrite=True)
        sync()
        elapsed = time.perf_counter() - t0
        counts = store.counts().astype(np.int64)  # reading the store back is not timed
    elif method == "recorder":  # random-weight shape: the recorder's per-batch path, no store
        parts: dict[int, np.ndarray] = {}
        with CountingHooks(model, adapter) as hooks:
            for b in batches:
                result, _ = run_batch(decoder, hooks, [inputs[i] for i in b], [0] * len(b), pad_id, "right", device)
                for r, i in enumerate(b):
                    parts[i] = result["counts"][r]
        sync()
        counts = np.stack([parts[i] for i in range(n)]).astype(np.int64)
    elif method == "hooks":
        acts: list[np.ndarray] = []
        handles = [module.register_forward_hook(lambda m, a, o: acts.append(o.detach().float().cpu().numpy()))
                   for _, module in adapter.act_modules(model)]
        parts = {}
        try:
            for b in batches:
                acts.clear()
                ids = [inputs[i] for i in b]
                run_batch(decoder, None, ids, [0] * len(b), pad_id, "right", device)
                valid = _pad(ids, [0] * len(b), pad_id, "right")[3].numpy()
                batch_counts = _numpy_counts([a.reshape(len(b), -1, a.shape[-1]) for a in acts], valid)
                for r, i in enumerate(b):
                    parts[i] = batch_counts[r]
        finally:
            for h in handles:
                h.remove()
        sync()
        counts = np.stack([parts[i] for i in range(n)])
    elif method == "nnsight":
        from nnsight import NNsight

        traced = NNsight(decoder)
        n_layers = len(adapter.act_modules(model))
        parts = {}
        for b in batches:
            ids = [inputs[i] for i in b]
            input_ids, attention, positions, valid = _pad(ids, [0] * len(b), pad_id, "right")
            saved = []
            with torch.inference_mode(), traced.trace(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                              position_ids=positions.to(device), use_cache=False):
                for j in range(n_layers):
                    saved.append(traced.layers[j].mlp.act_fn.output.save())
            acts = [s.detach().float().cpu().numpy() for s in saved]
            batch_counts = _numpy_counts([a.reshape(len(b), -1, a.shape[-1]) for a in acts], valid.numpy())
            for r, i in enumerate(b):
                parts[i] = batch_counts[r]
        sync()
        counts = np.stack([parts[i] for i in range(n)])
    else:
        raise SystemExit(f"unknown method {method!r}")
    if elapsed is None:
        elapsed = time.perf_counter() - t0
    out = {"method": method, "round": args.round, "seconds": elapsed, "base_rss_mb": base_rss,
           "peak_rss_mb": _peak_rss_mb(), "tokens": int(sum(len(x) for x in inputs))}
    if cuda:
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if counts is not None:
        np.save(Path(args.workdir) / f"counts-{method}-{args.round}.npy", counts.astype(np.int32))
    return out


# ------------------------------------------------------------------------------------------ parent
def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--shape", default=None, help="random-weight model shape from benchmarks/recording.py "
                                                      "(default: the real gemma-3-270m on release rows)")
    parser.add_argument("--attn", default=None, help="attention implementation (sdpa, eager); default the model's")
    parser.add_argument("--rows", type=int, default=96, help="instructions (gemma: n/6 per category of the release)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rows-per-shard", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per process")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return {}
    methods = [m for m in args.methods.split(",") if m]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="peers-"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.shape:
        rows = release_rows(args.rows)
        (work / "rows.json").write_text(json.dumps(
            [{k: r[k] for k in ("id", "category", "source", "instruction")} for r in rows]))
    runs: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        order = methods[rnd % len(methods):] + methods[: rnd % len(methods)]  # rotate: no method always first
        for method in order:
            cmd = [sys.executable, str(HERE), "--worker", method, "--round", str(rnd), "--workdir", str(work),
                   "--device", args.device, "--dtype", args.dtype, "--rows", str(args.rows),
                   "--batch-size", str(args.batch_size), "--rows-per-shard", str(args.rows_per_shard),
                   "--threads", str(args.threads)]
            cmd += ["--shape", args.shape] if args.shape else []
            cmd += ["--attn", args.attn] if args.attn else []
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TQDM_DISABLE="1"))
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{method} round {rnd} failed")
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(f"round {rnd} {method:9s} {run['seconds']:8.2f} s  peak RSS {run['peak_rss_mb']:7.0f} MB "
                  f"(+{run['peak_rss_mb'] - run['base_rss_mb']:.0f})", flush=True)
    reference = np.load(work / "counts-recorder-0.npy") if "recorder" in methods else None
    summary: dict[str, Any] = {}
    bare_best = min(r["seconds"] for r in runs if r["method"] == "bare") if "bare" in methods else None
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        secs = [r["seconds"] for r in mine]
        entry = {
            "best_s": round(min(secs), 3), "median_s": round(statistics.median(secs), 3),
            "spread": round((max(secs) - min(secs)) / min(secs), 4), "seconds": [round(s, 3) for s in secs],
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in mine)),
            "rss_growth_mb": round(max(r["peak_rss_mb"] - r["base_rss_mb"] for r in mine)),
        }
        if "peak_cuda_mb" in mine[0]:
            entry["peak_cuda_mb"] = round(max(r["peak_cuda_mb"] for r in mine))
        if bare_best:
            entry["ratio_to_bare_best"] = round(min(secs) / bare_best, 4)
        if reference is not None and method != "bare":
            diffs = []
            for rnd in range(args.rounds):
                got = np.load(work / f"counts-{method}-{rnd}.npy")
                diffs.append(int(np.count_nonzero(got != reference)))
            entry["cells_differing_from_store"] = max(diffs)
            entry["cells"] = int(reference.size)
        summary[method] = entry
    print("\n| method | counts equal the store | best s | median s | spread | ratio to bare (best) | "
          "peak RSS MB / growth |")
    print("|---|---|---|---|---|---|---|")
    for method, e in summary.items():
        exact = "-" if "cells_differing_from_store" not in e else (
            "yes" if e["cells_differing_from_store"] == 0 else f"{e['cells_differing_from_store']} of {e['cells']:,}")
        print(f"| {method} | {exact} | {e['best_s']:.2f} | {e['median_s']:.2f} | {e['spread']:.1%} | "
              f"{e.get('ratio_to_bare_best', float('nan')):.3f} | {e['peak_rss_mb']:,} / +{e['rss_growth_mb']:,} |")
    import torch

    result = {"device": args.device, "dtype": args.dtype, "model": args.shape or "gemma-3-270m", "rows": args.rows,
              "batch_size": args.batch_size, "rounds": args.rounds, "threads": args.threads, "attn": args.attn,
              "torch": torch.__version__, "methods": summary, "workdir": str(work)}
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
