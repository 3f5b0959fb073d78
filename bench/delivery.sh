#!/usr/bin/env bash
# Delivery benchmark: how fast herald drains a queue of 10,000 jobs into a fast local sink, and
# how much memory it uses meanwhile.
#
# 1. herald accepts JOBS callbacks while its DingTalk target points at a listener that never
#    answers, so every job stays queued; then herald is killed (SIGKILL).
# 2. A fast local sink (examples/sink.rs) starts, herald restarts pointed at it, and the script
#    times the drain: from start to an empty queue, with every message counted by the sink.
#
#   bench/delivery.sh           # JOBS=10000
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-10000}
SECRET=bench-secret
. bench/common.sh
require python3 curl

# HERALD_BIN: another herald binary to measure (bench/versus-revision.sh sets it).
cargo build --release --quiet --example sink
if [ -z "${HERALD_BIN:-}" ]; then cargo build --release --quiet --bin herald; fi
HERALD_BIN=${HERALD_BIN:-target/release/herald}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

herald_port=$(free_port); sink_port=$(free_port); silent_port=$(free_port)

config() { # $1: robot port, $2: timeout
  cat > "$work/herald.toml" <<TOML
[server]
listen = "127.0.0.1:$herald_port"
data_dir = "$work/data"
[sentry]
client_secrets = ["$SECRET"]
[[targets]]
name = "sink"
kind = "dingtalk"
url = "http://127.0.0.1:$1/robot/send?access_token=bench"
max_per_minute = 0
timeout = "$2"
TOML
}
start_herald() {
  "$HERALD_BIN" serve --config "$work/herald.toml" >/dev/null 2>>"$work/herald.log" &
  herald_pid=$!; pids+=("$herald_pid")
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$herald_port/healthz" >/dev/null && return; sleep 0.05; done
  cat "$work/herald.log"; exit 1
}
queued() { curl -s "http://127.0.0.1:$herald_port/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued_jobs"])'; }
rss_mib() { echo $(( $(awk '/^VmRSS/ {print $2}' "/proc/$1/status") / 1024 )); }

# Phase 1: a listener that accepts connections and never answers keeps every job queued.
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$silent_port)); s.listen(1024); time.sleep(3600)" &
pids+=("$!")
config "$silent_port" "1h"
start_herald
echo "queueing $JOBS jobs..." >&2
if command -v wrk >/dev/null; then
  # wrk posts the pool over 32 connections until every callback is in; a callback sent twice (the
  # pool starts again when used up) is answered "duplicate" and queues nothing.
  python3 bench/make_callbacks.py tests/fixtures/sentry/issue-created.json "$SECRET" "$work/pool" "$JOBS" 2
  while [ "$(queued)" -lt "$JOBS" ]; do
    HERALD_BENCH_POOL="$work/pool" wrk -t2 -c32 -d"$(( (JOBS - $(queued)) / 5000 + 2 ))s" --timeout 10s \
      -s bench/sentry.lua "http://127.0.0.1:$herald_port" >/dev/null || true
  done
else
python3 bench/make_callbacks.py tests/fixtures/sentry/issue-created.json "$SECRET" "$work/pool" "$JOBS" 1
python3 - "$work/pool.0" "$herald_port" <<'PY'
import concurrent.futures, http.client, sys, threading
pool, port = sys.argv[1], int(sys.argv[2])
lines = open(pool).read().splitlines()
local = threading.local()
def post(line):
    if not hasattr(local, "connection"):
        local.connection = http.client.HTTPConnection("127.0.0.1", port)
    signature, body = line.split("\t", 1)
    local.connection.request("POST", "/hooks/sentry", body, {"Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": signature, "Content-Type": "application/json"})
    response = local.connection.getresponse(); response.read()
    assert response.status == 202, response.status
with concurrent.futures.ThreadPoolExecutor(32) as executor:
    list(executor.map(post, lines))
PY
fi
[ "$(queued)" = "$JOBS" ] || { echo "expected $JOBS queued jobs, found $(queued)" >&2; exit 1; }
rss_queued=$(rss_mib "$herald_pid")
kill -9 "$herald_pid"; wait "$herald_pid" 2>/dev/null || true

# Phase 2: the fast sink, and herald restarted on the same data folder.
target/release/examples/sink "127.0.0.1:$sink_port" 2>/dev/null &
pids+=("$!")
sleep 0.3
config "$sink_port" "10s"
started=$(date +%s.%N)
start_herald
ready=$(date +%s.%N)
rss_peak=0
while [ "$(queued)" != 0 ]; do
  rss=$(rss_mib "$herald_pid"); [ "$rss" -gt "$rss_peak" ] && rss_peak=$rss
  sleep 0.05
done
drained=$(date +%s.%N)
delivered=$(curl -s "http://127.0.0.1:$sink_port/count")
rss_after=$(rss_mib "$herald_pid")

python3 - "$JOBS" "$started" "$ready" "$drained" "$delivered" <<'PY'
import sys
jobs, started, ready, drained, delivered = int(sys.argv[1]), *map(float, sys.argv[2:5]), int(sys.argv[5])
print(f"herald delivery: {jobs} queued jobs, one DingTalk-style target, a local sink answering errcode 0")
print(f"  start with {jobs} queued   {ready - started:.2f} s (to /healthz)")
print(f"  drain                 {drained - started:.2f} s   {jobs / (drained - started):.0f} deliveries/s")
print(f"  sink received         {delivered}")
PY
echo "  RSS                   ${rss_queued} MiB with the jobs queued, peak ${rss_peak} MiB while draining, ${rss_after} MiB after"
[ "$delivered" -ge "$JOBS" ] || { echo "LOST: the sink received $delivered of $JOBS" >&2; exit 1; }
