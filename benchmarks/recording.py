"""Overhead of SPARCOM recording: hooked forward vs bare ``model.model`` forward, same batches, interleaved.

Two figures (the last line printed is a JSON object):

- ``dense_ratio``: hooked / bare time on a dense model, by default the real gemma-3-270m from
  the PyPI GGUF (converted once to the cache), or a random-weight model of a named shape
  (``--dense-shape llama-2-7b``). Target <= 1.05.
- ``moe_ratio``: the same on a random-weight Qwen2-MoE model, by default a tiny one of the
  Qwen1.5-MoE shape family (60 experts, top-4, shared expert), or ``--moe-shape
  qwen1.5-moe-a2.7b`` for the real shape (needs a GPU). Target <= 1.5.

"Hooked" is exactly what the recorder does per batch (counting hooks, then the counts copied to
the CPU); the store's disk writes are not included. Inputs are seeded random token ids of
instruction-like lengths, sorted by length into padded batches, as the recorder does. Each
repeat runs all batches bare and all batches hooked, alternating which goes first; ratios are
of the medians (``ratio``) and, in the details, of the best repeats (``ratio_min``, steadier on
a machine shared with other work).

    python benchmarks/recording.py                       # CPU: gemma-3-270m + tiny Qwen2-MoE
    python benchmarks/recording.py --device cuda --dtype bfloat16 \
        --dense-shape llama-2-7b --moe-shape qwen1.5-moe-a2.7b
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
import torch

from hexainst.analysis.recording.adapters import adapter_for
from hexainst.analysis.recording.hooks import CountingHooks
from hexainst.analysis.recording.recorder import _batches, run_batch

#: Random-weight model shapes (config class, keyword arguments).
SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama-2-7b": ("LlamaConfig", dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                       num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                                       max_position_embeddings=4096)),
    "llama-tiny": ("LlamaConfig", dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                                       num_attention_heads=4, num_key_value_heads=4, vocab_size=32000)),
    "qwen1.5-moe-a2.7b": ("Qwen2MoeConfig", dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                                                 num_attention_heads=16, num_key_value_heads=16,
                                                 vocab_size=151936, num_experts=60, num_experts_per_tok=4,
                                                 moe_intermediate_size=1408, shared_expert_intermediate_size=5632,
                                                 max_position_embeddings=8192)),
    # The Qwen1.5-MoE shape family scaled down 8x in width, 6x in depth (same experts and top-k).
    "qwen2-moe-tiny": ("Qwen2MoeConfig", dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                                              num_attention_heads=4, num_key_value_heads=4, vocab_size=4096,
                                              num_experts=60, num_experts_per_tok=4, moe_intermediate_size=176,
                                              shared_expert_intermediate_size=704)),
}


def build_random(shape: str, dtype: torch.dtype, device: str, experts_impl: str | None) -> torch.nn.Module:
    import transformers

    cls_name, kwargs = SHAPES[shape]
    config = getattr(transformers, cls_name)(**kwargs)
    if experts_impl:
        config._experts_implementation = experts_impl
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    with torch.no_grad():  # non-degenerate gate signs: weights ~ N(0, 0.02) as in pretraining init
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.02)
    return model.eval()


def build_gemma(dtype: str, device: str) -> torch.nn.Module:
    from hexainst.analysis.recording.loading import convert_gguf, gemma3_270m_gguf, load_model

    folder = convert_gguf(gemma3_270m_gguf())
    return load_model(str(folder), dtype=dtype, device=device, progress=False).model


def make_inputs(n: int, vocab: int, min_len: int, max_len: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n)
    return [[1] + rng.integers(3, vocab, size=int(t) - 1).tolist() for t in lengths]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _profile(fn, device: str, rows: int = 25) -> None:
    """Print the operators of one hooked pass that take the most time (device time on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        fn()
    table = prof.key_averages()
    if device.startswith("cuda"):
        print(table.table(sort_by="self_device_time_total", row_limit=rows), flush=True)
    print(table.table(sort_by="self_cpu_time_total", row_limit=rows), flush=True)


def measure(model: torch.nn.Module, inputs: list[list[int]], *, batch_size: int, repeats: int, device: str,
            warmup: int = 1, profile: bool = False, recompute_experts: bool = False) -> dict[str, float]:
    adapter = adapter_for(model)
    decoder = adapter.decoder_module(model)
    in_device = decoder.get_input_embeddings().weight.device
    batches = [[inputs[i] for i in b] for b in _batches([len(x) for x in inputs], batch_size)]
    tokens = sum(len(x) for x in inputs)
    hooks = CountingHooks(model, adapter)
    if recompute_experts:  # the path before 4373d8e: recompute the routed experts' gate activations
        hooks.expert_path = {j: "recompute" for j in hooks.expert_path}

    def one_pass(hooked: bool) -> float:
        if hooked:
            hooks.attach()
        else:
            hooks.remove()
        _sync(device)
        t0 = time.perf_counter()
        for batch in batches:
            run_batch(decoder, hooks if hooked else None, batch, [0] * len(batch), 0, "right", in_device)
        _sync(device)
        return time.perf_counter() - t0

    for _ in range(warmup):
        one_pass(False)
        one_pass(True)
    bare, hooked = [], []
    for r in range(repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        for flag in order:
            (hooked if flag else bare).append(one_pass(flag))
    if profile:
        _profile(lambda: one_pass(True), device)
    hooks.remove()
    bare_s, hooked_s = statistics.median(bare), statistics.median(hooked)
    return {
        "ratio": round(hooked_s / bare_s, 4),
        # Best-of-repeats ratio: less sensitive to other processes on a shared machine.
        "ratio_min": round(min(hooked) / min(bare), 4),
        "bare_s": round(bare_s, 4),
        "hooked_s": round(hooked_s, 4),
        "tokens": tokens,
        "tokens_per_s": round(tokens / hooked_s, 1),
        "bare_tokens_per_s": round(tokens / bare_s, 1),
        "n_cols": int(sum(w for _, _, w in adapter.describe(model)["blocks"])),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--dense-shape", default="gemma-3-270m",
                        help=f"gemma-3-270m (real, PyPI GGUF) or a random shape: {', '.join(SHAPES)}")
    parser.add_argument("--moe-shape", default="qwen2-moe-tiny", help=f"random MoE shape: {', '.join(SHAPES)}")
    parser.add_argument("--experts-implementation", default=None,
                        help="transformers experts implementation for the MoE model (eager, grouped_mm, batched_mm)")
    parser.add_argument("--only", choices=("dense", "moe"), default=None)
    parser.add_argument("--n-instructions", type=int, default=32)
    parser.add_argument("--min-len", type=int, default=16)
    parser.add_argument("--max-len", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also print a profile of one hooked pass")
    parser.add_argument("--recompute-experts", action="store_true",
                        help="MoE: recompute the routed experts' gate activations instead of counting the experts' "
                             "own act_fn output (the earlier path, for comparison)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    result: dict[str, Any] = {"device": args.device, "dtype": args.dtype, "batch_size": args.batch_size,
                              "n_instructions": args.n_instructions, "repeats": args.repeats,
                              "torch": torch.__version__}
    if args.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name(0)
    else:
        result["cpu_threads"] = torch.get_num_threads()
    if args.only in (None, "dense"):
        if args.dense_shape == "gemma-3-270m":
            model = build_gemma(args.dtype, args.device)
        else:
            model = build_random(args.dense_shape, dtype, args.device, None)
        inputs = make_inputs(args.n_instructions, model.config.vocab_size, args.min_len, args.max_len, seed=0)
        dense = measure(model, inputs, batch_size=args.batch_size, repeats=args.repeats, device=args.device,
                        profile=args.profile)
        result.update(dense_shape=args.dense_shape, dense_ratio=dense["ratio"],
                      dense_tokens_per_s=dense["tokens_per_s"], dense_bare_tokens_per_s=dense["bare_tokens_per_s"],
                      dense_detail=dense)
        print(f"dense {args.dense_shape}: {dense}", flush=True)
        del model
    if args.only in (None, "moe"):
        model = build_random(args.moe_shape, dtype, args.device, args.experts_implementation)
        inputs = make_inputs(args.n_instructions, model.config.vocab_size, args.min_len, args.max_len, seed=1)
        moe = measure(model, inputs, batch_size=args.batch_size, repeats=args.repeats, device=args.device,
                      profile=args.profile, recompute_experts=args.recompute_experts)
        result.update(moe_shape=args.moe_shape, moe_ratio=moe["ratio"], moe_tokens_per_s=moe["tokens_per_s"],
                      moe_bare_tokens_per_s=moe["bare_tokens_per_s"],
                      experts_implementation=model.config._experts_implementation,
                      expert_path="recompute" if args.recompute_experts else "act_fn where verified", moe_detail=moe)
        print(f"moe {args.moe_shape}: {moe}", flush=True)
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
