#!/usr/bin/env bash
# Kills a small real training with SIGKILL at N random moments, resuming after each; a run that
# reaches its end is checked and a new one started over it. Then the last run is let finish and
# checked. The checks on each finished run:
#   - every epoch's metric logs hold each batch exactly once;
#   - epochs.jsonl has one line per epoch;
#   - every kept checkpoint and the final model load and pass their checksums;
#   - `eval` of the final model gives the test accuracy report.json states.
#
#   scripts/kill-torture.sh N [ALEXNET] [DATA_DIR]
#
# ALEXNET defaults to target/release/alexnet ($CARGO_TARGET_DIR honoured), DATA_DIR to the
# Debian data package. Prints one line per kill (when, and what the run was doing by its files),
# then the kills per phase and the checks; exits non-zero on the first failed check.
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail

n=${1:?usage: kill-torture.sh N [ALEXNET] [DATA_DIR]}
bin=${2:-${CARGO_TARGET_DIR:-target}/release/alexnet}
data=${3:-${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}}
epochs=3 train=256 test=64 batch=32
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dir=$work/run
args=(--resize 65 --epochs $epochs --limit-train $train --limit-test $test --batch-size $batch
  --lr 0.05 --data-dir "$data" --artifact-dir "$dir")

fail() { echo "kill-torture: FAILED: $*" >&2; exit 1; }

# What the run was doing, read from its files the moment it was killed.
phase() {
  local journal checkpoints
  journal=$( (cat "$dir/epochs.jsonl" 2>/dev/null || true) | wc -l)
  checkpoints=$( (ls "$dir/checkpoint" 2>/dev/null || true) | grep -c '^model-[0-9]*\.mpk$' || true)
  if compgen -G "$dir/checkpoint/*.partial" >/dev/null || compgen -G "$dir/*.partial" >/dev/null; then
    echo "writing a record"
  elif [ ! -f "$dir/config.json" ]; then
    echo "starting"
  elif [ "$journal" -ge $epochs ] && [ ! -f "$dir/model.mpk" ]; then
    echo "before the final model"
  elif [ -f "$dir/model.mpk" ] && [ ! -f "$dir/report.json" ]; then
    echo "before the report"
  elif [ -f "$dir/model.mpk" ]; then
    echo "finished"
  elif [ "$journal" -gt "$checkpoints" ]; then
    echo "between journal and checkpoint"
  else
    echo "epoch $((journal + 1))"
  fi
}

# The end state of a finished run.
check_run() {
  local batches=$(( (train + batch - 1) / batch )) tests=$(( (test + batch - 1) / batch ))
  for e in $(seq 1 $epochs); do
    for log in Loss Accuracy; do
      [ "$(wc -l < "$dir/train/epoch-$e/$log.log")" -eq $batches ] ||
        fail "train/epoch-$e/$log.log does not hold $batches batches"
      [ "$(wc -l < "$dir/valid/epoch-$e/$log.log")" -eq $tests ] ||
        fail "valid/epoch-$e/$log.log does not hold $tests batches"
    done
  done
  echo "check: every epoch's logs hold each batch once ($batches train, $tests test)"

  python3 - "$dir/epochs.jsonl" $epochs <<'PY' || fail "the journal is not one line per epoch"
import json, sys
epochs = [json.loads(line)["epoch"] for line in open(sys.argv[1])]
assert epochs == list(range(1, int(sys.argv[2]) + 1)), epochs
PY
  echo "check: epochs.jsonl has one line per epoch"

  for record in "$dir"/checkpoint/model-*.mpk; do
    epoch=${record##*model-}; epoch=${epoch%.mpk}
    "$bin" infer --artifact-dir "$dir" --checkpoint "$epoch" --data-dir "$data" --test-index 0 \
      >/dev/null 2>"$work/err" || fail "checkpoint $epoch does not load: $(cat "$work/err")"
  done
  "$bin" eval --artifact-dir "$dir" --data-dir "$data" --limit $test --json >"$work/eval.json" \
    2>"$work/err" || fail "the final model does not load: $(cat "$work/err")"
  if grep -q "no checksum" "$work/err"; then fail "records were written without checksums"; fi
  echo "check: the checkpoints and the final model load and pass their checksums"

  python3 - "$work/eval.json" "$dir/report.json" <<'PY' || fail "eval disagrees with report.json"
import json, sys
evaluated = json.load(open(sys.argv[1]))["accuracy"]
reported = json.load(open(sys.argv[2]))["final_metrics"]["test_acc"]
assert abs(evaluated - reported) < 1e-6, (evaluated, reported)
print(f"check: eval's test accuracy {evaluated:.4f} is report.json's {reported:.4f}")
PY
}

# How long a whole run takes, to spread the kills over it.
start=$(date +%s.%N)
"$bin" train "${args[@]}" >/dev/null
span=$(awk "BEGIN { print $(date +%s.%N) - $start }")
rm -rf "$dir"
echo "kill-torture: $n kills over runs of ${span} s ($epochs epochs of $train images at 65 px)"

declare -A phases
triggers=(random record journal between random final)
finished=0
for i in $(seq 1 "$n"); do
  resume=()
  if [ -f "$dir/config.json" ]; then
    resume=(--resume)
  elif [ -d "$dir" ] && ls -A "$dir" | grep -qv '^train.lock$'; then
    resume=(--overwrite) # an --overwrite killed while it removed the earlier run
  fi
  if [ -f "$dir/report.json" ] && grep -q '"finished": true' "$dir/report.json" && [ -f "$dir/model.mpk" ]; then
    check_run >/dev/null
    finished=$((finished + 1))
    resume=(--overwrite)
  fi
  "$bin" train "${args[@]}" "${resume[@]}" >"$work/out" 2>"$work/err" &
  pid=$!
  # Each kill waits for one kind of moment, in turn: a random time, or the instant a file
  # appears that marks a write in progress (the windows random times rarely hit).
  trigger=${triggers[$(( (i - 1) % ${#triggers[@]} ))]}
  journal_before=$( (cat "$dir/epochs.jsonl" 2>/dev/null || true) | wc -l)
  start=$(date +%s.%N)
  delay=$(awk -v s="$span" -v r="$RANDOM" 'BEGIN { printf "%.3f", s * 1.1 * r / 32767 }')
  while kill -0 "$pid" 2>/dev/null; do
    case $trigger in
      random) awk "BEGIN { exit !($(date +%s.%N) - $start >= $delay) }" && break ;;
      record) compgen -G "$dir/checkpoint/*.partial" >/dev/null && break ;;
      between) for m in "$dir"/checkpoint/model-*.mpk; do
          [ -e "$m" ] && [ ! -e "${m/model-/optim-}" ] && break 2
        done ;;
      journal) [ "$( (cat "$dir/epochs.jsonl" 2>/dev/null || true) | wc -l)" -gt "$journal_before" ] && break ;;
      final) [ -e "$dir/model.mpk.partial" ] || [ -e "$dir/model.mpk" ] && break ;;
    esac
    sleep 0.001
  done
  at=$(awk "BEGIN { printf \"%.3f\", $(date +%s.%N) - $start }")
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    p="$trigger: $(phase)"
  else
    wait "$pid" || fail "run $i exited non-zero before its kill: $(cat "$work/err")"
    p="$trigger: done before the kill"
  fi
  phases[$p]=$(( ${phases[$p]:-0} + 1 ))
  printf 'kill %3d after %6.3f s: %s\n' "$i" "$at" "$p"
done

"$bin" train "${args[@]}" --resume >"$work/out" 2>"$work/err" ||
  fail "the last resume failed: $(cat "$work/err")"

echo "kills per phase (what the kill waited for: what the files showed):"
for p in "${!phases[@]}"; do printf '  %-48s %d\n' "$p" "${phases[$p]}"; done | sort

check_run
echo "kill-torture: $n kills, $finished runs finished and checked before the last, all checks passed"
