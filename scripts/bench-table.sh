#!/usr/bin/env bash
# Side-by-side throughput table: `alexnet bench` and the PyTorch reference (reference/pytorch/
# bench_ref.py), alternating per configuration, training and inference at the same batch, over
# several sizes and batches. Prints a Markdown table with the ratios, the CPU model and the load
# average; each figure is the median of ITERS timed steps.
#
#   scripts/bench-table.sh ALEXNET PYTHON [ITERS]
#   e.g. scripts/bench-table.sh target/release/alexnet ~/venv-torch/bin/python 3
#
# PYTHON is a Python with PyTorch (pip install -r reference/pytorch/requirements.txt).
# Environment: ARCH (d2l, or imagenet: torchvision's alexnet() on both sides), BATCHES (default
# "32 64 128 256"), SIZES ("96 160 224"), BACKEND (flex),
# WARMUP (4): untimed steps first, on both sides. Our first steps zero fresh memory pages
# (0.89, 0.3, 0.15, 0.2 s at 96 px / batch 32 against 0.14 s from the fifth on) and PyTorch is
# steady from its second: fewer warm-up steps measure that, not the speed.
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail

bin=${1:?usage: bench-table.sh ALEXNET PYTHON [ITERS] (--help for more)}
python=${2:?usage: bench-table.sh ALEXNET PYTHON [ITERS] (--help for more)}
iters=${3:-3}
reference=$(cd "$(dirname "$0")/../reference/pytorch" && pwd)/bench_ref.py
backend=${BACKEND:-flex}
arch=${ARCH:-d2l}
warmup=${WARMUP:-4}

"$(dirname "$0")/host-line.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $arch's network; $iters timed steps after $warmup"
echo
echo "| size | batch | $backend train img/s | PyTorch train img/s | train ratio | $backend infer img/s | PyTorch infer img/s | infer ratio |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for size in ${SIZES:-96 160 224}; do
  for batch in ${BATCHES:-32 64 128 256}; do
    ours=$("$bin" bench --arch "$arch" --backend "$backend" --resize "$size" --batch "$batch" \
      --infer-batch "$batch" --iters "$iters" --warmup "$warmup" --json)
    theirs=$("$python" "$reference" --arch "$arch" --synthetic --resize "$size" --batch "$batch" \
      --infer-batch "$batch" --iters "$iters" --warmup "$warmup" 2>/dev/null | tail -n 1)
    python3 - "$size" "$batch" "$ours" "$theirs" <<'PY'
import json, sys
size, batch, ours, theirs = sys.argv[1:5]
ours = json.loads(ours)
theirs = dict(kv.split("=") for kv in theirs.split())
train, infer = ours["train_step"]["images_per_sec"], ours["inference"]["images_per_sec"]
ref_train, ref_infer = float(theirs["train_img_per_s"]), float(theirs["infer_img_per_s"])
print(f"| {size} | {batch} | {train:.1f} | {ref_train:.1f} | {train / ref_train:.2f} "
      f"| {infer:.1f} | {ref_infer:.1f} | {infer / ref_infer:.2f} |")
PY
  done
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
