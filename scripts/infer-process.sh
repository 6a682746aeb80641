#!/usr/bin/env bash
# One image as a whole process, start to answer: `alexnet infer IMAGE --artifact-dir RUN` against
# PyTorch's reference/pytorch/infer_one.py on the same weights (`alexnet export --out
# WEIGHTS.safetensors`), alternating, ROUNDS each after one untimed round of both (the files
# in the page cache). Prints each process's wall times, their medians and the ratio, with the
# CPU model and the load average.
#
#   scripts/infer-process.sh ALEXNET PYTHON RUN WEIGHTS IMAGE [ROUNDS]
#
# PYTHON has PyTorch and torchvision (pip install -r reference/pytorch/requirements.txt).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail

usage="usage: infer-process.sh ALEXNET PYTHON RUN WEIGHTS IMAGE [ROUNDS] (--help for more)"
bin=${1:?$usage} python=${2:?$usage} run=${3:?$usage} weights=${4:?$usage} image=${5:?$usage}
rounds=${6:-5}
reference=$(cd "$(dirname "$0")/../reference/pytorch" && pwd)

ms() { local start end; start=$(date +%s%N); "$@" >/dev/null 2>&1; end=$(date +%s%N)
  echo $(((end - start) / 1000000)); }
ours() { ms "$bin" infer --artifact-dir "$run" "$image"; }
theirs() { (cd "$reference" && ms "$python" infer_one.py "$weights" "$image"); }

"$(dirname "$0")/host-line.sh"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $rounds rounds after 1"
ours >/dev/null; theirs >/dev/null
a=() b=()
for _ in $(seq "$rounds"); do a+=("$(ours)"); b+=("$(theirs)"); done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
echo "alexnet infer: ${a[*]} ms (median $(median "${a[@]}"))"
echo "PyTorch infer_one.py: ${b[*]} ms (median $(median "${b[@]}"))"
echo "ratio (PyTorch / alexnet): $(awk -v x="$(median "${b[@]}")" -v y="$(median "${a[@]}")" 'BEGIN {printf "%.2f", x / y}')"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
