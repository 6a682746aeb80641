#!/usr/bin/env bash
# Per-layer side by side: each layer of the network timed alone, forward and backward, by
# `alexnet bench --layers` and by the PyTorch reference (reference/pytorch/layers_ref.py: each
# layer of the network on the previous layer's output, backward of sum(y * g)), run in
# turn PAIRS times (ours, then PyTorch's). Prints a Markdown table of the medians over the
# pairs with the ratios (ours / PyTorch: above 1 is slower), the CPU model and the load average.
#
#   scripts/layers-table.sh ALEXNET PYTHON
#   e.g. RESIZE=96 BATCH=32 scripts/layers-table.sh target/release/alexnet ~/venv-torch/bin/python
#
# PYTHON is a Python with PyTorch (pip install -r reference/pytorch/requirements.txt).
# Environment: ARCH (d2l, or imagenet: torchvision's alexnet() on both sides), RESIZE (default
# 96), BATCH (32), ITERS (10) timed repetitions after WARMUP (4) on both sides, PAIRS (3),
# BACKEND (flex).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail

bin=${1:?usage: layers-table.sh ALEXNET PYTHON (--help for more)}
python=${2:?usage: layers-table.sh ALEXNET PYTHON (--help for more)}
reference=$(cd "$(dirname "$0")/../reference/pytorch" && pwd)/layers_ref.py
resize=${RESIZE:-96} batch=${BATCH:-32} iters=${ITERS:-10} warmup=${WARMUP:-4}
pairs=${PAIRS:-3} backend=${BACKEND:-flex} arch=${ARCH:-d2l}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$(dirname "$0")/host-line.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $arch's network, $resize px, batch $batch, medians of $iters timed repetitions after $warmup, $pairs pairs"
for pair in $(seq 1 "$pairs"); do
  "$bin" bench --backend "$backend" --arch "$arch" --layers --resize "$resize" --batch "$batch" \
    --iters "$iters" --warmup "$warmup" --json >"$work/ours-$pair.json"
  "$python" "$reference" --arch "$arch" --resize "$resize" --batch "$batch" --iters "$iters" \
    --warmup "$warmup" --json >"$work/theirs-$pair.json"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
python3 - "$work" "$pairs" <<'PY'
import json, statistics, sys
work, pairs = sys.argv[1], int(sys.argv[2])
ours = [json.load(open(f"{work}/ours-{p}.json")) for p in range(1, pairs + 1)]
theirs = [json.load(open(f"{work}/theirs-{p}.json")) for p in range(1, pairs + 1)]
def median(runs, i, key):
    return statistics.median(r[i][key] for r in runs)
def ratio(a, b):
    return f"{a / b:.2f}" if b > 0.005 else ""
print("| # | layer | output | ours fwd ms | PyTorch fwd ms | fwd ratio | ours bwd ms | PyTorch bwd ms | bwd ratio |")
print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
totals = [0.0, 0.0, 0.0, 0.0]
for i, row in enumerate(ours[0]):
    of, ob = median(ours, i, "forward_ms"), median(ours, i, "backward_ms")
    tf, tb = median(theirs, i, "forward_ms"), median(theirs, i, "backward_ms")
    for k, v in enumerate((of, tf, ob, tb)):
        totals[k] += v
    shape = "x".join(map(str, row["output"]))
    print(f"| {row['index']} | {row['layer']} | {shape} | {of:.2f} | {tf:.2f} | {ratio(of, tf)} "
          f"| {ob:.2f} | {tb:.2f} | {ratio(ob, tb)} |")
of, tf, ob, tb = totals
print(f"| | all layers | | {of:.1f} | {tf:.1f} | {ratio(of, tf)} | {ob:.1f} | {tb:.1f} | {ratio(ob, tb)} |")
PY
