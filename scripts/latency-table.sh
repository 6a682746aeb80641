#!/usr/bin/env bash
# One image at a time: inference latency of `alexnet bench` beside the PyTorch reference
# (reference/pytorch/bench_ref.py: model.eval() under torch.inference_mode()), alternating per
# configuration, for both networks, 224 and 96 px, batches 1, 2, 4 and 8. Prints a Markdown
# table of p50 and p99 step latency (ms) with the p50 ratio, and beside each the memory floor:
# the network's linear weights (read once per pass) over this machine's read bandwidth,
# measured first by `cargo bench -p alexnet-kernels --bench bandwidth` (main memory). Also
# prints the CPU model and the load average.
#
#   scripts/latency-table.sh ALEXNET PYTHON [ITERS]
#   e.g. scripts/latency-table.sh target/release/alexnet ~/venv-torch/bin/python 30
#
# Environment: ARCHS (default "d2l imagenet"), SIZES ("224 96"), BATCHES ("1 2 4 8"), WARMUP (5).
# The training step both tools also time runs at batch 1, so that it costs little.
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail

bin=${1:?usage: latency-table.sh ALEXNET PYTHON [ITERS] (--help for more)}
python=${2:?usage: latency-table.sh ALEXNET PYTHON [ITERS] (--help for more)}
iters=${3:-30}
here=$(cd "$(dirname "$0")" && pwd)
reference=$here/../reference/pytorch/bench_ref.py
warmup=${WARMUP:-5}

bandwidth=$(cd "$here/.." && cargo bench -q -p alexnet-kernels --bench bandwidth 2>/dev/null |
  awk '/^main memory/ { for (i = 1; i <= NF; i++) if ($i == "read") print $(i + 1) }')
"$here/host-line.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); main-memory read bandwidth" \
  "$bandwidth GB/s (2 threads); $iters timed steps after $warmup"
echo
echo "| network | size | batch | ours p50 ms | ours p99 ms | PyTorch p50 ms | PyTorch p99 ms | p50 ratio (PyTorch / ours) | memory floor ms |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for arch in ${ARCHS:-d2l imagenet}; do
  for size in ${SIZES:-224 96}; do
    for batch in ${BATCHES:-1 2 4 8}; do
      ours=$("$bin" bench --arch "$arch" --resize "$size" --batch 1 --infer-batch "$batch" \
        --iters "$iters" --warmup "$warmup" --json)
      theirs=$("$python" "$reference" --arch "$arch" --synthetic --resize "$size" --batch 1 \
        --infer-batch "$batch" --iters "$iters" --warmup "$warmup" 2>/dev/null | tail -n 1)
      python3 - "$arch" "$size" "$batch" "$ours" "$theirs" "$bandwidth" <<'PY'
import json, sys
arch, size, batch, ours, theirs, bandwidth = sys.argv[1:7]
ours = json.loads(ours)["inference"]
theirs = dict(kv.split("=") for kv in theirs.split())
p50, p99 = 1e3 * ours["median_step_seconds"], 1e3 * ours["p99_step_seconds"]
ref50, ref99 = float(theirs["infer_p50_ms"]), float(theirs["infer_p99_ms"])
# The linear layers' weights: fc1 takes the last feature maps (d2l's: conv1 11x11/4 with
# padding 1, then three 3/2 max-pools; torchvision's: 256 x 6 x 6 after its adaptive pool).
side = (int(size) + 2 - 11) // 4 + 1
for _ in range(3):
    side = (side - 3) // 2 + 1
inputs, classes = (256 * side * side, 10) if arch == "d2l" else (9216, 1000)
weights = 4 * (inputs * 4096 + 4096 * 4096 + 4096 * classes)
floor = weights / float(bandwidth) / 1e6 if bandwidth else float("nan")
print(f"| {arch} | {size} | {batch} | {p50:.1f} | {p99:.1f} | {ref50:.1f} | {ref99:.1f} "
      f"| {ref50 / p50:.2f} | {floor:.1f} |")
PY
    done
  done
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
