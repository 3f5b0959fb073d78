#!/usr/bin/env bash
# herald beside Prometheus Alertmanager, in one run: each on CPU 0 in turn, the same load tool
# (wrk, on CPU 1) at 32 connections for the same time. herald takes distinct, signed Sentry
# callbacks and answers only after they are on disk; Alertmanager takes distinct alerts and keeps
# them in memory. Prints both rates, p50/p99 latency, and the ratio.
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
require prometheus-alertmanager wrk python3 curl

work=$(mktemp -d)
am_pid=""
trap 'kill $am_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/alertmanager.yml" <<YAML
route:
  receiver: "null"
  group_by: ["issue"]
receivers:
  - name: "null"
YAML

# Sets am_rate, am_p50_ms, am_p99_ms and am_rss (KiB) from one run of a fresh Alertmanager.
run_alertmanager() {
  local port result
  port=$(free_port)
  rm -rf "$work/am-data"
  taskset -c 0 prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/am-data" \
    --web.listen-address="127.0.0.1:$port" --cluster.listen-address="" --log.level=warn >"$work/am.log" 2>&1 &
  am_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break; sleep 0.1; done
  result=$(taskset -c 1 wrk -t2 -c32 -d"${DURATION}s" --timeout 5s -s bench/alertmanager.lua "http://127.0.0.1:$port" | grep '^RESULT')
  am_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$am_pid/status")
  kill "$am_pid"; wait "$am_pid" 2>/dev/null || true; am_pid=""
  eval "$(echo "$result" | sed 's/^RESULT //; s/ /\n/g' | sed 's/^/am_/')"
}

# Sets herald_out, herald_rate, herald_p50 and herald_p99 from one run of bench/intake.sh.
run_herald() {
  herald_out=$(DURATION=$DURATION bench/intake.sh 2>/dev/null)
  herald_rate=$(echo "$herald_out" | awk '/accepted\/s/ {print $2}')
  herald_p50=$(echo "$herald_out" | awk '/latency/ {print $3}')
  herald_p99=$(echo "$herald_out" | awk '/latency/ {print $6}')
}

herald_label="herald (durable, signed, deduped)"
if [ "$(stat -f -c %T "${TMPDIR:-/tmp}")" = tmpfs ]; then herald_label="herald (data on tmpfs: not durable)"; fi
ratios=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then run_alertmanager; run_herald; else run_herald; run_alertmanager; fi
  [ "$ROUNDS" = 1 ] && echo "$herald_out"
  echo
  order="Alertmanager first"; [ $((round % 2)) = 0 ] && order="herald first"
  echo "side by side (round $round of $ROUNDS, $order): ${DURATION}s each, 32 connections, server on CPU 0, wrk on CPU 1"
  printf "  %-34s %8s/s   p50 %6s ms   p99 %6s ms\n" "$herald_label" "$herald_rate" "$herald_p50" "$herald_p99"
  printf "  %-34s %8s/s   p50 %6s ms   p99 %6s ms   RSS %s MiB\n" "Alertmanager (in memory)" "$am_rate" "$am_p50_ms" "$am_p99_ms" "$((am_rss / 1024))"
  ratio=$(python3 -c "print(f'{$herald_rate / $am_rate:.2f}')")
  ratios+=("$ratio")
  echo "  ratio herald/Alertmanager: $ratio"
done
if [ "$ROUNDS" -gt 1 ]; then
  echo
  python3 -c "import statistics, sys; r = [float(x) for x in sys.argv[1:]]; print(f'ratios {\" \".join(sys.argv[1:])}: median {statistics.median(r):.2f}')" "${ratios[@]}"
fi
