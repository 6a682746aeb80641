#!/usr/bin/env bash
# Image-folder loading side by side: `alexnet bench --images` and torchvision's ImageFolder +
# DataLoader (reference/pytorch/loader_ref.py), alternating, on the same folders and cores.
# Prints a Markdown table with the ratios, the CPU model and the load average; each figure is
# the median of ITERS timed passes over every image of the folder, after one untimed pass.
#
#   scripts/loader-table.sh ALEXNET PYTHON FOLDER… [-- PAIRS]
#   e.g. scripts/loader-table.sh target/release/alexnet ~/venv-torch/bin/python photos pngs
#
# PYTHON is a Python with PyTorch and torchvision (pip install -r
# reference/pytorch/requirements.txt). scripts/photo_folder.py writes a folder of JPEG photos;
# `alexnet export-images` one of small PNGs. Environment: RESIZE (224), BATCH (128), ITERS (3),
# PAIRS (3), WORKERS (ours: 1 batch thread, each batch decoded on all cores; PyTorch: 2 worker
# processes, its usual setting on 2 cores), FLAGS (more flags for `alexnet bench`, e.g.
# --jpeg-draft; torchvision's side is unchanged).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail

bin=${1:?usage: loader-table.sh ALEXNET PYTHON FOLDER… (--help for more)}
python=${2:?usage: loader-table.sh ALEXNET PYTHON FOLDER… (--help for more)}
shift 2
[ $# -gt 0 ] || { echo "loader-table.sh: give at least one FOLDER" >&2; exit 2; }
reference=$(cd "$(dirname "$0")/../reference/pytorch" && pwd)/loader_ref.py
resize=${RESIZE:-224} batch=${BATCH:-128} iters=${ITERS:-3} pairs=${PAIRS:-3}

"$(dirname "$0")/host-line.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $resize px, batch $batch, $iters timed passes after 1${FLAGS:+; alexnet bench $FLAGS}"
echo
echo "| folder | images | channels | pair | alexnet img/s | torchvision img/s | ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for folder in "$@"; do
  for pair in $(seq "$pairs"); do
    # shellcheck disable=SC2086 # FLAGS is a list of flags
    ours=$("$bin" bench --images "$folder" --resize "$resize" --batch "$batch" --iters "$iters" \
      --warmup 1 --json ${FLAGS:-})
    channels=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["channels"])' "$ours")
    theirs=$("$python" "$reference" "$folder" --resize "$resize" --batch "$batch" \
      --channels "$channels" --iters "$iters" --warmup 1 2>/dev/null | tail -n 1)
    python3 - "$folder" "$pair" "$ours" "$theirs" <<'PY'
import json, sys
folder, pair, ours, theirs = sys.argv[1:5]
ours = json.loads(ours)
rate = float(theirs.split("=")[1])
print(f"| {folder} | {ours['images']} | {ours['channels']} | {pair} | "
      f"{ours['images_per_sec']:.1f} | {rate:.1f} | {ours['images_per_sec'] / rate:.2f} |")
PY
  done
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
