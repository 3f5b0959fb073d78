//! Where a group commit waits for the disk: on the thread that runs the commit, or on a thread of
//! the blocking pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A sync that took at least this long sends the syncs after it to the blocking pool, until one
/// is quick again.
const IN_PLACE_UNDER: Duration = Duration::from_millis(1);

/// Where the next sync runs, from how long the last one took.
///
/// Handing a sync to the blocking pool and back costs a thread's wake-up and two context switches
/// each way, and parks the runtime's worker meanwhile: about 0.1 ms of CPU per commit in a
/// virtual machine, and as much again of waiting, beside a sync of 0.2–0.4 ms (3–4 µs of CPU per
/// callback at full intake, README "Performance"). While a quick sync runs there is little else
/// for that worker to do: the callers of the moment are waiting for this very sync. So a quick
/// disk is synced on the commit's own thread. A slow one (a spinning disk, a network volume, a disk
/// under load) is handed off, and the runtime serves the next batch and everything else while it
/// waits. A disk that stops answering holds at most one worker thread: no other commit starts
/// before this one ends.
#[derive(Default)]
pub(super) struct SyncPlace {
    /// How long the last sync took, in microseconds (0 before the first).
    last_micros: AtomicU64,
}

impl SyncPlace {
    /// Whether the next sync runs on the commit's own thread.
    pub(super) fn in_place(&self) -> bool {
        self.last_micros.load(Ordering::Relaxed) < IN_PLACE_UNDER.as_micros() as u64
    }

    /// Records how long a sync took, wherever it ran.
    pub(super) fn took(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.last_micros.store(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_sync_sends_the_next_ones_away_until_one_is_quick_again() {
        let place = SyncPlace::default();
        assert!(place.in_place(), "before any sync");
        place.took(Duration::from_micros(250));
        assert!(place.in_place());
        place.took(Duration::from_millis(8));
        assert!(!place.in_place());
        place.took(Duration::from_millis(1));
        assert!(!place.in_place(), "a millisecond is slow");
        place.took(Duration::from_micros(400));
        assert!(place.in_place());
    }
}
