#!/usr/bin/env bash
# This herald beside another revision of herald, in one run: builds REV in a git worktree (its own
# target folder), then runs bench/intake.sh and bench/delivery.sh on each binary in turn, ROUNDS
# times, so both see the same machine at the same moment. For "what did this change cost".
#
#   bench/versus-revision.sh f2069a8            # 2 rounds, intake 10 s, 100,000 jobs drained
#   ROUNDS=3 DURATION=20 JOBS=10000 bench/versus-revision.sh HEAD~4
set -euo pipefail
cd "$(dirname "$0")/.."

REV=${1:?usage: bench/versus-revision.sh REV}
ROUNDS=${ROUNDS:-2}
export DURATION=${DURATION:-10}
export JOBS=${JOBS:-100000}
BASE_DIR=${BASE_DIR:-${TMPDIR:-/tmp}/herald-bench-$(git rev-parse --short "$REV")}

if [ ! -d "$BASE_DIR" ]; then
  git worktree add --detach "$BASE_DIR" "$REV" >/dev/null
fi
echo "building $REV in $BASE_DIR and this tree..." >&2
(cd "$BASE_DIR" && cargo build --release --quiet --bin herald)
cargo build --release --quiet --bin herald --example sink
cp target/release/herald "$BASE_DIR/herald-this"
this="$BASE_DIR/herald-this"
base="$BASE_DIR/target/release/herald"

for round in $(seq "$ROUNDS"); do
  for who in base this; do
    bin=${!who}
    echo "== round $round: $who ($([ "$who" = base ] && echo "$REV" || echo "this tree"))"
    HERALD_BIN=$bin bench/intake.sh | grep -E 'accepted/s|latency|RSS'
    HERALD_BIN=$bin bench/delivery.sh | grep -E 'start with|drain|RSS'
  done
done
