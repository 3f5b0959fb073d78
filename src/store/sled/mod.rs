//! The embedded backend: every sled tree herald keeps, and its key layout, in one place; and the
//! spool beside it (`spool/`), where what comes in by the million is appended: alerts, the jobs
//! queued for them as they arrive, every callback's dedupe claim, the record of each delivery.
//!
//! | tree     | key                                              | value                   |
//! |----------|--------------------------------------------------|-------------------------|
//! | `meta`   | `b"schema"`                                      | schema version, u32 BE  |
//! | `jobs`   | target name, `0x00`, due time in ms u64 BE, job id u64 BE | [`DeliveryJob`] as JSON: jobs due later (a fold's summary, a retry) |
//! | `dead_letters` | target name, `0x00`, job id u64 BE        | [`DeadLetter`] as JSON  |
//! | `targets` | target name                                     | [`TargetState`] as JSON |
//! | `targets` | target name, `0x00`, `b"paused"`                | present while an operator paused it |
//! | `targets` | target name, `0x00`, `b"spool"`                 | how far its queue in the spool is worked ([`spool::Cursor`]) |
//! | `claims` | claimed at ms u64 BE, first 16 bytes of SHA-256 of a dedupe key | alert id u64 BE, how long it is kept in ms u64 BE: claims kept longer than a day (`claims.rs`) |
//! | `folds`  | target name, `0x00`, fold key (installation/issue) | [`FoldRecord`] as JSON |
//! | `links`  | target name, `0x00`, repo/installation/issue     | [`LinkRecord`] as JSON  |
//! | `issues` | SDK issue id (`7-h1-…`)                          | [`SdkIssue`] as JSON    |
//!
//! Alerts are stored as `store/alert_record.rs` says; dedupe claims as `claims.rs` says. A job
//! queued due now goes to the spool, and leaves it when it is done (delivered, retried later:
//! then it moves to `jobs`, or buried); its place in the queue is all that stays in memory.
//!
//! Integers are big-endian so that key order is numeric order: a prefix scan of `jobs` over one
//! target yields its jobs by due time. Target names cannot contain `0x00` (config validation).
//!
//! Durability: the intake writes its fold records (sled), the alert, its jobs and, last, its dedupe
//! claim (the spool, in that order), then calls [`StoreBackend::commit`], which returns after the
//! spool's `fdatasync` and a sled flush that began after those writes. The spool is read up to its
//! first torn record, so a claim found after a crash always has its alert and jobs. Concurrent
//! callers share one commit (group commit): an fsync is paid once per batch, not per callback.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use super::alert_record::{self, AlertHeader};
use super::{
    BoxFuture, ClaimOutcome, FoldRecord, FoldUpdate, IssueUpdate, JobKey, LinkRecord, LinkStore,
    PendingClaim, Records, Routing, StoreBackend, StoreError, StoredAlert, SweepReport,
    TargetState,
};
use crate::alert::Alert;
use crate::job::{AlertId, DeadLetter, DeliveryJob, Folded, JobId};
use crate::sdk::issue::SdkIssue;

mod claims;
mod counts;
mod group_commit;
mod keys;
mod migrate;
mod spool;
mod sweep;
#[cfg(test)]
mod tests;

use claims::{ClaimIndex, SledPendingClaim};
use counts::QueueCounts;
use group_commit::GroupCommit;
use keys::{
    dead_letter_key, dedupe_hash, fold_tree_key, job_key, operator_pause_key, parse_job_key,
    parse_spool_job_key, spool_cursor_key, spool_job_key, target_of_key, target_prefix,
    DedupeClaim, SPOOL_CURSOR_SUFFIX,
};
use spool::{Cursor, Direction, Spool};

const SCHEMA_KEY: &[u8] = b"schema";
/// In `meta`: the latest time herald's clock handed out, in milliseconds, big-endian.
const CLOCK_KEY: &[u8] = b"clock";
/// The layout above. Older stores are migrated on open (`migrate`); a newer one is refused.
const SCHEMA_VERSION: u32 = 4;
/// Upper bound of sled's page cache. sled's default (1 GiB) would let an idle herald grow far
/// past what a sidecar should use; alerts are written once and read once, so a small cache loses little.
const CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> StoreError {
        StoreError::Backend(Box::new(error))
    }
}

/// The store in one data folder, for one herald process (sled holds the folder's lock).
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    jobs: sled::Tree,
    dead_letters: sled::Tree,
    targets: sled::Tree,
    claims: sled::Tree,
    claim_index: Arc<ClaimIndex>,
    folds: sled::Tree,
    links: sled::Tree,
    issues: sled::Tree,
    spool: Arc<Spool>,
    commits: GroupCommit,
    counts: QueueCounts,
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. A store sled reports as corrupt is moved aside to
    /// `<dir>.corrupt-<time>` and a fresh one is started, with an error in the log; any other
    /// failure (a second herald holding the lock, permissions) is returned, never papered over.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let db = match open_db(dir) {
            Err(sled::Error::Corruption { .. }) => {
                let aside = PathBuf::from(format!(
                    "{}.corrupt-{}",
                    dir.display(),
                    Utc::now().format("%Y%m%dT%H%M%SZ")
                ));
                tracing::error!(
                    store = %dir.display(),
                    moved_to = %aside.display(),
                    "THE STORE IS CORRUPT: it was moved aside and herald starts with an empty one; \
                     jobs queued in it are not delivered"
                );
                std::fs::rename(dir, &aside).map_err(|e| StoreError::Backend(Box::new(e)))?;
                open_db(dir)?
            }
            other => other?,
        };
        let meta = db.open_tree("meta")?;
        let found = match meta.get(SCHEMA_KEY)? {
            None => SCHEMA_VERSION,
            Some(found) => u32::from_be_bytes(found.as_ref().try_into().unwrap_or([0xff; 4])),
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                location: dir.display().to_string(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        if found < 2 {
            migrate::alerts_from_schema_1(&db, &db.open_tree("alerts")?)?;
        }
        if found < 3 {
            migrate::dedupe_to_claims(&db)?;
        }
        let targets = db.open_tree("targets")?;
        let spool = Arc::new(Spool::open(&dir.join("spool"), &spool_cursors(&targets)?)?);
        if found < 4 {
            migrate::alerts_and_deliveries_to_spool(&db, &spool)?;
        }
        if found != SCHEMA_VERSION || meta.get(SCHEMA_KEY)?.is_none() {
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            db.flush()?;
        }
        let jobs = db.open_tree("jobs")?;
        let dead_letters = db.open_tree("dead_letters")?;
        let claims = db.open_tree("claims")?;
        let claim_index = Arc::new(ClaimIndex::load(&claims)?);
        let folds = db.open_tree("folds")?;
        let links = db.open_tree("links")?;
        let issues = db.open_tree("issues")?;
        let counts = QueueCounts::load(&jobs, &dead_letters, spool.queued_per_target())?;
        Ok(SledStore {
            path: dir.to_path_buf(),
            commits: GroupCommit::new(db.clone(), spool.clone(), dir),
            db,
            meta,
            jobs,
            dead_letters,
            targets,
            claims,
            claim_index,
            folds,
            links,
            issues,
            spool,
            counts,
        })
    }
}

/// How far each target's queue in the spool was worked, as saved in `targets`.
fn spool_cursors(targets: &sled::Tree) -> Result<HashMap<String, Cursor>, StoreError> {
    let mut cursors = HashMap::new();
    for entry in targets.iter() {
        let (key, value) = entry?;
        if key.ends_with(SPOOL_CURSOR_SUFFIX) {
            cursors.insert(target_of_key(&key), Cursor::decode(&value));
        }
    }
    Ok(cursors)
}

/// Whether a job goes to the spool: one due when it is queued, never attempted, and not a fold's
/// summary (which is resolved in place, in `jobs`).
fn spooled(job: &DeliveryJob) -> bool {
    job.attempts.is_empty() && job.summary_of.is_none() && job.due_at <= crate::clock::now()
}

impl SledStore {
    /// Takes a job off its target's queue in the spool and saves how far the queue is worked
    /// (flushed with sled's next flush: a crash before it sends the job again).
    fn take_from_spool(&self, at: spool::Position, target: &str) -> Result<bool, StoreError> {
        let Some(cursor) = self.spool.take(target, at) else {
            return Ok(false);
        };
        self.targets
            .insert(spool_cursor_key(target), cursor.encode())?;
        Ok(true)
    }

    /// The spool's alerts from `from` on, one by one, the way `direction` says; a read that
    /// fails ends the walk.
    fn alerts_from(&self, from: Option<AlertId>, direction: Direction) -> Records<'_, StoredAlert> {
        let mut from = from;
        let mut failed = false;
        Box::new(std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let (id, at) = match self.spool.next_alert(from, direction) {
                Ok(next) => next?,
                Err(error) => {
                    failed = true;
                    return Some(Err(error));
                }
            };
            from = Some(id);
            Some(self.decode_spooled_alert(at))
        }))
    }

    fn decode_spooled_alert(&self, at: spool::Position) -> Result<StoredAlert, StoreError> {
        let (id, record) = self.spool.alert_at(at)?;
        alert_record::decode(id, &record)
    }
}

/// Replaces the JSON record at `key` in `tree` with what `update` makes of it (`None` removes
/// it), by compare-and-swap: `update` runs again when another writer came first.
fn update_json<T: serde::Serialize + serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    update: &mut dyn FnMut(Option<T>) -> Option<T>,
) -> Result<(), StoreError> {
    let mut current = tree.get(key)?;
    loop {
        let record = match &current {
            Some(bytes) => Some(serde_json::from_slice(bytes)?),
            None => None,
        };
        let new_bytes = match update(record) {
            Some(record) => Some(serde_json::to_vec(&record)?),
            None if current.is_none() => return Ok(()), // nothing to write
            None => None,
        };
        match tree.compare_and_swap(key, current.as_ref(), new_bytes)? {
            Ok(()) => return Ok(()),
            Err(conflict) => current = conflict.current,
        }
    }
}

fn open_db(dir: &Path) -> Result<sled::Db, sled::Error> {
    let open = || {
        sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .mode(sled::Mode::HighThroughput)
            .open()
    };
    // A store this process has just closed may still be locked for a moment, while sled's I/O
    // threads finish with it: try again for a little while before saying another herald holds it.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match open() {
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// How long opening waits for the folder's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl StoreBackend for SledStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// A fresh id for an alert or a job: monotonic, and never reused after a crash.
    fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Writes an alert (durable after the next [`StoreBackend::commit`]). Write it before its jobs: sled
    /// recovers a prefix of its log, so after a crash a job never exists without its alert.
    fn insert_alert(
        &self,
        id: AlertId,
        received_at: DateTime<Utc>,
        alert: &Alert,
        routing: &Routing,
    ) -> Result<(), StoreError> {
        let header = AlertHeader::of(alert, received_at, routing);
        let received_ms = received_at.timestamp_millis().max(0) as u64;
        self.spool.append_alert(
            id,
            received_ms,
            &alert_record::encode(&header, alert.raw.get())?,
        )
    }

    /// Queues a job (durable after the next [`StoreBackend::commit`]).
    fn insert_job(&self, job: &DeliveryJob) -> Result<(), StoreError> {
        if spooled(job) {
            self.spool.append_job(job)?;
            self.counts.queued(&job.target);
            return Ok(());
        }
        if self
            .jobs
            .insert(job_key(job), serde_json::to_vec(job)?)?
            .is_none()
        {
            self.counts.queued(&job.target);
        }
        Ok(())
    }

    /// Concurrent callers share one flush (group commit).
    fn commit(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.commits.commit())
    }

    /// sled keeps the error of a failed flush and refuses every write after it, even once the
    /// disk has room again: only opening the folder again recovers (from what is on disk). A
    /// failed write to the spool is treated alike. And a data folder removed or replaced while
    /// herald runs takes every write since with it (sled writes on into files no longer in it,
    /// and another herald could open the path): each commit looks.
    fn needs_reopening(&self) -> bool {
        self.commits.broken()
    }

    /// Claimed in memory first (the index), written by the caller at the end of `claims`.
    fn claim_dedupe_key<'a>(
        &'a self,
        key: &'a str,
        alert_id: AlertId,
        now: DateTime<Utc>,
        remember: Duration,
    ) -> BoxFuture<'a, Result<ClaimOutcome, StoreError>> {
        Box::pin(async move {
            let claim = DedupeClaim {
                hash: dedupe_hash(key),
                alert_id,
                seen_ms: now.timestamp_millis().max(0) as u64,
                keep_ms: remember.as_millis() as u64,
            };
            Ok(
                match self.claim_index.claim(claim, remember, &self.spool).await? {
                    Some(first) => ClaimOutcome::Duplicate(first),
                    None => ClaimOutcome::New(PendingClaim::new(Box::new(SledPendingClaim {
                        claims: self.claims.clone(),
                        spool: self.spool.clone(),
                        index: self.claim_index.clone(),
                        claim,
                        settled: false,
                        spooled: AtomicBool::new(false),
                    }))),
                },
            )
        })
    }

    fn update_fold_record(
        &self,
        target: &str,
        fold_key: &str,
        update: &mut FoldUpdate<'_>,
    ) -> Result<(), StoreError> {
        update_json(&self.folds, &fold_tree_key(target, fold_key), update)
    }

    fn update_issue(&self, id: &str, update: &mut IssueUpdate<'_>) -> Result<(), StoreError> {
        update_json(&self.issues, id.as_bytes(), update)
    }

    fn issue(&self, id: &str) -> Result<Option<SdkIssue>, StoreError> {
        match self.issues.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    fn issues(&self) -> Records<'_, SdkIssue> {
        Box::new(
            self.issues
                .iter()
                .values()
                .map(|value| Ok(serde_json::from_slice(&value?)?)),
        )
    }

    /// For a fold-summary job about to be sent: takes the fold's count into the job, atomically.
    /// Returns the updated job, or `None` when there is nothing to report any more (the count
    /// already went out with a later message about the issue); the job is then removed.
    fn resolve_fold_summary(
        &self,
        key: &JobKey,
        job: &DeliveryJob,
        fold_key: &str,
    ) -> Result<Option<DeliveryJob>, StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        if parse_spool_job_key(key).is_some() {
            return Err(StoreError::Backend(
                "a fold's summary is never queued in the spool".into(),
            ));
        }
        let fold_key = fold_tree_key(&job.target, fold_key);
        let abort = |e: serde_json::Error| ConflictableTransactionError::Abort(e);
        let result = (&self.jobs, &self.folds).transaction(|(jobs, folds)| {
            let record: Option<FoldRecord> = match folds.get(&fold_key)? {
                Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(abort)?),
                None => None,
            };
            let Some(mut record) = record.filter(|r| r.folded > 0) else {
                jobs.remove(key.as_bytes())?;
                return Ok(None);
            };
            let updated = job.clone().reporting(Folded {
                count: record.folded,
                since: record.window_start,
            });
            record.folded = 0;
            folds.insert(
                fold_key.as_slice(),
                serde_json::to_vec(&record).map_err(abort)?,
            )?;
            jobs.insert(key.as_bytes(), serde_json::to_vec(&updated).map_err(abort)?)?;
            Ok(Some(updated))
        });
        match result {
            Ok(Some(updated)) => Ok(Some(updated)),
            Ok(None) => {
                self.counts.unqueued(&job.target);
                Ok(None)
            }
            Err(TransactionError::Storage(e)) => Err(e.into()),
            Err(TransactionError::Abort(e)) => Err(StoreError::Codec(e)),
        }
    }

    fn sweep(
        &self,
        now: DateTime<Utc>,
        remember: Duration,
        fold_window: Duration,
        retention: Duration,
    ) -> Result<SweepReport, StoreError> {
        sweep::sweep(self, now, remember, fold_window, retention)
    }

    /// An alert, normalized again from its payload.
    fn alert(&self, id: AlertId) -> Result<Option<StoredAlert>, StoreError> {
        match self.spool.alert(id)? {
            Some(record) => Ok(Some(alert_record::decode(id, &record)?)),
            None => Ok(None),
        }
    }

    /// Every stored alert, oldest first (looked up one by one: reading a few costs a few).
    fn alerts(&self) -> Records<'_, StoredAlert> {
        self.alerts_from(None, Direction::Later)
    }

    fn alerts_newest_first(&self, before: Option<AlertId>) -> Records<'_, StoredAlert> {
        self.alerts_from(before, Direction::Earlier)
    }

    fn deliveries_of(&self, id: AlertId) -> Result<Vec<DeliveryJob>, StoreError> {
        let mut delivered = self.spool.deliveries_of(id)?;
        delivered.sort_by_key(|job| job.id);
        Ok(delivered)
    }

    /// Every queued job: those due later by target and due time, then those in the spool.
    fn queued_jobs(&self) -> Records<'_, DeliveryJob> {
        let spooled = self.spool.queued_positions(None);
        Box::new(
            self.jobs
                .iter()
                .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
                .chain(spooled.into_iter().map(|at| self.spool.job_at(at))),
        )
    }

    /// Up to `limit` jobs of `target` that are due at `now` and not in `skip` (jobs in flight),
    /// earliest first.
    fn due_jobs(
        &self,
        target: &str,
        now: DateTime<Utc>,
        skip: &HashSet<JobId>,
        limit: usize,
    ) -> Result<Vec<(JobKey, DeliveryJob)>, StoreError> {
        let now_ms = now.timestamp_millis().max(0) as u64;
        let mut due = Vec::new();
        for entry in self.jobs.scan_prefix(target_prefix(target)) {
            if due.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            let Some((due_ms, id)) = parse_job_key(&key, target.len()) else {
                continue;
            };
            if due_ms > now_ms {
                break;
            }
            if !skip.contains(&id) {
                due.push((
                    JobKey::from_bytes(key.as_ref()),
                    serde_json::from_slice(&value)?,
                ));
            }
        }
        for (at, job) in self.spool.head(target, limit, &|id| skip.contains(&id))? {
            if job.due_at <= now {
                due.push((spool_job_key(at, target), job));
            }
        }
        // Both parts are in due order; together too (a stable sort keeps the spool's order).
        due.sort_by_key(|(_, job)| job.due_at);
        due.truncate(limit);
        Ok(due)
    }

    /// Every queued job of `target`, by due time.
    /// A job never attempted is stored with `"attempts":[]` (a quote inside a string is escaped,
    /// so no string value can hold that): such values are skipped without being parsed.
    fn retried_jobs_of<'a>(&'a self, target: &str) -> Records<'a, DeliveryJob> {
        const NEVER_ATTEMPTED: &[u8] = b"\"attempts\":[]";
        Box::new(
            self.jobs
                .scan_prefix(target_prefix(target))
                .filter_map(|entry| match entry {
                    Err(error) => Some(Err(error.into())),
                    Ok((_, value)) => {
                        let never_attempted = value
                            .windows(NEVER_ATTEMPTED.len())
                            .any(|window| window == NEVER_ATTEMPTED);
                        (!never_attempted).then(|| Ok(serde_json::from_slice(&value)?))
                    }
                }),
        )
    }

    /// When the earliest job of `target` not in `skip` is due.
    fn next_due_time(
        &self,
        target: &str,
        skip: &HashSet<JobId>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let spooled = self
            .spool
            .head(target, 1, &|id| skip.contains(&id))?
            .pop()
            .map(|(_, job)| job.due_at);
        for entry in self.jobs.scan_prefix(target_prefix(target)).keys() {
            let key = entry?;
            if let Some((due_ms, id)) = parse_job_key(&key, target.len()) {
                if !skip.contains(&id) {
                    let due = DateTime::from_timestamp_millis(due_ms as i64);
                    return Ok(due.into_iter().chain(spooled).min());
                }
            }
        }
        Ok(spooled)
    }

    /// Removes a delivered job. Not flushed at once: if a crash loses the removal, the job is sent
    /// again, which at-least-once delivery allows (and DingTalk's `msgUuid` makes harmless).
    fn finish_job(&self, key: &JobKey, done: &DeliveryJob) -> Result<(), StoreError> {
        let taken = match parse_spool_job_key(key) {
            Some((at, target)) => self.take_from_spool(at, &target)?,
            None => self.jobs.remove(key.as_bytes())?.is_some(),
        };
        if !taken {
            return Ok(()); // finished before (its delivery is recorded)
        }
        self.counts.unqueued(&done.target);
        self.spool.append_delivery(done)
    }

    /// Moves a job to its new due time, with its attempts recorded, in one atomic batch.
    /// A job in the spool moves to `jobs` (then leaves the spool's queue).
    fn reschedule_job(&self, key: &JobKey, job: &DeliveryJob) -> Result<JobKey, StoreError> {
        let new_key = job_key(job);
        if let Some((at, target)) = parse_spool_job_key(key) {
            self.jobs
                .insert(new_key.as_slice(), serde_json::to_vec(job)?)?;
            self.take_from_spool(at, &target)?;
            return Ok(JobKey::from_bytes(new_key));
        }
        let mut batch = sled::Batch::default();
        batch.remove(key.as_bytes());
        batch.insert(new_key.clone(), serde_json::to_vec(job)?);
        self.jobs.apply_batch(batch)?;
        Ok(JobKey::from_bytes(new_key))
    }

    /// Turns a job into a dead letter: removed from the queue and kept, atomically.
    fn bury_job(&self, key: &JobKey, dead: &DeadLetter) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        use std::convert::Infallible;
        let value = serde_json::to_vec(dead)?;
        let id = dead_letter_key(&dead.job.target, dead.job.id);
        if let Some((at, target)) = parse_spool_job_key(key) {
            self.dead_letters.insert(id, value)?;
            let removed = self.take_from_spool(at, &target)?;
            self.counts.buried(&dead.job.target, removed);
            return Ok(());
        }
        let removed = (&self.jobs, &self.dead_letters)
            .transaction(|(jobs, dead_letters)| {
                let removed = jobs.remove(key.as_bytes())?;
                dead_letters.insert(id.as_slice(), value.clone())?;
                Ok::<_, ConflictableTransactionError<Infallible>>(removed.is_some())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::from(e),
                TransactionError::Abort(never) => match never {},
            })?;
        self.counts.buried(&dead.job.target, removed);
        Ok(())
    }

    fn dead_letters_per_target(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        Ok(self.counts.dead_per_target())
    }

    fn replay_dead_letters(
        &self,
        select: &dyn Fn(&DeliveryJob) -> bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let mut replayed = Vec::new();
        for entry in self.dead_letters.iter() {
            let (key, value) = entry?;
            let dead: DeadLetter = serde_json::from_slice(&value)?;
            if !select(&dead.job) {
                continue;
            }
            let job = dead.job.replayed(now);
            let job_value = serde_json::to_vec(&job)?;
            let job_tree_key = job_key(&job);
            use sled::transaction::{TransactionError, Transactional};
            let moved = (&self.dead_letters, &self.jobs).transaction(|(dead_letters, jobs)| {
                if dead_letters.remove(&key)?.is_none() {
                    return Ok(false);
                }
                jobs.insert(job_tree_key.as_slice(), job_value.clone())?;
                Ok(true)
            });
            match moved {
                Ok(true) => {
                    self.counts.replayed(&job.target);
                    replayed.push(job);
                }
                Ok(false) => {}
                Err(TransactionError::Storage(e)) => return Err(e.into()),
                Err(TransactionError::Abort(())) => {}
            }
        }
        Ok(replayed)
    }

    /// Pauses (or resumes) a target on an operator's word; kept apart from the worker's own state.
    fn set_operator_pause(&self, target: &str, paused: bool) -> Result<(), StoreError> {
        let key = operator_pause_key(target);
        if paused {
            self.targets
                .insert(key, Utc::now().to_rfc3339().as_bytes())?;
        } else {
            self.targets.remove(key)?;
        }
        Ok(())
    }

    /// Whether an operator paused `target`.
    fn operator_paused(&self, target: &str) -> Result<bool, StoreError> {
        Ok(self.targets.contains_key(operator_pause_key(target))?)
    }

    /// Every dead letter, by target, oldest first.
    fn dead_letters(&self) -> Records<'_, DeadLetter> {
        Box::new(
            self.dead_letters
                .iter()
                .map(|entry| Ok(serde_json::from_slice(&entry?.1)?)),
        )
    }

    fn dead_letter_count(&self) -> u64 {
        self.counts.dead_total()
    }

    /// Queued jobs per target name (including targets no longer configured).
    fn queued_jobs_per_target(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        Ok(self.counts.queued_per_target())
    }

    /// What a target's limiter saved (recent attempts, a pause).
    fn target_state(&self, target: &str) -> Result<TargetState, StoreError> {
        match self.targets.get(target.as_bytes())? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(TargetState::default()),
        }
    }

    fn save_target_state(&self, target: &str, state: &TargetState) -> Result<(), StoreError> {
        self.targets
            .insert(target.as_bytes(), serde_json::to_vec(state)?)?;
        Ok(())
    }

    fn alert_count(&self) -> u64 {
        self.spool.alert_count()
    }

    fn queued_job_count(&self) -> u64 {
        self.counts.queued_total()
    }

    fn commit_totals(&self) -> (u64, std::time::Duration) {
        self.commits.totals()
    }

    /// Bytes the store takes on disk: sled's count and the spool's segments.
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()? + self.spool.size_on_disk())
    }

    fn latest_time(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .meta
            .get(CLOCK_KEY)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
            .and_then(|bytes| DateTime::from_timestamp_millis(i64::from_be_bytes(bytes))))
    }

    fn save_latest_time(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.meta
            .insert(CLOCK_KEY, &at.timestamp_millis().to_be_bytes())?;
        Ok(())
    }

    /// The directory lock makes this process the store's only user.
    fn owns_target(&self, _target: &str) -> Result<bool, StoreError> {
        Ok(true)
    }

    /// Every job is queued by this process, which wakes the worker itself.
    fn idle_poll(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

impl LinkStore for SledStore {
    /// The link of `key` (repo/installation/issue) for `target`.
    fn link(&self, target: &str, key: &str) -> Result<Option<LinkRecord>, StoreError> {
        match self.links.get(fold_tree_key(target, key))? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    fn save_link<'a>(
        &'a self,
        target: &'a str,
        key: &'a str,
        record: &'a LinkRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.links
                .insert(fold_tree_key(target, key), serde_json::to_vec(record)?)?;
            self.commits.commit().await
        })
    }
}
