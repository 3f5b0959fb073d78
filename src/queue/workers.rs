//! [`Workers`]: the running workers, one per target, started and stopped together.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::worker::Worker;
use super::RetrySchedule;
use crate::metrics::Metrics;
use crate::store::{Store, Wakers};
use crate::targets::{Target, TargetConfig};

/// A target and the retry schedule its queue is worked on.
pub struct TargetQueue {
    pub target: Arc<Target>,
    pub schedule: RetrySchedule,
}

impl TargetQueue {
    /// Pairs each built target with the schedule its `[[targets]]` entry asks for.
    pub fn pair(configs: &[TargetConfig], targets: Vec<Arc<Target>>) -> Vec<TargetQueue> {
        targets
            .into_iter()
            .map(|target| {
                let retry = configs
                    .iter()
                    .find(|config| config.name == target.name)
                    .and_then(|config| config.retry.as_deref());
                TargetQueue {
                    schedule: RetrySchedule::configured(retry),
                    target,
                }
            })
            .collect()
    }
}

/// The running workers, one per target.
pub struct Workers {
    stop: watch::Sender<bool>,
    workers: JoinSet<()>,
}

impl Workers {
    /// Starts one worker per target. Each resumes the jobs already queued for it.
    pub fn start(
        store: Store,
        targets: Vec<TargetQueue>,
        wakers: &Wakers,
        metrics: Arc<Metrics>,
    ) -> Workers {
        let (stop, stopped) = watch::channel(false);
        let mut workers = JoinSet::new();
        for TargetQueue { target, schedule } in targets {
            let worker = Worker::new(
                TargetQueue { target, schedule },
                store.clone(),
                wakers,
                metrics.clone(),
                stopped.clone(),
            );
            workers.spawn(worker.run());
        }
        Workers { stop, workers }
    }

    /// No workers, to stand in while workers are being replaced.
    pub fn idle() -> Workers {
        Workers {
            stop: watch::channel(false).0,
            workers: JoinSet::new(),
        }
    }

    /// Stops taking new jobs and waits up to `grace` for attempts in flight to finish. Jobs whose
    /// attempt did not finish stay queued and are sent again after the restart.
    pub async fn stop(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(grace, async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(?grace, "deliveries still in flight after the grace period; they will be retried after the restart");
            self.workers.abort_all();
        }
    }
}
