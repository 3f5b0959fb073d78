#!/usr/bin/env bash
# herald, once for each state of its downstream (silent, refusing connections, answering 503,
# hanging: bench/herald_server.sh), and Prometheus Alertmanager, all taking turns under the same
# load. Every server runs on CPU 0 for the whole run, each stopped (SIGSTOP) while another takes
# its slice of load from wrk on CPU 1: SLICES rounds, each giving every server one slice of SLICE
# seconds, the order turned by one server each round. Each server's rate is what it answered over
# the time it was loaded.
#
# Why: this machine's speed drifts by 20-30 % within seconds to minutes (Alertmanager alone went
# from 6,112 to 14,174/s between runs a minute apart). bench/faults.sh compares runs of 10 s taken
# one after the other, so a ratio there carries whatever the machine did between them; here every
# server samples the same minutes, a few seconds apart, and the drift falls on all of them alike:
# both the ratio to Alertmanager and the ratio to the silent downstream.
#
#   bench/alternating.sh                         # SLICES=6 SLICE=2 (about two minutes in all)
#   STATES="silent failing" bench/alternating.sh
#   CONNECTIONS=512 BENCH_THINK_MS=16 bench/alternating.sh   # many senders pausing at random
#   BASE_BIN=/path/to/an/older/herald bench/alternating.sh     # that build too, in the same turns
#
# BASE_BIN adds a herald of another build for each of BASE_STATES (STATES unless set), named
# "base, STATE", taking turns with the others: what a change did, measured in the same minutes.
#
# CONNECTIONS (32 unless set) is how many wrk keeps open to each server; with BENCH_THINK_MS each
# one pauses that long on average after each answer (bench/think.lua).
#
# A stopped server does nothing: a herald's work left from its slice (a commit, the deliveries it
# queued) and Alertmanager's (its garbage collection) wait for their own next slice. Each slice's
# callbacks are new to the herald it goes to (each herald's place in the pool carries over) and
# its alerts new to Alertmanager.
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
declare -A herald_pids addresses downstream_pids offsets
heralds=()
cleanup() {
  # A stopped process must be continued to act on its SIGTERM.
  for pid in ${herald_pids[@]} $am_pid; do kill -CONT "$pid" 2>/dev/null || true; done
  kill ${herald_pids[@]} $am_pid ${downstream_pids[@]} 2>/dev/null || true
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

. bench/herald_server.sh
ensure_pool $((SLICES * SLICE * 45000)) "$THREADS"

# Each server's totals over its slices, by name (a state, or alertmanager).
declare -A requests seconds ticks busy_ticks all_ticks stolen_ticks worst_p99

# slice NAME PID -- COMMAND...: one slice of load on the server PID (continued for it, stopped
# after), adding to NAME's totals. COMMAND runs wrk and prints its RESULT line.
slice() {
  local name=$1 pid=$2 result ticks_before busy0 all0 stolen0 busy1 all1 stolen1
  shift 3
  kill -CONT "$pid"
  ticks_before=$(process_ticks "$pid")
  read -r busy0 all0 stolen0 <<<"$(core_ticks "$HERALD_CPU")"
  result=$("$@")
  read -r busy1 all1 stolen1 <<<"$(core_ticks "$HERALD_CPU")"
  ticks[$name]=$((${ticks[$name]:-0} + $(process_ticks "$pid") - ticks_before))
  kill -STOP "$pid"
  busy_ticks[$name]=$((${busy_ticks[$name]:-0} + busy1 - busy0))
  all_ticks[$name]=$((${all_ticks[$name]:-0} + all1 - all0))
  stolen_ticks[$name]=$((${stolen_ticks[$name]:-0} + stolen1 - stolen0))
  local RESULT_requests RESULT_errors_status RESULT_seconds RESULT_p99_ms RESULT_offsets="" RESULT_pool_wraps=0
  eval "$(wrk_result RESULT_ "$result")"
  if [ "$RESULT_pool_wraps" != 0 ]; then
    echo "note: the pool wrapped: some callbacks were posted twice (run with fewer or shorter slices)" >&2
  fi
  requests[$name]=$((${requests[$name]:-0} + RESULT_requests - RESULT_errors_status))
  seconds[$name]=$(python3 -c "print(${seconds[$name]:-0} + $RESULT_seconds)")
  worst_p99[$name]=$(python3 -c "print(max(${worst_p99[$name]:-0}, $RESULT_p99_ms))")
  [ -z "$RESULT_offsets" ] || offsets[$name]=$RESULT_offsets
}

# load_herald STATE: wrk on the herald of that state, from where its last slice left the pool.
load_herald() {
  HERALD_BENCH_POOL="$pool" HERALD_BENCH_OFFSETS="${offsets[$1]:-}" taskset -c "$LOAD_CPU" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SLICE}s" --timeout 5s -s bench/sentry.lua "http://${addresses[$1]}" | grep '^RESULT'
}

# add_herald NAME STATE: a herald of HERALD_BIN whose downstream is in STATE.
add_herald() {
  start_herald "$work/$1" "$2"
  herald_pids[$1]=$herald_pid addresses[$1]=$address downstream_pids[$1]=$downstream_pid
  heralds+=("$1")
}
for state in $STATES; do add_herald "$state" "$state"; done
if [ -n "${BASE_BIN:-}" ]; then
  for state in ${BASE_STATES:-$STATES}; do HERALD_BIN=$BASE_BIN add_herald "base-$state" "$state"; done
fi
servers=("${heralds[@]}")
start_alertmanager "$work"
servers+=(alertmanager)
sleep 1
settle_disk "$pool".*
kill -STOP ${herald_pids[@]} "$am_pid"

for i in $(seq "$SLICES"); do
  for j in $(seq 0 $((${#servers[@]} - 1))); do
    name=${servers[$(((i - 1 + j) % ${#servers[@]}))]}
    if [ "$name" = alertmanager ]; then
      slice alertmanager "$am_pid" -- load_alertmanager "$SLICE" "$i"
    else
      slice "$name" "${herald_pids[$name]}" -- load_herald "$name"
    fi
  done
  echo "round $i of $SLICES:$(for name in "${servers[@]}"; do printf ' %s %s' "$name" "${requests[$name]}"; done) answered so far" >&2
done

kill -CONT ${herald_pids[@]} "$am_pid"
lines=()
for name in "${heralds[@]}"; do
  # At most one request in flight per connection and slice.
  check_stored "$(stored_alerts "${addresses[$name]}")" "${requests[$name]}" $((CONNECTIONS * SLICES)) "$name"
done
for name in "${servers[@]}"; do
  lines+=("$name ${requests[$name]} ${seconds[$name]} ${ticks[$name]} ${busy_ticks[$name]} ${all_ticks[$name]} ${stolen_ticks[$name]} ${worst_p99[$name]}")
done

echo
echo "herald and Alertmanager in turns: $SLICES rounds of one ${SLICE}s slice each, $CONNECTIONS connections${BENCH_THINK_MS:+ pausing ${BENCH_THINK_MS} ms on average}, servers on CPU $HERALD_CPU, wrk on CPU $LOAD_CPU"
[ -z "${BASE_BIN:-}" ] || echo "base: $BASE_BIN"
python3 - "$(getconf CLK_TCK)" "${lines[@]}" <<'PY'
import sys
hz = int(sys.argv[1])
servers = {}
for line in sys.argv[2:]:
    name, *values = line.split()
    req, sec, ticks, busy, all_ticks, stolen, p99 = map(float, values)
    servers[name] = dict(rate=req / sec, cpu=ticks / hz / max(req, 1) * 1e6,
                         busy=100 * busy / max(all_ticks, 1), stolen=100 * stolen / max(all_ticks, 1),
                         p99=p99)
am = servers.pop("alertmanager")
print(f"  {'server':<22} {'rate':>9} {'p99 (worst slice)':>18} {'CPU a request':>14} {'core busy':>10} {'stolen':>7}"
      f"   {'x silent':>8} {'x Alertmanager':>14} {'CPU ratio':>9}")
print(f"  {'Alertmanager':<22} {am['rate']:>7.0f}/s {am['p99']:>15.1f} ms {am['cpu']:>11.0f} µs {am['busy']:>8.0f} % {am['stolen']:>5.0f} %")
for name, s in servers.items():
    build, _, state = name.rpartition("-")
    silent = servers.get(f"{build}-silent" if build else "silent")
    vs_silent = f"{s['rate'] / silent['rate']:>7.2f}x" if silent else f"{'':>8}"
    label = f"{build}, {state}" if build else f"herald, {state}"
    print(f"  {label:<22} {s['rate']:>7.0f}/s {s['p99']:>15.1f} ms {s['cpu']:>11.0f} µs {s['busy']:>8.0f} % {s['stolen']:>5.0f} %"
          f"   {vs_silent} {s['rate'] / am['rate']:>13.2f}x {am['cpu'] / s['cpu']:>8.2f}x")
PY
