//! One worker per target: takes due jobs in order, keeps the target's concurrency and rate limit,
//! and applies each attempt's outcome to the job. A slow or broken target only ever delays itself.

use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::backoff::TargetBackoff;
use super::order::{Blocker, IssueOrder};
use super::policy::{log_attempt, next_step, pause_length, to_chrono, NextStep, RecordedAttempt};
use super::{RateLimiter, RetrySchedule, TargetQueue};
use crate::job::{Attempt, DeadLetter, DeliveryJob, FailureReason, JobId};
use crate::metrics::Metrics;
use crate::render::{DigestView, MessageView};
use crate::route::Mentions;
use crate::store::{JobKey, Store, StoreError, Wakers};
use crate::targets::{Delivery, DigestDelivery, Outcome, Target};

/// The worker of one target.
pub(super) struct Worker {
    target: Arc<Target>,
    schedule: RetrySchedule,
    limiter: RateLimiter,
    store: Store,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
    order: IssueOrder,
    backoff: TargetBackoff,
    /// The limiter's state changed since it was last saved.
    state_changed: bool,
    state_saved_at: Option<Instant>,
    /// What attempts decided that the store could not write (a full disk). Until it is written
    /// the worker sends nothing: the jobs are still queued as they were, and taking them again
    /// would send a delivered message again and again.
    unsaved: Vec<UnsavedStep>,
    /// The store refusing reads: said once, not every second.
    store_failing: crate::repeated::Repeated,
    /// Whether this process worked the target's queue when it last asked (a shared store grants
    /// it to one process at a time).
    owned: Option<Ownership>,
}

/// Who works a target's queue, as this worker last heard from the store.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ownership {
    Here,
    /// Another process, until at least `until` (when this worker asks again).
    Elsewhere {
        until: DateTime<Utc>,
    },
}

/// A job's next step after an attempt, kept until the store takes it.
struct UnsavedStep {
    key: JobKey,
    job: DeliveryJob,
    change: QueueChange,
}

/// How an attempt changes the queue.
#[derive(Clone)]
enum QueueChange {
    Finish,
    Reschedule,
    Bury {
        reason: FailureReason,
        last_answer: String,
    },
}

/// How often the worker tries again to write what the store refused.
const UNSAVED_RETRY: Duration = Duration::from_secs(1);

/// The most alerts one digest message carries; more wait for the next digest. 25 lines of at most
/// ~600 bytes keep a digest well under DingTalk's 20,000 bytes, so no line is ever cut off.
const DIGEST_MAX_ITEMS: usize = 25;
/// Slots of a rate-limited target's window kept for digests: once fewer are left, due alerts are
/// merged rather than sent one by one, so a burst never leaves a target silent for a minute.
const DIGEST_RESERVE: usize = 5;
/// When a rate-limited target has sent recently, a due alert waits this long for others to join
/// it in one message. A quiet target sends the first alert at once.
const LINGER: Duration = Duration::from_secs(2);

/// What the worker does next in a round.
enum NextBatch {
    /// Send these (one job, or a digest of several).
    Send(Vec<(JobKey, DeliveryJob)>),
    /// Something changed in the queue (a job was reordered or dropped): look again now.
    LookAgain,
    /// Nothing to send now; look again then (`None`: when something wakes the worker).
    WakeAt(Option<DateTime<Utc>>),
}

/// One job in an attempt.
struct InFlight {
    key: JobKey,
    job: DeliveryJob,
    /// The alert's Sentry issue id, for the log line.
    issue_id: String,
}

/// What a finished attempt hands back to its worker: its jobs (one, or several merged into a
/// digest) and how it went.
struct Finished {
    jobs: Vec<InFlight>,
    outcome: Outcome,
    started: DateTime<Utc>,
    latency: Duration,
}

impl Worker {
    pub(super) fn new(
        queue: TargetQueue,
        store: Store,
        wakers: &Wakers,
        metrics: Arc<Metrics>,
        stopped: watch::Receiver<bool>,
    ) -> Worker {
        let TargetQueue { target, schedule } = queue;
        let state = store.target_state(&target.name).unwrap_or_else(|error| {
            tracing::warn!(target_name = %target.name, %error, "cannot read the target's saved rate-limit state; starting afresh");
            Default::default()
        });
        Worker {
            limiter: RateLimiter::new(target.limits.rate, state),
            wake: wakers.get(&target.name),
            order: IssueOrder::from_queue(&store, &target.name),
            store,
            metrics,
            target,
            schedule,
            stopped,
            backoff: TargetBackoff::default(),
            state_changed: false,
            state_saved_at: None,
            unsaved: Vec::new(),
            store_failing: crate::repeated::Repeated::new(),
            owned: None,
        }
    }

    pub(super) async fn run(mut self) {
        let mut in_flight: JoinSet<Finished> = JoinSet::new();
        let mut busy: HashSet<JobId> = HashSet::new();
        loop {
            let stopping = *self.stopped.borrow();
            let next_wake = if stopping {
                None
            } else {
                self.start_due_jobs(&mut in_flight, &mut busy)
            };
            if in_flight.is_empty() {
                // Idle (or stopping): what the attempts taught about the target is saved now.
                self.save_state_if_changed();
                if stopping {
                    break;
                }
            }
            let sleep = next_wake.map_or(self.store.idle_poll(), |at| {
                (at - crate::clock::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
            });
            tokio::select! {
                Some(finished) = in_flight.join_next(), if !in_flight.is_empty() => {
                    match finished {
                        Ok(finished) => {
                            for job in &finished.jobs {
                                busy.remove(&job.job.id);
                            }
                            self.apply(finished);
                        }
                        Err(error) => {
                            // A delivery task panicked: its jobs stay queued, so they are tried again.
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
    /// look again if nothing else wakes the worker. When more jobs are due than the rate limit has
    /// room for, they go out merged into digests instead of waiting minutes each.
    fn start_due_jobs(
        &mut self,
        in_flight: &mut JoinSet<Finished>,
        busy: &mut HashSet<JobId>,
    ) -> Option<DateTime<Utc>> {
        // Jobs held back this round (an earlier job of their issue is in flight) are skipped like
        // busy ones, then released: they are looked at again when that job finishes.
        let mut held = Vec::new();
        let next = self.start_due_jobs_in_order(in_flight, busy, &mut held);
        for id in held {
            busy.remove(&id);
        }
        next
    }

    fn start_due_jobs_in_order(
        &mut self,
        in_flight: &mut JoinSet<Finished>,
        busy: &mut HashSet<JobId>,
        held: &mut Vec<JobId>,
    ) -> Option<DateTime<Utc>> {
        if in_flight.len() >= self.concurrency() {
            // Nothing can start: the worker looks again when a send finishes, not on every new job.
            return None;
        }
        if !self.write_unsaved() {
            return Some(crate::clock::now() + to_chrono(UNSAVED_RETRY));
        }
        // Backing off from a failing downstream, the target sends nothing before then, paused or
        // not: the store is not asked about it (every callback wakes this worker; a lookup each
        // time cost the intake 2 % of its CPU while a downstream was down).
        if let Some(until) = self.backoff.wait(crate::clock::now()) {
            return Some(until);
        }
        if let Some(wake) = self.held_back() {
            return wake;
        }
        while in_flight.len() < self.concurrency() {
            let now = crate::clock::now();
            if let Some(wait) = self.limiter.wait(now) {
                return Some(now + to_chrono(wait));
            }
            if let Some(until) = self.backoff.wait(now) {
                return Some(until);
            }
            let batch = match self.next_batch(now, busy, held) {
                NextBatch::Send(batch) => batch,
                NextBatch::LookAgain => continue,
                NextBatch::WakeAt(at) => return at,
            };
            self.limiter.record(now);
            if self.target.limits.rate.is_limited() {
                // The window must survive a crash, or a crash loop could get the robot throttled.
                self.save_state_now();
            }
            busy.extend(batch.iter().map(|(_, job)| job.id));
            for (_, job) in &batch {
                self.order.started(job);
            }
            in_flight.spawn(attempt(self.target.clone(), self.store.clone(), batch));
        }
        None
    }

    /// Whether the target must send nothing now, and if so when to look again (`None`: when
    /// something wakes the worker).
    fn held_back(&mut self) -> Option<Option<DateTime<Utc>>> {
        if self.store.needs_reopening() {
            // Nothing sent could be recorded: herald restarts once the store can write again.
            return Some(Some(crate::clock::now() + to_chrono(UNSAVED_RETRY)));
        }
        if let Some(Ownership::Elsewhere { until }) = self.owned {
            // Another process works the queue: new jobs (every callback wakes this worker) do not
            // make it ask the store again before its next look.
            if crate::clock::now() < until {
                return Some(Some(until));
            }
        }
        if self.stopped_as_gone()
            || self
                .store
                .operator_paused(&self.target.name)
                .unwrap_or(false)
        {
            // Woken again when the target is resumed or its settings change.
            return Some(None);
        }
        let owned = self.store.owns_target(&self.target.name);
        if owned.is_ok() && self.store_failing.over() {
            tracing::info!(target_name = %self.target.name, "the store answers again; the queue is worked");
        }
        match owned {
            Ok(true) => {
                if matches!(self.owned, Some(Ownership::Elsewhere { .. })) {
                    self.take_over();
                }
                self.owned = Some(Ownership::Here);
                None
            }
            // Another process works this target's queue; look again when it may have let go.
            Ok(false) => {
                let until = crate::clock::now() + self.idle_poll();
                self.owned = Some(Ownership::Elsewhere { until });
                Some(Some(until))
            }
            Err(error) => Some(self.store_failed(error)),
        }
    }

    /// The next job to send, or the digest of several to send in one message.
    fn next_batch(
        &mut self,
        now: DateTime<Utc>,
        busy: &mut HashSet<JobId>,
        held: &mut Vec<JobId>,
    ) -> NextBatch {
        let look_ahead = if self.target.digests() {
            DIGEST_MAX_ITEMS + 1
        } else {
            1
        };
        let mut due = match self
            .store
            .due_jobs(&self.target.name, now, busy, look_ahead)
        {
            Ok(due) => due,
            Err(error) => return NextBatch::WakeAt(self.store_failed(error)),
        };
        let fetched = due.len();
        self.keep_issue_order(&mut due, busy, held);
        if due.is_empty() && fetched > 0 {
            return NextBatch::LookAgain;
        }
        if due.is_empty() {
            return NextBatch::WakeAt(match self.store.next_due_time(&self.target.name, busy) {
                Ok(next) => next,
                Err(error) => self.store_failed(error),
            });
        }
        let batch = match self.limiter.remaining(now) {
            // No rate limit: one job at a time, as soon as it is due.
            None => {
                due.truncate(1);
                due
            }
            Some(room) => {
                let quiet = self.limiter.quiet(now);
                let oldest = due[0].1.due_at;
                let linger = to_chrono(LINGER);
                if !quiet && now < oldest + linger {
                    return NextBatch::WakeAt(Some(oldest + linger));
                }
                if due.len() > 1 && due.len() + DIGEST_RESERVE > room {
                    due.into_iter()
                        .filter(|(_, job)| job.summary_of.is_none())
                        .take(DIGEST_MAX_ITEMS)
                        .collect()
                } else {
                    due.truncate(1);
                    due
                }
            }
        };
        if batch.is_empty() {
            // Only fold summaries are due; they go out one by one.
            return match self.store.due_jobs(&self.target.name, now, busy, 1) {
                Ok(first) => self.resolve_summary(first),
                Err(error) => NextBatch::WakeAt(self.store_failed(error)),
            };
        }
        self.resolve_summary(batch)
    }

    /// Holds back the jobs of `due` that an earlier job of their issue must go before: one in
    /// flight (skipped like a busy job this round), or one waiting for a retry (moved behind it).
    fn keep_issue_order(
        &mut self,
        due: &mut Vec<(JobKey, DeliveryJob)>,
        busy: &mut HashSet<JobId>,
        held: &mut Vec<JobId>,
    ) {
        due.retain(|(key, job)| match self.order.blocker(job) {
            Blocker::None => true,
            Blocker::InFlight => {
                held.push(job.id);
                busy.insert(job.id);
                false
            }
            Blocker::Waiting(until) => {
                // After the earlier one's retry, in the store, so the order survives a restart.
                let mut later = job.clone();
                later.due_at = until + chrono::Duration::milliseconds(1);
                if let Err(error) = self.store.reschedule_job(key, &later) {
                    tracing::error!(target_name = %self.target.name, %error, "cannot reorder a job behind its issue's retry");
                }
                false
            }
        });
    }

    /// A fold summary alone in its batch takes its count now, or turns out to have nothing left
    /// to say (a later message reported the count) and is dropped.
    fn resolve_summary(&self, mut batch: Vec<(JobKey, DeliveryJob)>) -> NextBatch {
        if batch.len() != 1 {
            return NextBatch::Send(batch);
        }
        let Some(fold_key) = batch[0].1.summary_of.clone() else {
            return NextBatch::Send(batch);
        };
        let (key, job) = batch.remove(0);
        match self.store.resolve_fold_summary(&key, &job, &fold_key) {
            Ok(Some(resolved)) => NextBatch::Send(vec![(key, resolved)]),
            Ok(None) => NextBatch::LookAgain,
            Err(error) => NextBatch::WakeAt(self.store_failed(error)),
        }
    }

    /// Whether the target answered 410 Gone under its current settings. Once its settings change
    /// (a new URL, say), it is resumed.
    fn stopped_as_gone(&mut self) -> bool {
        match self.limiter.gone_for() {
            Some(fingerprint) if fingerprint == self.target.fingerprint => true,
            Some(_) => {
                tracing::warn!(target_name = %self.target.name, "the target's settings changed since it answered 410 Gone; sending to it again");
                self.limiter.set_gone(None);
                self.save_state_now();
                false
            }
            None => false,
        }
    }

    fn idle_poll(&self) -> chrono::Duration {
        to_chrono(self.store.idle_poll())
    }

    fn store_failed(&self, error: StoreError) -> Option<DateTime<Utc>> {
        if let Some(unsaid) = self.store_failing.say() {
            tracing::error!(target_name = %self.target.name, %error, failed_meanwhile = unsaid,
                "cannot read the queue; trying again every second");
        }
        Some(crate::clock::now() + chrono::Duration::seconds(1))
    }

    /// Deliveries that may be in flight now: one, a probe, while the downstream is failing.
    fn concurrency(&self) -> usize {
        if self.backoff.probing() {
            1
        } else {
            self.target.limits.concurrency
        }
    }

    /// This process takes the target's queue over from another (that died or let go): what that
    /// one knew of the target (its recent sends for the rate limit, a pause, a 410) and the
    /// issues' order are read again from the store.
    fn take_over(&mut self) {
        match self.store.target_state(&self.target.name) {
            Ok(state) => self.limiter = RateLimiter::new(self.target.limits.rate, state),
            Err(error) => {
                tracing::warn!(target_name = %self.target.name, %error, "cannot read the target's saved state on taking it over");
            }
        }
        self.order = IssueOrder::from_queue(&self.store, &self.target.name);
        tracing::info!(target_name = %self.target.name, "this replica works the target's queue now");
    }

    fn save_state_now(&mut self) {
        self.state_changed = false;
        self.state_saved_at = Some(Instant::now());
        if let Err(error) = self
            .store
            .save_target_state(&self.target.name, self.limiter.state())
        {
            tracing::warn!(target_name = %self.target.name, %error, "cannot save the target's rate-limit state");
        }
    }

    /// The target's health (last success, last error) changed: saved at most once a second while
    /// attempts follow each other, and when the worker goes idle.
    fn note_state_changed(&mut self) {
        self.state_changed = true;
        // On a shared store every attempt is saved: a replica taking the target over must know
        // each send of the last minute to keep the downstream's rate limit.
        if self.store.is_shared()
            || self
                .state_saved_at
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.save_state_now();
        }
    }

    fn save_state_if_changed(&mut self) {
        if self.state_changed {
            self.save_state_now();
        }
    }

    /// Records the attempt on each of its jobs and moves each on: done, due again, or buried as a
    /// dead letter.
    fn apply(&mut self, finished: Finished) {
        let Finished {
            jobs,
            outcome,
            started,
            latency,
        } = finished;
        let now = crate::clock::now();
        let recorded = RecordedAttempt::of(&outcome);
        self.note_target_health(&outcome, &recorded.answer, now);
        for _ in &jobs {
            // A delivered (or continued) attempt records no reason: no failure is counted.
            self.metrics.attempt(
                &self.target.name,
                self.target.kind,
                latency,
                recorded.reason,
            );
        }
        let digest = jobs.len() > 1;
        let latency_ms = latency.as_millis() as u64;
        let mut first_retry_in = None;
        for InFlight {
            key,
            mut job,
            issue_id,
        } in jobs
        {
            job.attempts.push(Attempt {
                at: started,
                result: recorded.result,
                reason: recorded.reason,
                answer: recorded.answer.clone(),
                latency_ms,
            });
            let step = next_step(&outcome, &job, &self.schedule, now);
            if let NextStep::Again { retry_in, .. } = &step {
                first_retry_in = first_retry_in.or(*retry_in);
            }
            log_attempt(
                &self.target.name,
                &job,
                &issue_id,
                &step,
                &recorded,
                digest,
                latency_ms,
            );
            let change = match step {
                NextStep::Done => {
                    self.order.finished(&job, None);
                    QueueChange::Finish
                }
                NextStep::Again { at, .. } => {
                    job.due_at = at;
                    self.order.finished(&job, Some(at));
                    QueueChange::Reschedule
                }
                NextStep::Bury { reason, .. } => {
                    self.order.finished(&job, None);
                    QueueChange::Bury {
                        reason,
                        last_answer: recorded.answer.clone(),
                    }
                }
            };
            if let Err(error) = self.write(&key, &job, &change) {
                tracing::error!(target_name = %self.target.name, %error, job_id = job.id,
                    "cannot update the queue after a delivery attempt; the target sends nothing until the store takes it (tried again every second)");
                self.unsaved.push(UnsavedStep { key, job, change });
            }
        }
        self.backoff.attempted(&outcome, first_retry_in, now);
    }

    /// What an attempt says about the target itself: a pause it asked for, a 410, its health.
    /// A pause or a 410 is saved at once: a restart must not forget it.
    fn note_target_health(&mut self, outcome: &Outcome, answer: &str, now: DateTime<Utc>) {
        let name = self.target.name.as_str();
        let must_survive_a_crash = match outcome {
            Outcome::Retry {
                after,
                pause_target: true,
                ..
            } => {
                let until = now + to_chrono(pause_length(*after));
                self.limiter.pause_until(until);
                tracing::warn!(target_name = name, paused_until = %until, %answer, "target asked herald to slow down; sending nothing to it until then");
                true
            }
            Outcome::Gone { .. } => {
                self.limiter.set_gone(Some(self.target.fingerprint.clone()));
                tracing::error!(target_name = name, %answer,
                    "TARGET {name} IS GONE (HTTP 410): herald sends nothing more to it until its settings change; its messages stay queued");
                true
            }
            _ => false,
        };
        match outcome {
            Outcome::Delivered { .. } | Outcome::Continue { .. } => self.limiter.delivered(now),
            _ => self.limiter.failed(now, answer),
        }
        if must_survive_a_crash {
            self.save_state_now();
        } else {
            self.note_state_changed();
        }
    }

    fn write(
        &self,
        key: &JobKey,
        job: &DeliveryJob,
        change: &QueueChange,
    ) -> Result<(), StoreError> {
        match change {
            QueueChange::Finish => self.store.finish_job(key, job),
            QueueChange::Reschedule => self.store.reschedule_job(key, job).map(|_| ()),
            QueueChange::Bury {
                reason,
                last_answer,
            } => self.store.bury_job(
                key,
                &DeadLetter {
                    job: job.clone(),
                    died_at: crate::clock::now(),
                    reason: *reason,
                    last_answer: last_answer.clone(),
                },
            ),
        }
    }

    /// Writes what the store refused before; whether nothing is left unwritten.
    fn write_unsaved(&mut self) -> bool {
        if self.unsaved.is_empty() {
            return true;
        }
        let mut pending = std::mem::take(&mut self.unsaved).into_iter();
        while let Some(step) = pending.next() {
            if self.write(&step.key, &step.job, &step.change).is_err() {
                // The store still refuses: keep this step and the rest, in order.
                self.unsaved.push(step);
                self.unsaved.extend(pending);
                break;
            }
        }
        if self.unsaved.is_empty() {
            tracing::info!(target_name = %self.target.name, "the store takes writes again; the target sends again");
        }
        self.unsaved.is_empty()
    }
}

/// One attempt (for one job, or a digest of several), run as its own task so a slow downstream
/// holds only its own slot.
async fn attempt(target: Arc<Target>, store: Store, batch: Vec<(JobKey, DeliveryJob)>) -> Finished {
    let started = crate::clock::now();
    let clock = Instant::now();
    let mut jobs = Vec::with_capacity(batch.len());
    let mut views = Vec::with_capacity(batch.len());
    let mut raws = Vec::with_capacity(batch.len());
    let mut mentions = Mentions::default();
    let mut failure = None;
    for (key, job) in batch {
        let unreadable = match store.alert(job.alert_id) {
            Ok(Some(stored)) => {
                let issue_id = stored.alert.issue_id.clone().unwrap_or_else(|| "-".into());
                views.push(
                    // Messages say "3 minutes ago" by the wall clock, as their readers do.
                    MessageView::new(&stored.alert, stored.id, job.id, Utc::now())
                        .with_folded(job.folded),
                );
                raws.push(stored.alert.raw);
                mentions.merge(&job.mentions);
                jobs.push(InFlight { key, job, issue_id });
                continue;
            }
            Ok(None) => Outcome::permanent(
                FailureReason::Other,
                format!("alert {} is missing from the store", job.alert_id),
            ),
            // Reading it again will not help: it waits in the dead letters, to be replayed by a
            // herald that reads it.
            Err(error @ StoreError::UnreadableAlert { .. }) => {
                Outcome::permanent(FailureReason::Other, error.to_string())
            }
            Err(error) => Outcome::retry_after(
                Some(Duration::from_secs(5)),
                FailureReason::Other,
                format!("cannot read alert {}: {error}", job.alert_id),
            ),
        };
        failure.get_or_insert(unreadable);
        jobs.push(InFlight {
            key,
            job,
            issue_id: "-".into(),
        });
    }
    let outcome = match failure {
        Some(failure) => failure,
        None if views.len() == 1 => {
            let key = jobs[0].job.idempotency_key();
            target
                .deliver(&Delivery {
                    view: &views[0],
                    mentions: &mentions,
                    idempotency_key: &key,
                    raw: raws.first().map(|raw| raw.get()),
                    parts_sent: jobs[0].job.parts_sent(),
                })
                .await
        }
        None => {
            let digest = DigestView::new(&views, Utc::now());
            let key = format!("herald-digest-{}-{}", jobs[0].job.id, jobs.len());
            target
                .deliver_digest(&DigestDelivery {
                    view: &digest,
                    mentions: &mentions,
                    idempotency_key: &key,
                })
                .await
        }
    };
    Finished {
        jobs,
        outcome,
        started,
        latency: clock.elapsed(),
    }
}
