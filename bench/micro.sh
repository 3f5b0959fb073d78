#!/usr/bin/env bash
# Small measurements of one piece each, run from the test binary (the tests named bench_*, which
# `cargo test` leaves out): the parse of a Sentry payload, and what looking up a callback's dedupe
# key costs once many spool segments are sealed (a busy intake seals about one a second, and their
# claims are remembered for `dedupe.remember`), and how long opening the store takes behind an hour
# of them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked --quiet --lib bench_ -- --ignored --nocapture 2>&1 | grep -E ' ns ' | sed 's/^\.*//'
