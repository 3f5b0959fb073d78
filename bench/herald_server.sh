# herald under the intake benchmarks' load (sourced after common.sh by bench/intake.sh and
# bench/alternating.sh): the pool of signed callbacks wrk posts, and a herald whose one target's
# downstream is in a given state.

BENCH_SECRET=bench-secret

# ensure_pool SIZE THREADS: sets pool to the prefix of SIZE distinct signed callbacks split in
# THREADS files (one per wrk thread), generated in $work, or kept in POOL_CACHE (a folder) for the
# next run: generating them takes longer than a 10 s run. Reusing them is fair: each run's data
# folder is new, so its callbacks are new to herald.
ensure_pool() {
  local size=$1 threads=$2
  pool="$work/pool"
  if [ -n "${POOL_CACHE:-}" ]; then
    mkdir -p "$POOL_CACHE"
    pool="$POOL_CACHE/pool-$size-$threads"
  fi
  if [ ! -f "$pool.done" ]; then
    echo "generating $size distinct signed callbacks..." >&2
    python3 bench/make_callbacks.py tests/fixtures/sentry/issue-created.json "$BENCH_SECRET" "$pool" "$size" "$threads"
    touch "$pool.done"
  fi
}

webhook_to() { # $1: URL, $2: timeout
  printf '[[targets]]\nname = "hook"\nkind = "webhook"\nurl = "%s"\ntimeout = "%s"\nretry = ["1h"]\n' "$1" "$2"
}

# start_herald FOLDER TARGET: starts HERALD_BIN on HERALD_CPU with its data in FOLDER and its one
# target in the state TARGET names (below), and waits until it listens. Sets herald_pid, address
# (host:port) and downstream_pid (the fake downstream, if any; it runs on LOAD_CPU: it is part of
# the harness, and takes nothing from herald's core).
#
# silent: a DingTalk robot that never answers, so jobs are queued but not sent (the intake
# alone); console: every alert rendered and written to /dev/null on herald's core; refused, failing
# and hanging: a webhook whose downstream refuses connections, answers 503, or never answers
# (2 s timeout).
start_herald() {
  local folder=$1 target=$2 target_toml port
  mkdir -p "$folder"
  downstream_pid=""
  case "$target" in
    console)
      target_toml=$'[[targets]]\nname = "stdout"\nkind = "console"'
      ;;
    refused) # nothing listens on the port: every connection is refused
      target_toml=$(webhook_to "http://127.0.0.1:$(free_port)/hook" "10s")
      ;;
    failing) # a downstream that answers every request 503
      port=$(free_port)
      taskset -c "$LOAD_CPU" python3 - "$port" <<'PY' &
import http.server, sys
class Unavailable(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Unavailable).serve_forever()
PY
      downstream_pid=$!
      target_toml=$(webhook_to "http://127.0.0.1:$port/hook" "10s")
      ;;
    hanging|silent)
      # A listener that accepts connections and never answers.
      port=$(free_port)
      taskset -c "$LOAD_CPU" python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$port)); s.listen(64); time.sleep(3600)" &
      downstream_pid=$!
      if [ "$target" = hanging ]; then # requests time out after 2 s
        target_toml=$(webhook_to "http://127.0.0.1:$port/hook" "2s")
      else # the robot's one request hangs for the whole run: nothing is attempted after it
        target_toml=$'[[targets]]\nname = "robot"\nkind = "dingtalk"\ntimeout = "1h"\n'"url = \"http://127.0.0.1:$port/robot/send?access_token=bench\""
      fi
      ;;
    *) echo "TARGET must be silent, console, refused, failing or hanging" >&2; exit 2 ;;
  esac
  cat > "$folder/herald.toml" <<TOML
[server]
listen = "127.0.0.1:0"
data_dir = "$folder/data"

[sentry]
client_secrets = ["$BENCH_SECRET"]

$target_toml
TOML
  RUST_LOG="${RUST_LOG:-info},herald::server=info" taskset -c "$HERALD_CPU" "$HERALD_BIN" serve --config "$folder/herald.toml" \
    >/dev/null 2>"$folder/herald.log" &
  herald_pid=$!
  address=$(herald_address "$folder/herald.log")
}

# stored_alerts [ADDRESS]: how many alerts the herald at ADDRESS ($address unless given) holds
# (its /readyz).
stored_alerts() {
  curl -s "http://${1:-$address}/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["alerts"])'
}

# check_stored STORED ANSWERED IN_FLIGHT [LABEL]: exits, saying so, unless a herald that answered
# ANSWERED callbacks 2xx stored them all. wrk counts only the answers it read before it stopped:
# up to IN_FLIGHT requests still in flight then may be stored without being counted. Fewer stored
# than answered is a lost callback.
check_stored() {
  if [ "$1" -lt "$2" ] || [ "$1" -gt $(($2 + $3)) ]; then
    echo "MISMATCH: herald${4:+ ($4)} answered 2xx to $2 callbacks but stored $1" >&2
    exit 1
  fi
}
