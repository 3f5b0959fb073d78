//! The shared backend: every table herald keeps in PostgreSQL (`schema.sql`), for one herald or
//! several replicas on one database.
//!
//! - What the intake writes (alerts, jobs, settled claims) waits in memory for
//!   [`StoreBackend::commit`], which writes everyone's in one transaction (group commit: under
//!   load one WAL flush answers many callbacks). Every other statement commits without waiting
//!   for the WAL flush (`synchronous_commit = off` on herald's connections); the group's
//!   transaction waits for it (`on`), and the WAL is flushed in order, so everything written
//!   before a 2xx is durable when the 2xx goes out. Only a crash of the database server itself
//!   can lose the last fraction of a second of the rest (a delivered job's removal, a reschedule):
//!   a message sent again, as at-least-once allows.
//! - A dedupe claim is one row that exactly one replica inserts (`ON CONFLICT`); it is written
//!   unsettled first and settled after the alert and its jobs, so a claim found settled always has
//!   them. An unsettled claim older than [`ABANDONED_AFTER`] was left by a replica that died
//!   mid-callback and may be taken over.
//! - A target's queue is worked by one replica at a time: it holds the target's lease row,
//!   renewed while it lives; when a replica dies, another takes the target once the lease
//!   (`store.lease`) is over, and sends what was in flight again (at least once).
//! - Read-modify-writes on the intake's path (fold counts, SDK issues) are compare-and-set
//!   writes that name the value they replace, run again when another replica wrote first; a
//!   fold summary locks its row.
//! - The intake's statements are shared by concurrent callbacks: one statement claims a batch of
//!   dedupe keys, and the group commit writes every alert, job and settled claim of its group
//!   with one statement per kind of row (arrays, `unnest`).
//!
//! The trait is synchronous where sled is; here those calls wait for the database on the
//! caller's thread (`block_in_place` on herald's runtime), or on the store's own runtime.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;

use super::alert_record::{self, AlertHeader};
use super::{
    run_to_end, BoxFuture, ClaimHandle, ClaimOutcome, CommitCounter, FoldRecord, FoldUpdate,
    IssueUpdate, JobKey, LinkRecord, LinkStore, PendingClaim, Records, Routing, StoreBackend,
    StoreError, StoredAlert, SweepReport, TargetState,
};
use crate::alert::Alert;
use crate::job::{AlertId, DeadLetter, DeliveryJob, Folded, JobId};
use crate::sdk::issue::SdkIssue;
use crate::secret::Secret;

/// The tables of `schema.sql` (1) and the counts of `counts.sql` (2). A database written by a
/// newer herald is refused.
const SCHEMA_VERSION: u32 = 2;
/// An unsettled claim older than this was abandoned (its replica died mid-callback).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(15);
/// Ids a replica takes from the sequence at once.
const ID_BLOCK: u64 = 100;
/// Blocks of ids a replica takes in one round trip.
const BLOCKS_AT_ONCE: usize = 10;
/// How often an idle worker looks for jobs another replica queued.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// `[store]`'s settings for PostgreSQL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgSettings {
    /// `postgres://user:password@host:5432/herald` (libpq's key=value form works too).
    pub url: Secret,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    /// How long a target stays with a replica that stopped renewing it.
    pub lease: Duration,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> StoreError {
        StoreError::Backend(Box::new(error))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> StoreError {
        StoreError::Backend(Box::new(error))
    }
}

/// Statement parameters as `execute_raw` takes them: owned by its future.
fn params<'a>(values: &[&'a (dyn ToSql + Sync)]) -> Vec<&'a (dyn ToSql + Sync)> {
    values.to_vec()
}

/// The blocks of ids being handed out, in the order the sequence gave them.
#[derive(Default)]
struct IdBlocks {
    next: u64,
    end: u64,
    /// Where each later block starts.
    later: std::collections::VecDeque<u64>,
}

impl IdBlocks {
    fn take(&mut self) -> Option<u64> {
        if self.next == self.end {
            let start = self.later.pop_front()?;
            (self.next, self.end) = (start, start + ID_BLOCK);
        }
        self.next += 1;
        Some(self.next - 1)
    }

    fn refill_if_empty(&mut self, starts: impl Iterator<Item = u64>) {
        if self.next == self.end && self.later.is_empty() {
            self.later.extend(starts);
        }
    }
}

/// Where a claim's batch says whether this replica took it (or why the batch failed).
type ClaimAnswer = tokio::sync::oneshot::Sender<Result<bool, String>>;

/// A claim waiting for its batch.
struct ClaimRequest {
    hash: Vec<u8>,
    alert_id: i64,
    now: DateTime<Utc>,
    keep: i64,
}

/// A write that waits for the next group commit.
enum Pending {
    Alert {
        id: i64,
        received_at: DateTime<Utc>,
        record: Vec<u8>,
    },
    Job {
        id: i64,
        target: String,
        alert_id: i64,
        due_at: DateTime<Utc>,
        attempted: bool,
        job: serde_json::Value,
    },
    SettledClaim {
        hash: Vec<u8>,
        alert_id: i64,
    },
}

struct Inner {
    pool: deadpool_postgres::Pool,
    pending: Mutex<Vec<Pending>>,
    /// Claims waiting for the next batch: one statement claims everyone's.
    claims: Mutex<Vec<(ClaimRequest, ClaimAnswer)>>,
    /// Held while a batch of claims runs.
    claiming: Arc<tokio::sync::Mutex<()>>,
    tickets_issued: std::sync::atomic::AtomicU64,
    tickets_committed: std::sync::atomic::AtomicU64,
    /// Held while a group commit runs; waiters are served in order.
    committing: Arc<tokio::sync::Mutex<()>>,
    commits: CommitCounter,
    /// Runs the database calls of a caller outside herald's multi-threaded runtime.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A runtime may not be dropped inside another; let its threads end by themselves.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Inner {
    /// Waits for `work` on this thread: on herald's multi-threaded runtime, by handing the
    /// worker's other tasks to another thread meanwhile; anywhere else, with the store's own
    /// runtime driving the connections.
    fn block<F: Future>(&self, work: F) -> F::Output {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(work))
            }
            _ => {
                let runtime = self
                    .runtime
                    .as_ref()
                    .expect("the store's runtime lives as long as it");
                let _inside = runtime.enter();
                futures_executor::block_on(work)
            }
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    fn pend(&self, write: Pending) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(write);
    }

    /// Writes what waits, with everyone's that waits, in one transaction that waits for the WAL
    /// flush; returns once a commit that began after the caller's writes is done.
    async fn commit(self: &Arc<Self>) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let ticket = self.tickets_issued.fetch_add(1, SeqCst) + 1;
        let turn = self.committing.clone().lock_owned().await;
        if self.tickets_committed.load(SeqCst) >= ticket {
            return Ok(());
        }
        // Holding the turn until it ends: the next turn must find these writes in the database,
        // not taken and gone with a caller that went away.
        run_to_end(self.clone().write_pending(turn)).await
    }

    async fn write_pending(
        self: Arc<Self>,
        _turn: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let started = std::time::Instant::now();
        let covered = self.tickets_issued.load(SeqCst);
        let writes = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let result = self.write_all(&writes).await;
        if result.is_err() {
            // Put them back for the next commit: a failed group loses nobody's writes.
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let later = std::mem::take(&mut *pending);
            *pending = writes;
            pending.extend(later);
            return result;
        }
        self.commits.record(started);
        self.tickets_committed.fetch_max(covered, SeqCst);
        Ok(())
    }

    /// Whether this replica took the claim (new, expired, or abandoned unsettled). Claims that
    /// arrive while a batch runs wait for it and go together in the next: one statement for
    /// everyone's, as the group commit does for their writes.
    async fn claim(self: &Arc<Self>, request: ClaimRequest) -> Result<bool, StoreError> {
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        self.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((request, answer));
        let turn = self.claiming.clone().lock_owned().await;
        // Answered by the batch that ran while this one waited, or in the batch it runs now.
        let mut answer = answered.try_recv();
        if answer.is_err() {
            let batch = std::mem::take(&mut *self.claims.lock().unwrap_or_else(|p| p.into_inner()));
            // Holding the turn until it ends: the others in the batch hear what became of their
            // claims whether or not this caller is still there.
            let inner = self.clone();
            let _ = run_to_end(async move {
                let _turn = turn;
                inner.claim_batch(batch).await;
                Ok(())
            })
            .await;
            answer = answered.try_recv();
        }
        match answer {
            Ok(answer) => answer.map_err(|e| StoreError::Backend(e.into())),
            // The batch's task ended without answering (it panicked).
            Err(_) => Err(StoreError::Backend(
                "a batch of claims was abandoned".into(),
            )),
        }
    }

    /// Inserts a batch of claims in one statement, in the order of their hashes (two replicas'
    /// batches never wait for each other in a circle), and answers each.
    async fn claim_batch(&self, mut batch: Vec<(ClaimRequest, ClaimAnswer)>) {
        batch.sort_by(|a, b| a.0.hash.cmp(&b.0.hash));
        // The same key twice in one batch: the first is tried, the second told it was not taken
        // (and waits for the first as a duplicate does).
        let mut tried = Vec::with_capacity(batch.len());
        let (mut hashes, mut alert_ids, mut seen_at, mut keep_ms) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (request, answer) in batch {
            if hashes.last() == Some(&request.hash) {
                let _ = answer.send(Ok(false));
                continue;
            }
            hashes.push(request.hash);
            alert_ids.push(request.alert_id);
            seen_at.push(request.now);
            keep_ms.push(request.keep);
            tried.push(answer);
        }
        let abandoned = millis(ABANDONED_AFTER);
        let result = async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "INSERT INTO herald_claim AS c (hash, alert_id, seen_at, keep_ms, settled) \
                     SELECT hash, alert_id, seen_at, keep_ms, false \
                     FROM unnest($1::bytea[], $2::bigint[], $3::timestamptz[], $4::bigint[]) \
                       AS u (hash, alert_id, seen_at, keep_ms) ORDER BY hash \
                     ON CONFLICT (hash) DO UPDATE SET alert_id = EXCLUDED.alert_id, \
                       seen_at = EXCLUDED.seen_at, keep_ms = EXCLUDED.keep_ms, settled = false \
                     WHERE c.seen_at + GREATEST(c.keep_ms, EXCLUDED.keep_ms) * interval '1 millisecond' <= EXCLUDED.seen_at \
                        OR (NOT c.settled AND c.seen_at + $5::bigint * interval '1 millisecond' <= EXCLUDED.seen_at) \
                     RETURNING hash",
                )
                .await?;
            let rows = client
                .query(
                    &statement,
                    &[&hashes, &alert_ids, &seen_at, &keep_ms, &abandoned],
                )
                .await?;
            Ok::<HashSet<Vec<u8>>, StoreError>(rows.into_iter().map(|row| row.get(0)).collect())
        }
        .await;
        for (hash, answer) in hashes.iter().zip(tried) {
            let _ = answer.send(match &result {
                Ok(taken) => Ok(taken.contains(hash)),
                Err(error) => Err(error.to_string()),
            });
        }
    }

    async fn write_all(&self, writes: &[Pending]) -> Result<(), StoreError> {
        let group = Group::of(writes);
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let alerts = transaction
            .prepare_cached(
                "INSERT INTO herald_alert (id, received_at, record) \
                 SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::bytea[]) \
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            )
            .await?;
        let jobs = transaction
            .prepare_cached(
                "INSERT INTO herald_job (id, target, alert_id, due_at, attempted, job) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::timestamptz[], \
                   $5::boolean[], $6::jsonb[]) \
                 ON CONFLICT (id) DO UPDATE SET due_at = EXCLUDED.due_at, \
                   attempted = EXCLUDED.attempted, job = EXCLUDED.job",
            )
            .await?;
        let claims = transaction
            .prepare_cached(
                "UPDATE herald_claim c SET settled = true \
                 FROM unnest($1::bytea[], $2::bigint[]) AS s (hash, alert_id) \
                 WHERE c.hash = s.hash AND c.alert_id = s.alert_id",
            )
            .await?;
        // This transaction waits for the WAL flush, which covers everything written before it;
        // txid_current() gives it a commit record even when nothing waits. One statement per
        // kind of row, whatever the group's size, sent without waiting for each answer.
        let wait_for_flush =
            transaction.batch_execute("SET LOCAL synchronous_commit = on; SELECT txid_current()");
        let a = &group.alerts;
        let j = &group.jobs;
        let c = &group.claims;
        let write_alerts =
            transaction.execute_raw(&alerts, params(&[&a.id, &a.received_at, &a.record]));
        let write_jobs = transaction.execute_raw(
            &jobs,
            params(&[
                &j.id,
                &j.target,
                &j.alert_id,
                &j.due_at,
                &j.attempted,
                &j.job,
            ]),
        );
        let settle_claims = transaction.execute_raw(&claims, params(&[&c.hash, &c.alert_id]));
        futures_util::future::try_join4(wait_for_flush, write_alerts, write_jobs, settle_claims)
            .await?;
        transaction.commit().await?;
        Ok(())
    }
}

/// A group commit's writes as one array per column, for one statement per kind of row. A row
/// written twice in one group keeps its last write, as one statement after another would.
#[derive(Default)]
struct Group {
    alerts: AlertColumns,
    jobs: JobColumns,
    claims: ClaimColumns,
}

#[derive(Default)]
struct AlertColumns {
    id: Vec<i64>,
    received_at: Vec<DateTime<Utc>>,
    record: Vec<Vec<u8>>,
}

#[derive(Default)]
struct JobColumns {
    id: Vec<i64>,
    target: Vec<String>,
    alert_id: Vec<i64>,
    due_at: Vec<DateTime<Utc>>,
    attempted: Vec<bool>,
    job: Vec<serde_json::Value>,
}

#[derive(Default)]
struct ClaimColumns {
    hash: Vec<Vec<u8>>,
    alert_id: Vec<i64>,
}

impl Group {
    fn of(writes: &[Pending]) -> Group {
        let mut last_write = HashMap::new();
        for (at, write) in writes.iter().enumerate() {
            match write {
                Pending::Alert { id, .. } => last_write.insert(("alert", *id), at),
                Pending::Job { id, .. } => last_write.insert(("job", *id), at),
                Pending::SettledClaim { .. } => None,
            };
        }
        let is_last = |kind: &'static str, id: &i64, at: usize| last_write[&(kind, *id)] == at;
        let mut group = Group::default();
        for (at, write) in writes.iter().enumerate() {
            match write {
                Pending::Alert {
                    id,
                    received_at,
                    record,
                } if is_last("alert", id, at) => {
                    let a = &mut group.alerts;
                    a.id.push(*id);
                    a.received_at.push(*received_at);
                    a.record.push(record.clone());
                }
                Pending::Job {
                    id,
                    target,
                    alert_id,
                    due_at,
                    attempted,
                    job,
                } if is_last("job", id, at) => {
                    let j = &mut group.jobs;
                    j.id.push(*id);
                    j.target.push(target.clone());
                    j.alert_id.push(*alert_id);
                    j.due_at.push(*due_at);
                    j.attempted.push(*attempted);
                    j.job.push(job.clone());
                }
                Pending::SettledClaim { hash, alert_id } => {
                    group.claims.hash.push(hash.clone());
                    group.claims.alert_id.push(*alert_id);
                }
                // Written again later in the group.
                Pending::Alert { .. } | Pending::Job { .. } => {}
            }
        }
        group
    }
}

/// The store in a PostgreSQL database, shared by every replica pointed at it.
pub struct PgStore {
    inner: Arc<Inner>,
    location: String,
    /// This process among the replicas: its leases carry it.
    replica: String,
    lease: Duration,
    /// When this process last renewed each target's lease it holds.
    renewed: Mutex<HashMap<String, Instant>>,
    ids: Mutex<IdBlocks>,
}

fn json<T: Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    Ok(serde_json::to_value(value)?)
}

fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, StoreError> {
    Ok(serde_json::from_value(value)?)
}

fn job_key(id: JobId) -> JobKey {
    JobKey::from_bytes(id.to_be_bytes().to_vec())
}

fn job_id(key: &JobKey) -> i64 {
    <[u8; 8]>::try_from(key.as_bytes()).map_or(-1, |bytes| u64::from_be_bytes(bytes) as i64)
}

/// The URL without its password, for logs.
fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "a PostgreSQL database (the URL is not shown)".into(),
    }
}

impl PgStore {
    /// Connects, and creates or migrates herald's tables (several replicas starting at once take
    /// turns under an advisory lock).
    pub fn open(settings: &PgSettings) -> Result<PgStore, StoreError> {
        let config: tokio_postgres::Config = settings
            .url
            .expose()
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Backend(Box::new(e)))?;
        let mut config = config;
        config.connect_timeout(settings.connect_timeout);
        config.application_name("herald");
        // Only the group commit waits for the WAL flush (see the module's doc).
        config.options("-c synchronous_commit=off");
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("herald-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        let inner = Arc::new(Inner {
            pool,
            pending: Mutex::new(Vec::new()),
            claims: Mutex::new(Vec::new()),
            claiming: Arc::new(tokio::sync::Mutex::new(())),
            tickets_issued: Default::default(),
            tickets_committed: Default::default(),
            committing: Arc::new(tokio::sync::Mutex::new(())),
            commits: CommitCounter::default(),
            runtime: Some(runtime),
        });
        let location = without_password(settings.url.expose());
        inner.block(migrate(&inner, &location))?;
        Ok(PgStore {
            inner,
            location,
            replica: format!(
                "{}-{}-{:08x}",
                hostname(),
                std::process::id(),
                fastrand::u32(..)
            ),
            lease: settings.lease,
            renewed: Mutex::new(HashMap::new()),
            ids: Mutex::new(IdBlocks::default()),
        })
    }

    fn block<F: Future>(&self, work: F) -> F::Output {
        self.inner.block(work)
    }

    /// Runs one statement (prepared once per connection) and returns how many rows it changed.
    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.block(async {
            let client = self.inner.client().await?;
            let statement = client.prepare_cached(sql).await?;
            Ok(client.execute(&statement, params).await?)
        })
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.block(async {
            let client = self.inner.client().await?;
            let statement = client.prepare_cached(sql).await?;
            Ok(client.query(&statement, params).await?)
        })
    }

    fn records<T: DeserializeOwned + 'static>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Records<'_, T> {
        match self.query(sql, params) {
            Ok(rows) => Box::new(
                rows.into_iter()
                    .map(|row| from_json::<T>(row.get::<_, serde_json::Value>(0))),
            ),
            Err(error) => Box::new(std::iter::once(Err(error))),
        }
    }

    /// What `herald_count` (`counts.sql`) holds of `what` ('alerts', 'queued', 'dead'): the sum
    /// of its shards.
    fn kept_count(&self, what: &str) -> u64 {
        self.query(
            "SELECT COALESCE(sum(n), 0)::bigint FROM herald_count WHERE what = $1",
            &[&what],
        )
        .ok()
        .and_then(|rows| rows.first().map(|row| row.get::<_, i64>(0)))
        .unwrap_or(0)
        .max(0) as u64
    }

    fn kept_counts_per_target(&self, what: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        Ok(self
            .query(
                "SELECT target, sum(n)::bigint FROM herald_count WHERE what = $1 \
                 GROUP BY target HAVING sum(n) > 0",
                &[&what],
            )?
            .into_iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1).max(0) as u64))
            .collect())
    }

    /// Replaces the JSON value of the row `select` finds, or inserts one, with what `update` makes
    /// of it (`None` deletes), as a compare-and-set: the write names the value it was computed
    /// from, and when another replica changed the row meanwhile, `update` runs again on what it
    /// wrote. Without a transaction, a read that changes nothing is one statement and a change
    /// two (a locked read-modify-write is four round trips on every callback of an issue).
    fn compare_and_set<T: Serialize + DeserializeOwned>(
        &self,
        statements: &RowStatements<'_, T>,
        keys: &[&(dyn ToSql + Sync)],
        update: &mut dyn FnMut(Option<T>) -> Option<T>,
    ) -> Result<(), StoreError> {
        loop {
            let done = self.block(async {
                let client = self.inner.client().await?;
                let select = client.prepare_cached(statements.select).await?;
                let current: Option<serde_json::Value> =
                    client.query_opt(&select, keys).await?.map(|row| row.get(0));
                let record = current.clone().map(from_json::<T>).transpose()?;
                let new = match update(record) {
                    Some(new) => Some((json(&new)?, new)),
                    None => None,
                };
                let mut params: Vec<&(dyn ToSql + Sync)> = keys.to_vec();
                let (sql, extra) = match (&current, &new) {
                    (None, None) => return Ok(true),
                    (Some(old), Some((value, _))) if old == value => return Ok(true),
                    (None, Some((value, new))) => {
                        params.push(value);
                        (
                            statements.insert,
                            statements.extra.map(|derive| derive(new)),
                        )
                    }
                    (Some(old), Some((value, new))) => {
                        params.push(value);
                        params.push(old);
                        (
                            statements.update,
                            statements.extra.map(|derive| derive(new)),
                        )
                    }
                    (Some(old), None) => {
                        params.push(old);
                        (statements.delete, None)
                    }
                };
                if let Some(extra) = &extra {
                    params.push(extra);
                }
                let write = client.prepare_cached(sql).await?;
                // Nothing changed: another replica wrote the row first.
                Ok::<bool, StoreError>(client.execute(&write, &params).await? > 0)
            })?;
            if done {
                return Ok(());
            }
        }
    }

    /// Removes job `id` from the queue and writes what is kept of it (`keep` with `params`), in
    /// one transaction.
    fn remove_job_keeping(
        &self,
        id: i64,
        keep: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), StoreError> {
        self.block(async {
            let mut client = self.inner.client().await?;
            let transaction = client.transaction().await?;
            transaction
                .execute("DELETE FROM herald_job WHERE id = $1", &[&id])
                .await?;
            transaction.execute(keep, params).await?;
            transaction.commit().await?;
            Ok(())
        })
    }

    /// Whether this process holds `target`'s lease, taking or renewing it as needed.
    fn hold_lease(&self, target: &str) -> Result<bool, StoreError> {
        let fresh = self
            .renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .is_some_and(|at| at.elapsed() < self.lease / 3);
        if fresh {
            return Ok(true);
        }
        let lease_ms = self.lease.as_millis() as i64;
        let held = self.query(
            "INSERT INTO herald_target_lease (name, owner, expires_at) \
             VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond') \
             ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
             WHERE herald_target_lease.owner = EXCLUDED.owner OR herald_target_lease.expires_at <= now() \
             RETURNING owner",
            &[&target, &self.replica, &lease_ms],
        )?;
        let mut renewed = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_empty() {
            renewed.remove(target);
            Ok(false)
        } else {
            renewed.insert(target.to_string(), Instant::now());
            Ok(true)
        }
    }
}

/// The statements [`PgStore::compare_and_set`] runs on one kind of row. The keys come first; then
/// `insert` takes the new value, `update` the new value and the one it replaces, `delete` the
/// one it removes (a write that finds another value changes nothing); `extra`'s value comes last.
struct RowStatements<'a, T> {
    select: &'a str,
    insert: &'a str,
    update: &'a str,
    delete: &'a str,
    /// A second column derived from the value (an issue's last_seen).
    extra: Option<fn(&T) -> DateTime<Utc>>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "herald".into())
}

async fn migrate(inner: &Inner, location: &str) -> Result<(), StoreError> {
    let mut client = inner.client().await?;
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtext('herald schema'))",
            &[],
        )
        .await?;
    transaction
        .batch_execute(include_str!("schema.sql"))
        .await?;
    let found = transaction
        .query_opt("SELECT value FROM herald_meta WHERE key = 'schema'", &[])
        .await?
        .and_then(|row| row.get::<_, String>(0).parse::<u32>().ok());
    match found {
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema {
                location: location.to_string(),
                found,
                known: SCHEMA_VERSION,
            })
        }
        Some(SCHEMA_VERSION) => {}
        // A new database, or one of schema 1 (whose replicas may go on writing while they are
        // replaced: the counts are kept by triggers, theirs included).
        _ => {
            transaction
                .batch_execute(include_str!("counts.sql"))
                .await?;
            transaction
                .execute(
                    "INSERT INTO herald_meta (key, value) VALUES ('schema', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&SCHEMA_VERSION.to_string()],
                )
                .await?;
        }
    }
    transaction.commit().await?;
    Ok(())
}

/// A claim inserted unsettled; settled by [`ClaimHandle::write`], deleted when dropped before.
struct PgPendingClaim {
    inner: Arc<Inner>,
    hash: Vec<u8>,
    alert_id: i64,
    written: std::sync::atomic::AtomicBool,
}

impl ClaimHandle for PgPendingClaim {
    /// Settled by the next group commit, after the alert and jobs written before it.
    fn write(&self) -> Result<(), StoreError> {
        self.inner.pend(Pending::SettledClaim {
            hash: self.hash.clone(),
            alert_id: self.alert_id,
        });
        self.written
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn settle(self: Box<Self>) {}
}

impl Drop for PgPendingClaim {
    fn drop(&mut self) {
        if self.written.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // Released in the background: a claim left behind is taken over after ABANDONED_AFTER.
        let inner = self.inner.clone();
        let hash = std::mem::take(&mut self.hash);
        let alert_id = self.alert_id;
        let release = async move {
            if let Ok(client) = inner.client().await {
                let _ = client
                    .execute(
                        "DELETE FROM herald_claim WHERE hash = $1 AND alert_id = $2 AND NOT settled",
                        &[&hash, &alert_id],
                    )
                    .await;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(release);
            }
            Err(_) => {
                if let Some(runtime) = self.inner.runtime.as_ref() {
                    runtime.spawn(release);
                }
            }
        }
    }
}

fn claim_hash(key: &str) -> Vec<u8> {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes());
    digest[..16].to_vec()
}

fn millis(duration: Duration) -> i64 {
    duration.as_millis().min(i64::MAX as u128) as i64
}

impl StoreBackend for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    /// From blocks of the sequence's (it counts in steps of [`ID_BLOCK`]), taken
    /// [`BLOCKS_AT_ONCE`] at a time: one round trip in a thousand ids. Monotonic in each process;
    /// never reused.
    fn next_id(&self) -> Result<u64, StoreError> {
        loop {
            if let Some(id) = self.ids.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Ok(id);
            }
            // Never across the lock: a thread waiting for the database while the runtime's
            // others wait for the lock would leave nobody to drive the connection.
            let rows = self.query(
                "SELECT nextval('herald_id') FROM generate_series(1, $1::int)",
                &[&(BLOCKS_AT_ONCE as i32)],
            )?;
            let starts = rows.iter().map(|row| row.get::<_, i64>(0).max(1) as u64);
            // When another thread refilled first, these blocks are left unused, never reused.
            self.ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .refill_if_empty(starts);
        }
    }

    fn claim_dedupe_key<'a>(
        &'a self,
        key: &'a str,
        alert_id: AlertId,
        now: DateTime<Utc>,
        remember: Duration,
    ) -> BoxFuture<'a, Result<ClaimOutcome, StoreError>> {
        Box::pin(async move {
            let hash = claim_hash(key);
            let id = alert_id as i64;
            let keep = millis(remember);
            let deadline = Instant::now() + ABANDONED_AFTER;
            loop {
                let taken = self
                    .inner
                    .claim(ClaimRequest {
                        hash: hash.clone(),
                        alert_id: id,
                        now,
                        keep,
                    })
                    .await?;
                if taken {
                    return Ok(ClaimOutcome::New(PendingClaim::new(Box::new(
                        PgPendingClaim {
                            inner: self.inner.clone(),
                            hash,
                            alert_id: id,
                            written: false.into(),
                        },
                    ))));
                }
                let client = self.inner.client().await?;
                let first = client
                    .query_opt(
                        "SELECT alert_id, settled FROM herald_claim WHERE hash = $1",
                        &[&hash],
                    )
                    .await?;
                drop(client);
                match first {
                    Some(row) if row.get::<_, bool>(1) => {
                        return Ok(ClaimOutcome::Duplicate(row.get::<_, i64>(0) as u64))
                    }
                    // Its callback is on its way (on this replica or another): wait for it.
                    _ if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Some(row) => return Ok(ClaimOutcome::Duplicate(row.get::<_, i64>(0) as u64)),
                    None => continue,
                }
            }
        })
    }

    fn insert_alert(
        &self,
        id: AlertId,
        received_at: DateTime<Utc>,
        alert: &Alert,
        routing: &Routing,
    ) -> Result<(), StoreError> {
        let header = AlertHeader::of(alert, received_at, routing);
        self.inner.pend(Pending::Alert {
            id: id as i64,
            received_at,
            record: alert_record::encode(&header, alert.raw.get())?,
        });
        Ok(())
    }

    /// Written by the next group commit.
    fn insert_job(&self, job: &DeliveryJob) -> Result<(), StoreError> {
        self.inner.pend(Pending::Job {
            id: job.id as i64,
            target: job.target.clone(),
            alert_id: job.alert_id as i64,
            due_at: job.due_at,
            attempted: !job.attempts.is_empty(),
            job: json(job)?,
        });
        Ok(())
    }

    fn commit(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.inner.commit())
    }

    fn update_fold_record(
        &self,
        target: &str,
        fold_key: &str,
        update: &mut FoldUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.compare_and_set::<FoldRecord>(
            &RowStatements {
                select: "SELECT record FROM herald_fold WHERE target = $1 AND fold_key = $2",
                insert: "INSERT INTO herald_fold (target, fold_key, record) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                update: "UPDATE herald_fold SET record = $3 WHERE target = $1 AND fold_key = $2 AND record = $4",
                delete: "DELETE FROM herald_fold WHERE target = $1 AND fold_key = $2 AND record = $3",
                extra: None,
            },
            &[&target, &fold_key],
            update,
        )
    }

    fn update_issue(&self, id: &str, update: &mut IssueUpdate<'_>) -> Result<(), StoreError> {
        self.compare_and_set::<SdkIssue>(
            &RowStatements {
                select: "SELECT issue FROM herald_issue WHERE id = $1",
                insert: "INSERT INTO herald_issue (id, issue, last_seen) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                update: "UPDATE herald_issue SET issue = $2, last_seen = $4 WHERE id = $1 AND issue = $3",
                delete: "DELETE FROM herald_issue WHERE id = $1 AND issue = $2",
                extra: Some(|issue: &SdkIssue| issue.last_seen),
            },
            &[&id],
            update,
        )
    }

    fn issue(&self, id: &str) -> Result<Option<SdkIssue>, StoreError> {
        self.query("SELECT issue FROM herald_issue WHERE id = $1", &[&id])?
            .into_iter()
            .next()
            .map(|row| from_json(row.get::<_, serde_json::Value>(0)))
            .transpose()
    }

    fn issues(&self) -> Records<'_, SdkIssue> {
        self.records("SELECT issue FROM herald_issue ORDER BY id", &[])
    }

    fn resolve_fold_summary(
        &self,
        key: &JobKey,
        job: &DeliveryJob,
        fold_key: &str,
    ) -> Result<Option<DeliveryJob>, StoreError> {
        let id = job_id(key);
        self.block(async {
            let mut client = self.inner.client().await?;
            let transaction = client.transaction().await?;
            let record = transaction
                .query_opt(
                    "SELECT record FROM herald_fold WHERE target = $1 AND fold_key = $2 FOR UPDATE",
                    &[&job.target, &fold_key],
                )
                .await?
                .map(|row| from_json::<FoldRecord>(row.get::<_, serde_json::Value>(0)))
                .transpose()?;
            let Some(mut record) = record.filter(|r| r.folded > 0) else {
                transaction
                    .execute("DELETE FROM herald_job WHERE id = $1", &[&id])
                    .await?;
                transaction.commit().await?;
                return Ok(None);
            };
            let updated = job.clone().reporting(Folded {
                count: record.folded,
                since: record.window_start,
            });
            record.folded = 0;
            transaction
                .execute(
                    "UPDATE herald_fold SET record = $3 WHERE target = $1 AND fold_key = $2",
                    &[&job.target, &fold_key, &json(&record)?],
                )
                .await?;
            transaction
                .execute(
                    "UPDATE herald_job SET job = $2 WHERE id = $1",
                    &[&id, &json(&updated)?],
                )
                .await?;
            transaction.commit().await?;
            Ok(Some(updated))
        })
    }

    fn alert(&self, id: AlertId) -> Result<Option<StoredAlert>, StoreError> {
        self.query(
            "SELECT record FROM herald_alert WHERE id = $1",
            &[&(id as i64)],
        )?
        .into_iter()
        .next()
        .map(|row| alert_record::decode(id, &row.get::<_, Vec<u8>>(0)))
        .transpose()
    }

    fn alerts(&self) -> Records<'_, StoredAlert> {
        Box::new(AlertPages {
            store: self,
            after: Some(-1),
            before: None,
            page: Vec::new().into_iter(),
            done: false,
        })
    }

    fn alerts_newest_first(&self, before: Option<AlertId>) -> Records<'_, StoredAlert> {
        Box::new(AlertPages {
            store: self,
            after: None,
            before: Some(before.map_or(i64::MAX, |id| id as i64)),
            page: Vec::new().into_iter(),
            done: false,
        })
    }

    fn deliveries_of(&self, id: AlertId) -> Result<Vec<DeliveryJob>, StoreError> {
        self.records(
            "SELECT job FROM herald_delivery WHERE alert_id = $1 ORDER BY job_id",
            &[&(id as i64)],
        )
        .collect()
    }

    fn queued_jobs(&self) -> Records<'_, DeliveryJob> {
        self.records(
            "SELECT job FROM herald_job ORDER BY target, due_at, id",
            &[],
        )
    }

    fn retried_jobs_of<'a>(&'a self, target: &str) -> Records<'a, DeliveryJob> {
        self.records(
            "SELECT job FROM herald_job WHERE target = $1 AND attempted ORDER BY due_at, id",
            &[&target],
        )
    }

    fn due_jobs(
        &self,
        target: &str,
        now: DateTime<Utc>,
        skip: &HashSet<JobId>,
        limit: usize,
    ) -> Result<Vec<(JobKey, DeliveryJob)>, StoreError> {
        let wanted = (limit + skip.len()) as i64;
        let rows = self.query(
            "SELECT id, job FROM herald_job WHERE target = $1 AND due_at <= $2 ORDER BY due_at, id LIMIT $3",
            &[&target, &now, &wanted],
        )?;
        let mut due = Vec::new();
        for row in rows {
            let id = row.get::<_, i64>(0) as u64;
            if skip.contains(&id) {
                continue;
            }
            due.push((job_key(id), from_json(row.get::<_, serde_json::Value>(1))?));
            if due.len() == limit {
                break;
            }
        }
        Ok(due)
    }

    fn next_due_time(
        &self,
        target: &str,
        skip: &HashSet<JobId>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let wanted = (skip.len() + 1) as i64;
        let rows = self.query(
            "SELECT id, due_at FROM herald_job WHERE target = $1 ORDER BY due_at, id LIMIT $2",
            &[&target, &wanted],
        )?;
        Ok(rows
            .into_iter()
            .find(|row| !skip.contains(&(row.get::<_, i64>(0) as u64)))
            .map(|row| row.get::<_, DateTime<Utc>>(1)))
    }

    fn finish_job(&self, key: &JobKey, done: &DeliveryJob) -> Result<(), StoreError> {
        self.remove_job_keeping(
            job_id(key),
            "INSERT INTO herald_delivery (alert_id, job_id, job) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&(done.alert_id as i64), &(done.id as i64), &json(done)?],
        )
    }

    fn reschedule_job(&self, key: &JobKey, job: &DeliveryJob) -> Result<JobKey, StoreError> {
        self.execute(
            "UPDATE herald_job SET due_at = $2, attempted = $3, job = $4 WHERE id = $1",
            &[
                &job_id(key),
                &job.due_at,
                &!job.attempts.is_empty(),
                &json(job)?,
            ],
        )?;
        Ok(key.clone())
    }

    fn bury_job(&self, key: &JobKey, dead: &DeadLetter) -> Result<(), StoreError> {
        self.remove_job_keeping(
            job_id(key),
            "INSERT INTO herald_dead_letter (id, target, alert_id, dead) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET dead = EXCLUDED.dead",
            &[
                &(dead.job.id as i64),
                &dead.job.target,
                &(dead.job.alert_id as i64),
                &json(dead)?,
            ],
        )
    }

    fn dead_letters(&self) -> Records<'_, DeadLetter> {
        self.records(
            "SELECT dead FROM herald_dead_letter ORDER BY target, id",
            &[],
        )
    }

    fn replay_dead_letters(
        &self,
        select: &dyn Fn(&DeliveryJob) -> bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let mut replayed = Vec::new();
        for dead in self.dead_letters() {
            let dead = dead?;
            if !select(&dead.job) {
                continue;
            }
            let job = dead.job.replayed(now);
            let value = json(&job)?;
            let moved = self.block(async {
                let mut client = self.inner.client().await?;
                let transaction = client.transaction().await?;
                let removed = transaction
                    .execute(
                        "DELETE FROM herald_dead_letter WHERE id = $1",
                        &[&(job.id as i64)],
                    )
                    .await?;
                if removed == 0 {
                    return Ok::<bool, StoreError>(false); // replayed by another
                }
                transaction
                    .execute(
                        "INSERT INTO herald_job (id, target, alert_id, due_at, attempted, job) VALUES ($1, $2, $5, $3, false, $4)",
                        &[&(job.id as i64), &job.target, &job.due_at, &value, &(job.alert_id as i64)],
                    )
                    .await?;
                transaction.commit().await?;
                Ok(true)
            })?;
            if moved {
                replayed.push(job);
            }
        }
        Ok(replayed)
    }

    fn set_operator_pause(&self, target: &str, paused: bool) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO herald_target (name, operator_paused) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET operator_paused = EXCLUDED.operator_paused",
            &[&target, &paused],
        )?;
        Ok(())
    }

    fn operator_paused(&self, target: &str) -> Result<bool, StoreError> {
        Ok(self
            .query(
                "SELECT operator_paused FROM herald_target WHERE name = $1",
                &[&target],
            )?
            .first()
            .is_some_and(|row| row.get::<_, bool>(0)))
    }

    fn target_state(&self, target: &str) -> Result<TargetState, StoreError> {
        let rows = self.query(
            "SELECT state FROM herald_target WHERE name = $1 AND state IS NOT NULL",
            &[&target],
        )?;
        match rows.into_iter().next() {
            Some(row) => from_json(row.get::<_, serde_json::Value>(0)),
            None => Ok(TargetState::default()),
        }
    }

    fn save_target_state(&self, target: &str, state: &TargetState) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO herald_target (name, state) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state",
            &[&target, &json(state)?],
        )?;
        Ok(())
    }

    fn owns_target(&self, target: &str) -> Result<bool, StoreError> {
        self.hold_lease(target)
    }

    fn idle_poll(&self) -> Duration {
        IDLE_POLL
    }

    fn is_shared(&self) -> bool {
        true
    }

    /// A `SELECT 1` within a second.
    fn reachable(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let probe = async {
                let client = self.inner.client().await?;
                client.simple_query("SELECT 1").await?;
                Ok::<(), StoreError>(())
            };
            match tokio::time::timeout(Duration::from_secs(1), probe).await {
                Ok(answer) => answer,
                Err(_) => Err(StoreError::Backend(
                    "the database did not answer within a second".into(),
                )),
            }
        })
    }

    fn sweep(
        &self,
        now: DateTime<Utc>,
        remember: Duration,
        fold_window: Duration,
        retention: Duration,
    ) -> Result<SweepReport, StoreError> {
        let remember = millis(remember);
        let window = millis(fold_window);
        let cutoff = now - chrono::Duration::from_std(retention).unwrap_or_default();
        self.block(async {
            let mut client = self.inner.client().await?;
            let transaction = client.transaction().await?;
            // One replica sweeps at a time; the others find the lock taken and skip this round.
            let locked = transaction
                .query_one("SELECT pg_try_advisory_xact_lock(hashtext('herald sweep'))", &[])
                .await?
                .get::<_, bool>(0);
            if !locked {
                return Ok(SweepReport::default());
            }
            let dedupe_records = transaction
                .execute(
                    "DELETE FROM herald_claim WHERE settled \
                     AND seen_at + GREATEST(keep_ms, $2::bigint) * interval '1 millisecond' <= $1",
                    &[&now, &remember],
                )
                .await?;
            let fold_records = transaction
                .execute(
                    "DELETE FROM herald_fold WHERE (record->>'folded')::bigint = 0 \
                     AND (record->>'window_start')::timestamptz + $2::bigint * interval '1 millisecond' <= $1",
                    &[&now, &window],
                )
                .await?;
            let alerts = transaction
                .execute(
                    "DELETE FROM herald_alert a WHERE received_at <= $1 \
                     AND NOT EXISTS (SELECT 1 FROM herald_job j WHERE j.alert_id = a.id) \
                     AND NOT EXISTS (SELECT 1 FROM herald_dead_letter d WHERE d.alert_id = a.id)",
                    &[&cutoff],
                )
                .await?;
            transaction
                .execute(
                    "DELETE FROM herald_delivery d WHERE NOT EXISTS (SELECT 1 FROM herald_alert a WHERE a.id = d.alert_id)",
                    &[],
                )
                .await?;
            let issues = transaction
                .execute("DELETE FROM herald_issue WHERE last_seen <= $1", &[&cutoff])
                .await?;
            transaction.commit().await?;
            Ok(SweepReport {
                dedupe_records,
                fold_records,
                alerts,
                issues,
            })
        })
    }

    fn alert_count(&self) -> u64 {
        self.kept_count("alerts")
    }

    fn queued_job_count(&self) -> u64 {
        self.kept_count("queued")
    }

    fn dead_letter_count(&self) -> u64 {
        self.kept_count("dead")
    }

    fn queued_jobs_per_target(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.kept_counts_per_target("queued")
    }

    fn dead_letters_per_target(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.kept_counts_per_target("dead")
    }

    fn commit_totals(&self) -> (u64, std::time::Duration) {
        self.inner.commits.totals()
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let rows = self.query("SELECT pg_database_size(current_database())", &[])?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0)).max(0) as u64)
    }

    fn latest_time(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let rows = self.query("SELECT value FROM herald_meta WHERE key = 'clock'", &[])?;
        Ok(rows
            .first()
            .and_then(|row| row.get::<_, String>(0).parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis))
    }

    /// The latest of every replica's clock.
    fn save_latest_time(&self, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO herald_meta (key, value) VALUES ('clock', $1) ON CONFLICT (key) DO UPDATE \
             SET value = GREATEST(herald_meta.value::bigint, EXCLUDED.value::bigint)::text",
            &[&at.timestamp_millis().to_string()],
        )?;
        Ok(())
    }
}

/// Stored alerts read a page at a time, oldest first (`after`) or newest first (`before`).
struct AlertPages<'a> {
    store: &'a PgStore,
    after: Option<i64>,
    before: Option<i64>,
    page: std::vec::IntoIter<(i64, Vec<u8>)>,
    done: bool,
}

const ALERT_PAGE: i64 = 500;

impl Iterator for AlertPages<'_> {
    type Item = Result<StoredAlert, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((id, record)) = self.page.next() {
                return Some(alert_record::decode(id as u64, &record));
            }
            if self.done {
                return None;
            }
            let rows = match (self.after, self.before) {
                (Some(after), _) => self.store.query(
                    "SELECT id, record FROM herald_alert WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&after, &ALERT_PAGE],
                ),
                (None, before) => self.store.query(
                    "SELECT id, record FROM herald_alert WHERE id < $1 ORDER BY id DESC LIMIT $2",
                    &[&before.unwrap_or(i64::MAX), &ALERT_PAGE],
                ),
            };
            let rows = match rows {
                Ok(rows) => rows,
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            };
            let page: Vec<(i64, Vec<u8>)> = rows
                .into_iter()
                .map(|row| (row.get::<_, i64>(0), row.get::<_, Vec<u8>>(1)))
                .collect();
            self.done = (page.len() as i64) < ALERT_PAGE;
            if let Some((last, _)) = page.last() {
                if self.after.is_some() {
                    self.after = Some(*last);
                } else {
                    self.before = Some(*last);
                }
            }
            self.page = page.into_iter();
        }
    }
}

impl LinkStore for PgStore {
    fn link(&self, target: &str, key: &str) -> Result<Option<LinkRecord>, StoreError> {
        self.query(
            "SELECT record FROM herald_link WHERE target = $1 AND key = $2",
            &[&target, &key],
        )?
        .into_iter()
        .next()
        .map(|row| from_json(row.get::<_, serde_json::Value>(0)))
        .transpose()
    }

    fn save_link<'a>(
        &'a self,
        target: &'a str,
        key: &'a str,
        record: &'a LinkRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let value = json(record)?;
            let mut client = self.inner.client().await?;
            // A link must survive a crash of the database too: this one waits for the flush.
            let transaction = client.transaction().await?;
            transaction
                .batch_execute("SET LOCAL synchronous_commit = on")
                .await?;
            transaction
                .execute(
                    "INSERT INTO herald_link (target, key, record) VALUES ($1, $2, $3) \
                     ON CONFLICT (target, key) DO UPDATE SET record = EXCLUDED.record",
                    &[&target, &key, &value],
                )
                .await?;
            transaction.commit().await?;
            Ok(())
        })
    }
}
