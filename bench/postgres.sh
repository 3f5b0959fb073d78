#!/usr/bin/env bash
# Intake on PostgreSQL beside sled, in one run: distinct signed callbacks for DURATION seconds
# each (default 10) at 32 connections into herald on sled, on PostgreSQL with one replica, and
# with two replicas (16 load connections each, both on one database); each replica's pool holds
# PG_POOL database connections (herald's default store.pool_size, 8). The database is a throwaway
# cluster on loopback with the server's defaults (fsync and synchronous_commit on: every 2xx is
# durable); the target never answers, so the intake alone is measured. A fresh cluster first
# creates its WAL segments (several times slower than a database that has run a while, which
# recycles them), so 1 GB of WAL is written and checkpointed, and a warm-up load runs, before the
# measured loads. Stops by itself.
#
#   bench/postgres.sh
#   DURATION=20 bench/postgres.sh
#   PG_POOL=16 bench/postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
PG_POOL=${PG_POOL:-8} # store.pool_size of each replica (herald's default)
SECRET=bench-secret
POOL_SIZE=${POOL_SIZE:-$((DURATION * 20000))}
. bench/common.sh
require wrk python3 curl
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort | tail -1)
[ -x "$pgbin/initdb" ] || { require initdb=postgresql; pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1); }

cargo build --release --quiet --bin herald
work=$(mktemp -d)
chmod 755 "$work"
pids=()
as_postgres=()
[ "$(id -u)" = 0 ] && as_postgres=(runuser -u postgres --)
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pkill -9 -f "serve --config $work/" 2>/dev/null || true # the heralds started in subshells
  "${as_postgres[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$work/pg"
pg_port=$(free_port)
"${as_postgres[@]}" "$pgbin/initdb" -D "$work/pg/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
"${as_postgres[@]}" "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$work/pg -c max_connections=100" start >/dev/null
"$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qAt -c "CREATE DATABASE herald" postgres
echo "warming the database up: 1 GB of WAL, then a checkpoint (its segments are recycled from then on)..." >&2
"$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qAt postgres >/dev/null <<'SQL'
CREATE TABLE warm AS SELECT g, repeat('x', 600) AS filler FROM generate_series(1, 1400000) g;
DROP TABLE warm;
CHECKPOINT;
SQL

python3 bench/make_callbacks.py tests/fixtures/sentry/issue-created.json "$SECRET" "$work/pool" "$POOL_SIZE" 4
silent_port=$(free_port)
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$silent_port)); s.listen(64); time.sleep(3600)" &
pids+=("$!")

start_herald() { # $1: name, $2: extra TOML for [store]; prints the address
  cat > "$work/$1.toml" <<TOML
[server]
listen = "127.0.0.1:0"
data_dir = "$work/$1-data"
[sentry]
client_secrets = ["$SECRET"]
[store]
$2
[[targets]]
name = "robot"
kind = "dingtalk"
timeout = "1h"
url = "http://127.0.0.1:$silent_port/robot/send?access_token=bench"
TOML
  RUST_LOG=warn,herald::server=info target/release/herald serve --config "$work/$1.toml" >/dev/null 2>"$work/$1.log" &
  herald_address "$work/$1.log"
}
load() { # $1: address, $2: connections, $3: pool file prefix → the RESULT line
  HERALD_BENCH_POOL="$3" wrk -t2 -c"$2" -d"${DURATION}s" --timeout 5s -s bench/sentry.lua "http://$1" | grep '^RESULT'
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# Two pools of distinct callbacks per run (two wrk threads each).
split_pool() { # $1: prefix for the second load: the pool's files 2 and 3
  cp "$work/pool.2" "$1.0"; cp "$work/pool.3" "$1.1"
}
split_pool "$work/second"

echo "running sled..." >&2
sled=$(start_herald sled "")
r_sled=$(load "$sled" 32 "$work/pool")
pkill -9 -f "$work/sled.toml" || true
echo "running PostgreSQL, one replica..." >&2
one=$(start_herald one "url = \"postgres://postgres@127.0.0.1:$pg_port/herald\"
pool_size = $PG_POOL")
echo "warming the database up (${WARMUP:-5}s)..." >&2
DURATION=${WARMUP:-5} load "$one" 32 "$work/second" >/dev/null
r_one=$(load "$one" 32 "$work/pool")
pkill -9 -f "$work/one.toml" || true
echo "running PostgreSQL, two replicas..." >&2
"$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qAt -c "DROP DATABASE herald" -c "CREATE DATABASE herald" postgres
a=$(start_herald a "url = \"postgres://postgres@127.0.0.1:$pg_port/herald\"
pool_size = $PG_POOL")
b=$(start_herald b "url = \"postgres://postgres@127.0.0.1:$pg_port/herald\"
pool_size = $PG_POOL")
load "$a" 16 "$work/pool" > "$work/a.result" &
load_a=$!
r_b=$(load "$b" 16 "$work/second")
wait "$load_a"
r_a=$(cat "$work/a.result")
connections=$("$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qAt -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'herald'" postgres)

echo
echo "herald intake, ${DURATION}s each, durable (sled: its flush; PostgreSQL: fsync and synchronous_commit on), loopback, 2 cores"
printf '  %-34s %8s/s   p99 %7s ms\n' "sled, 32 connections" "$(field "$r_sled" rate)" "$(field "$r_sled" p99_ms)"
printf '  %-34s %8s/s   p99 %7s ms\n' "PostgreSQL, 1 replica, 32 conns" "$(field "$r_one" rate)" "$(field "$r_one" p99_ms)"
two=$(( $(field "$r_a" rate) + $(field "$r_b" rate) ))
p99=$(python3 -c "print(max($(field "$r_a" p99_ms), $(field "$r_b" p99_ms)))")
printf '  %-34s %8s/s   p99 %7s ms\n' "PostgreSQL, 2 replicas, 16 each" "$two" "$p99"
echo "  database connections held by the two replicas: $connections (store.pool_size = $PG_POOL each)"
for r in "$r_sled" "$r_one" "$r_a" "$r_b"; do
  [ "$(field "$r" errors_status)" = 0 ] || echo "  note: $(field "$r" errors_status) non-2xx answers in one run" >&2
done
