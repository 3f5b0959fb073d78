#!/usr/bin/env bash
# Console benchmark: how long each console page takes with ALERTS alerts stored (default 100,000).
# herald (release) takes ALERTS distinct signed callbacks while its one target never answers (so
# every alert is stored and queued), then every page is fetched 20 times with a signed-in session;
# prints each page's median and worst time. Loopback only; stops by itself.
#
#   bench/console.sh
#   ALERTS=10000 bench/console.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ALERTS=${ALERTS:-100000}
THREADS=2
SECRET=bench-secret
TOKEN=bench-admin-token
. bench/common.sh
require wrk python3 curl

cargo build --release --quiet --bin herald
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port); silent_port=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$silent_port)); s.listen(64); time.sleep(3600)" &
pids+=("$!")
cat > "$work/herald.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
data_dir = "$work/data"
admin_token = "$TOKEN"
[sentry]
client_secrets = ["$SECRET"]
[[targets]]
name = "robot"
kind = "dingtalk"
timeout = "1h"
url = "http://127.0.0.1:$silent_port/robot/send?access_token=bench"
TOML
target/release/herald serve --config "$work/herald.toml" >/dev/null 2>"$work/herald.log" &
pids+=("$!")
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done

echo "storing $ALERTS alerts..." >&2
python3 bench/make_callbacks.py tests/fixtures/sentry/issue-created.json "$SECRET" "$work/pool" "$ALERTS" "$THREADS"
HERALD_BENCH_POOL="$work/pool" wrk -t"$THREADS" -c32 -d1h --timeout 10s -s bench/once.lua "http://127.0.0.1:$port" >/dev/null &
wrk_pid=$!
while [ "$(ls "$work"/pool.done.* 2>/dev/null | wc -l)" -lt "$THREADS" ]; do sleep 0.2; done
kill -INT "$wrk_pid"; wait "$wrk_pid" || true
stored=$(curl -s "http://127.0.0.1:$port/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["alerts"])')

cookie=$(curl -s -i -X POST -d "token=$TOKEN" "http://127.0.0.1:$port/ui/sign-in" | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p')
echo
echo "herald console with $stored alerts stored (20 fetches a page, release build, loopback)"
for page in overview deliveries "deliveries?outcome=dead" "deliveries?level=fatal" dead-letters playground; do
  times=$(for _ in $(seq 20); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Cookie: $cookie" "http://127.0.0.1:$port/ui/$page"
  done | sort -n)
  median=$(echo "$times" | sed -n 10p); worst=$(echo "$times" | tail -1)
  awk -v page="/ui/$page" -v m="$median" -v w="$worst" 'BEGIN { printf "  %-26s median %6.1f ms   worst %6.1f ms\n", page, m * 1000, w * 1000 }'
done
