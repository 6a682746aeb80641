#!/usr/bin/env bash
# Prints the line the measuring scripts start with: the CPU model (with its family and model
# numbers, which tell Intel generations apart) and the number of cores.
#
#   scripts/host-line.sh      # CPU: Intel(R) Xeon(R) Processor (family 6, model 167), 2 cores
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0; }
set -euo pipefail
field() { lscpu | sed -n "s/^$1: *//p" | head -n 1; }
echo "CPU: $(field 'Model name') (family $(field 'CPU family'), model $(field 'Model')), $(nproc) cores"
