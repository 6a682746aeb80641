#!/usr/bin/env bash
# The README's fine-tuning example, from scratch: a Fashion-MNIST network trained on part of
# the training split, then a small grey folder with other classes (4 classes merged from the
# test split, 200 images each: tops, bottoms, footwear, bags), learnt twice with the same
# settings: fine-tuned from that network (a new output layer at 10x the rate) and from a fresh
# Xavier init. Prints both rows and the source network's own line.
#
#   scripts/finetune-example.sh ALEXNET [WORK_DIR]
#   e.g. scripts/finetune-example.sh target/release/alexnet /tmp/finetune
#
# About 5 minutes on 2 CPU cores. Environment: EPOCHS (8), SOURCE_IMAGES (6000).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail

bin=${1:?usage: finetune-example.sh ALEXNET [WORK_DIR] (--help for more)}
work=${2:-$(mktemp -d)}
epochs=${EPOCHS:-8} source_images=${SOURCE_IMAGES:-6000}
mkdir -p "$work"
"$(dirname "$0")/host-line.sh"

# The source: d2l's network on Fashion-MNIST at 65 px.
"$bin" train --resize 65 --limit-train "$source_images" --limit-test 2000 --epochs 3 \
  --batch-size 32 --lr 0.1 --artifact-dir "$work/source" --overwrite --quiet | tail -n 2

# The folder: Fashion-MNIST's test images, classes merged, the first 200 files of each.
rm -rf "$work/exported" "$work/folder"
"$bin" export-images --split test --out "$work/exported" >/dev/null
merge() {
  local name=$1; shift
  mkdir -p "$work/folder/$name"
  for class in "$@"; do
    find "$work/exported/$class" -name '*.png' | sort | head -n 200 |
      while read -r f; do cp "$f" "$work/folder/$name/${class//[^A-Za-z]/}-$(basename "$f")"; done
  done
  find "$work/folder/$name" -name '*.png' | sort | tail -n +201 | xargs -r rm
}
merge tops "T-shirt_top" Pullover Coat Shirt
merge bottoms Trouser Dress
merge footwear Sandal Sneaker "Ankle boot"
merge bags Bag

common=(--images "$work/folder" --val-split 0.25 --resize 65 --epochs "$epochs" --batch-size 32
  --lr 0.01 --momentum 0.9 --quiet --overwrite)
echo
echo "| start | epochs | train acc | val acc |"
echo "| --- | ---: | ---: | ---: |"
for start in fine-tuned scratch; do
  extra=()
  [ "$start" = fine-tuned ] && extra=(--init-from "$work/source" --head-lr-mult 10)
  "$bin" train "${common[@]}" "${extra[@]}" --artifact-dir "$work/$start" >/dev/null
  python3 - "$work/$start/report.json" "$start" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
last = report["epochs"][-1]
print(f"| {sys.argv[2]} | {last['epoch']} | {last['train_acc']:.3f} | {last['test_acc']:.3f} |")
PY
done
