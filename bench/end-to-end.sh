#!/usr/bin/env bash
# End-to-end latency: a steady RATE of signed callbacks (default 1,000/s for 20 s) into herald,
# delivered by a webhook target to a local sink; for each callback herald answered 202, the time from
# sending it to the sink receiving the message (intake, fsync, queue, delivery). Prints the achieved rate and the p50/p99/max of that latency.
#
#   bench/end-to-end.sh            # RATE=1000 DURATION=20
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-1000}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-16}
. bench/common.sh
require python3 curl
cargo build --release --quiet --bin herald --example sink
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
herald_port=$(free_port); sink_port=$(free_port)
count=$(python3 -c "print(int($RATE * $DURATION))")
python3 bench/make_callbacks.py tests/fixtures/sentry/issue-created.json bench-secret "$work/pool" "$count" 1

target/release/examples/sink "127.0.0.1:$sink_port" 2>/dev/null & pids+=("$!")
cat > "$work/herald.toml" <<TOML
[server]
listen = "127.0.0.1:$herald_port"
data_dir = "$work/data"
[sentry]
client_secrets = ["bench-secret"]
[[targets]]
name = "sink"
kind = "webhook"
url = "http://127.0.0.1:$sink_port/hook"
TOML
target/release/herald serve --config "$work/herald.toml" >/dev/null 2>"$work/herald.log" & pids+=("$!")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$herald_port/healthz" >/dev/null && break; sleep 0.1; done

python3 bench/steady_load.py "$work/pool.0" 127.0.0.1 "$herald_port" "$RATE" "$DURATION" "$CONNECTIONS" "$work/load.json"
for _ in $(seq 100); do
  [ "$(curl -s "http://127.0.0.1:$herald_port/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued_jobs"])')" = 0 ] && break
  sleep 0.1
done
curl -s "http://127.0.0.1:$sink_port/arrivals" > "$work/arrivals.json"
python3 - "$work/load.json" "$work/arrivals.json" "$RATE" <<'PY'
import json, sys
load, arrivals, rate = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
accepted = load["accepted"]
latencies = sorted((arrivals[i] - t) / 1000 for i, t in accepted.items() if i in arrivals)
missing = [i for i in accepted if i not in arrivals]
pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"herald end to end: {len(accepted)} callbacks at {len(accepted) / load['seconds']:.0f}/s (asked {rate:.0f}/s), {load['failed']} refused")
print(f"  callback sent → message at the sink   p50 {pick(0.50):.2f} ms   p99 {pick(0.99):.2f} ms   max {latencies[-1]:.2f} ms")
print(f"  not delivered: {len(missing)}")
PY
