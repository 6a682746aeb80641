#!/usr/bin/env bash
# A quick check of a GPU machine: cold and warm kernel compile/tune times, time to the first
# training step, steady-state throughput, and PyTorch beside it on the same GPU. On an H200 the
# cold warm-up of the training step alone took 239 s (2026-11-30), so the whole check needs
# about 10 minutes cold; every step has its own time limit and writes to OUT as it goes, so a
# run cut short still reports.
#
#   scripts/gpu-check.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]
#
# ALEXNET is a build with `--features cuda` (scripts/gpu-bundle.sh packs one, with the data and
# the PyTorch reference, for a GPU machine without a Rust toolchain). BACKEND FLAGS default to
# `--backend cuda`. The script runs the same on a machine without a GPU, on Mesa's software
# Vulkan driver at small sizes, which checks it end to end before GPU time is spent:
#
#   SIZE=65 BATCH=8 INFER_BATCH=8 ITERS=3 REF_DEVICE=cpu LIMIT_SCALE=4 \
#     scripts/gpu-check.sh target/release/alexnet /usr/share/datasets/fashion-mnist /tmp/gc \
#     --backend wgpu --device cpu
#
# A build with the `cudnn` feature adds the cuDNN steps: the comparison test (CUDNN_TESTS, the
# test executable scripts/gpu-bundle.sh packs), the benchmark and per-layer table with
# `--cudnn off` (Burn's convolution kernels) beside the default (cuDNN, TF32 allowed), and the
# kernels autotune picked.
#
# Environment: SIZE (224), BATCH (128), INFER_BATCH (256), ITERS (20 timed bench steps),
# KERNELS (kernel cache, /tmp/alexnet-kernels: cold on a fresh machine), LEVEL (autotune
# level, balanced), PY (python3 with torch), REF (the PyTorch reference: reference/pytorch, or
# the copy scripts/gpu-bundle.sh makes), REF_DEVICE (cuda), NOFUSION_BIN (a build without fusion,
# for an optional last step), CUDNN_TESTS (the cuDNN comparison test executable), ONLY (the
# steps to run, by the names summary.txt gives them; default all). A short lease with cuDNN:
# ONLY="backends cudnn-tests bench pytorch layers layers-burn-conv bench-burn-conv autotune"
# (no cold warm-up, and Burn's own convolution kernels, the slowest to tune, last).
#
# OUT receives summary.txt (one line per step: exit status and seconds), log.txt (everything,
# as it comes), warmup-cold.json, warmup-warm.json, bench.json, pytorch.txt, and with cuDNN
# bench-burn-conv.json, layers.txt, layers-burn-conv.txt and autotune.txt.
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -uo pipefail

bin=${1:?usage: gpu-check.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]}
data=${2:?usage: gpu-check.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]}
out=${3:?usage: gpu-check.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]}
shift 3
backend=("$@")
[ ${#backend[@]} -gt 0 ] || backend=(--backend cuda)
size=${SIZE:-224}
batch=${BATCH:-128}
infer_batch=${INFER_BATCH:-256}
iters=${ITERS:-20}
level=${LEVEL:-balanced}
kernels=${KERNELS:-/tmp/alexnet-kernels}
here=$(cd "$(dirname "$0")" && pwd)
ref=${REF:-$here/../reference/pytorch}
py=${PY:-python3}
ref_device=${REF_DEVICE:-cuda}

mkdir -p "$out"
: > "$out/summary.txt"
cache=(--kernel-cache "$kernels" --autotune-level "$level")
gpu=("${backend[@]}" "${cache[@]}")

# shellcheck source=scripts/steps.sh
. "$here/steps.sh"

{
  echo "alexnet GPU check, $(date -u +%FT%TZ)"
  describe_host
  echo "sizes: $size px, batch $batch, inference batch $infer_batch; kernel cache $kernels"
} | tee -a "$out/log.txt" >>"$out/summary.txt"

# 1. What the binary sees, and the cache's state per device.
step backends 30 - "$bin" backends "${cache[@]}"
cudnn=0
"$bin" bench --help | grep -q -- --cudnn && cudnn=1

# 1b. cuDNN against Burn's CUDA kernels and flex on the same weights (logits, loss, one SGD
#     step), at 65 px: a small autotune suffices.
if [ "$cudnn" = 1 ] && [ -n "${CUDNN_TESTS:-}" ]; then
  CUBECL_AUTOTUNE_LEVEL=minimal step cudnn-tests 240 - "$CUDNN_TESTS" --ignored --nocapture \
    --test-threads 1
fi

# 2. A cold warm-up: every kernel train, eval, infer and bench use at these sizes.
sizes=(--resize "$size" --batch "$batch" --infer-batch "$infer_batch")
step warmup-cold 420 warmup-cold.json "$bin" warmup "${gpu[@]}" "${sizes[@]}" --json

# 3. A warm start: a new process on the filled cache, then one short training run that says
#    when its first step finished.
step warmup-warm 60 warmup-warm.json "$bin" warmup "${gpu[@]}" "${sizes[@]}" --json
step warm-start 90 - "$bin" train "${gpu[@]}" --resize "$size" --batch-size "$batch" \
  --epochs 1 --limit-train $((batch * 8)) --limit-test "$batch" \
  --data-dir "$data" --artifact-dir /tmp/alexnet-warm-start --overwrite

# 4. Steady state, each step read back before its clock stops.
step bench 120 bench.json "$bin" bench "${gpu[@]}" "${sizes[@]}" --iters "$iters" --warmup 3 \
  --data-dir "$data" --json

# 5. PyTorch on the same device, same sizes.
step pytorch 120 pytorch.txt "$py" "$ref/bench_ref.py" --device "$ref_device" --synthetic \
  --batch "$batch" --infer-batch "$infer_batch" --resize "$size" --iters "$iters" --warmup 5

# 5b. cuDNN's convolutions against Burn's: the per-layer table with cuDNN, then the same
#     benchmark and table with `--cudnn off` (Burn's conv kernels tune cold here, so they come
#     last), and the kernels autotune picked for what Burn runs.
if [ "$cudnn" = 1 ]; then
  layers=(--layers --resize "$size" --batch "$batch" --iters "$iters" --warmup 3)
  step layers 120 layers.txt "$bin" bench "${gpu[@]}" "${layers[@]}"
  step bench-burn-conv 300 bench-burn-conv.json "$bin" bench "${gpu[@]}" "${sizes[@]}" \
    --cudnn off --iters "$iters" --warmup 3 --data-dir "$data" --json
  step layers-burn-conv 120 layers-burn-conv.txt "$bin" bench "${gpu[@]}" "${layers[@]}" \
    --cudnn off
  step autotune 10 autotune.txt find "$kernels" -name '*.json.log' -exec sh -c \
    'for f; do echo "## $f"; head -c 4000 "$f"; echo; done' sh {} +
fi

# 6. Optional: the same benchmark built without fusion (NOFUSION_BIN), cold: its kernels are
#    another build's, so its warm-up compiles and tunes them first.
if [ -n "${NOFUSION_BIN:-}" ]; then
  step bench-nofusion 240 - "$NOFUSION_BIN" bench "${gpu[@]}" "${sizes[@]}" --iters "$iters" \
    --warmup 3 --data-dir "$data" --json
fi

rm -rf /tmp/alexnet-warm-start
echo "== summary" && cat "$out/summary.txt"
