//! Wake-ups for the workers: the intake queues a job, the target's worker hears of it at once
//! rather than at its next timer. Local to one process; a backend shared by several processes
//! says how often a worker must look for jobs another process queued
//! (`StoreBackend::idle_poll`).

use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// Wakes a target's worker when the intake queues a job for it, so a new alert goes out at once
/// rather than at the worker's next timer.
#[derive(Clone, Default)]
pub struct Wakers {
    by_target: Arc<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    pub fn new<'a>(targets: impl IntoIterator<Item = &'a str>) -> Wakers {
        let by_target = targets
            .into_iter()
            .map(|name| (name.to_string(), Arc::new(Notify::new())))
            .collect();
        Wakers {
            by_target: Arc::new(by_target),
        }
    }

    pub fn wake(&self, targets: &[&str]) {
        for target in targets {
            if let Some(notify) = self.by_target.get(*target) {
                notify.notify_one();
            }
        }
    }

    /// The signal of `target`'s worker.
    pub fn get(&self, target: &str) -> Arc<Notify> {
        self.by_target.get(target).cloned().unwrap_or_default()
    }
}
