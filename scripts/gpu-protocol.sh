#!/usr/bin/env bash
# The d2l protocol on one GPU, beside PyTorch: our `train` with the defaults (10 epochs at 224,
# batch 128, SGD lr 0.01), `train_ref.py` on the same GPU, `eval` of our final model on all
# 10,000 test images on the GPU and on flex (the record moves between devices), and the
# per-layer times. Every step has a time limit and writes to OUT as it goes.
#
#   scripts/gpu-protocol.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]
#
# BACKEND FLAGS default to `--backend cuda`. Rehearse without a GPU on lavapipe, small:
#
#   SIZE=65 EPOCHS=1 LIMIT_TRAIN=256 LIMIT_TEST=128 BATCH=32 REF_DEVICE=cpu LIMIT_SCALE=4 \
#     scripts/gpu-protocol.sh target/release/alexnet /usr/share/datasets/fashion-mnist /tmp/gp \
#     --backend wgpu --device cpu
#
# Environment: SIZE (224), EPOCHS (10), BATCH (128), LIMIT_TRAIN/LIMIT_TEST (all), KERNELS
# (kernel cache, /tmp/alexnet-kernels, which scripts/gpu-check.sh fills), RUN_DIR (the run,
# /tmp/alexnet-protocol-run: its records are too large to bring back), PY, REF,
# REF_DEVICE (cuda), TRAIN_LIMIT (seconds for our training, 420).
#
# OUT receives summary.txt, log.txt, report.md, curves.svg, eval.json (GPU), eval-flex.json,
# layers.json and pytorch.txt: eight files. Copy report.md, curves.svg and eval.json to
# docs/gpu/.
set -uo pipefail

bin=${1:?usage: gpu-protocol.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]}
data=${2:?usage: gpu-protocol.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]}
out=${3:?usage: gpu-protocol.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]}
shift 3
backend=("$@")
[ ${#backend[@]} -gt 0 ] || backend=(--backend cuda)
size=${SIZE:-224}
epochs=${EPOCHS:-10}
batch=${BATCH:-128}
kernels=${KERNELS:-/tmp/alexnet-kernels}
here=$(cd "$(dirname "$0")" && pwd)
ref=${REF:-$here/../../shared/reference/pytorch}
py=${PY:-python3}
ref_device=${REF_DEVICE:-cuda}
run_dir=${RUN_DIR:-/tmp/alexnet-protocol-run}

limits=()
[ -n "${LIMIT_TRAIN:-}" ] && limits+=(--limit-train "$LIMIT_TRAIN")
[ -n "${LIMIT_TEST:-}" ] && limits+=(--limit-test "$LIMIT_TEST")
eval_limit=()
[ -n "${LIMIT_TEST:-}" ] && eval_limit=(--limit "$LIMIT_TEST")
ref_limits=()
[ -n "${LIMIT_TRAIN:-}" ] && ref_limits+=(--limit-train "$LIMIT_TRAIN")
[ -n "${LIMIT_TEST:-}" ] && ref_limits+=(--limit-test "$LIMIT_TEST")

mkdir -p "$out"
: > "$out/summary.txt"
gpu=("${backend[@]}" --kernel-cache "$kernels")

# shellcheck source=scripts/steps.sh
. "$here/steps.sh"

{
  echo "alexnet d2l protocol on a GPU, $(date -u +%FT%TZ)"
  describe_host
  echo "protocol: $epochs epochs, $size px, batch $batch, SGD lr 0.01 ${limits[*]}"
} | tee -a "$out/log.txt" >>"$out/summary.txt"

# 1. Ours: the d2l protocol, piped (one line per epoch), then the report and curves.
step train "${TRAIN_LIMIT:-420}" - "$bin" train "${gpu[@]}" --epochs "$epochs" --resize "$size" \
  --batch-size "$batch" "${limits[@]}" --data-dir "$data" --artifact-dir "$run_dir" --overwrite
cp "$run_dir/report.md" "$run_dir/curves.svg" "$out/" 2>/dev/null

# 2. The record on the GPU and on the CPU (flex): the same accuracy within 0.001.
step eval 120 eval.json "$bin" eval "${gpu[@]}" --artifact-dir "$run_dir" --data-dir "$data" \
  "${eval_limit[@]}" --json
step eval-flex 240 eval-flex.json "$bin" eval --backend flex --artifact-dir "$run_dir" \
  --data-dir "$data" "${eval_limit[@]}" --json
"$py" - "$out/eval.json" "$out/eval-flex.json" <<'PY' | tee -a "$out/summary.txt"
import json, sys
try:
    gpu, cpu = (json.load(open(p)) for p in sys.argv[1:3])
    gap = abs(gpu["accuracy"] - cpu["accuracy"])
    print(f"eval: gpu acc {gpu['accuracy']:.4f}, flex acc {cpu['accuracy']:.4f}, "
          f"gap {gap:.4f} ({'within' if gap <= 0.001 else 'OUTSIDE'} 0.001)")
except Exception as err:
    print(f"eval: no comparison ({err})")
PY

# 3. Where the time goes, layer by layer (forward and backward, synchronised).
step layers 120 layers.json "$bin" bench "${gpu[@]}" --layers --resize "$size" --batch "$batch" \
  --iters 5 --warmup 2 --json

# 4. PyTorch's replication of the chapter on the same device.
step pytorch 240 pytorch.txt "$py" "$ref/train_ref.py" --device "$ref_device" \
  --data-dir "$data" --epochs "$epochs" --resize "$size" --batch "$batch" "${ref_limits[@]}"

echo "== summary" && cat "$out/summary.txt"
