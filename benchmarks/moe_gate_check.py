"""Do the ways the experts hook gets gate activations give the same counts on a device?

Three ways: the experts' own act_fn output (transformers' grouped_mm experts, after one batch
where it agrees with recomputing), and recomputing the gate with one grouped matmul or with one
matmul per expert.

The MoE experts hook computes ``act_fn(x @ gate_up_proj[e, :I].T)`` for the tokens routed to each
expert either with one ``torch.nn.functional.grouped_mm`` (bf16 on CUDA) or with one matmul per
expert. The count tests check the per-expert path exactly against an independent reference; this
script records the same batches of a random-weight Qwen2-MoE model both ways on one device and
dtype and prints how many expert counts differ (only rounding of values within an ulp of zero
may differ; a wrong offset or row order would change most of them). The last line is JSON.

    python benchmarks/moe_gate_check.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from hexainst.analysis.recording.adapters import adapter_for
from hexainst.analysis.recording.hooks import CountingHooks
from hexainst.analysis.recording.recorder import _batches, run_batch


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--n-instructions", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    import transformers

    config = transformers.Qwen2MoeConfig(hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                                         num_attention_heads=4, num_key_value_heads=4, vocab_size=4096,
                                         num_experts=60, num_experts_per_tok=4, moe_intermediate_size=176,
                                         shared_expert_intermediate_size=704)
    torch.manual_seed(0)
    with torch.device(args.device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, args.dtype)).eval()
    rng = np.random.default_rng(0)
    inputs = [rng.integers(3, 4096, size=int(n)).tolist() for n in rng.integers(8, 96, size=args.n_instructions)]
    batches = [[inputs[i] for i in b] for b in _batches([len(x) for x in inputs], args.batch_size)]
    decoder = adapter_for(model).decoder_module(model)
    device = decoder.get_input_embeddings().weight.device

    def counts(grouped: bool, recompute: bool = True) -> np.ndarray:
        with CountingHooks(model, adapter_for(model)) as hooks:
            if recompute:
                hooks.expert_path = {j: "recompute" for j in hooks.expert_path}
            hooks._grouped_ok[device.type] = grouped
            out = [run_batch(decoder, hooks, b, [0] * len(b), 0, "right", device)[0]["counts"] for b in batches]
            used_grouped = hooks._grouped_ok[device.type]
            paths, check = dict(hooks.expert_path), dict(hooks.expert_check)
        return np.concatenate(out).astype(np.int64), used_grouped, paths, check

    grouped, used, _, _ = counts(True)
    loop, _, _, _ = counts(False)
    own, _, paths, check = counts(True, recompute=False)  # the experts' own act_fn output, where verified
    differ = int((grouped != loop).sum())
    result = {"device": args.device, "dtype": args.dtype, "grouped_mm_available": hasattr(F, "grouped_mm"),
              "grouped_mm_used": bool(used), "counts": int(grouped.size), "differ": differ,
              "differ_fraction": differ / grouped.size, "max_abs_difference": int(np.abs(grouped - loop).max()),
              "total_count": int(loop.sum()),
              "act_fn_path_layers": sorted(j for j, p in paths.items() if p == "act_fn"),
              "act_fn_verify_batch_differ": {str(j): c for j, c in check.items()},
              "act_fn_vs_recompute_differ": int((own != grouped).sum())}
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
