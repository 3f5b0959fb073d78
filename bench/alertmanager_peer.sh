# Prometheus Alertmanager, the peer herald's intake is measured beside (sourced after common.sh by
# the bench scripts that compare with it).

# Alertmanager runs where herald runs in the benches that set them, HERALD_CPU (0 unless set), and
# its load where herald's does, LOAD_CPU (1 unless set): the same core, taken in turn.

# start_alertmanager WORK_DIR: a fresh Alertmanager on HERALD_CPU, keeping alerts in memory; waits
# until it is ready. Sets am_pid (for the caller's trap) and am_port.
#
# Each alert is a group of its own (group_by issue), and a group is first sent group_wait after
# its first alert (30 s unless set). A run shorter than that never reaches it, but a server that
# takes turns does (bench/alternating.sh), and then tens of thousands of groups come due at once.
# group_wait is an hour here, so Alertmanager is measured taking alerts in, as herald is.
start_alertmanager() {
  local work=$1
  printf 'route:\n  receiver: "null"\n  group_by: ["issue"]\n  group_wait: 1h\nreceivers:\n  - name: "null"\n' >"$work/alertmanager.yml"
  am_port=$(free_port)
  rm -rf "$work/am-data"
  taskset -c "${HERALD_CPU:-0}" prometheus-alertmanager --config.file="$work/alertmanager.yml" --storage.path="$work/am-data" \
    --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address="" --log.level=warn >"$work/am.log" 2>&1 &
  am_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$am_port/-/ready" >/dev/null && return; sleep 0.1; done
  cat "$work/am.log" >&2
  echo "Alertmanager was not ready after 10 s" >&2
  exit 1
}

stop_alertmanager() {
  kill "$am_pid"; wait "$am_pid" 2>/dev/null || true; am_pid=""
}

# load_alertmanager SECONDS [SLICE]: wrk on LOAD_CPU against the running Alertmanager for SECONDS at
# CONNECTIONS (32 unless set), each request a distinct alert (SLICE keeps them apart from an
# earlier load's).
# Prints wrk's RESULT line.
load_alertmanager() {
  BENCH_SLICE="${2:-0}" taskset -c "${LOAD_CPU:-1}" wrk -t2 -c"${CONNECTIONS:-32}" -d"$1s" --timeout 5s -s bench/alertmanager.lua \
    "http://127.0.0.1:$am_port" | grep '^RESULT'
}

# run_alertmanager WORK_DIR: one run of a fresh Alertmanager under load_alertmanager for DURATION
# seconds. Sets am_rate, am_p50_ms, am_p99_ms, am_rss (KiB), am_cpu_us (its CPU per request
# answered 2xx) and am_busy (% of its core busy while the load ran).
run_alertmanager() {
  local result ticks_before ticks_after core_before core_after
  start_alertmanager "$1"
  settle_disk
  ticks_before=$(process_ticks "$am_pid")
  core_before=$(core_ticks "${HERALD_CPU:-0}")
  result=$(load_alertmanager "$DURATION")
  core_after=$(core_ticks "${HERALD_CPU:-0}")
  ticks_after=$(process_ticks "$am_pid")
  am_busy=$(busy_percent "$core_before" "$core_after")
  am_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$am_pid/status")
  stop_alertmanager
  eval "$(wrk_result am_ "$result")"
  am_cpu_us=$(cpu_us_each "$ticks_before" "$ticks_after" $((am_requests - am_errors_status)))
}
