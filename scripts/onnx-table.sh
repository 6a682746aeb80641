#!/usr/bin/env bash
# ONNX Runtime on the exported model beside `alexnet bench`'s inference, for both networks at
# 224 px, batch 1 and 32, alternating per configuration, steady state. Both networks are seeded
# PyTorch networks (d2l's from reference/pytorch, torchvision's alexnet()), imported with
# `alexnet import` and exported with `alexnet export --format onnx`; speed does not depend on
# the weights. Prints a Markdown table of p50 latency and images/s, the CPU model and the load
# average.
#
#   scripts/onnx-table.sh ALEXNET PYTHON [ITERS]
#   e.g. scripts/onnx-table.sh target/release/alexnet ~/venv-torch/bin/python 20
#
# PYTHON needs torch, torchvision and onnxruntime. Environment: ARCHS ("d2l imagenet"), SIZE
# (224), BATCHES ("1 32"), WARMUP (5), ROUNDS (3: passes over every configuration; the table
# gives each figure's median over them).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail

bin=${1:?usage: onnx-table.sh ALEXNET PYTHON [ITERS] (--help for more)}
python=${2:?usage: onnx-table.sh ALEXNET PYTHON [ITERS] (--help for more)}
iters=${3:-20}
here=$(cd "$(dirname "$0")" && pwd)
size=${SIZE:-224}
warmup=${WARMUP:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for arch in ${ARCHS:-d2l imagenet}; do
  "$python" - "$here/../reference/pytorch" "$arch" "$size" "$work/$arch.pth" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import torch
from bench_ref import network
net, _ = network(sys.argv[2], int(sys.argv[3]), 0)
torch.save(net.state_dict(), sys.argv[4])
PY
  "$bin" import --from "$work/$arch.pth" --arch "$arch" --resize "$size" \
    --artifact-dir "$work/$arch-run" >/dev/null
  "$bin" export --format onnx --out "$work/$arch.onnx" --artifact-dir "$work/$arch-run" >/dev/null
done

"$here/host-line.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $iters timed passes after $warmup," \
  "${ROUNDS:-3} alternating rounds"
results=$work/results
for round in $(seq "${ROUNDS:-3}"); do
  for arch in ${ARCHS:-d2l imagenet}; do
    for batch in ${BATCHES:-1 32}; do
      ours=$("$bin" bench --arch "$arch" --resize "$size" --batch 1 --infer-batch "$batch" \
        --iters "$iters" --warmup "$warmup" --json | tr -d "\n")
      theirs=$("$python" "$here/../reference/onnx/bench_onnx.py" "$work/$arch.onnx" \
        --batch "$batch" --iters "$iters" --warmup "$warmup" 2>/dev/null | tail -n 1)
      echo "$arch $batch $round $ours" >>"$results.ours"
      echo "$arch $batch $round $theirs" >>"$results.theirs"
    done
  done
done
python3 - "$results" <<'PY'
import json, statistics, sys
base = sys.argv[1]
ours, theirs = {}, {}
for line in open(base + ".ours"):
    arch, batch, _, text = line.split(" ", 3)
    inference = json.loads(text)["inference"]
    ours.setdefault((arch, int(batch)), []).append(1e3 * inference["median_step_seconds"])
for line in open(base + ".theirs"):
    arch, batch, _, text = line.split(" ", 3)
    values = dict(kv.split("=") for kv in text.split())
    theirs.setdefault((arch, int(batch)), []).append(float(values["infer_p50_ms"]))
print()
print("| network | batch | alexnet p50 ms | ONNX Runtime p50 ms | alexnet img/s | ONNX Runtime img/s | ratio (ONNX Runtime / alexnet time) |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for (arch, batch), times in ours.items():
    a, o = statistics.median(times), statistics.median(theirs[(arch, batch)])
    print(f"| {arch} | {batch} | {a:.1f} | {o:.1f} | {1e3 * batch / a:.0f} | {1e3 * batch / o:.0f} | {o / a:.2f} |")
PY
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
