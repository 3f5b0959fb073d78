#!/usr/bin/env bash
# Store-size benchmark: 1,000,000 signed issue-alert callbacks about 10,000 distinct issues, at 32
# connections. Repeats of an issue within the fold window are folded, so herald stores one alert per
# issue (plus dedupe records); the script prints the data folder's size after the load and after the
# sweep that expires dedupe records and delivered alerts.
#
#   bench/store-size.sh                       # CALLBACKS=1000000 ISSUES=10000
#   CALLBACKS=100000 bench/store-size.sh      # a shorter run
set -euo pipefail
cd "$(dirname "$0")/.."

CALLBACKS=${CALLBACKS:-1000000}
ISSUES=${ISSUES:-10000}
THREADS=2
SECRET=bench-secret
. bench/common.sh
require wrk python3 curl

cargo build --release --quiet --bin herald
work=$(mktemp -d)
herald_pid=""
trap 'kill $herald_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
port=$(free_port)

echo "generating $CALLBACKS callbacks about $ISSUES issues..." >&2
python3 bench/make_repeats.py tests/fixtures/sentry/event_alert-triggered.with-alert-rule-action.ipe-mock.json \
  "$SECRET" "$work/pool" "$CALLBACKS" "$ISSUES" "$THREADS"

# Short expiry times, so the sweep can be seen within the run; the fold window is the default.
cat > "$work/herald.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
data_dir = "$work/data"
[sentry]
client_secrets = ["$SECRET"]
[dedupe]
window = "10m"
remember = "20s"
[store]
retention = "1s"
sweep_every = "15s"
[[targets]]
name = "stdout"
kind = "console"
TOML
target/release/herald serve --config "$work/herald.toml" >/dev/null 2>"$work/herald.log" &
herald_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

started=$(date +%s.%N)
HERALD_BENCH_POOL="$work/pool" wrk -t"$THREADS" -c32 -d1h --timeout 10s -s bench/once.lua "http://127.0.0.1:$port" >"$work/wrk.out" &
wrk_pid=$!
while [ "$(ls "$work"/pool.done.* 2>/dev/null | wc -l)" -lt "$THREADS" ]; do sleep 0.2; done
finished=$(date +%s.%N)
kill -INT "$wrk_pid"; wait "$wrk_pid" || true
rate=$(python3 -c "print(round($CALLBACKS / ($finished - $started)))")
# wrk's own counts include the health checks sent after the pools ran out; its non-2xx count
# (status errors) is about callbacks only, since health checks always answer 200.
result=$(grep '^RESULT' "$work/wrk.out")
echo "$result" >&2
ready=$(curl -s "http://127.0.0.1:$port/readyz")
size_kib() { du -sk "$work/data" | cut -f1; }
after_load=$(size_kib)
echo "waiting for the sweeps (dedupe records expire after 20 s)..." >&2
sleep 50
after_sweep=$(size_kib)
sweeps=$(grep -c 'swept the store' "$work/herald.log" || true)
removed=$(grep 'swept the store' "$work/herald.log" | python3 -c '
import re, sys
totals = {}
for line in sys.stdin:
    for key, value in re.findall(r"(dedupe_records|fold_records|alerts)=(\d+)", line):
        totals[key] = totals.get(key, 0) + int(value)
print(" ".join(f"{k}={v}" for k, v in totals.items()))')
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$herald_pid/status")

# A second round of as many new callbacks (other events of the same issues): sled reuses the space
# the sweep freed, so the folder should grow far less than in the first round.
echo "second round..." >&2
python3 bench/make_repeats.py tests/fixtures/sentry/event_alert-triggered.with-alert-rule-action.ipe-mock.json \
  "$SECRET" "$work/pool" "$CALLBACKS" "$ISSUES" "$THREADS" "$CALLBACKS"
rm -f "$work"/pool.done.*
HERALD_BENCH_POOL="$work/pool" wrk -t"$THREADS" -c32 -d1h --timeout 10s -s bench/once.lua "http://127.0.0.1:$port" >/dev/null &
wrk_pid=$!
while [ "$(ls "$work"/pool.done.* 2>/dev/null | wc -l)" -lt "$THREADS" ]; do sleep 0.2; done
kill -INT "$wrk_pid"; wait "$wrk_pid" || true
after_second=$(size_kib)
sleep 50
after_second_sweep=$(size_kib)

echo
echo "herald store size: $CALLBACKS callbacks about $ISSUES issues"
echo "  load            $rate callbacks/s ($(echo "$result" | grep -o 'errors_status=[0-9]*'))"
echo "  after the load  $((after_load / 1024)) MiB   $ready"
echo "  after $sweeps sweeps  $((after_sweep / 1024)) MiB   removed: $removed"
echo "  second round    $((after_second / 1024)) MiB after the load, $((after_second_sweep / 1024)) MiB after its sweeps"
echo "  RSS             $((rss / 1024)) MiB after the first round"
