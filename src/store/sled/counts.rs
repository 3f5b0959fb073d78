//! Queued jobs and dead letters per target, counted as they change rather than by scanning: what
//! `/metrics`, `/readyz` and the admin API read costs the same at any backlog.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::keys::count_per_target;
use crate::store::StoreError;

#[derive(Default)]
pub(super) struct QueueCounts {
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    queued: BTreeMap<String, u64>,
    dead: BTreeMap<String, u64>,
}

impl QueueCounts {
    /// Counted once, on open, from the keys alone, with what the spool holds queued.
    pub(super) fn load(
        jobs: &sled::Tree,
        dead_letters: &sled::Tree,
        spooled: BTreeMap<String, u64>,
    ) -> Result<QueueCounts, StoreError> {
        let mut queued = count_per_target(jobs)?;
        for (target, count) in spooled {
            *queued.entry(target).or_default() += count;
        }
        Ok(QueueCounts {
            counts: Mutex::new(Counts {
                queued,
                dead: count_per_target(dead_letters)?,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Plain numbers; nothing that can panic runs under the lock.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn queued(&self, target: &str) {
        *self.lock().queued.entry(target.to_string()).or_default() += 1;
    }

    pub(super) fn unqueued(&self, target: &str) {
        decrement(&mut self.lock().queued, target);
    }

    pub(super) fn buried(&self, target: &str, was_queued: bool) {
        let mut counts = self.lock();
        if was_queued {
            decrement(&mut counts.queued, target);
        }
        *counts.dead.entry(target.to_string()).or_default() += 1;
    }

    pub(super) fn replayed(&self, target: &str) {
        let mut counts = self.lock();
        decrement(&mut counts.dead, target);
        *counts.queued.entry(target.to_string()).or_default() += 1;
    }

    pub(super) fn queued_per_target(&self) -> BTreeMap<String, u64> {
        self.lock().queued.clone()
    }

    pub(super) fn dead_per_target(&self) -> BTreeMap<String, u64> {
        self.lock().dead.clone()
    }

    pub(super) fn queued_total(&self) -> u64 {
        self.lock().queued.values().sum()
    }

    pub(super) fn dead_total(&self) -> u64 {
        self.lock().dead.values().sum()
    }
}

/// Targets without any are left out, as a scan would leave them.
fn decrement(counts: &mut BTreeMap<String, u64>, target: &str) {
    if let Some(count) = counts.get_mut(target) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(target);
        }
    }
}
