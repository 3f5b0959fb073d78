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
. bench/alertmanager_peer.sh
require prometheus-alertmanager wrk python3 curl

# HERALD_BIN: another herald binary to measure (an older build, to see what changed).
if [ -z "${HERALD_BIN:-}" ]; then cargo build --release --quiet --bin herald; fi
HERALD_BIN=${HERALD_BIN:-target/release/herald}
declare -A rate p99 cpu
for state in silent refused failing hanging; do
  out=$(TARGET=$state HERALD_BIN=$HERALD_BIN bench/intake.sh 2>/dev/null)
  rate[$state]=$(echo "$out" | awk '/accepted\/s/ {print $2}')
  p99[$state]=$(echo "$out" | awk '/latency/ {print $6}')
  cpu[$state]=$(echo "$out" | awk '/^  CPU/ {print $2}')
  echo "herald, downstream $state: ${rate[$state]}/s, p99 ${p99[$state]} ms" >&2
done

work=$(mktemp -d)
am_pid=""
trap 'kill $am_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
run_alertmanager "$work"

echo
echo "intake while the downstream fails: ${DURATION}s each, 32 connections, server on CPU 0, wrk on CPU 1"
printf "  %-40s %8s/s   p99 %6s ms   CPU %4s µs a request\n" "Alertmanager (in memory)" "$am_rate" "$am_p99_ms" "$am_cpu_us"
for state in silent refused failing hanging; do
  python3 - "$state" "${rate[$state]}" "${p99[$state]}" "${cpu[$state]}" "${rate[silent]}" "$am_rate" <<'PY'
import sys
state, rate, p99, cpu = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
silent, am = float(sys.argv[5]), float(sys.argv[6])
print(f"  herald, downstream {state:<21} {rate:8.0f}/s   p99 {p99:>6} ms   CPU {cpu:>4} µs a request"
      f"   {rate / silent:.2f}x silent   {rate / am:.2f}x Alertmanager")
PY
done
