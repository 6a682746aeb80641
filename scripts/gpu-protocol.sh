#!/usr/bin/env bash
# The d2l protocol on one GPU, beside PyTorch, in one script: our `train` with the defaults (10
# epochs at 224, batch 128, SGD lr 0.01), `eval` of its final model on all 10,000 test images on
# the GPU and on flex (the record moves between devices), PyTorch's `train_ref.py` on the same
# GPU, then steady-state speed (ours and `bench_ref.py`), the per-layer times and the conv and
# matmul kernels autotune picked. Every step has a time limit and writes as it goes.
#
#   scripts/gpu-protocol.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]
#
# ALEXNET is a build with `--features cuda` (scripts/gpu-bundle.sh packs one, with the data and
# the PyTorch reference, for a GPU machine without a Rust toolchain).
#
# Resumable: the state (run directory, kernel cache, finished steps) stays in STATE, so running
# the script again, on a machine where a run was cut short (a job's time limit, a lost
# connection), skips the finished steps and resumes our training from its newest complete
# epoch. OUT receives summary.txt and log.txt as they grow, results.tar (every step's output)
# after each step, and kernels.tar.xz (the kernel cache, which spares the next machine of the
# same GPU model the cold compile) after training: four files, for copying back from a remote
# machine even when a run is cut short.
#
# BACKEND FLAGS default to `--backend cuda`. The script runs the same without a GPU, on Mesa's
# software Vulkan driver at small sizes, which checks it end to end before GPU time is spent:
#
#   SIZE=65 EPOCHS=1 LIMIT_TRAIN=256 LIMIT_TEST=128 BATCH=32 INFER_BATCH=32 ITERS=3 \
#     REF_DEVICE=cpu LIMIT_SCALE=4 STATE=/tmp/gp-state scripts/gpu-protocol.sh \
#     target/release/alexnet /usr/share/datasets/fashion-mnist /tmp/gp --backend wgpu --device cpu
#
# Environment: SIZE (224), EPOCHS (10), BATCH (128), INFER_BATCH (256), ITERS (20 timed bench
# steps), LIMIT_TRAIN/LIMIT_TEST (all), STATE (/tmp/alexnet-gpu-run), PY (python3 with torch),
# REF (the PyTorch reference: reference/pytorch, or the bundle's copy), REF_DEVICE (cuda),
# TRAIN_LIMIT (seconds for our training in this run of the script, 420), SEED_KERNELS (a
# kernels.tar.xz from an earlier run on the same GPU model, default the bundle's), ONLY (the
# steps to run, e.g. "bench bench-ref layers"; default all: train eval eval-flex pytorch bench
# bench-ref layers), FLEX_CPUS and FLEX_THREADS (cores and threads of the flex eval, which runs
# beside PyTorch's training: 4-15 and 12).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -uo pipefail

bin=${1:?usage: gpu-protocol.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]}
data=${2:?usage: gpu-protocol.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]}
final=${3:?usage: gpu-protocol.sh ALEXNET DATA_DIR OUT_DIR [BACKEND FLAGS…]}
shift 3
backend=("$@")
[ ${#backend[@]} -gt 0 ] || backend=(--backend cuda)
size=${SIZE:-224}
epochs=${EPOCHS:-10}
batch=${BATCH:-128}
infer_batch=${INFER_BATCH:-256}
iters=${ITERS:-20}
state=${STATE:-/tmp/alexnet-gpu-run}
here=$(cd "$(dirname "$0")" && pwd)
ref=${REF:-$here/../reference/pytorch}
py=${PY:-python3}
ref_device=${REF_DEVICE:-cuda}
run_dir=$state/run
kernels=$state/kernels
out=$state/out

limits=()
[ -n "${LIMIT_TRAIN:-}" ] && limits+=(--limit-train "$LIMIT_TRAIN")
[ -n "${LIMIT_TEST:-}" ] && limits+=(--limit-test "$LIMIT_TEST")
eval_limit=()
[ -n "${LIMIT_TEST:-}" ] && eval_limit=(--limit "$LIMIT_TEST")
ref_limits=()
[ -n "${LIMIT_TRAIN:-}" ] && ref_limits+=(--limit-train "$LIMIT_TRAIN")
[ -n "${LIMIT_TEST:-}" ] && ref_limits+=(--limit-test "$LIMIT_TEST")

mkdir -p "$out/done" "$final"
gpu=("${backend[@]}" --kernel-cache "$kernels")

# shellcheck source=scripts/steps.sh
. "$here/steps.sh"

# Brings OUT up to date: the two logs as they are, everything else in one tar.
publish() {
  cp "$out/summary.txt" "$out/log.txt" "$final/" 2>/dev/null
  tar -C "$out" -cf "$final/results.tar" --exclude=./done . 2>/dev/null
}

# The command prefix that keeps a process on the given cores, where taskset is there and the
# machine has 16 of them (else nothing).
pin() {
  pinned=()
  if command -v taskset >/dev/null && [ "$(nproc)" -ge 16 ]; then
    pinned=(taskset -c "$1")
  fi
}

# Runs a step unless an earlier run of the script finished it (exit 0) or ONLY leaves it out,
# then publishes.
once() {
  local name=$1
  wanted "$name" || return
  if [ -e "$out/done/$name" ]; then
    echo "== $name: done in an earlier run of this script" | tee -a "$out/log.txt"
    return
  fi
  step "$@" && touch "$out/done/$name"
  publish
}

{
  echo "alexnet d2l protocol on a GPU, $(date -u +%FT%TZ)"
  describe_host
  echo "protocol: $epochs epochs, $size px, batch $batch, SGD lr 0.01 ${limits[*]}"
} | tee -a "$out/log.txt" >>"$out/summary.txt"
# GPU load and clocks, one line a second, to tell a GPU-bound step from a host-bound one.
if command -v nvidia-smi >/dev/null; then
  nvidia-smi dmon -s puc -o T >>"$out/dmon.txt" 2>&1 &
  trap 'kill $! 2>/dev/null' EXIT
fi
publish

# A kernel cache from an earlier run on the same GPU model (scripts/gpu-bundle.sh puts it beside
# the scripts) spares the cold compile and autotune.
seed=${SEED_KERNELS:-$here/../kernels.tar.xz}
if [ ! -e "$kernels" ] && [ -f "$seed" ]; then
  "$py" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
    "$seed" "$state" && echo "kernel cache: seeded from $seed" | tee -a "$out/log.txt"
fi

# The kernel cache as it stands (autotune results, PTX, the driver's compiled code), for the
# next machine; without the driver's part when the whole is over 15 MiB.
save_kernels() {
  "$py" - "$state" "$final/kernels.tar.xz" <<'PY' | tee -a "$out/log.txt"
import os, sys, tarfile
state, dest = sys.argv[1:3]
if not os.path.isdir(os.path.join(state, "kernels")):
    print("kernel cache: none to save (a CPU backend)")
    sys.exit()
for skip_driver in (False, True):
    with tarfile.open(dest, "w:xz") as tar:
        tar.add(os.path.join(state, "kernels"), "kernels",
                filter=lambda t: None if skip_driver and "/driver" in t.name else t)
    size = os.path.getsize(dest)
    if size <= 15 << 20:
        break
print(f"kernel cache: {size / 2**20:.1f} MiB in kernels.tar.xz"
      + (" (without the driver's cache)" if skip_driver else ""))
PY
}

# 1. Ours: the d2l protocol, piped (one line per epoch), then the report and curves. A run cut
#    short leaves checkpoints; the next run of the script resumes from the newest complete epoch.
train=(--overwrite --epochs "$epochs" --resize "$size" --batch-size "$batch" "${limits[@]}")
[ -e "$run_dir/config.json" ] && train=(--resume)
once train "${TRAIN_LIMIT:-420}" - "$bin" train "${gpu[@]}" "${train[@]}" --data-dir "$data" \
  --artifact-dir "$run_dir"
cp "$run_dir/report.md" "$run_dir/curves.svg" "$out/" 2>/dev/null
save_kernels
publish

# 2. The record on the GPU; then, on other cores, on flex while PyTorch's replication of the
#    chapter trains on the same GPU (the CPU eval takes no GPU time and barely any of the cores
#    PyTorch's single-process loader uses).
once eval 90 eval.json "$bin" eval "${gpu[@]}" --artifact-dir "$run_dir" --data-dir "$data" \
  "${eval_limit[@]}" --json
pin "${FLEX_CPUS:-4-15}"
(
  export RAYON_NUM_THREADS=${FLEX_THREADS:-12}
  once eval-flex 300 eval-flex.json "${pinned[@]}" "$bin" eval --backend flex \
    --artifact-dir "$run_dir" --data-dir "$data" "${eval_limit[@]}" --json
) >/dev/null & # its lines go to log.txt and summary.txt like every step's
flex=$!
pin 0-3
once pytorch 240 pytorch.txt "${pinned[@]}" "$py" "$ref/train_ref.py" --device "$ref_device" \
  --data-dir "$data" --epochs "$epochs" --resize "$size" --batch "$batch" "${ref_limits[@]}"
wait "$flex"
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
publish

# 3. Steady state, ours then PyTorch's, each step read back before its clock stops. The limit
#    allows a cold kernel cache (ONLY without train: about 5 minutes of tuning on an H200).
sizes=(--resize "$size" --batch "$batch" --infer-batch "$infer_batch")
once bench 480 bench.json "$bin" bench "${gpu[@]}" "${sizes[@]}" --iters "$iters" --warmup 3 \
  --data-dir "$data" --json
once bench-ref 90 bench-ref.txt "$py" "$ref/bench_ref.py" --device "$ref_device" --synthetic \
  --batch "$batch" --infer-batch "$infer_batch" --resize "$size" --iters "$iters" --warmup 5

# 4. Where the time goes, layer by layer (forward and backward, synchronised), and the kernel
#    autotune chose for each conv and matmul shape.
once layers 120 layers.json "$bin" bench "${gpu[@]}" --layers --resize "$size" --batch "$batch" \
  --iters 5 --warmup 2 --json
find "$kernels" -name '*.json.log' -path '*autotune*' -exec sh -c \
  'for f; do echo "## $f"; cat "$f"; done' sh {} + >"$out/autotune.txt" 2>/dev/null
du -sh "$kernels" >>"$out/autotune.txt" 2>/dev/null
save_kernels
publish

echo "== summary" && cat "$out/summary.txt"
