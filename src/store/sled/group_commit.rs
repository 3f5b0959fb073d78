//! Group commit over the spool's sync and sled's flush: concurrent callers share one of each.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::spool::{Spool, SyncLane};
use crate::store::{run_to_end, CommitCounter, StoreError};

/// Group commit over the spool's sync and sled's flush.
///
/// Each caller takes a ticket after its writes. A flush covers every ticket issued before it began:
/// a caller whose ticket a flush on its way covers waits for it; the others take a lane of the
/// spool (up to [`SYNC_LANES`](super::spool::SYNC_LANES) flushes run at once) and flush on behalf
/// of every ticket not yet covered. Under load one fsync thus answers a whole batch of callbacks,
/// and with one caller it costs nothing extra. Flushes are told done in the order they began (the
/// spool's turns), so a ticket counted flushed is durable whichever flush ended first. Once a
/// commit has failed, no later one succeeds until the store is opened again.
pub(super) struct GroupCommit(Arc<Shared>);

struct Shared {
    db: sled::Db,
    spool: Arc<Spool>,
    tickets_issued: AtomicU64,
    /// The last ticket a flush that began covers.
    tickets_started: AtomicU64,
    /// The last ticket known durable. Every flush that ends, well or not, wakes its waiters.
    tickets_flushed: tokio::sync::watch::Sender<u64>,
    done: CommitCounter,
    /// The data folder as it was opened: checked after every commit.
    folder: DataFolder,
    /// sled's flush failed (sled keeps the error and refuses every write until it is opened
    /// again), or after a commit the data folder was gone or another one (what was committed is
    /// not where herald, or the next herald, will look for it).
    broken: AtomicBool,
}

impl GroupCommit {
    pub(super) fn new(db: sled::Db, spool: Arc<Spool>, folder: &Path) -> Self {
        GroupCommit(Arc::new(Shared {
            db,
            spool,
            tickets_issued: AtomicU64::new(0),
            tickets_started: AtomicU64::new(0),
            tickets_flushed: tokio::sync::watch::Sender::new(0),
            done: CommitCounter::default(),
            folder: DataFolder::as_now(folder),
            broken: AtomicBool::new(false),
        }))
    }

    /// Whether the store can commit no more until it is opened again: sled's flush failed, the
    /// data folder was gone or replaced after a commit, or a write or sync of the spool failed.
    pub(super) fn broken(&self) -> bool {
        self.0.broken()
    }

    /// Commits done, and the time they took in all.
    pub(super) fn totals(&self) -> (u64, std::time::Duration) {
        self.0.done.totals()
    }

    /// Returns once everything written before the call is durable.
    pub(super) async fn commit(&self) -> Result<(), StoreError> {
        let shared = &self.0;
        let ticket = shared.tickets_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let mut flushed = shared.tickets_flushed.subscribe();
        loop {
            if *flushed.borrow_and_update() >= ticket {
                return Ok(());
            }
            // A commit failed since this caller wrote. Its write may have dropped the caller's
            // records (a failed write drops the buffer), or its sync pages the disk lost (Linux
            // reports a writeback error once): a later sync that finds nothing to do, or succeeds,
            // cannot say they are on disk. Until the store is opened again, nothing is committed.
            if shared.broken() {
                return Err(earlier_failure());
            }
            if shared.tickets_started.load(Ordering::SeqCst) >= ticket {
                // The sender is `shared`'s: it outlives the wait.
                let _ = flushed.changed().await;
                continue;
            }
            let lane = tokio::select! {
                lane = shared.spool.sync_lane() => lane,
                _ = flushed.changed() => continue,
            };
            gather(&shared.tickets_issued).await;
            let covered = shared.tickets_issued.load(Ordering::SeqCst);
            if shared.tickets_started.fetch_max(covered, Ordering::SeqCst) >= covered {
                // A flush that began while this caller gathered covers it.
                continue;
            }
            // Run to its end whatever becomes of this caller: the callers it covers wait for it.
            return run_to_end(shared.clone().flush(lane, covered)).await;
        }
    }
}

impl Shared {
    fn broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst) || self.spool.failed()
    }

    /// Flushes on `lane` what tickets up to `covered` wrote.
    async fn flush(self: Arc<Self>, lane: SyncLane, covered: u64) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        // sled's own `flush_async` would hop to one of its threads: flushed on the spool's
        // sync thread instead, with the folder check (below).
        let shared = self.clone();
        let outcome = self
            .spool
            .sync_then(lane, move || shared.flush_sled_and_check_folder())
            .await
            .and_then(|()| match self.broken() {
                // A flush before this one failed after its spool sync (sled, the folder).
                true => Err(earlier_failure()),
                false => Ok(()),
            });
        if outcome.is_ok() {
            self.done.record(started);
        }
        self.tickets_flushed.send_modify(|flushed| {
            if outcome.is_ok() {
                *flushed = (*flushed).max(covered);
            }
        });
        outcome
    }

    /// Runs on the commit's blocking thread once the spool is durable. The folder is checked
    /// here, once per commit, not per callback (a `stat` costs ~6 µs in a virtual machine, a
    /// sixth of a callback's CPU; README "Performance"). A folder gone by now fails the commit:
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

fn earlier_failure() -> StoreError {
    StoreError::Backend("an earlier commit failed: the store must be opened again".into())
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
