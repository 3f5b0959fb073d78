#!/usr/bin/env bash
# herald and Prometheus Alertmanager taking turns under the same load, for each state of herald's
# downstream (silent, refusing connections, answering 503, hanging: bench/herald_server.sh).
# Both servers run side by side on CPU 0, each stopped (SIGSTOP) while the other takes its slice
# of load from wrk on CPU 1; SLICES slices of SLICE seconds each, herald first in the odd ones.
# Each server's rate is what it answered over the time it was loaded.
#
# Why: this machine's speed drifts by 20-30 % within seconds to minutes (Alertmanager alone went
# from 6,112 to 14,174/s between runs a minute apart). bench/faults.sh compares runs of 10 s taken
# one after the other, so a ratio there carries whatever the machine did between them; here both
# servers sample the same minutes, a few seconds apart, and the drift falls on both.
#
#   bench/alternating.sh                         # SLICES=6 SLICE=2 (about two minutes in all)
#   STATES="silent failing" bench/alternating.sh
#   CONNECTIONS=512 BENCH_THINK_MS=16 bench/alternating.sh   # many senders pausing at random
#
# CONNECTIONS (32 unless set) is how many wrk keeps open to each server; with BENCH_THINK_MS each
# one pauses that long on average after each answer (bench/think.lua).
#
# A stopped server does nothing: herald's work left from its slice (a commit, the deliveries it
# queued) and Alertmanager's (its garbage collection) wait for their own next slice. Each slice's
# callbacks are new to herald (the pool's offsets carry over) and its alerts new to Alertmanager.
set -euo pipefail
cd "$(dirname "$0")/.."

SLICES=${SLICES:-6}
SLICE=${SLICE:-2}
STATES=${STATES:-silent refused failing hanging}
HERALD_CPU=0
LOAD_CPU=1
THREADS=2
CONNECTIONS=${CONNECTIONS:-32}
. bench/common.sh
. bench/alertmanager_peer.sh
require prometheus-alertmanager wrk python3 curl taskset=util-linux

# HERALD_BIN: another herald binary to measure (an older build, to see what changed).
if [ -z "${HERALD_BIN:-}" ]; then cargo build --release --quiet --bin herald; fi
HERALD_BIN=${HERALD_BIN:-target/release/herald}

work=$(mktemp -d)
am_pid=""
herald_pid=""
downstream_pid=""
cleanup() {
  # A stopped process must be continued to act on its SIGTERM.
  for pid in $herald_pid $am_pid; do kill -CONT "$pid" 2>/dev/null || true; done
  kill $herald_pid $am_pid $downstream_pid 2>/dev/null || true
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

. bench/herald_server.sh
ensure_pool $((SLICES * SLICE * 45000)) "$THREADS"

# slice NAME PID -- COMMAND...: one slice of load on the server PID (continued for it, stopped
# after), adding to NAME's totals (reset for each state, below). COMMAND runs wrk and prints its
# RESULT line.
slice() {
  local name=$1 pid=$2 result core_before core_after ticks_before
  shift 3
  kill -CONT "$pid"
  ticks_before=$(process_ticks "$pid")
  core_before=$(core_ticks "$HERALD_CPU")
  result=$("$@")
  core_after=$(core_ticks "$HERALD_CPU")
  ticks[$name]=$((${ticks[$name]:-0} + $(process_ticks "$pid") - ticks_before))
  kill -STOP "$pid"
  busy_ticks[$name]=$((${busy_ticks[$name]:-0} + ${core_after% *} - ${core_before% *}))
  all_ticks[$name]=$((${all_ticks[$name]:-0} + ${core_after#* } - ${core_before#* }))
  local RESULT_requests RESULT_errors_status RESULT_seconds RESULT_p99_ms RESULT_offsets="" RESULT_pool_wraps=0
  eval "$(wrk_result RESULT_ "$result")"
  if [ "$RESULT_pool_wraps" != 0 ]; then
    echo "note: the pool wrapped: some callbacks were posted twice (run with fewer or shorter slices)" >&2
  fi
  requests[$name]=$((${requests[$name]:-0} + RESULT_requests - RESULT_errors_status))
  seconds[$name]=$(python3 -c "print(${seconds[$name]:-0} + $RESULT_seconds)")
  worst_p99[$name]=$(python3 -c "print(max(${worst_p99[$name]:-0}, $RESULT_p99_ms))")
  [ -z "$RESULT_offsets" ] || offsets=$RESULT_offsets
}

load_herald() {
  HERALD_BENCH_POOL="$pool" HERALD_BENCH_OFFSETS="$offsets" taskset -c "$LOAD_CPU" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SLICE}s" --timeout 5s -s bench/sentry.lua "http://$address" | grep '^RESULT'
}

lines=()
for state in $STATES; do
  offsets="" # a new herald: the pool from its start
  unset requests seconds ticks busy_ticks all_ticks worst_p99 # the state's totals
  declare -A requests seconds ticks busy_ticks all_ticks worst_p99
  start_herald "$work/$state" "$state"
  start_alertmanager "$work"
  sleep 1
  settle_disk "$pool".*
  kill -STOP "$herald_pid" "$am_pid"
  for i in $(seq "$SLICES"); do
    if [ $((i % 2)) = 1 ]; then
      slice herald "$herald_pid" -- load_herald
      slice alertmanager "$am_pid" -- load_alertmanager "$SLICE" "$i"
    else
      slice alertmanager "$am_pid" -- load_alertmanager "$SLICE" "$i"
      slice herald "$herald_pid" -- load_herald
    fi
    echo "$state, slice $i of $SLICES: herald ${requests[herald]}, Alertmanager ${requests[alertmanager]} answered so far" >&2
  done
  kill -CONT "$herald_pid" "$am_pid"
  # wrk counts only the answers it read before it stopped; requests still in flight then (at most
  # one per connection and slice) may be stored without being counted.
  stored=$(stored_alerts)
  if [ "$stored" -lt "${requests[herald]}" ] || [ "$stored" -gt $((${requests[herald]} + CONNECTIONS * SLICES)) ]; then
    echo "MISMATCH: herald answered 2xx to ${requests[herald]} callbacks but stored $stored" >&2
    exit 1
  fi
  stop_alertmanager
  kill "$herald_pid" $downstream_pid; wait "$herald_pid" $downstream_pid 2>/dev/null || true
  herald_pid="" downstream_pid=""
  lines+=("$state ${requests[herald]} ${seconds[herald]} ${ticks[herald]} ${busy_ticks[herald]} ${all_ticks[herald]} ${worst_p99[herald]} ${requests[alertmanager]} ${seconds[alertmanager]} ${ticks[alertmanager]} ${busy_ticks[alertmanager]} ${all_ticks[alertmanager]} ${worst_p99[alertmanager]}")
done

echo
echo "herald and Alertmanager in turns: $SLICES slices of ${SLICE}s each per state, $CONNECTIONS connections${BENCH_THINK_MS:+ pausing ${BENCH_THINK_MS} ms on average}, servers on CPU 0, wrk on CPU 1"
python3 - "$(getconf CLK_TCK)" "${lines[@]}" <<'PY'
import sys
hz = int(sys.argv[1])
print(f"  {'downstream':<10} {'herald':>9} {'Alertmanager':>13} {'ratio':>6}   {'CPU a request':>22}  {'CPU ratio':>9}   {'core busy':>9}   worst slice p99")
silent = None
for line in sys.argv[2:]:
    state, *values = line.split()
    h_req, h_sec, h_ticks, h_busy, h_all, h_p99, a_req, a_sec, a_ticks, a_busy, a_all, a_p99 = map(float, values)
    h_rate, a_rate = h_req / h_sec, a_req / a_sec
    h_cpu, a_cpu = h_ticks / hz / max(h_req, 1) * 1e6, a_ticks / hz / max(a_req, 1) * 1e6
    if state == "silent":
        silent = h_rate
    vs_silent = f"   {h_rate / silent:.2f}x silent" if silent and state != "silent" else ""
    print(f"  {state:<10} {h_rate:>7.0f}/s {a_rate:>11.0f}/s {h_rate / a_rate:>5.2f}x"
          f"   {h_cpu:>4.0f} µs against {a_cpu:>4.0f} µs  {a_cpu / h_cpu:>8.2f}x"
          f"   {100 * h_busy / h_all:>3.0f} / {100 * a_busy / a_all:>3.0f} %"
          f"   {h_p99:.1f} / {a_p99:.1f} ms{vs_silent}")
PY
