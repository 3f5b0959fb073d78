# Shared by the bench scripts (sourced from the repository's root).

# require COMMAND[=PACKAGE] ...: installs from Debian's packages whatever command is missing.
require() {
  local missing=()
  for wanted in "$@"; do
    command -v "${wanted%%=*}" >/dev/null 2>&1 || missing+=("${wanted#*=}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "installing ${missing[*]} from Debian's packages" >&2
  local sudo=""
  [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# herald_address LOG: waits (up to 10 s) until the herald whose log is LOG says where it listens,
# and prints that address (host:port); otherwise prints the log to stderr and exits.
herald_address() {
  local address
  for _ in $(seq 100); do
    address=$(grep -o 'listening on http://[0-9.:]*' "$1" | sed 's|listening on http://||' || true)
    [ -n "$address" ] && { echo "$address"; return; }
    sleep 0.1
  done
  cat "$1" >&2
  exit 1
}

# wrk_result PREFIX LINE: the fields of a wrk script's RESULT line (requests=… errors_status=…)
# as shell assignments, each name after PREFIX, for the caller to eval.
wrk_result() {
  echo "$2" | sed 's/^RESULT //; s/ /\n/g' | sed "s/^/$1/"
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# settle_disk [FILE ...]: right before a run's load starts. Dirty pages left by earlier work (a
# build, the last run's log, a pool just generated) go to disk now, not in the middle of the run,
# where the server's syncs would wait behind them; and the FILEs a load script reads as it goes
# (a pool, a line per request) are read into the page cache, so none of them comes from the disk
# the server syncs to.
settle_disk() {
  sync
  [ $# -eq 0 ] || cat "$@" >/dev/null
}

# run_intake [NAME=value ...]: one run of bench/intake.sh with those variables set (TARGET,
# DURATION, ...). Sets herald_out (what it printed) and, read from it, herald_rate, herald_p50,
# herald_p99 (ms), herald_cpu_us (herald's CPU per callback) and herald_busy (% of its core busy).
run_intake() {
  herald_out=$(env "$@" bench/intake.sh 2>/dev/null)
  herald_rate=$(echo "$herald_out" | awk '/accepted\/s/ {print $2}')
  herald_p50=$(echo "$herald_out" | awk '/latency/ {print $3}')
  herald_p99=$(echo "$herald_out" | awk '/latency/ {print $6}')
  herald_cpu_us=$(echo "$herald_out" | awk '/^  CPU/ {print $2}')
  herald_busy=$(echo "$herald_out" | awk '/^  core busy/ {print $3}')
}

# process_ticks PID: the CPU time a process has used so far (user + system), in clock ticks: less
# noisy than a rate when the disk is.
process_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# cpu_us_each TICKS_BEFORE TICKS_AFTER COUNT: the CPU time between two of process_ticks's
# readings, in µs for each of COUNT requests.
cpu_us_each() {
  python3 -c "import sys; b, a, n, hz = map(int, sys.argv[1:]); print(f'{(a - b) / hz / max(n, 1) * 1e6:.0f}')" \
    "$1" "$2" "$3" "$(getconf CLK_TCK)"
}

# core_ticks CPU: how long that CPU has been busy, how long it has run in all, and how long the
# hypervisor kept it for others (steal), in clock ticks (/proc/stat). Idle and waiting on I/O are
# not busy; steal counts in all, not as busy: a run in which it took much measured a slower machine.
core_ticks() {
  awk -v cpu="cpu$1" '$1 == cpu {print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9}' /proc/stat
}

# busy_percent "BEFORE" "AFTER": how busy a CPU was between two of core_ticks's readings. A server
# whose core is busy less than all the time was waiting with nothing to do (for its disk, or for
# the load's next request).
busy_percent() {
  python3 -c "import sys; b0, t0, _, b1, t1, _ = map(int, sys.argv[1:]); print(f'{100 * (b1 - b0) / max(t1 - t0, 1):.0f}')" $1 $2
}
