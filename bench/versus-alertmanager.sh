#!/usr/bin/env bash
# herald beside Prometheus Alertmanager, in one run: each on CPU 0 in turn, the same load tool
# (wrk, on CPU 1) at CONNECTIONS (32 unless set) for the same time. herald takes distinct, signed
# Sentry callbacks and answers only after they are on disk; Alertmanager takes distinct alerts and
# keeps them in memory. Prints both rates, p50/p99 latency, the CPU each server used per request,
# and the ratios. (The CPU per request moves far less with the machine's drift than the rates do,
# and herald's rate is also bound by the disk's wait for its syncs, which uses no CPU.)
#
#   bench/versus-alertmanager.sh          # DURATION=20
#   ROUNDS=3 bench/versus-alertmanager.sh # three rounds, Alertmanager first in the odd ones and
#                                         # herald first in the even ones: the machine's drift
#                                         # (20-30 % within minutes on a shared VM) lands on both;
#                                         # prints each round's ratio and their median
#   TMPDIR=/dev/shm bench/versus-alertmanager.sh   # herald's data on tmpfs: the rate without the
#                                                  # disk's sync latency (a diagnostic, not durable)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-1}
. bench/common.sh
. bench/alertmanager_peer.sh
require prometheus-alertmanager wrk python3 curl

work=$(mktemp -d)
am_pid=""
trap 'kill $am_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT

herald_label="herald (durable, signed, deduped)"
if [ "$(stat -f -c %T "${TMPDIR:-/tmp}")" = tmpfs ]; then herald_label="herald (data on tmpfs: not durable)"; fi
ratios=()
cpu_ratios=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then run_alertmanager "$work"; run_intake DURATION="$DURATION"; else run_intake DURATION="$DURATION"; run_alertmanager "$work"; fi
  [ "$ROUNDS" = 1 ] && echo "$herald_out"
  echo
  order="Alertmanager first"; [ $((round % 2)) = 0 ] && order="herald first"
  echo "side by side (round $round of $ROUNDS, $order): ${DURATION}s each, ${CONNECTIONS:-32} connections, server on CPU 0, wrk on CPU 1"
  printf "  %-34s %8s/s   p50 %6s ms   p99 %6s ms   CPU %4s µs a request   core %3s %% busy\n" "$herald_label" "$herald_rate" "$herald_p50" "$herald_p99" "$herald_cpu_us" "$herald_busy"
  printf "  %-34s %8s/s   p50 %6s ms   p99 %6s ms   CPU %4s µs a request   core %3s %% busy   RSS %s MiB\n" "Alertmanager (in memory)" "$am_rate" "$am_p50_ms" "$am_p99_ms" "$am_cpu_us" "$am_busy" "$((am_rss / 1024))"
  ratio=$(python3 -c "print(f'{$herald_rate / $am_rate:.2f}')")
  cpu_ratio=$(python3 -c "print(f'{$am_cpu_us / $herald_cpu_us:.2f}')")
  ratios+=("$ratio")
  cpu_ratios+=("$cpu_ratio")
  echo "  ratio herald/Alertmanager: $ratio (rate), $cpu_ratio (Alertmanager's CPU a request over herald's)"
done
if [ "$ROUNDS" -gt 1 ]; then
  echo
  median='import statistics, sys; r = [float(x) for x in sys.argv[2:]]; print(sys.argv[1], *sys.argv[2:], end=": "); print("median %.2f" % statistics.median(r))'
  python3 -c "$median" "ratios" "${ratios[@]}"
  python3 -c "$median" "CPU ratios" "${cpu_ratios[@]}"
fi
