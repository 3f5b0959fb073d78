//! Every sled tree herald keeps, and its key layout, in one place.
//!
//! | tree     | key                                              | value                   |
//! |----------|--------------------------------------------------|-------------------------|
//! | `meta`   | `b"schema"`                                      | schema version, u32 BE  |
//! | `alerts` | alert id, u64 BE                                 | [`AlertHeader`] as JSON, `\n`, the raw payload verbatim |
//! | `jobs`   | target name, `0x00`, due time in ms u64 BE, job id u64 BE | [`DeliveryJob`] as JSON |
//! | `dead_letters` | target name, `0x00`, job id u64 BE        | [`DeadLetter`] as JSON  |
//! | `targets` | target name                                     | [`TargetState`] as JSON |
//! | `targets` | target name, `0x00`, `b"paused"`                | present while an operator paused it |
//! | `claims` | claimed at ms u64 BE, first 16 bytes of SHA-256 of a dedupe key | alert id u64 BE |
//! | `folds`  | target name, `0x00`, fold key (installation/issue) | [`FoldRecord`] as JSON |
//! | `links`  | target name, `0x00`, repo/installation/issue     | [`LinkRecord`] as JSON  |
//!
//! An alert is stored as Sentry sent it, with the little the payload does not say (when, from
//! which resource): one write per callback instead of a normalized copy beside the payload, and a
//! queued alert is read with the normalizer of the herald that sends it.
//!
//! Dedupe claims are looked up in memory ([`ClaimIndex`], rebuilt from `claims` on open) and
//! written in time order, at the end of `claims`: a write into the middle of a large tree for
//! every callback cost two fifths of the intake's time. Time order also lets a sweep stop at the
//! first claim still remembered.
//!
//! Integers are big-endian so that key order is numeric order: a prefix scan of `jobs` over one
//! target yields its jobs by due time. Target names cannot contain `0x00` (config validation).
//!
//! Durability: sled makes writes durable only on flush. The intake writes its fold records, the
//! alert, its jobs and, last, its dedupe claim, then calls [`Store::commit`], which returns after a
//! flush that began after those writes. sled recovers a prefix of its log, so a claim found after a
//! crash always has its alert and jobs. Concurrent callers share one flush (group commit), so the cost of an fsync is
//! paid once per batch, not once per callback.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::alert::{Alert, Source};
use crate::job::{AlertId, DeadLetter, DeliveryJob, Folded, JobId};
use crate::sentry::{parse_integration_payload, parse_legacy_payload};
use std::collections::{BTreeMap, HashMap, HashSet};

mod records;
mod wakers;

pub use records::{FoldRecord, LinkRecord, StoredAlert, TargetState};
pub use wakers::Wakers;

const SCHEMA_KEY: &[u8] = b"schema";
/// 1: alerts as normalized JSON, payloads in their own tree. 2: alerts as header and payload.
/// 3: dedupe claims in time order (`claims`) instead of by hash (`dedupe`).
const SCHEMA_VERSION: u32 = 3;
/// Upper bound of sled's page cache. sled's default (1 GiB) would let an idle herald grow far
/// past what a sidecar should use; alerts are written once and read once, so a small cache loses little.
const CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store failed: {0}")]
    Sled(#[from] sled::Error),
    #[error("a stored record could not be encoded or decoded: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("the store at {path} was written by a newer herald (schema {found}, this one knows {SCHEMA_VERSION})")]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("stored alert {id} cannot be read: {reason}")]
    UnreadableAlert { id: AlertId, reason: String },
}

/// What the `alerts` tree keeps beside a payload: what is needed to read it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertHeader {
    pub received_at: DateTime<Utc>,
    pub source: Source,
    /// The `Sentry-Hook-Resource` header the payload came with.
    pub resource: String,
}

/// A dedupe key claimed for an alert, and when.
#[derive(Debug, Clone, Copy)]
struct DedupeClaim {
    hash: [u8; 16],
    alert_id: AlertId,
    seen_ms: u64,
}

/// What claiming a dedupe key found.
pub enum ClaimOutcome {
    /// The key is this callback's.
    New(PendingClaim),
    /// Claimed by this earlier alert, which is on disk.
    Duplicate(AlertId),
}

/// A dedupe claim whose callback is not on disk yet. Released when dropped unsettled.
pub struct PendingClaim {
    store: Store,
    claim: DedupeClaim,
    settled: bool,
}

impl PendingClaim {
    /// Writes the claim (durable after the next commit). Write it after the alert and its jobs:
    /// a claim recovered after a crash then always has them.
    pub fn write(&self) -> Result<(), StoreError> {
        self.store
            .inner
            .claims
            .insert(claim_key(&self.claim), &self.claim.alert_id.to_be_bytes())?;
        Ok(())
    }

    /// The callback is on disk: duplicates waiting for it are answered.
    pub fn settle(mut self) {
        self.store.inner.claim_index.settle(&self.claim);
        self.settled = true;
    }
}

impl Drop for PendingClaim {
    /// Not stored, or not known to be: a retry of the callback must not be taken for a duplicate.
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.store.inner.claim_index.release(&self.claim);
        if let Err(error) = self.store.inner.claims.remove(claim_key(&self.claim)) {
            tracing::error!(%error, "cannot remove the dedupe claim of a callback that failed");
        }
    }
}

/// Every dedupe claim of the store, in memory: the newest per key, and whether its callback is
/// still on its way to disk. Entries older than `remember` are dropped by each sweep.
struct ClaimIndex {
    claims: std::sync::Mutex<HashMap<[u8; 16], IndexedClaim>>,
    /// Woken whenever a pending claim settles or is released.
    changed: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy)]
struct IndexedClaim {
    alert_id: AlertId,
    seen_ms: u64,
    pending: bool,
}

impl ClaimIndex {
    fn load(claims: &sled::Tree) -> Result<ClaimIndex, StoreError> {
        let mut index = HashMap::new();
        // In time order: a key claimed again after `remember` ends up with its newest claim.
        for entry in claims.iter() {
            let (key, value) = entry?;
            if let Some(claim) = parse_claim(&key, &value) {
                index.insert(claim.hash, IndexedClaim::settled(&claim));
            }
        }
        Ok(ClaimIndex {
            claims: std::sync::Mutex::new(index),
            changed: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], IndexedClaim>> {
        // The map holds plain data and no code that can panic runs under the lock.
        self.claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes `claim`'s key, or returns the alert that holds it (once that alert is on disk).
    async fn claim(&self, claim: DedupeClaim, remember: std::time::Duration) -> Option<AlertId> {
        let remember_ms = remember.as_millis() as u64;
        loop {
            // Created before looking, so a change made after the look is not missed.
            let changed = self.changed.notified();
            {
                let mut claims = self.lock();
                match claims.get(&claim.hash) {
                    Some(first) if first.seen_ms + remember_ms > claim.seen_ms => {
                        if !first.pending {
                            return Some(first.alert_id);
                        }
                        // The first is still on its way to disk: answer once it is there (or
                        // take the key if it fails).
                    }
                    _ => {
                        claims.insert(
                            claim.hash,
                            IndexedClaim {
                                pending: true,
                                ..IndexedClaim::settled(&claim)
                            },
                        );
                        return None;
                    }
                }
            }
            changed.await;
        }
    }

    fn settle(&self, claim: &DedupeClaim) {
        if let Some(entry) = self.lock().get_mut(&claim.hash) {
            if entry.alert_id == claim.alert_id {
                entry.pending = false;
            }
        }
        self.changed.notify_waiters();
    }

    fn release(&self, claim: &DedupeClaim) {
        {
            let mut claims = self.lock();
            if claims
                .get(&claim.hash)
                .is_some_and(|entry| entry.alert_id == claim.alert_id)
            {
                claims.remove(&claim.hash);
            }
        }
        self.changed.notify_waiters();
    }

    fn forget_older_than(&self, now_ms: u64, remember: std::time::Duration) {
        let remember_ms = remember.as_millis() as u64;
        let mut claims = self.lock();
        claims.retain(|_, claim| claim.pending || claim.seen_ms + remember_ms > now_ms);
        // A flood's worth of capacity is given back once the flood is forgotten.
        if claims.capacity() > 4 * claims.len() + 1024 {
            claims.shrink_to_fit();
        }
    }
}

impl IndexedClaim {
    fn settled(claim: &DedupeClaim) -> IndexedClaim {
        IndexedClaim {
            alert_id: claim.alert_id,
            seen_ms: claim.seen_ms,
            pending: false,
        }
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub dedupe_records: u64,
    pub fold_records: u64,
    pub alerts: u64,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    alerts: sled::Tree,
    jobs: sled::Tree,
    dead_letters: sled::Tree,
    targets: sled::Tree,
    claims: sled::Tree,
    claim_index: ClaimIndex,
    folds: sled::Tree,
    links: sled::Tree,
    commits: GroupCommit,
    alert_count: AtomicU64,
    queued_job_count: AtomicU64,
    dead_letter_count: AtomicU64,
}

/// Where a queued job sits: its key in the `jobs` tree. Handed back to move or remove the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey(sled::IVec);

impl Store {
    /// Opens (or creates) the store in `dir`. A store sled reports as corrupt is moved aside to
    /// `<dir>.corrupt-<time>` and a fresh one is started, with an error in the log; any other
    /// failure (a second herald holding the lock, permissions) is returned, never papered over.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
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
                std::fs::rename(dir, &aside).map_err(|e| StoreError::Sled(e.into()))?;
                open_db(dir)?
            }
            other => other?,
        };
        let meta = db.open_tree("meta")?;
        let alerts = db.open_tree("alerts")?;
        match meta.get(SCHEMA_KEY)? {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(found) => {
                let found = u32::from_be_bytes(found.as_ref().try_into().unwrap_or([0xff; 4]));
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        path: dir.to_path_buf(),
                        found,
                    });
                }
                if found < SCHEMA_VERSION {
                    if found < 2 {
                        migrate_alerts_from_schema_1(&db, &alerts)?;
                    }
                    migrate_dedupe_to_claims(&db)?;
                    meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                    db.flush()?;
                }
            }
        }
        let jobs = db.open_tree("jobs")?;
        let dead_letters = db.open_tree("dead_letters")?;
        let targets = db.open_tree("targets")?;
        let claims = db.open_tree("claims")?;
        let claim_index = ClaimIndex::load(&claims)?;
        let folds = db.open_tree("folds")?;
        let links = db.open_tree("links")?;
        let alert_count = alerts.len() as u64;
        let queued_job_count = jobs.len() as u64;
        let dead_letter_count = dead_letters.len() as u64;
        Ok(Store {
            inner: Arc::new(Inner {
                path: dir.to_path_buf(),
                commits: GroupCommit::new(db.clone()),
                db,
                alerts,
                jobs,
                dead_letters,
                targets,
                claims,
                claim_index,
                folds,
                links,
                alert_count: AtomicU64::new(alert_count),
                queued_job_count: AtomicU64::new(queued_job_count),
                dead_letter_count: AtomicU64::new(dead_letter_count),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A fresh id for an alert or a job: monotonic, and never reused after a crash.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.generate_id()?)
    }

    /// Writes an alert (durable after the next [`Store::commit`]). Write it before its jobs: sled
    /// recovers a prefix of its log, so after a crash a job never exists without its alert.
    pub fn insert_alert(
        &self,
        id: AlertId,
        received_at: DateTime<Utc>,
        alert: &Alert,
    ) -> Result<(), StoreError> {
        let header = AlertHeader {
            received_at,
            source: alert.source,
            resource: alert.resource.clone(),
        };
        let previous = self
            .inner
            .alerts
            .insert(id.to_be_bytes(), alert_record(&header, alert.raw.get())?)?;
        if previous.is_none() {
            self.inner.alert_count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Queues a job (durable after the next [`Store::commit`]).
    pub fn insert_job(&self, job: &DeliveryJob) -> Result<(), StoreError> {
        if self
            .inner
            .jobs
            .insert(job_key(job), serde_json::to_vec(job)?)?
            .is_none()
        {
            self.inner.queued_job_count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Waits until everything written so far is on disk.
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.inner.commits.commit().await
    }

    /// Claims a dedupe key for `alert_id`, in memory. Returns the alert that claimed it first if
    /// that was less than `remember` ago (this callback is a duplicate), once that alert is on
    /// disk; else the claim, which the caller writes after its other writes and settles once they
    /// are durable. A claim dropped unsettled (the callback failed, or its request went away) is
    /// released. Atomic: of two identical callbacks racing, exactly one is new.
    pub async fn claim_dedupe_key(
        &self,
        key: &str,
        alert_id: AlertId,
        now: DateTime<Utc>,
        remember: std::time::Duration,
    ) -> ClaimOutcome {
        let claim = DedupeClaim {
            // Hashed: a dedupe key can be long (installation, resource, ids, a rule's name) and
            // there is one claim per callback; 16 bytes of SHA-256 keep them small.
            hash: dedupe_hash(key),
            alert_id,
            seen_ms: now.timestamp_millis().max(0) as u64,
        };
        match self.inner.claim_index.claim(claim, remember).await {
            Some(first) => ClaimOutcome::Duplicate(first),
            None => ClaimOutcome::New(PendingClaim {
                store: self.clone(),
                claim,
                settled: false,
            }),
        }
    }

    /// Atomically updates the fold record of (`target`, `fold_key`) with `update`, which gets the
    /// current record and returns the new one (or `None` to remove it) and a decision that is
    /// handed back. `update` may run more than once under contention; the decision returned is that
    /// of the run whose result was stored.
    pub fn update_fold<T>(
        &self,
        target: &str,
        fold_key: &str,
        mut update: impl FnMut(Option<FoldRecord>) -> (Option<FoldRecord>, T),
    ) -> Result<T, StoreError> {
        let key = fold_tree_key(target, fold_key);
        let mut current = self.inner.folds.get(&key)?;
        loop {
            let record = match &current {
                Some(bytes) => Some(serde_json::from_slice(bytes)?),
                None => None,
            };
            let (new_record, decision) = update(record);
            let new_bytes = match &new_record {
                Some(record) => Some(serde_json::to_vec(record)?),
                None if current.is_none() => return Ok(decision), // nothing to write
                None => None,
            };
            match self
                .inner
                .folds
                .compare_and_swap(&key, current.as_ref(), new_bytes)?
            {
                Ok(()) => return Ok(decision),
                Err(conflict) => current = conflict.current,
            }
        }
    }

    /// For a fold-summary job about to be sent: takes the fold's count into the job, atomically.
    /// Returns the updated job, or `None` when there is nothing to report any more (the count
    /// already went out with a later message about the issue); the job is then removed.
    pub fn resolve_fold_summary(
        &self,
        key: &JobKey,
        job: &DeliveryJob,
        fold_key: &str,
    ) -> Result<Option<DeliveryJob>, StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let fold_key = fold_tree_key(&job.target, fold_key);
        let abort = |e: serde_json::Error| ConflictableTransactionError::Abort(e);
        let result = (&self.inner.jobs, &self.inner.folds).transaction(|(jobs, folds)| {
            let record: Option<FoldRecord> = match folds.get(&fold_key)? {
                Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(abort)?),
                None => None,
            };
            let Some(mut record) = record.filter(|r| r.folded > 0) else {
                jobs.remove(&key.0)?;
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
            jobs.insert(&key.0, serde_json::to_vec(&updated).map_err(abort)?)?;
            Ok(Some(updated))
        });
        match result {
            Ok(Some(updated)) => Ok(Some(updated)),
            Ok(None) => {
                self.inner.queued_job_count.fetch_sub(1, Ordering::Relaxed);
                Ok(None)
            }
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
            Err(TransactionError::Abort(e)) => Err(StoreError::Codec(e)),
        }
    }

    /// Removes what can no longer matter: dedupe records older than `remember`; fold records whose
    /// window is over and whose count was reported; alerts older than `retention` that no queued
    /// job or dead letter refers to.
    pub fn sweep(
        &self,
        now: DateTime<Utc>,
        remember: std::time::Duration,
        fold_window: std::time::Duration,
        retention: std::time::Duration,
    ) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        let now_ms = now.timestamp_millis().max(0) as u64;
        // Claims are in time order: the expired ones are a prefix of the tree.
        let forgotten_before =
            (now_ms.saturating_sub(remember.as_millis() as u64) + 1).to_be_bytes();
        for key in self.inner.claims.range(..forgotten_before).keys() {
            if self.inner.claims.remove(key?)?.is_some() {
                report.dedupe_records += 1;
            }
        }
        self.inner.claim_index.forget_older_than(now_ms, remember);
        let window = chrono::Duration::from_std(fold_window).unwrap_or_default();
        for entry in self.inner.folds.iter() {
            let (key, value) = entry?;
            let done = serde_json::from_slice::<FoldRecord>(&value)
                .map(|r| r.folded == 0 && r.window_start + window <= now)
                .unwrap_or(true);
            if done
                && self
                    .inner
                    .folds
                    .compare_and_swap(&key, Some(&value), None::<&[u8]>)?
                    .is_ok()
            {
                report.fold_records += 1;
            }
        }
        let mut referenced = HashSet::new();
        for job in self.queued_jobs() {
            referenced.insert(job?.alert_id);
        }
        for dead in self.dead_letters() {
            referenced.insert(dead?.job.alert_id);
        }
        let cutoff = now - chrono::Duration::from_std(retention).unwrap_or_default();
        for entry in self.inner.alerts.iter() {
            let (key, value) = entry?;
            let Ok(id_bytes) = <[u8; 8]>::try_from(key.as_ref()) else {
                continue;
            };
            if referenced.contains(&u64::from_be_bytes(id_bytes)) {
                continue;
            }
            let old =
                split_alert_record(&value).is_none_or(|(header, _)| header.received_at <= cutoff);
            if old && self.inner.alerts.remove(&key)?.is_some() {
                self.inner.alert_count.fetch_sub(1, Ordering::Relaxed);
                report.alerts += 1;
            }
        }
        Ok(report)
    }

    /// An alert, normalized again from its payload.
    pub fn alert(&self, id: AlertId) -> Result<Option<StoredAlert>, StoreError> {
        match self.inner.alerts.get(id.to_be_bytes())? {
            Some(record) => Ok(Some(read_alert_record(id, &record)?)),
            None => Ok(None),
        }
    }

    /// Every stored alert, oldest first.
    pub fn alerts(&self) -> impl Iterator<Item = Result<StoredAlert, StoreError>> + '_ {
        self.inner.alerts.iter().map(|entry| {
            let (key, record) = entry?;
            let id = <[u8; 8]>::try_from(key.as_ref()).map_or(0, u64::from_be_bytes);
            read_alert_record(id, &record)
        })
    }

    /// Every queued job, grouped by target and ordered by due time within a target.
    pub fn queued_jobs(&self) -> impl Iterator<Item = Result<DeliveryJob, StoreError>> + '_ {
        self.inner
            .jobs
            .iter()
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
    }

    /// Up to `limit` jobs of `target` that are due at `now` and not in `skip` (jobs in flight),
    /// earliest first.
    pub fn due_jobs(
        &self,
        target: &str,
        now: DateTime<Utc>,
        skip: &HashSet<JobId>,
        limit: usize,
    ) -> Result<Vec<(JobKey, DeliveryJob)>, StoreError> {
        let now_ms = now.timestamp_millis().max(0) as u64;
        let mut due = Vec::new();
        for entry in self.inner.jobs.scan_prefix(target_prefix(target)) {
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
                due.push((JobKey(key), serde_json::from_slice(&value)?));
            }
        }
        Ok(due)
    }

    /// Every queued job of `target`, by due time.
    pub fn queued_jobs_of<'a>(
        &'a self,
        target: &str,
    ) -> impl Iterator<Item = Result<DeliveryJob, StoreError>> + 'a {
        self.inner
            .jobs
            .scan_prefix(target_prefix(target))
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
    }

    /// When the earliest job of `target` not in `skip` is due.
    pub fn next_due_time(
        &self,
        target: &str,
        skip: &HashSet<JobId>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        for entry in self.inner.jobs.scan_prefix(target_prefix(target)).keys() {
            let key = entry?;
            if let Some((due_ms, id)) = parse_job_key(&key, target.len()) {
                if !skip.contains(&id) {
                    return Ok(DateTime::from_timestamp_millis(due_ms as i64));
                }
            }
        }
        Ok(None)
    }

    /// Removes a delivered job. Not flushed at once: if a crash loses the removal, the job is sent
    /// again, which at-least-once delivery allows (and DingTalk's `msgUuid` makes harmless).
    pub fn finish_job(&self, key: &JobKey) -> Result<(), StoreError> {
        if self.inner.jobs.remove(&key.0)?.is_some() {
            self.inner.queued_job_count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Moves a job to its new due time, with its attempts recorded, in one atomic batch.
    pub fn reschedule_job(&self, key: &JobKey, job: &DeliveryJob) -> Result<JobKey, StoreError> {
        let new_key = job_key(job);
        let mut batch = sled::Batch::default();
        batch.remove(key.0.clone());
        batch.insert(new_key.clone(), serde_json::to_vec(job)?);
        self.inner.jobs.apply_batch(batch)?;
        Ok(JobKey(new_key.into()))
    }

    /// Turns a job into a dead letter: removed from the queue and kept, atomically.
    pub fn bury_job(&self, key: &JobKey, dead: &DeadLetter) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let value = serde_json::to_vec(dead)?;
        let id = dead_letter_key(&dead.job.target, dead.job.id);
        let removed = (&self.inner.jobs, &self.inner.dead_letters)
            .transaction(|(jobs, dead_letters)| {
                let removed = jobs.remove(&key.0)?;
                dead_letters.insert(id.as_slice(), value.clone())?;
                Ok::<_, ConflictableTransactionError<()>>(removed.is_some())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::Sled(e),
                TransactionError::Abort(()) => {
                    StoreError::Sled(sled::Error::Unsupported("aborted".into()))
                }
            })?;
        if removed {
            self.inner.queued_job_count.fetch_sub(1, Ordering::Relaxed);
        }
        self.inner.dead_letter_count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Dead letters per target name.
    pub fn dead_letters_per_target(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        count_per_target(&self.inner.dead_letters)
    }

    /// Puts dead letters back in the queue, due now, with a fresh retry schedule (their earlier
    /// attempts are kept in the job's history). `select` picks which (by their job). Returns
    /// the jobs queued again.
    pub fn replay_dead_letters(
        &self,
        select: impl Fn(&DeliveryJob) -> bool,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let mut replayed = Vec::new();
        for entry in self.inner.dead_letters.iter() {
            let (key, value) = entry?;
            let dead: DeadLetter = serde_json::from_slice(&value)?;
            if !select(&dead.job) {
                continue;
            }
            let job = dead.job.replayed(Utc::now());
            let job_value = serde_json::to_vec(&job)?;
            let job_tree_key = job_key(&job);
            use sled::transaction::{TransactionError, Transactional};
            let moved =
                (&self.inner.dead_letters, &self.inner.jobs).transaction(|(dead_letters, jobs)| {
                    if dead_letters.remove(&key)?.is_none() {
                        return Ok(false);
                    }
                    jobs.insert(job_tree_key.as_slice(), job_value.clone())?;
                    Ok(true)
                });
            match moved {
                Ok(true) => {
                    self.inner.dead_letter_count.fetch_sub(1, Ordering::Relaxed);
                    self.inner.queued_job_count.fetch_add(1, Ordering::Relaxed);
                    replayed.push(job);
                }
                Ok(false) => {}
                Err(TransactionError::Storage(e)) => return Err(StoreError::Sled(e)),
                Err(TransactionError::Abort(())) => {}
            }
        }
        Ok(replayed)
    }

    /// The link of `key` (repo/installation/issue) for `target`.
    pub fn link(&self, target: &str, key: &str) -> Result<Option<LinkRecord>, StoreError> {
        match self.inner.links.get(fold_tree_key(target, key))? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Saves a link and waits until it is on disk: a link must survive a crash that follows it.
    pub async fn save_link(
        &self,
        target: &str,
        key: &str,
        record: &LinkRecord,
    ) -> Result<(), StoreError> {
        self.inner
            .links
            .insert(fold_tree_key(target, key), serde_json::to_vec(record)?)?;
        self.commit().await
    }

    /// Pauses (or resumes) a target on an operator's word; kept apart from the worker's own state.
    pub fn set_operator_pause(&self, target: &str, paused: bool) -> Result<(), StoreError> {
        let key = operator_pause_key(target);
        if paused {
            self.inner
                .targets
                .insert(key, Utc::now().to_rfc3339().as_bytes())?;
        } else {
            self.inner.targets.remove(key)?;
        }
        Ok(())
    }

    /// Whether an operator paused `target`.
    pub fn operator_paused(&self, target: &str) -> Result<bool, StoreError> {
        Ok(self
            .inner
            .targets
            .contains_key(operator_pause_key(target))?)
    }

    /// Every dead letter, by target, oldest first.
    pub fn dead_letters(&self) -> impl Iterator<Item = Result<DeadLetter, StoreError>> + '_ {
        self.inner
            .dead_letters
            .iter()
            .map(|entry| Ok(serde_json::from_slice(&entry?.1)?))
    }

    pub fn dead_letter_count(&self) -> u64 {
        self.inner.dead_letter_count.load(Ordering::Relaxed)
    }

    /// Queued jobs per target name (including targets no longer configured).
    pub fn queued_jobs_per_target(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        count_per_target(&self.inner.jobs)
    }

    /// What a target's limiter saved (recent attempts, a pause).
    pub fn target_state(&self, target: &str) -> Result<TargetState, StoreError> {
        match self.inner.targets.get(target.as_bytes())? {
            Some(bytes) => Ok(serde_json::from_slice(&bytes)?),
            None => Ok(TargetState::default()),
        }
    }

    pub fn save_target_state(&self, target: &str, state: &TargetState) -> Result<(), StoreError> {
        self.inner
            .targets
            .insert(target.as_bytes(), serde_json::to_vec(state)?)?;
        Ok(())
    }

    pub fn alert_count(&self) -> u64 {
        self.inner.alert_count.load(Ordering::Relaxed)
    }

    pub fn queued_job_count(&self) -> u64 {
        self.inner.queued_job_count.load(Ordering::Relaxed)
    }

    /// Bytes the store takes on disk, as sled counts them.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.size_on_disk()?)
    }

    /// How many flushes the store has done since it was opened (each answers a batch of commits).
    pub fn flush_count(&self) -> u64 {
        self.inner.commits.flushes.load(Ordering::Relaxed)
    }
}

fn open_db(dir: &Path) -> Result<sled::Db, sled::Error> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_CAPACITY_BYTES)
        .mode(sled::Mode::HighThroughput)
        .open()
}

/// An `alerts` record: the header as one line of JSON (serde_json writes no newline), then the
/// payload exactly as received.
fn alert_record(header: &AlertHeader, payload: &str) -> Result<Vec<u8>, StoreError> {
    let mut record = serde_json::to_vec(header)?;
    record.reserve(1 + payload.len());
    record.push(b'\n');
    record.extend_from_slice(payload.as_bytes());
    Ok(record)
}

/// An `alerts` record's header and payload, without normalizing the payload.
fn split_alert_record(record: &[u8]) -> Option<(AlertHeader, &[u8])> {
    let newline = record.iter().position(|b| *b == b'\n')?;
    let header = serde_json::from_slice(&record[..newline]).ok()?;
    Some((header, &record[newline + 1..]))
}

fn read_alert_record(id: AlertId, record: &[u8]) -> Result<StoredAlert, StoreError> {
    let unreadable = |reason: String| StoreError::UnreadableAlert { id, reason };
    let (header, payload) =
        split_alert_record(record).ok_or_else(|| unreadable("no header".into()))?;
    let alert = match header.source {
        Source::Sentry => parse_integration_payload(&header.resource, payload),
        Source::SentryLegacyPlugin => parse_legacy_payload(payload),
    }
    .map_err(|error| unreadable(error.to_string()))?;
    Ok(StoredAlert {
        id,
        received_at: header.received_at,
        alert,
    })
}

/// Schema 1 kept a normalized copy of each alert in `alerts` and its payload in `payloads`:
/// rewrites each alert as header and payload, then drops `payloads`. Interrupted (a crash), it is
/// run again on the next start and skips what it already rewrote: a schema-1 record is compact
/// JSON, which never holds a raw newline, and a schema-2 record always does.
fn migrate_alerts_from_schema_1(db: &sled::Db, alerts: &sled::Tree) -> Result<(), StoreError> {
    let payloads = db.open_tree("payloads")?;
    let mut migrated = 0u64;
    for entry in alerts.iter() {
        let (key, value) = entry?;
        if split_alert_record(&value).is_some() {
            continue;
        }
        let old: StoredAlert = serde_json::from_slice(&value)?;
        let payload = payloads.get(&key)?;
        let payload = payload
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or("null");
        let header = AlertHeader {
            received_at: old.received_at,
            source: old.alert.source,
            resource: old.alert.resource,
        };
        alerts.insert(key, alert_record(&header, payload)?)?;
        migrated += 1;
    }
    db.drop_tree("payloads")?;
    tracing::info!(alerts = migrated, "store migrated from schema 1 to 2");
    Ok(())
}

/// Schema 2 kept dedupe claims by hash (`dedupe`: hash → alert id, claimed at): rewrites them in
/// time order into `claims`, then drops `dedupe`. Interrupted, it is run again and rewrites the
/// same keys.
fn migrate_dedupe_to_claims(db: &sled::Db) -> Result<(), StoreError> {
    let dedupe = db.open_tree("dedupe")?;
    let claims = db.open_tree("claims")?;
    let mut migrated = 0u64;
    for entry in dedupe.iter() {
        let (hash, value) = entry?;
        // Schema 2's value: the alert id, then when it was claimed.
        let schema_2_claim = || {
            Some(DedupeClaim {
                hash: hash.as_ref().try_into().ok()?,
                alert_id: be_u64(&value, 0)?,
                seen_ms: be_u64(&value, 8)?,
            })
        };
        if let Some(claim) = schema_2_claim() {
            claims.insert(claim_key(&claim), &claim.alert_id.to_be_bytes())?;
            migrated += 1;
        }
    }
    db.drop_tree("dedupe")?;
    tracing::info!(claims = migrated, "dedupe claims migrated to schema 3");
    Ok(())
}

/// Counts the keys of a tree keyed `target name, 0x00, …` per target name.
fn count_per_target(tree: &sled::Tree) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut counts = BTreeMap::new();
    for key in tree.iter().keys() {
        let key = key?;
        let name = key.split(|b| *b == 0).next().unwrap_or_default();
        *counts
            .entry(String::from_utf8_lossy(name).into_owned())
            .or_insert(0) += 1;
    }
    Ok(counts)
}

fn dead_letter_key(target: &str, job: JobId) -> Vec<u8> {
    let mut key = target_prefix(target);
    key.extend_from_slice(&job.to_be_bytes());
    key
}

fn operator_pause_key(target: &str) -> Vec<u8> {
    let mut key = target_prefix(target);
    key.extend_from_slice(b"paused");
    key
}

/// 16 bytes of SHA-256 of a dedupe key.
fn dedupe_hash(key: &str) -> [u8; 16] {
    sha2::Sha256::digest(key.as_bytes())[..16]
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

fn claim_key(claim: &DedupeClaim) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&claim.seen_ms.to_be_bytes());
    key[8..].copy_from_slice(&claim.hash);
    key
}

fn parse_claim(key: &[u8], value: &[u8]) -> Option<DedupeClaim> {
    Some(DedupeClaim {
        seen_ms: be_u64(key, 0)?,
        hash: key.get(8..24)?.try_into().ok()?,
        alert_id: be_u64(value, 0)?,
    })
}

/// The big-endian u64 at `at` in `bytes`, if there are 8 bytes there.
fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn fold_tree_key(target: &str, fold_key: &str) -> Vec<u8> {
    let mut key = target_prefix(target);
    key.extend_from_slice(fold_key.as_bytes());
    key
}

fn target_prefix(target: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(target.len() + 1);
    prefix.extend_from_slice(target.as_bytes());
    prefix.push(0);
    prefix
}

/// (due time in ms, job id) of a `jobs` key whose target name is `name_len` bytes.
fn parse_job_key(key: &[u8], name_len: usize) -> Option<(u64, JobId)> {
    let rest = key.get(name_len + 1..)?;
    let due = be_u64(rest, 0)?;
    let id = be_u64(rest, 8)?;
    Some((due, id))
}

/// `jobs` key: target name, 0x00, due time (ms, BE), job id (BE).
fn job_key(job: &DeliveryJob) -> Vec<u8> {
    let mut key = Vec::with_capacity(job.target.len() + 17);
    key.extend_from_slice(job.target.as_bytes());
    key.push(0);
    key.extend_from_slice(&(job.due_at.timestamp_millis().max(0) as u64).to_be_bytes());
    key.extend_from_slice(&job.id.to_be_bytes());
    key
}

/// Group commit over sled's flush.
///
/// Each caller takes a ticket after its writes, then waits its turn for the flush lock. Whoever
/// holds the lock flushes on behalf of every ticket issued before the flush began; callers whose
/// ticket a finished flush already covers return without flushing. Under load one fsync thus
/// answers a whole batch of callbacks, and with one caller it costs nothing extra.
struct GroupCommit {
    db: sled::Db,
    tickets_issued: AtomicU64,
    tickets_flushed: AtomicU64,
    flushes: AtomicU64,
    /// Held while a flush runs; tokio's mutex is fair, so waiters are served in order.
    flushing: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    fn new(db: sled::Db) -> Self {
        GroupCommit {
            db,
            tickets_issued: AtomicU64::new(0),
            tickets_flushed: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    async fn commit(&self) -> Result<(), StoreError> {
        let ticket = self.tickets_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.flushing.lock().await;
        if self.tickets_flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        self.gather().await;
        let covered = self.tickets_issued.load(Ordering::SeqCst);
        self.db.flush_async().await?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.tickets_flushed.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    /// Lets callers that are ready to run finish their writes and join the coming flush: yields to
    /// the runtime until new tickets stop arriving (bounded). Idle, this costs two yields; under
    /// load it makes batches larger, and each flush (a sync of sled's log, and a wake-up of its
    /// I/O threads) is paid by more callbacks.
    async fn gather(&self) {
        const QUIET_YIELDS: u32 = 2;
        const MAX_YIELDS: u32 = 64;
        let mut seen = self.tickets_issued.load(Ordering::SeqCst);
        let mut quiet = 0;
        for _ in 0..MAX_YIELDS {
            tokio::task::yield_now().await;
            let issued = self.tickets_issued.load(Ordering::SeqCst);
            if issued == seen {
                quiet += 1;
                if quiet == QUIET_YIELDS {
                    return;
                }
            } else {
                quiet = 0;
                seen = issued;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sentry::parse_integration_payload;

    fn sample_alert(issue: u32) -> Alert {
        let body = format!(
            r#"{{"action":"created","data":{{"issue":{{"id":"{issue}","title":"boom"}}}}}}"#
        );
        parse_integration_payload("issue", body.as_bytes()).unwrap()
    }

    /// Claims `key` for `alert_id` and, when it is new, writes and settles the claim.
    async fn claim(
        store: &Store,
        key: &str,
        alert_id: AlertId,
        at: DateTime<Utc>,
    ) -> Option<AlertId> {
        let hour = std::time::Duration::from_secs(3600);
        match store.claim_dedupe_key(key, alert_id, at, hour).await {
            ClaimOutcome::Duplicate(first) => Some(first),
            ClaimOutcome::New(claim) => {
                claim.write().unwrap();
                store.commit().await.unwrap();
                claim.settle();
                None
            }
        }
    }

    /// Claims `key`, which must be new, and leaves the claim pending.
    async fn new_claim(store: &Store, key: &str, alert_id: AlertId) -> PendingClaim {
        let hour = std::time::Duration::from_secs(3600);
        match store
            .claim_dedupe_key(key, alert_id, Utc::now(), hour)
            .await
        {
            ClaimOutcome::New(claim) => claim,
            ClaimOutcome::Duplicate(first) => panic!("{key} is already claimed by {first}"),
        }
    }

    /// Stores `alert` with a job for each of `targets`, durably, as the intake does.
    async fn accept(store: &Store, alert: &Alert, targets: &[&str]) -> Result<AlertId, StoreError> {
        let id = store.next_id()?;
        store.insert_alert(id, Utc::now(), alert)?;
        for target in targets {
            store.insert_job(&DeliveryJob::new(store.next_id()?, id, target, Utc::now()))?;
        }
        store.commit().await?;
        Ok(id)
    }

    /// An empty store that says it has schema `schema`, to be filled as that schema did.
    fn store_of_schema(path: &Path, schema: u32) -> sled::Db {
        let db = open_db(path).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(SCHEMA_KEY, &schema.to_be_bytes())
            .unwrap();
        db
    }

    fn has_tree(store: &Store, name: &str) -> bool {
        store
            .inner
            .db
            .tree_names()
            .iter()
            .any(|tree| tree.as_ref() == name.as_bytes())
    }

    #[test]
    fn a_schema_1_store_is_migrated_and_its_alerts_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let alert = sample_alert(7);
        let received_at = Utc::now();
        {
            // Schema 1: the normalized alert as JSON, the payload in its own tree.
            let db = store_of_schema(&path, 1);
            let old = StoredAlert {
                id: 41,
                received_at,
                alert: alert.clone(),
            };
            let key = 41u64.to_be_bytes();
            db.open_tree("alerts")
                .unwrap()
                .insert(key, serde_json::to_vec(&old).unwrap())
                .unwrap();
            db.open_tree("payloads")
                .unwrap()
                .insert(key, alert.raw.get().as_bytes())
                .unwrap();
            // An earlier migration was interrupted after rewriting this one.
            let header = AlertHeader {
                received_at,
                source: alert.source,
                resource: alert.resource.clone(),
            };
            db.open_tree("alerts")
                .unwrap()
                .insert(
                    42u64.to_be_bytes(),
                    alert_record(&header, alert.raw.get()).unwrap(),
                )
                .unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let read = store.alert(41).unwrap().unwrap();
        assert_eq!(read.received_at, received_at);
        assert_eq!(read.alert.raw.get(), alert.raw.get());
        assert_eq!(read.alert.issue_id.as_deref(), Some("7"));
        assert_eq!(read.alert.dedupe_key, alert.dedupe_key);
        assert_eq!(
            store.alert(42).unwrap().unwrap().alert.raw.get(),
            alert.raw.get()
        );
        assert!(!has_tree(&store, "payloads"));
        let schema = store
            .inner
            .db
            .open_tree("meta")
            .unwrap()
            .get(SCHEMA_KEY)
            .unwrap();
        assert_eq!(schema.as_deref(), Some(&SCHEMA_VERSION.to_be_bytes()[..]));
    }

    #[tokio::test]
    async fn a_schema_2_store_keeps_its_dedupe_claims() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let now = Utc::now();
        {
            // Schema 2: claims by hash, with the alert id and when.
            let db = store_of_schema(&path, 2);
            let mut value = 9u64.to_be_bytes().to_vec();
            value.extend_from_slice(&(now.timestamp_millis() as u64).to_be_bytes());
            db.open_tree("dedupe")
                .unwrap()
                .insert(dedupe_hash("seen"), value)
                .unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(claim(&store, "seen", 10, now).await, Some(9));
        assert_eq!(claim(&store, "unseen", 11, now).await, None);
        assert!(!has_tree(&store, "dedupe"));
    }

    #[tokio::test]
    async fn accepted_alerts_and_jobs_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let first = {
            let store = Store::open(&path).unwrap();
            accept(&store, &sample_alert(1), &["a", "b"]).await.unwrap()
        };
        let store = Store::open(&path).unwrap();
        assert_eq!(store.alert_count(), 1);
        assert_eq!(store.queued_job_count(), 2);
        let stored = store.alert(first).unwrap().unwrap();
        assert_eq!(stored.alert.issue_id.as_deref(), Some("1"));
        assert_eq!(
            stored.alert.raw.get(),
            r#"{"action":"created","data":{"issue":{"id":"1","title":"boom"}}}"#
        );
        let targets: Vec<String> = store.queued_jobs().map(|j| j.unwrap().target).collect();
        assert_eq!(targets, ["a", "b"]);
        // Ids keep growing after a restart.
        let second = accept(&store, &sample_alert(2), &["a"]).await.unwrap();
        assert!(second > first);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_all_complete_and_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { accept(&store, &sample_alert(i), &["t"]).await })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(task.await.unwrap().unwrap());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 64);
        assert_eq!(store.queued_job_count(), 64);
        // 64 concurrent commits were answered by fewer flushes: they were grouped.
        let flushes = store.flush_count();
        assert!(
            (1..64).contains(&flushes),
            "{flushes} flushes for 64 commits"
        );
    }

    #[tokio::test]
    async fn sweep_removes_what_can_no_longer_matter() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let hour = std::time::Duration::from_secs(3600);
        let old = now - chrono::Duration::hours(2);
        // An old alert no job refers to; an old alert with a queued job; a fresh alert.
        for (id, received_at) in [(1, old), (2, old), (3, now)] {
            store
                .insert_alert(id, received_at, &sample_alert(id as u32))
                .unwrap();
        }
        store
            .insert_job(&DeliveryJob::new(10, 2, "t", now))
            .unwrap();
        // An old dedupe claim and a fresh one.
        assert_eq!(claim(&store, "old", 1, old).await, None);
        assert_eq!(claim(&store, "fresh", 3, now).await, None);
        assert_eq!(claim(&store, "fresh", 4, now).await, Some(3));
        // A finished fold window, and one still counting.
        let record = |start, folded| FoldRecord {
            window_start: start,
            folded,
        };
        store
            .update_fold("t", "done", |_| (Some(record(old, 0)), ()))
            .unwrap();
        store
            .update_fold("t", "counting", |_| (Some(record(old, 3)), ()))
            .unwrap();

        let report = store.sweep(now, hour, hour, hour).unwrap();
        assert_eq!(
            report,
            SweepReport {
                dedupe_records: 1,
                fold_records: 1,
                alerts: 1
            }
        );
        assert!(store.alert(1).unwrap().is_none());
        assert!(
            store.alert(2).unwrap().is_some(),
            "a queued job still needs it"
        );
        assert!(store.alert(3).unwrap().is_some(), "within retention");
        assert_eq!(store.alert_count(), 2);
        // The old key can be claimed afresh; the fresh one is still a duplicate.
        assert_eq!(claim(&store, "old", 5, now).await, None);
        assert_eq!(claim(&store, "fresh", 6, now).await, Some(3));
        let counting = store
            .update_fold("t", "counting", |r| (r.clone(), r.map(|r| r.folded)))
            .unwrap();
        assert_eq!(counting, Some(3));
    }

    #[tokio::test]
    async fn a_claim_dropped_unsettled_is_released_and_a_waiting_duplicate_takes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = new_claim(&store, "k", 1).await;
        first.write().unwrap();
        // A duplicate arriving while the first is not on disk waits for it.
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { claim(&store, "k", 2, Utc::now()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "answered before the first was on disk"
        );
        drop(first); // the first callback failed
        assert_eq!(waiting.await.unwrap(), None, "the retry takes the key");
        let now = Utc::now();
        assert_eq!(claim(&store, "k", 3, now).await, Some(2));
        // Reopened: only the settled claim is remembered.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(claim(&store, "k", 4, now).await, Some(2));
    }

    #[tokio::test]
    async fn a_settled_claim_answers_the_duplicate_waiting_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = new_claim(&store, "k", 1).await;
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { claim(&store, "k", 2, Utc::now()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        first.write().unwrap();
        store.commit().await.unwrap();
        first.settle();
        assert_eq!(waiting.await.unwrap(), Some(1));
    }

    #[test]
    fn job_keys_sort_by_target_then_due_time() {
        let job = |target: &str, due_ms: i64, id: u64| {
            DeliveryJob::new(
                id,
                1,
                target,
                DateTime::from_timestamp_millis(due_ms).unwrap(),
            )
        };
        let mut keys = [
            job_key(&job("b", 1, 1)),
            job_key(&job("a", 300, 2)),
            job_key(&job("a", 20, 3)),
            job_key(&job("ab", 1, 4)),
        ];
        keys.sort();
        assert_eq!(keys[0], job_key(&job("a", 20, 3)));
        assert_eq!(keys[1], job_key(&job("a", 300, 2)));
        assert_eq!(keys[2], job_key(&job("ab", 1, 4)));
    }
}
