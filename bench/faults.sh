#!/usr/bin/env bash
# The intake while a downstream fails, in one run: herald's intake (bench/intake.sh) with its one
# target's downstream silent (nothing is attempted: the reference), refusing connections,
# answering 503, or hanging past a 2 s timeout; and Prometheus Alertmanager, in memory, under the
# same load. Each server on CPU 0 in turn, wrk on CPU 1. Prints each rate and its ratios.
#
#   bench/faults.sh                 # DURATION=10 per run
set -euo pipefail
cd "$(dirname "$0")/.."

export DURATION=${DURATION:-10}
export POOL_SIZE=${POOL_SIZE:-$((DURATION * 45000))}
. bench/common.sh
require prometheus-alertmanager wrk python3 curl

# HERALD_BIN: another herald binary to measure (an older build, to see what changed).
if [ -z "${HERALD_BIN:-}" ]; then cargo build --release --quiet --bin herald; fi
HERALD_BIN=${HERALD_BIN:-target/release/herald}
declare -A rate p99
for state in silent refused failing hanging; do
  out=$(TARGET=$state HERALD_BIN=$HERALD_BIN bench/intake.sh 2>/dev/null)
  rate[$state]=$(echo "$out" | awk '/accepted\/s/ {print $2}')
  p99[$state]=$(echo "$out" | awk '/latency/ {print $6}')
  echo "herald, downstream $state: ${rate[$state]}/s, p99 ${p99[$state]} ms" >&2
done

work=$(mktemp -d)
am_pid=""
trap 'kill $am_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$(free_port)
printf 'route:\n  receiver: "null"\n  group_by: ["issue"]\nreceivers:\n  - name: "null"\n' >"$work/alertmanager.yml"
taskset -c 0 prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/am-data" \
  --web.listen-address="127.0.0.1:$port" --cluster.listen-address="" --log.level=warn >"$work/am.log" 2>&1 &
am_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break; sleep 0.1; done
am=$(taskset -c 1 wrk -t2 -c32 -d"${DURATION}s" --timeout 5s -s bench/alertmanager.lua "http://127.0.0.1:$port" | grep '^RESULT')
eval "$(echo "$am" | sed 's/^RESULT //; s/ /\n/g' | sed 's/^/am_/')"

echo
echo "intake while the downstream fails: ${DURATION}s each, 32 connections, server on CPU 0, wrk on CPU 1"
printf "  %-40s %8s/s   p99 %6s ms\n" "Alertmanager (in memory)" "$am_rate" "$am_p99_ms"
for state in silent refused failing hanging; do
  python3 - "$state" "${rate[$state]}" "${p99[$state]}" "${rate[silent]}" "$am_rate" <<'PY'
import sys
state, rate, p99, silent, am = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
print(f"  herald, downstream {state:<21} {rate:8.0f}/s   p99 {p99:>6} ms   {rate / silent:.2f}x silent   {rate / am:.2f}x Alertmanager")
PY
done
