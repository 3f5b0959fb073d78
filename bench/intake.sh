#!/usr/bin/env bash
# Intake benchmark: distinct, signed Sentry callbacks at 32 connections against herald pinned to
# one core (the load generator gets the other). Every 2xx is durable (flushed to disk) before it is
# sent. Prints accepted/s, p50/p99 latency, herald's CPU per callback and how busy its core was,
# RSS idle and after the load, and checks that herald stored exactly as many alerts as it answered
# 2xx.
#
#   bench/intake.sh                  # 20 s run, intake alone
#   TARGET=console bench/intake.sh   # while delivering every alert to the console target
#   DURATION=60 bench/intake.sh
#   POOL_CACHE=/tmp/pools bench/intake.sh  # keep the generated callbacks for the next run
#   TMPDIR=/dev/shm bench/intake.sh  # the data folder on tmpfs, where fdatasync costs nothing: how
#                                    # fast herald is when the disk's sync latency is not the limit
#                                    # (a diagnostic: nothing on tmpfs survives a reboot)
#
# TARGET: herald's one target and the state of its downstream (start_herald in
# bench/herald_server.sh says what each does): silent (the default: the intake alone, nothing is
# sent during the run), console (every alert also rendered and delivered on herald's core), and
# refused, failing and hanging (the intake while a downstream is down; bench/faults.sh runs them
# all).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
HERALD_CPU=${HERALD_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
POOL_SIZE=${POOL_SIZE:-$((DURATION * 45000))}
TARGET=${TARGET:-silent}

. bench/common.sh
require wrk python3 taskset=util-linux curl

# HERALD_BIN: another herald binary to measure (bench/versus-revision.sh sets it); built here otherwise.
if [ -z "${HERALD_BIN:-}" ]; then cargo build --release --quiet; fi
HERALD_BIN=${HERALD_BIN:-target/release/herald}
work=$(mktemp -d)
downstream_pid=""
herald_pid=""
trap 'kill $herald_pid $downstream_pid 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT

. bench/herald_server.sh
ensure_pool "$POOL_SIZE" "$THREADS"
start_herald "$work" "$TARGET"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$herald_pid/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$herald_pid/status"; }
sleep 1
settle_disk "$pool".*
idle_rss=$(rss_kib)
cpu_before=$(process_ticks "$herald_pid")
core_before=$(core_ticks "$HERALD_CPU")

result=$(HERALD_BENCH_POOL="$pool" taskset -c "$LOAD_CPU" \
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s bench/sentry.lua "http://$address" | grep '^RESULT')
core_after=$(core_ticks "$HERALD_CPU")
loaded_rss=$(rss_kib)
cpu_after=$(process_ticks "$herald_pid")
peak_rss=$(hwm_kib)
stored=$(stored_alerts)
# Group commits over the whole run: how many callbacks shared one, and how long each took.
commits=$(curl -s "http://$address/metrics" | awk '/^herald_store_commits_total / {c=$2} /^herald_store_commit_seconds_total / {s=$2} END {print c, s}')
disk=$(du -sk "$work/data" | cut -f1)

eval "$(wrk_result "" "$result")"
accepted=$((requests - errors_status))
echo
echo "herald intake: ${DURATION}s, $CONNECTIONS connections, herald on CPU $HERALD_CPU, wrk on CPU $LOAD_CPU, target $TARGET"
echo "  accepted/s      $rate   ($accepted accepted, $errors_status non-2xx, $errors_other socket errors)"
echo "  latency         p50 ${p50_ms} ms   p99 ${p99_ms} ms   max ${max_ms} ms"
echo "  CPU             $(cpu_us_each "$cpu_before" "$cpu_after" "$accepted") µs of herald's CPU per accepted callback"
echo "  core busy       $(busy_percent "$core_before" "$core_after") % of CPU $HERALD_CPU while the load ran (the rest, herald had nothing to do)"
echo "  RSS             idle $((idle_rss / 1024)) MiB   after load $((loaded_rss / 1024)) MiB   peak $((peak_rss / 1024)) MiB"
echo "  stored alerts   $stored   data folder $((disk / 1024)) MiB"
python3 - $commits "$stored" <<'PY'
import sys
commits, seconds, stored = int(float(sys.argv[1])), float(sys.argv[2]), int(sys.argv[3])
if commits:
    print(f"  group commits   {commits}   {stored / commits:.1f} callbacks each   {seconds / commits * 1e3:.2f} ms each")
PY
[ "$pool_wraps" = 0 ] || echo "  note: the pool of $POOL_SIZE callbacks wrapped $pool_wraps times; raise POOL_SIZE for all-distinct callbacks"
check_stored "$stored" "$accepted" "$CONNECTIONS" # at most one in flight per connection
