# The step runner the GPU scripts source (not a command of its own):
#
#   . scripts/steps.sh
#   step NAME LIMIT_SECONDS OUTPUT_FILE COMMAND…
#
# runs one step within its time limit, its output going to OUTPUT_FILE under $out (or only to
# the log when it is -) and to $out/log.txt, and its exit status and seconds to
# $out/summary.txt; it returns the command's exit status. LIMIT_SCALE multiplies every limit
# (runs on Mesa's software Vulkan driver are slower than the GPU they stand for). ONLY, when
# set, names the steps to run (e.g. ONLY="bench pytorch"): the others are passed over, so that a
# short GPU lease goes to the steps that matter.
# `describe_host` prints the CPU and GPU for a summary's header.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  sed -n '1,/^[^#]/s/^# \{0,1\}//p' "$0"
  exit 0
fi

# Whether ONLY leaves step NAME in (saying so when it does not).
wanted() {
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $1 "* ]]; then
    echo "== $1: not in ONLY" | tee -a "$out/log.txt"
    return 1
  fi
}

step() {
  local name=$1 limit=$(( $2 * ${LIMIT_SCALE:-1} )) file=$3
  shift 3
  wanted "$name" || return 0
  echo "== $name: $*" | tee -a "$out/log.txt"
  local start end status
  start=$(date +%s.%N)
  if [ "$file" = - ]; then
    timeout "$limit" "$@" 2>&1 | tee -a "$out/log.txt"
  else
    timeout "$limit" "$@" 2>>"$out/log.txt" | tee "$out/$file" >>"$out/log.txt"
  fi
  status=${PIPESTATUS[0]}
  end=$(date +%s.%N)
  printf '%-14s exit %3d  %7.1f s  (limit %d s)\n' "$name" "$status" \
    "$(awk "BEGIN { print $end - $start }")" "$limit" | tee -a "$out/summary.txt"
  return "$status"
}

# The machine, for the summary's header.
describe_host() {
  echo "host: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  fi
}
