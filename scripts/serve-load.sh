#!/usr/bin/env bash
# Load figures of `alexnet serve` beside a PyTorch server of the same network on the same cores
# (reference/pytorch/serve_ref.py: FastAPI + uvicorn, one forward pass per request), on
# 127.0.0.1 only. For each image size, a small model is trained (1 epoch on 256 images), its
# weights exported for the PyTorch server, and 28-px PNG test images written; then for each
# concurrency, both servers are loaded with wrk in turn (ours, then PyTorch's), each after a
# warm-up, for a fixed time. Prints a Markdown table (requests/s, p50 and p99 latency), the
# CPU model and the load average, then a robustness run against ours: REQUESTS requests of
# which a third are bad (not an image, truncated), with the statuses answered and the
# server's resident memory before and after.
#
#   scripts/serve-load.sh ALEXNET PYTHON
#   e.g. scripts/serve-load.sh target/release/alexnet ~/venv-torch/bin/python
#
# PYTHON is a Python with PyTorch, FastAPI and uvicorn (pip install -r
# reference/pytorch/requirements.txt). Needs wrk (apt-get install -y wrk) and Fashion-MNIST
# (apt-get install -y dataset-fashion-mnist, or FASHION_MNIST_DIR).
# Environment: SIZES (default "224 96"), CONCURRENCY ("1 8 32"), SECONDS_EACH (10), WARMUP_S
# (3), REQUESTS (10000), WORK (a scratch directory; default a new one under /tmp).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail

bin=$(realpath "${1:?usage: serve-load.sh ALEXNET PYTHON (--help for more)}")
python=${2:?usage: serve-load.sh ALEXNET PYTHON (--help for more)}
here=$(cd "$(dirname "$0")" && pwd)
reference=$here/../reference/pytorch/serve_ref.py
command -v wrk >/dev/null || { echo "serve-load.sh needs wrk: apt-get install -y wrk" >&2; exit 1; }
work=${WORK:-$(mktemp -d /tmp/alexnet-serve-load.XXXXXX)}
mkdir -p "$work"
seconds=${SECONDS_EACH:-10}
warmup=${WARMUP_S:-3}
port_ours=18080
port_ref=18090
server=

stop_server() {
  if [[ -n "$server" ]]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
  fi
}
trap stop_server EXIT

wait_up() { # PORT
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server on port $1 did not start" >&2
  exit 1
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# wrk's script: POST the files listed in $BODIES in turn; count the answers by status.
cat >"$work/post.lua" <<'LUA'
local bodies, threads, n = {}, {}, 0
for path in io.lines(os.getenv("BODIES")) do
  local f = assert(io.open(path, "rb")); bodies[#bodies + 1] = f:read("*all"); f:close()
end
local limit = tonumber(os.getenv("LIMIT") or "0")
function setup(thread) threads[#threads + 1] = thread end
function init() statuses = {} end
function request()
  n = n % #bodies + 1
  return wrk.format("POST", "/v1/predict", {["Content-Type"] = "application/octet-stream"}, bodies[n])
end
function response(status)
  statuses[status] = (statuses[status] or 0) + 1
  if limit > 0 then
    local total = 0
    for _, count in pairs(statuses) do total = total + count end
    if total >= limit then wrk.thread:stop() end
  end
end
function done()
  local all = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do all[status] = (all[status] or 0) + count end
  end
  local line = "statuses:"
  for status, count in pairs(all) do line = line .. " " .. status .. "=" .. count end
  print(line)
end
LUA

load() { # PORT CONCURRENCY SECONDS BODIES -> "req/s p50 p99"
  local threads=$(( $2 < 2 ? 1 : 2 ))
  BODIES=$4 wrk -t "$threads" -c "$2" -d "${3}s" --timeout 30s --latency -s "$work/post.lua" \
    "http://127.0.0.1:$1/v1/predict" >"$work/wrk.txt"
  local rate p50 p99
  rate=$(sed -n 's/^Requests\/sec: *//p' "$work/wrk.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "$work/wrk.txt")
  p99=$(awk '$1 == "99%" { print $2 }' "$work/wrk.txt")
  echo "$rate $p50 $p99"
}

start_ours() { # RUN_DIR
  "$bin" serve --artifact-dir "$1" --addr "127.0.0.1:$port_ours" 2>"$work/serve.log" &
  server=$!
  wait_up "$port_ours"
}

start_ref() { # SIZE WEIGHTS
  (cd "$(dirname "$reference")" && exec "$python" "$reference" --resize "$1" --weights "$2" \
    --port "$port_ref") 2>"$work/serve_ref.log" &
  server=$!
  wait_up "$port_ref"
}

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
echo "CPU: $cpu (family $(lscpu | sed -n 's/^CPU family: *//p' | head -n 1), model $(lscpu | sed -n 's/^Model: *//p' | head -n 1)), $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); ${seconds} s per figure after ${warmup} s of warm-up"
echo

[[ -d "$work/images" ]] || "$bin" export-images --limit 64 --out "$work/images" >/dev/null
find "$work/images" -name '*.png' | sort >"$work/good.txt"

echo "| size | concurrency | alexnet serve req/s | p50 | p99 | PyTorch req/s | p50 | p99 | req/s ratio |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for size in ${SIZES:-224 96}; do
  run="$work/run-$size"
  if [[ ! -f "$run/model.mpk" ]]; then
    "$bin" train --resize "$size" --epochs 1 --limit-train 256 --limit-test 128 --batch-size 64 \
      --artifact-dir "$run" >"$work/train-$size.log" 2>&1
    "$bin" export --artifact-dir "$run" --out "$run/model.safetensors" >/dev/null 2>&1
  fi
  for c in ${CONCURRENCY:-1 8 32}; do
    start_ours "$run"
    load "$port_ours" "$c" "$warmup" "$work/good.txt" >/dev/null
    read -r ours ours50 ours99 < <(load "$port_ours" "$c" "$seconds" "$work/good.txt")
    stop_server
    start_ref "$size" "$run/model.safetensors"
    load "$port_ref" "$c" "$warmup" "$work/good.txt" >/dev/null
    read -r ref ref50 ref99 < <(load "$port_ref" "$c" "$seconds" "$work/good.txt")
    stop_server
    ratio=$(python3 -c "print(f'{$ours / $ref:.2f}')")
    echo "| $size | $c | $ours | $ours50 | $ours99 | $ref | $ref50 | $ref99 | $ratio |"
  done
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# Robustness: a third of the requests are bad.
size=$(echo ${SIZES:-224 96} | awk '{ print $NF }')
head -c 3000 /dev/urandom >"$work/noise.bin"
first=$(head -n 1 "$work/good.txt")
head -c "$(( $(stat -c %s "$first") / 2 ))" "$first" >"$work/truncated.png"
: >"$work/mixed.txt"
bad=("$work/noise.bin" "$work/truncated.png")
i=0
while read -r good; do # two good images, then a bad one
  [[ $(( i % 2 )) == 1 ]] && echo "${bad[$(( i / 2 % 2 ))]}" >>"$work/mixed.txt"
  echo "$good" >>"$work/mixed.txt"
  i=$(( i + 1 ))
done <"$work/good.txt"
start_ours "$work/run-$size"
load "$port_ours" 8 "$warmup" "$work/good.txt" >/dev/null
before=$(rss_kib "$server")
LIMIT=$(( ${REQUESTS:-10000} / 2 )) BODIES="$work/mixed.txt" wrk -t 2 -c 16 -d 300s --timeout 30s \
  -s "$work/post.lua" "http://127.0.0.1:$port_ours/v1/predict" >"$work/mixed-wrk.txt"
after=$(rss_kib "$server")
alive=$(curl -fsS "http://127.0.0.1:$port_ours/healthz" || echo "NOT ANSWERING")
echo
echo "robustness at $size px: $(sed -n 's/^ *\([0-9]*\) requests in .*/\1 requests/p' "$work/mixed-wrk.txt"), a third bad, concurrency 16"
echo "  $(grep '^statuses:' "$work/mixed-wrk.txt")"
echo "  resident memory: $(( before / 1024 )) MiB after warm-up, $(( after / 1024 )) MiB after; /healthz: $alive"
stop_server
echo "scratch files in $work"
