#!/usr/bin/env bash
# What looking up a callback's dedupe key costs once many spool segments are sealed (a busy
# intake seals about one a second, and their claims are remembered for `dedupe.remember`): 400
# sealed segments, 200,000 keys not seen before. Prints nanoseconds per lookup.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked --quiet --lib bench_claims_behind_many_sealed_segments -- --ignored --nocapture 2>&1 |
  grep 'ns a lookup'
