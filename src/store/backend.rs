//! The seam between herald and where it keeps things: [`StoreBackend`], its errors, and the
//! handles it gives out (a job's key, a pending dedupe claim).
//!
//! The queue, the intake, the HTTP layer and the targets see only this trait, so a backend can be
//! embedded (sled, one process owning a data folder) or shared by several herald processes (a
//! database). What sharing needs is part of the contract already: a dedupe claim is one record
//! that exactly one caller wins; [`StoreBackend::owns_target`] says whether this process may work
//! a target's queue (a lease the backend grants); [`StoreBackend::idle_poll`] says how often an
//! idle worker must look for jobs that another process queued.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::{FoldRecord, LinkStore, Routing, StoredAlert, TargetState};
use crate::alert::Alert;
use crate::job::{AlertId, DeadLetter, DeliveryJob, JobId};
use crate::sdk::issue::SdkIssue;

/// The group commits a backend has done since it was opened, and the time they took. Beside the
/// number of callbacks it tells how many shared a commit, and how long the disk (or the database)
/// made each batch wait: the first thing to look at when the intake slows down.
#[derive(Debug, Default)]
pub struct CommitCounter {
    commits: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

impl CommitCounter {
    /// Counts a commit that began at `started` and is done now.
    pub fn record(&self, started: std::time::Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        let took = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.nanos.fetch_add(took, Relaxed);
        self.commits.fetch_add(1, Relaxed);
    }

    /// Commits done, and the time they took in all.
    pub fn totals(&self) -> (u64, Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.commits.load(Relaxed),
            Duration::from_nanos(self.nanos.load(Relaxed)),
        )
    }
}

/// Runs `work` to its end as a task of its own, and waits for it.
///
/// For what a backend does on behalf of several callers at once (a group commit, a batch of
/// dedupe claims), started by whichever of them came first. That caller may go away halfway
/// (hyper drops a request's future when its client hangs up); the work must not go with it, or
/// the others would find their share taken and nothing left to do, and be told it was done.
pub async fn run_to_end<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::spawn(work)
        .await
        .map_err(|error| StoreError::Backend(Box::new(error)))?
}

/// A future a backend returns through `dyn` (one allocation, next to a disk write).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An iterator over stored records, each of which may fail to read.
pub type Records<'a, T> = Box<dyn Iterator<Item = Result<T, StoreError>> + 'a>;

/// How a fold record changes: given the current one, the new one (`None` removes it).
pub type FoldUpdate<'a> = dyn FnMut(Option<FoldRecord>) -> Option<FoldRecord> + 'a;

/// How an SDK issue changes: given the current one, the new one (`None` removes it).
pub type IssueUpdate<'a> = dyn FnMut(Option<SdkIssue>) -> Option<SdkIssue> + 'a;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not read or write (a full disk, a lost connection, a lock held).
    #[error("the store failed: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    #[error("a stored record could not be encoded or decoded: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("the store at {location} was written by a newer herald (schema {found}, this one knows {known})")]
    NewerSchema {
        location: String,
        found: u32,
        known: u32,
    },
    #[error("stored alert {id} cannot be read: {reason}")]
    UnreadableAlert { id: AlertId, reason: String },
}

/// Where a queued job sits, as its backend names it. Handed back to move or remove the job;
/// nothing outside the backend looks inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey(Box<[u8]>);

impl JobKey {
    pub fn from_bytes(bytes: impl Into<Box<[u8]>>) -> JobKey {
        JobKey(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What claiming a dedupe key found.
pub enum ClaimOutcome {
    /// The key is this callback's.
    New(PendingClaim),
    /// Claimed by this earlier alert, which is stored.
    Duplicate(AlertId),
}

/// A backend's side of a dedupe claim whose callback is not stored yet. Dropped without
/// [`ClaimHandle::settle`], it must release the key: a retry of the callback must then be new.
pub trait ClaimHandle: Send {
    /// Writes the claim (durable after the next commit).
    fn write(&self) -> Result<(), StoreError>;
    /// The callback is stored: duplicates waiting for it are answered.
    fn settle(self: Box<Self>);
}

/// A dedupe claim whose callback is not stored yet. Released when dropped unsettled.
pub struct PendingClaim(Box<dyn ClaimHandle>);

impl PendingClaim {
    pub fn new(handle: Box<dyn ClaimHandle>) -> PendingClaim {
        PendingClaim(handle)
    }

    /// Writes the claim (durable after the next commit). Write it after the alert and its jobs:
    /// a claim recovered after a crash then always has them.
    pub fn write(&self) -> Result<(), StoreError> {
        self.0.write()
    }

    /// The callback is stored: duplicates waiting for it are answered.
    pub fn settle(self) {
        self.0.settle()
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub dedupe_records: u64,
    pub fold_records: u64,
    pub alerts: u64,
    pub issues: u64,
}

/// Everything herald keeps. Writes are durable once [`StoreBackend::commit`] returns; alerts,
/// jobs and written claims may be seen only from then on (a shared backend writes them then, for
/// every caller at once). GitHub's links are its [`LinkStore`] part, the only part a target is
/// given.
pub trait StoreBackend: LinkStore {
    /// Where the store is, for logs (a path, or a database URL without its password).
    fn location(&self) -> String;

    /// A fresh id for an alert or a job: monotonic, and never reused after a crash.
    fn next_id(&self) -> Result<u64, StoreError>;

    /// Claims a dedupe key for `alert_id`. Returns the alert that claimed it first if that was
    /// less than `remember` ago (this callback is a duplicate), once that alert is stored; else
    /// the claim, which the caller writes after its other writes and settles once they are
    /// durable. Atomic: of two identical callbacks racing, exactly one is new.
    fn claim_dedupe_key<'a>(
        &'a self,
        key: &'a str,
        alert_id: AlertId,
        now: DateTime<Utc>,
        remember: Duration,
    ) -> BoxFuture<'a, Result<ClaimOutcome, StoreError>>;

    /// Writes an alert, with where the intake routed it. Write it before its jobs: after a crash
    /// a job never exists without it.
    fn insert_alert(
        &self,
        id: AlertId,
        received_at: DateTime<Utc>,
        alert: &Alert,
        routing: &Routing,
    ) -> Result<(), StoreError>;

    /// Queues a job.
    fn insert_job(&self, job: &DeliveryJob) -> Result<(), StoreError>;

    /// Waits until everything written so far is durable.
    fn commit(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Whether the store can write no more until it is opened again (a commit failed in a way
    /// the backend does not recover from in place). herald then refuses callbacks and restarts.
    fn needs_reopening(&self) -> bool {
        false
    }

    /// Atomically replaces the fold record of (`target`, `fold_key`) with what `update` makes of
    /// it. `update` may run more than once under contention; the last run's result is stored.
    fn update_fold_record(
        &self,
        target: &str,
        fold_key: &str,
        update: &mut FoldUpdate<'_>,
    ) -> Result<(), StoreError>;

    /// For a fold-summary job about to be sent: takes the fold's count into the job, atomically.
    /// Returns the updated job, or `None` when there is nothing to report any more (the count
    /// already went out with a later message about the issue); the job is then removed.
    fn resolve_fold_summary(
        &self,
        key: &JobKey,
        job: &DeliveryJob,
        fold_key: &str,
    ) -> Result<Option<DeliveryJob>, StoreError>;

    /// Atomically replaces SDK issue `id` with what `update` makes of it. `update` may run more
    /// than once under contention; the last run's result is stored.
    fn update_issue(&self, id: &str, update: &mut IssueUpdate<'_>) -> Result<(), StoreError>;

    /// An SDK issue, by id.
    fn issue(&self, id: &str) -> Result<Option<SdkIssue>, StoreError>;

    /// Every SDK issue, by id.
    fn issues(&self) -> Records<'_, SdkIssue>;

    /// An alert, read back.
    fn alert(&self, id: AlertId) -> Result<Option<StoredAlert>, StoreError>;

    /// Every stored alert, oldest first.
    fn alerts(&self) -> Records<'_, StoredAlert>;

    /// Stored alerts newest first, from the one before `before` (or the newest).
    fn alerts_newest_first(&self, before: Option<AlertId>) -> Records<'_, StoredAlert>;

    /// The delivered jobs of alert `id`, each with its attempts (kept as long as the alert).
    fn deliveries_of(&self, id: AlertId) -> Result<Vec<DeliveryJob>, StoreError>;

    /// Every queued job, grouped by target and ordered by due time within a target.
    fn queued_jobs(&self) -> Records<'_, DeliveryJob>;

    /// The queued jobs of `target` that were attempted at least once, by due time (what the
    /// worker's issue order is rebuilt from at start; the never-tried majority need not be read).
    fn retried_jobs_of<'a>(&'a self, target: &str) -> Records<'a, DeliveryJob>;

    /// Up to `limit` jobs of `target` that are due at `now` and not in `skip` (jobs in flight),
    /// earliest first.
    fn due_jobs(
        &self,
        target: &str,
        now: DateTime<Utc>,
        skip: &HashSet<JobId>,
        limit: usize,
    ) -> Result<Vec<(JobKey, DeliveryJob)>, StoreError>;

    /// When the earliest job of `target` not in `skip` is due.
    fn next_due_time(
        &self,
        target: &str,
        skip: &HashSet<JobId>,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Removes a delivered job, and keeps `done` (the job with its attempts) beside its alert, for
    /// people to see. Need not be durable at once: a removal lost in a crash means the job is sent
    /// again, which at-least-once delivery allows.
    fn finish_job(&self, key: &JobKey, done: &DeliveryJob) -> Result<(), StoreError>;

    /// Moves a job to its new due time, with its attempts recorded, atomically.
    fn reschedule_job(&self, key: &JobKey, job: &DeliveryJob) -> Result<JobKey, StoreError>;

    /// Turns a job into a dead letter: removed from the queue and kept, atomically.
    fn bury_job(&self, key: &JobKey, dead: &DeadLetter) -> Result<(), StoreError>;

    /// Every dead letter, by target, oldest first.
    fn dead_letters(&self) -> Records<'_, DeadLetter>;

    /// Queues again the dead letters `select` picks, each as [`DeliveryJob::replayed`] at `now`.
    /// Returns the jobs queued again.
    fn replay_dead_letters(
        &self,
        select: &dyn Fn(&DeliveryJob) -> bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryJob>, StoreError>;

    /// Pauses (or resumes) a target on an operator's word; kept apart from the worker's own state.
    fn set_operator_pause(&self, target: &str, paused: bool) -> Result<(), StoreError>;

    /// Whether an operator paused `target`.
    fn operator_paused(&self, target: &str) -> Result<bool, StoreError>;

    /// What a target's worker saved (recent attempts, a pause, its health).
    fn target_state(&self, target: &str) -> Result<TargetState, StoreError>;

    fn save_target_state(&self, target: &str, state: &TargetState) -> Result<(), StoreError>;

    /// Whether this process may work `target`'s queue now. An embedded store is one process's
    /// alone; a shared one grants each target to one process at a time.
    fn owns_target(&self, target: &str) -> Result<bool, StoreError>;

    /// The longest an idle worker may sleep before it looks for jobs it was not woken for.
    fn idle_poll(&self) -> Duration;

    /// Whether other processes use this store too (then a worker saves its target's state after
    /// every attempt, for whichever process takes the target over).
    fn is_shared(&self) -> bool {
        false
    }

    /// Whether the store answers now (for `/readyz`); an embedded store always does.
    fn reachable(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Removes what can no longer matter: dedupe records older than `remember`; fold records whose
    /// window is over and whose count was reported; alerts older than `retention` that no queued
    /// job or dead letter refers to; SDK issues not seen for `retention` (seen again, such an
    /// issue is new).
    fn sweep(
        &self,
        now: DateTime<Utc>,
        remember: Duration,
        fold_window: Duration,
        retention: Duration,
    ) -> Result<SweepReport, StoreError>;

    fn alert_count(&self) -> u64;
    fn queued_job_count(&self) -> u64;
    fn dead_letter_count(&self) -> u64;

    /// Queued jobs per target name (including targets no longer configured).
    fn queued_jobs_per_target(&self) -> Result<BTreeMap<String, u64>, StoreError>;

    /// Dead letters per target name.
    fn dead_letters_per_target(&self) -> Result<BTreeMap<String, u64>, StoreError>;

    /// Bytes the store takes on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// Group commits done since the store was opened, and the time they took in all.
    fn commit_totals(&self) -> (u64, Duration);

    /// The latest time herald's clock handed out, as last saved (see `crate::clock`).
    fn latest_time(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Saves `at` as the latest time herald's clock handed out; written with the next commit.
    fn save_latest_time(&self, at: DateTime<Utc>) -> Result<(), StoreError>;
}
