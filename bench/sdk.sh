#!/usr/bin/env bash
# SDK intake beside the webhook intake, in one run: distinct envelopes of sentry-python's Flask
# error (spread over ISSUES issues) posted to /api/42/envelope/ at 32 connections, herald on CPU 0
# and wrk on CPU 1, each 200 durable; then bench/intake.sh's signed webhook callbacks on the same
# build. Prints both rates.
#
#   bench/sdk.sh                    # DURATION=10, ISSUES=1000
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ISSUES=${ISSUES:-1000}
POOL_SIZE=${POOL_SIZE:-$((DURATION * 15000))}
KEY=0123456789abcdef0123456789abcdef
. bench/common.sh
require wrk python3 taskset=util-linux curl

if [ -z "${HERALD_BIN:-}" ]; then cargo build --release --quiet --bin herald; fi
HERALD_BIN=${HERALD_BIN:-target/release/herald}
work=$(mktemp -d)
herald_pid=""
silent_pid=""
trap 'kill $herald_pid $silent_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT

echo "generating $POOL_SIZE distinct envelopes over $ISSUES issues..." >&2
python3 bench/make_envelopes.py tests/fixtures/sentry-sdk/003-default-flask.envelope "$work/pool" "$POOL_SIZE" 2 "$ISSUES"
silent_port=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$silent_port)); s.listen(64); time.sleep(3600)" &
silent_pid=$!
cat > "$work/herald.toml" <<TOML
[server]
listen = "127.0.0.1:0"
data_dir = "$work/data"

[sdk]
events_per_minute = 100000000

[[sdk.projects]]
id = 42
name = "shop"
public_keys = ["$KEY"]

[[targets]]
name = "robot"
kind = "dingtalk"
timeout = "1h"
url = "http://127.0.0.1:$silent_port/robot/send?access_token=bench"
TOML
RUST_LOG=warn,herald::server=info taskset -c 0 "$HERALD_BIN" serve --config "$work/herald.toml" >/dev/null 2>"$work/herald.log" &
herald_pid=$!
address=$(herald_address "$work/herald.log")
settle_disk "$work"/pool.*
sdk=$(HERALD_BENCH_POOL="$work/pool" HERALD_BENCH_KEY=$KEY taskset -c 1 \
  wrk -t2 -c32 -d"${DURATION}s" --timeout 5s -s bench/sdk.lua "http://$address" | grep '^RESULT')
eval "$(wrk_result sdk_ "$sdk")"
kill $herald_pid; wait $herald_pid 2>/dev/null || true; herald_pid=""

hook=$(DURATION=$DURATION TARGET=silent HERALD_BIN=$HERALD_BIN bench/intake.sh 2>/dev/null)
hook_rate=$(echo "$hook" | awk '/accepted\/s/ {print $2}')
hook_p99=$(echo "$hook" | awk '/latency/ {print $6}')

echo
echo "durable intake, ${DURATION}s each, 32 connections, herald on CPU 0, wrk on CPU 1"
echo "  SDK envelopes (Flask error, $ISSUES issues)  $sdk_rate/s   p99 $sdk_p99_ms ms   ($sdk_errors_status non-2xx)"
echo "  Sentry webhook callbacks (issue.created)    $hook_rate/s   p99 $hook_p99 ms"
