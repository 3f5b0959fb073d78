//! herald's clock for everything it schedules: job due times, retry waits, rate-limit windows,
//! pauses, fold and dedupe windows.
//!
//! It is wall time that never runs backward. A wall clock stepped back (NTP correcting a clock that
//! ran ahead, a VM resumed from a snapshot) would otherwise leave every stored due time and every
//! recorded send in the future: an hour's step stopped every retry and every rate-limited target
//! for an hour. Here a step back is not followed: time goes on from where herald was, at the pace
//! of the monotonic clock. A step forward is followed (what was due later is due sooner, which
//! loses nothing). The latest time handed out is saved in the store, so a restart after a step
//! back goes on from there too ([`resume_from`]).
//!
//! Times that other parties compare with their own clocks (signatures and their timestamps, the
//! "3 minutes ago" in a message) are taken from the wall clock itself.

use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::time::Instant;

/// The last time handed out, and when (on the monotonic clock).
struct Anchor {
    at: DateTime<Utc>,
    seen: Instant,
}

static ANCHOR: Mutex<Option<Anchor>> = Mutex::new(None);

/// Now, never earlier than any time this clock handed out before.
pub fn now() -> DateTime<Utc> {
    let wall = Utc::now();
    let seen = Instant::now();
    let mut anchor = ANCHOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = match anchor.as_ref() {
        Some(last) => {
            let elapsed = chrono::Duration::from_std(seen.duration_since(last.seen))
                .unwrap_or_else(|_| chrono::Duration::zero());
            wall.max(last.at + elapsed)
        }
        None => wall,
    };
    *anchor = Some(Anchor { at: now, seen });
    now
}

/// Goes on from `latest` (the latest time a herald before this one handed out, from the store)
/// when the wall clock is now behind it.
pub fn resume_from(latest: DateTime<Utc>) {
    let mut anchor = ANCHOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let seen = Instant::now();
    let current = anchor.as_ref().map_or_else(Utc::now, |last| last.at);
    *anchor = Some(Anchor {
        at: current.max(latest).max(Utc::now()),
        seen,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    // `resume_from` moves the clock of the whole test process; it is tested black box
    // (tests/clock.rs).
    #[test]
    fn never_runs_backward() {
        let mut last = now();
        for _ in 0..1000 {
            let next = now();
            assert!(next >= last);
            last = next;
        }
    }
}
