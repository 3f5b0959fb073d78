#!/usr/bin/env bash
# The intake while a downstream fails, in one run: herald's intake (bench/intake.sh) with its one
# target's downstream silent (nothing is attempted: the reference), refusing connections,
# answering 503, or hanging past a 2 s timeout; and Prometheus Alertmanager, in memory, under the
# same load, run before, between and after herald's states. Each server on CPU 0 in turn, wrk on
# CPU 1. Prints each rate, each state's ratio to the silent one and to the Alertmanager runs
# around it, the CPU each used per request, and how busy its core was (a durable server waits for
# its disk with nothing else to do; one that keeps everything in memory need not).
#
# Its runs come one after the other, so each ratio also carries how the machine's speed moved
# between them; bench/alternating.sh measures the same servers taking turns in short slices.
#
#   bench/faults.sh                 # DURATION=10 per run (about two minutes in all)
set -euo pipefail
cd "$(dirname "$0")/.."

export DURATION=${DURATION:-10}
export POOL_SIZE=${POOL_SIZE:-$((DURATION * 45000))}
. bench/common.sh
. bench/alertmanager_peer.sh
require prometheus-alertmanager wrk python3 curl

# HERALD_BIN: another herald binary to measure (an older build, to see what changed).
if [ -z "${HERALD_BIN:-}" ]; then cargo build --release --quiet --bin herald; fi
export HERALD_BIN=${HERALD_BIN:-target/release/herald}

work=$(mktemp -d)
am_pid=""
trap 'kill $am_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT

# Alertmanager runs before, between and after herald's states (two states between runs), and each
# state is compared with the mean of the two Alertmanager runs around it: this machine's speed
# drifts by 20-30 % within minutes, and a single Alertmanager run at one end of the set would
# carry that drift into every ratio.
declare -A rate p99 cpu busy
am_rates=() am_cpus=() am_p99s=() am_busies=()
measure_alertmanager() {
  run_alertmanager "$work"
  am_rates+=("$am_rate"); am_cpus+=("$am_cpu_us"); am_p99s+=("$am_p99_ms"); am_busies+=("$am_busy")
  echo "Alertmanager: ${am_rate}/s, p99 ${am_p99_ms} ms, CPU ${am_cpu_us} µs a request" >&2
}
measure_herald() { # $1: the downstream's state
  run_intake TARGET="$1"
  rate[$1]=$herald_rate; p99[$1]=$herald_p99; cpu[$1]=$herald_cpu_us; busy[$1]=$herald_busy
  echo "herald, downstream $1: ${rate[$1]}/s, p99 ${p99[$1]} ms, CPU ${cpu[$1]} µs a callback" >&2
}
measure_alertmanager
measure_herald silent
measure_herald refused
measure_alertmanager
measure_herald failing
measure_herald hanging
measure_alertmanager

echo
echo "intake while the downstream fails: ${DURATION}s each, ${CONNECTIONS:-32} connections, server on CPU 0, wrk on CPU 1"
echo "(Alertmanager, in memory, measured before, between and after: each state is compared with the"
echo " mean of the two runs around it)"
python3 - "${am_rates[*]}" "${am_cpus[*]}" "${am_p99s[*]}" "${am_busies[*]}" \
  "silent ${rate[silent]} ${p99[silent]} ${cpu[silent]} ${busy[silent]}" \
  "refused ${rate[refused]} ${p99[refused]} ${cpu[refused]} ${busy[refused]}" \
  "failing ${rate[failing]} ${p99[failing]} ${cpu[failing]} ${busy[failing]}" \
  "hanging ${rate[hanging]} ${p99[hanging]} ${cpu[hanging]} ${busy[hanging]}" <<'PY'
import sys
am_rates = [float(x) for x in sys.argv[1].split()]
am_cpus = [float(x) for x in sys.argv[2].split()]
am_p99s = sys.argv[3].split()
am_busies = sys.argv[4].split()
for i, (r, c, p, b) in enumerate(zip(am_rates, am_cpus, am_p99s, am_busies)):
    print(f"  {'Alertmanager, run ' + str(i + 1):<40} {r:8.0f}/s   p99 {p:>6} ms   CPU {c:4.0f} µs a request"
          f"   core {b:>3} % busy")
states = [a.split() for a in sys.argv[5:]]
silent = float(states[0][1])
for i, (state, rate, p99, cpu, busy) in enumerate(states):
    rate, cpu = float(rate), float(cpu)
    around = am_rates[i // 2: i // 2 + 2]
    around_cpu = am_cpus[i // 2: i // 2 + 2]
    am, am_cpu = sum(around) / 2, sum(around_cpu) / 2
    print(f"  herald, downstream {state:<21} {rate:8.0f}/s   p99 {p99:>6} ms   CPU {cpu:4.0f} µs a request"
          f"   core {busy:>3} % busy   {rate / silent:.2f}x silent   {rate / am:.2f}x Alertmanager   CPU {am_cpu / cpu:.2f}x less")
PY
