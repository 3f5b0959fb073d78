//! One worker per target: takes due jobs in order, keeps the target's concurrency and rate limit,
//! and applies each attempt's outcome to the job. A slow or broken target only ever delays itself.

use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::{Attempt, AttemptResult, DeadLetter, DeliveryJob, JobId, RateLimiter, RetrySchedule};
use crate::render::MessageView;
use crate::store::{JobKey, Store};
use crate::targets::{Configured, Delivery, FailureReason, Outcome, Target};

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

    fn get(&self, target: &str) -> Arc<Notify> {
        self.by_target.get(target).cloned().unwrap_or_default()
    }
}

/// The running workers.
pub struct Queue {
    stop: watch::Sender<bool>,
    workers: JoinSet<()>,
}

impl Queue {
    /// Starts one worker per target. Each resumes the jobs already queued for it.
    pub fn start(store: Store, targets: Vec<Configured>, wakers: &Wakers) -> Queue {
        let (stop, stopped) = watch::channel(false);
        let mut workers = JoinSet::new();
        for (target, schedule) in targets {
            let state = store.target_state(&target.name).unwrap_or_else(|error| {
                tracing::warn!(target_name = %target.name, %error, "cannot read the target's saved rate-limit state; starting afresh");
                Default::default()
            });
            let worker = Worker {
                limiter: RateLimiter::new(target.per_minute_limit, state),
                wake: wakers.get(&target.name),
                store: store.clone(),
                target,
                schedule,
                stopped: stopped.clone(),
            };
            workers.spawn(worker.run());
        }
        Queue { stop, workers }
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

struct Worker {
    target: Arc<Target>,
    schedule: RetrySchedule,
    limiter: RateLimiter,
    store: Store,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
}

/// What a finished attempt hands back to its worker.
struct Finished {
    key: JobKey,
    job: DeliveryJob,
    /// The alert's Sentry issue id, for the log line.
    issue_id: String,
    outcome: Outcome,
    started: DateTime<Utc>,
    latency: Duration,
}

impl Worker {
    async fn run(mut self) {
        let mut in_flight: JoinSet<Finished> = JoinSet::new();
        let mut busy: HashSet<JobId> = HashSet::new();
        loop {
            let stopping = *self.stopped.borrow();
            let next_wake = if stopping {
                None
            } else {
                self.start_due_jobs(&mut in_flight, &mut busy)
            };
            if stopping && in_flight.is_empty() {
                break;
            }
            let sleep = next_wake.map_or(Duration::from_secs(3600), |at| {
                (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
            });
            tokio::select! {
                Some(finished) = in_flight.join_next(), if !in_flight.is_empty() => {
                    match finished {
                        Ok(finished) => {
                            busy.remove(&finished.job.id);
                            self.apply(finished);
                        }
                        Err(error) => {
                            // A delivery task panicked: its job stays queued, so it is tried again.
                            tracing::error!(target_name = %self.target.name, %error, "a delivery task failed");
                            busy.clear();
                        }
                    }
                }
                _ = self.wake.notified(), if !stopping => {}
                _ = tokio::time::sleep(sleep), if !stopping => {}
                _ = self.stopped.changed(), if !stopping => {}
            }
        }
    }

    /// Starts as many due jobs as the target's concurrency and rate limit allow; returns when to
    /// look again if nothing else wakes the worker.
    fn start_due_jobs(
        &mut self,
        in_flight: &mut JoinSet<Finished>,
        busy: &mut HashSet<JobId>,
    ) -> Option<DateTime<Utc>> {
        while in_flight.len() < self.target.concurrency {
            let now = Utc::now();
            if let Some(wait) = self.limiter.wait(now) {
                return Some(now + chrono::Duration::from_std(wait).unwrap_or_default());
            }
            let (key, job) = match self.store.next_due_job(&self.target.name, now, busy) {
                Ok(Some(due)) => due,
                Ok(None) => {
                    return match self.store.next_due_time(&self.target.name, busy) {
                        Ok(next) => next,
                        Err(error) => self.store_failed(error),
                    };
                }
                Err(error) => return self.store_failed(error),
            };
            self.limiter.record(now);
            self.save_limiter_state();
            busy.insert(job.id);
            in_flight.spawn(attempt(self.target.clone(), self.store.clone(), key, job));
        }
        None
    }

    fn store_failed(&self, error: crate::store::StoreError) -> Option<DateTime<Utc>> {
        tracing::error!(target_name = %self.target.name, %error, "cannot read the queue; trying again in a second");
        Some(Utc::now() + chrono::Duration::seconds(1))
    }

    fn save_limiter_state(&self) {
        if let Err(error) = self
            .store
            .save_target_state(&self.target.name, self.limiter.state())
        {
            tracing::warn!(target_name = %self.target.name, %error, "cannot save the target's rate-limit state");
        }
    }

    /// Records the attempt and moves the job on: done, rescheduled, or buried as a dead letter.
    fn apply(&mut self, finished: Finished) {
        let Finished {
            key,
            mut job,
            issue_id,
            outcome,
            started,
            latency,
        } = finished;
        let latency_ms = latency.as_millis() as u64;
        let attempt_number = job.attempts.len() + 1;
        let name = self.target.name.as_str();
        let (result, reason, answer) = match &outcome {
            Outcome::Delivered { answer } => (AttemptResult::Delivered, None, answer.clone()),
            Outcome::Retry {
                pause_target: true,
                reason,
                answer,
                ..
            } => (AttemptResult::Throttled, Some(*reason), answer.clone()),
            Outcome::Retry { reason, answer, .. } => {
                (AttemptResult::Failed, Some(*reason), answer.clone())
            }
            Outcome::Permanent { reason, answer } => {
                (AttemptResult::Refused, Some(*reason), answer.clone())
            }
        };
        job.attempts.push(Attempt {
            at: started,
            result,
            reason,
            answer: answer.clone(),
            latency_ms,
        });

        let result = match outcome {
            Outcome::Delivered { .. } => {
                tracing::info!(target_name = name, issue_id = %issue_id, job_id = job.id, attempt = attempt_number, latency_ms, outcome = "delivered", %answer, "delivery");
                self.store.finish_job(&key)
            }
            Outcome::Permanent { reason, .. } => {
                tracing::error!(target_name = name, issue_id = %issue_id, job_id = job.id, attempt = attempt_number, latency_ms, outcome = "dead_letter", reason = reason.as_str(), %answer,
                    "DELIVERY REFUSED by target {name}: the message is kept as a dead letter; check the target's settings");
                self.bury(&key, job, reason, answer)
            }
            Outcome::Retry {
                after,
                pause_target,
                reason,
                ..
            } => {
                let now = Utc::now();
                if pause_target {
                    let until = now
                        + chrono::Duration::from_std(after.unwrap_or(Duration::from_secs(600)))
                            .unwrap_or_default();
                    self.limiter.pause_until(until);
                    self.save_limiter_state();
                    tracing::warn!(target_name = name, paused_until = %until, %answer, "target asked herald to slow down; sending nothing to it until then");
                }
                let failures = job.counted_failures();
                let wait = match (pause_target, after) {
                    (true, Some(after)) => Some(after),
                    (true, None) => Some(Duration::from_secs(600)),
                    (false, told) => self
                        .schedule
                        .delay_after(failures)
                        .map(|scheduled| told.unwrap_or(scheduled)),
                };
                match wait {
                    Some(wait) => {
                        job.due_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                        tracing::warn!(target_name = name, issue_id = %issue_id, job_id = job.id, attempt = attempt_number, latency_ms, outcome = "retry", reason = reason.as_str(), retry_in = ?wait, %answer, "delivery");
                        self.store.reschedule_job(&key, &job).map(|_| ())
                    }
                    None => {
                        tracing::error!(target_name = name, issue_id = %issue_id, job_id = job.id, attempt = attempt_number, latency_ms, outcome = "dead_letter", reason = reason.as_str(), %answer,
                            "DELIVERY GAVE UP for target {name} after {attempt_number} attempts: the message is kept as a dead letter");
                        self.bury(&key, job, reason, answer)
                    }
                }
            }
        };
        if let Err(error) = result {
            tracing::error!(target_name = name, %error, "cannot update the queue after a delivery attempt; the job stays queued and may be sent again");
        }
    }

    fn bury(
        &self,
        key: &JobKey,
        job: DeliveryJob,
        reason: FailureReason,
        last_answer: String,
    ) -> Result<(), crate::store::StoreError> {
        let dead = DeadLetter {
            job,
            died_at: Utc::now(),
            reason,
            last_answer,
        };
        self.store.bury_job(key, &dead)
    }
}

/// One attempt, run as its own task so a slow downstream holds only its own slot.
async fn attempt(target: Arc<Target>, store: Store, key: JobKey, job: DeliveryJob) -> Finished {
    let started = Utc::now();
    let clock = Instant::now();
    let mut issue_id = "-".to_string();
    let outcome = match store.alert(job.alert_id) {
        Ok(Some(stored)) => {
            issue_id = stored.alert.issue_id.clone().unwrap_or(issue_id);
            let view = MessageView::new(&stored.alert, stored.id, job.id, started);
            let idempotency_key = job.idempotency_key();
            target
                .deliver(&Delivery {
                    view: &view,
                    idempotency_key: &idempotency_key,
                })
                .await
        }
        Ok(None) => Outcome::Permanent {
            reason: FailureReason::Other,
            answer: format!("alert {} is missing from the store", job.alert_id),
        },
        Err(error) => Outcome::Retry {
            after: Some(Duration::from_secs(5)),
            pause_target: false,
            reason: FailureReason::Other,
            answer: format!("cannot read alert {}: {error}", job.alert_id),
        },
    };
    Finished {
        key,
        job,
        issue_id,
        outcome,
        started,
        latency: clock.elapsed(),
    }
}
