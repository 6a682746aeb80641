#!/usr/bin/env bash
# GPU check for a Linux x86-64 machine with an NVIDIA GPU and no internet.
#
# Build elsewhere:   cargo build --release --features cuda      (no CUDA toolkit needed)
# Copy over:         target/release/alexnet, this script, and the Fashion-MNIST directory
# Run:               scripts/gpu-check.sh ./alexnet /path/to/fashion-mnist [epochs]
#
# Prints: the backends the binary sees, a CUDA-vs-flex parity check on real test images, a
# throughput figure, then the full d2l protocol (10 epochs at 224, batch 128, SGD lr 0.01) and
# its final metrics. The binary needs the `flex` feature too for the parity step (the default
# features include it: `--features cuda` adds CUDA to flex).
#
# Seen on an H200 (Burn 0.21): the first CUDA run of each shape compiles and autotunes its
# kernels, which took minutes (the parity step about 4 minutes; `bench` at 224 more than 150 s
# of warm-up). Give the whole script an hour, not minutes.
set -euo pipefail

bin=${1:?usage: gpu-check.sh ALEXNET_BINARY DATA_DIR [EPOCHS]}
data=${2:?usage: gpu-check.sh ALEXNET_BINARY DATA_DIR [EPOCHS]}
epochs=${3:-10}
work=$(mktemp -d)
trap 'echo "artifacts kept in $work"' EXIT

echo "== backends"
"$bin" backends

echo "== parity: a few CUDA training steps, then the same record's predictions on cuda and flex"
"$bin" train --backend cuda --resize 65 --limit-train 512 --limit-test 128 --epochs 1 \
  --batch-size 64 --lr 0.05 --data-dir "$data" --artifact-dir "$work/parity"
for backend in cuda flex; do
  "$bin" infer --backend "$backend" --artifact-dir "$work/parity" --data-dir "$data" \
    --test-index 0,1,2,3,4,5,6,7,8,9 --top 1 --json > "$work/infer-$backend.json"
done
python3 - "$work/infer-cuda.json" "$work/infer-flex.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
diff = max(abs(x["top"][0]["probability"] - y["top"][0]["probability"]) for x, y in zip(a, b))
same = all(x["top"][0]["class"] == y["top"][0]["class"] for x, y in zip(a, b))
print(f"parity: same top class on 10 images: {same}; max top-1 probability difference {diff:.2e}")
sys.exit(0 if same and diff < 1e-3 else 1)
PY

echo "== throughput (batch 128 training, 256 inference, 224 px)"
"$bin" bench --backend cuda --iters 10 --warmup 3 --data-dir "$data"

echo "== full d2l protocol: $epochs epochs at 224, batch 128, SGD lr 0.01"
"$bin" train --backend cuda --epochs "$epochs" --data-dir "$data" --artifact-dir "$work/d2l" | tail -n 14
"$bin" report --artifact-dir "$work/d2l"
