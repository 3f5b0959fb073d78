#!/usr/bin/env bash
# herald beside Prometheus Alertmanager, in one run: each on CPU 0 in turn, the same load tool
# (wrk, on CPU 1) at 32 connections for the same time. herald takes distinct, signed Sentry
# callbacks and answers only after they are on disk; Alertmanager takes distinct alerts and keeps
# them in memory. Prints both rates, p50/p99 latency, and the ratio.
#
#   bench/versus-alertmanager.sh          # DURATION=20
#   TMPDIR=/dev/shm bench/versus-alertmanager.sh   # herald's data on tmpfs: the rate without the
#                                                  # disk's sync latency (a diagnostic, not durable)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
. bench/common.sh
require prometheus-alertmanager wrk python3 curl

work=$(mktemp -d)
am_pid=""
trap 'kill $am_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$(free_port)
cat > "$work/alertmanager.yml" <<YAML
route:
  receiver: "null"
  group_by: ["issue"]
receivers:
  - name: "null"
YAML
taskset -c 0 prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/am-data" \
  --web.listen-address="127.0.0.1:$port" --cluster.listen-address="" --log.level=warn >"$work/am.log" 2>&1 &
am_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break; sleep 0.1; done
am=$(taskset -c 1 wrk -t2 -c32 -d"${DURATION}s" --timeout 5s -s bench/alertmanager.lua "http://127.0.0.1:$port" | grep '^RESULT')
am_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$am_pid/status")
kill "$am_pid"; wait "$am_pid" 2>/dev/null || true; am_pid=""

herald_out=$(DURATION=$DURATION bench/intake.sh 2>/dev/null)
echo "$herald_out"

eval "$(echo "$am" | sed 's/^RESULT //; s/ /\n/g' | sed 's/^/am_/')"
herald_rate=$(echo "$herald_out" | awk '/accepted\/s/ {print $2}')
herald_p50=$(echo "$herald_out" | awk '/latency/ {print $3}')
herald_p99=$(echo "$herald_out" | awk '/latency/ {print $6}')
echo
echo "side by side: ${DURATION}s each, 32 connections, server on CPU 0, wrk on CPU 1"
herald_label="herald (durable, signed, deduped)"
if [ "$(stat -f -c %T "${TMPDIR:-/tmp}")" = tmpfs ]; then herald_label="herald (data on tmpfs: not durable)"; fi
printf "  %-34s %8s/s   p50 %6s ms   p99 %6s ms\n" "$herald_label" "$herald_rate" "$herald_p50" "$herald_p99"
printf "  %-34s %8s/s   p50 %6s ms   p99 %6s ms   RSS %s MiB\n" "Alertmanager (in memory)" "$am_rate" "$am_p50_ms" "$am_p99_ms" "$((am_rss / 1024))"
python3 -c "print(f'  ratio herald/Alertmanager: {$herald_rate / $am_rate:.2f}')"
