//! Group commit over the spool's sync and sled's flush: concurrent callers share one of each.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::spool::Spool;
use crate::store::{run_to_end, CommitCounter, StoreError};

/// Group commit over the spool's sync and sled's flush.
///
/// Each caller takes a ticket after its writes, then waits its turn for the flush lock. Whoever
/// holds the lock flushes on behalf of every ticket issued before the flush began; callers whose
/// ticket a finished flush already covers return without flushing. Under load one fsync thus
/// answers a whole batch of callbacks, and with one caller it costs nothing extra. Once a commit
/// has failed, no later one succeeds until the store is opened again.
pub(super) struct GroupCommit(Arc<Shared>);

struct Shared {
    db: sled::Db,
    spool: Arc<Spool>,
    tickets_issued: AtomicU64,
    tickets_flushed: AtomicU64,
    done: CommitCounter,
    /// The data folder as it was opened: checked after every commit.
    folder: DataFolder,
    /// sled's flush failed (sled keeps the error and refuses every write until it is opened
    /// again), or after a commit the data folder was gone or another one (what was committed is
    /// not where herald, or the next herald, will look for it).
    broken: AtomicBool,
    /// Held while a flush runs; tokio's mutex is fair, so waiters are served in order.
    flushing: Arc<tokio::sync::Mutex<()>>,
}

impl GroupCommit {
    pub(super) fn new(db: sled::Db, spool: Arc<Spool>, folder: &Path) -> Self {
        GroupCommit(Arc::new(Shared {
            db,
            spool,
            tickets_issued: AtomicU64::new(0),
            tickets_flushed: AtomicU64::new(0),
            done: CommitCounter::default(),
            folder: DataFolder::as_now(folder),
            broken: AtomicBool::new(false),
            flushing: Arc::new(tokio::sync::Mutex::new(())),
        }))
    }

    /// Whether the store can commit no more until it is opened again: sled's flush failed, the
    /// data folder was gone or replaced after a commit, or a write or sync of the spool failed.
    pub(super) fn broken(&self) -> bool {
        self.0.broken.load(Ordering::SeqCst) || self.0.spool.failed()
    }

    /// Commits done, and the time they took in all.
    pub(super) fn totals(&self) -> (u64, std::time::Duration) {
        self.0.done.totals()
    }

    /// Returns once everything written before the call is durable.
    pub(super) async fn commit(&self) -> Result<(), StoreError> {
        let shared = &self.0;
        let ticket = shared.tickets_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let turn = shared.flushing.clone().lock_owned().await;
        if shared.tickets_flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // A commit failed since this caller wrote. Its write may have dropped the caller's
        // records (a failed write drops the buffer), or its sync pages the disk lost (Linux
        // reports a writeback error once): a later sync that finds nothing to do, or succeeds,
        // cannot say they are on disk. Until the store is opened again, nothing is committed.
        if self.broken() {
            return Err(StoreError::Backend(
                "an earlier commit failed: the store must be opened again".into(),
            ));
        }
        gather(&shared.tickets_issued).await;
        // Holding the turn until it ends: the next turn must find this flush done, not its share
        // taken and nothing left to sync.
        run_to_end(shared.clone().flush(turn)).await
    }
}

impl Shared {
    async fn flush(
        self: Arc<Self>,
        _turn: tokio::sync::OwnedMutexGuard<()>,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let covered = self.tickets_issued.load(Ordering::SeqCst);
        // sled's own `flush_async` would hop to one of its threads: flushed on the spool's
        // sync thread instead, with the folder check (below).
        let shared = self.clone();
        self.spool
            .sync_then(move || shared.flush_sled_and_check_folder())
            .await?;
        self.done.record(started);
        self.tickets_flushed.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    /// Runs on the commit's blocking thread once the spool is durable. The folder is checked
    /// here, once per commit, not per callback (a `stat` costs ~6 µs in a virtual machine, a
    /// sixth of a callback's CPU; bench/RESULTS.md). A folder gone by now fails the commit:
    /// what it wrote is not where herald will look.
    fn flush_sled_and_check_folder(&self) -> Result<(), StoreError> {
        let flushed = self.db.flush();
        let there = self.folder.still_there();
        if flushed.is_err() || !there {
            self.broken.store(true, Ordering::SeqCst);
        }
        flushed.map_err(StoreError::from)?;
        if !there {
            return Err(StoreError::Backend(
                format!(
                    "the data folder {} was removed or replaced",
                    self.folder.path.display()
                )
                .into(),
            ));
        }
        Ok(())
    }
}

/// Lets callers that are ready to run finish their writes and join the coming flush: yields to the
/// runtime until new tickets stop arriving (bounded). Idle, this costs two yields; under load it
/// makes batches larger, and each commit (the spool's write and `fdatasync`, a hand-off to a
/// blocking thread, sled's flush) is paid by more callbacks.
async fn gather(tickets_issued: &AtomicU64) {
    const QUIET_YIELDS: u32 = 2;
    const MAX_YIELDS: u32 = 64;
    let mut seen = tickets_issued.load(Ordering::SeqCst);
    let mut quiet = 0;
    for _ in 0..MAX_YIELDS {
        tokio::task::yield_now().await;
        let issued = tickets_issued.load(Ordering::SeqCst);
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

/// A data folder and which one it is (device and inode): removed, or replaced by another at the
/// same path, it is no longer there.
struct DataFolder {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl DataFolder {
    fn as_now(path: &Path) -> DataFolder {
        DataFolder {
            path: path.to_path_buf(),
            identity: identity_of(path),
        }
    }

    fn still_there(&self) -> bool {
        identity_of(&self.path) == self.identity
    }
}

fn identity_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}
