#!/usr/bin/env bash
# benchmarks/recording.py on a GPU machine, as the recording issue asks: a random-weight model of
# Llama-2-7B's shape and one of Qwen1.5-MoE-A2.7B's shape, bf16, batch sizes 8 and 32; then
# benchmarks/peers.py on the same shapes (the recorder against plain hooks and nnsight, time, peak
# GPU and host memory, exactness; for the MoE shape only bare vs recorder: neither peer sees the
# fused experts' activations without recomputing them).
#
# Meant for a bare CUDA machine that has python3 with torch but maybe another transformers:
# put wheels in .whl/ (e.g. transformers==5.24.0, the version the adapters were measured on) and
# they are installed to /tmp/site first. Each run's JSON line goes to $OUT/recording-gpu.jsonl.
set -uo pipefail
OUT=${OUT:-/tmp/recording-gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
status=0
run() {  # run LABEL ARGS...: one benchmark, its last line appended to the jsonl
  local label=$1; shift
  echo "== $label: $*"
  python3 benchmarks/recording.py --device cuda --dtype bfloat16 "$@" 2>&1 | tee "$OUT/$label.log" || status=1
  tail -n 1 "$OUT/$label.log" | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); d['label']='$label'; print(json.dumps(d, sort_keys=True))" >> "$OUT/recording-gpu.jsonl" || status=1
}
run dense-b8 --only dense --dense-shape llama-2-7b --batch-size 8 --n-instructions 64 --repeats 7
run dense-b32 --only dense --dense-shape llama-2-7b --batch-size 32 --n-instructions 256 --repeats 5
run moe-b8 --only moe --moe-shape qwen1.5-moe-a2.7b --batch-size 8 --n-instructions 64 --repeats 7
run moe-b32 --only moe --moe-shape qwen1.5-moe-a2.7b --batch-size 32 --n-instructions 256 --repeats 5
peers() {  # peers LABEL ARGS...: benchmarks/peers.py, its last line appended to peers-gpu.jsonl
  local label=$1; shift
  echo "== peers $label: $*"
  python3 benchmarks/peers.py --device cuda --dtype bfloat16 --rounds 3 --workdir "/tmp/peers-$label" "$@" 2>&1 \
    | tee "$OUT/peers-$label.log" || status=1
  tail -n 1 "$OUT/peers-$label.log" | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); d['label']='$label'; print(json.dumps(d, sort_keys=True))" >> "$OUT/peers-gpu.jsonl" || status=1
}
echo "== moe gate check (the experts' own act_fn output vs recomputed gates, bf16)"
python3 benchmarks/moe_gate_check.py --device cuda --dtype bfloat16 2>&1 | tail -n 1 | tee "$OUT/moe-gate-check.json" || status=1
PEERS=bare,recorder,hooks
python3 -c "import nnsight" 2>/dev/null && PEERS=$PEERS,nnsight
peers dense-b8 --shape llama-2-7b --rows 64 --batch-size 8 --methods $PEERS
peers dense-b32 --shape llama-2-7b --rows 256 --batch-size 32 --methods $PEERS
peers moe-b8 --shape qwen1.5-moe-a2.7b --rows 64 --batch-size 8 --methods bare,recorder
peers moe-b32 --shape qwen1.5-moe-a2.7b --rows 256 --batch-size 32 --methods bare,recorder
echo "== summary (label, ratio, tokens/s hooked, tokens/s bare)"
python3 - "$OUT/recording-gpu.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    kind = "dense" if "dense_ratio" in d else "moe"
    print(f"{d['label']:10s} {d.get('gpu','?')} ratio={d[kind+'_ratio']} tok/s={d[kind+'_tokens_per_s']} bare tok/s={d[kind+'_bare_tokens_per_s']} impl={d.get('experts_implementation','-')}")
PY
exit $status
