//! Where herald keeps what it was told and what it still has to say: alerts, delivery jobs, dead
//! letters, dedupe claims, fold counts, GitHub links and each target's saved state.
//!
//! [`Store`] is what the rest of herald holds: a cheap clone of one [`StoreBackend`]. The backend
//! is chosen once, at start; nothing above this module names it. [`sled`] is the embedded backend
//! (one data folder, one process).

mod alert_record;
mod backend;
mod links;
pub mod postgres;
mod records;
pub mod sled;
mod wakers;

pub use backend::{
    run_to_end, BoxFuture, ClaimHandle, ClaimOutcome, CommitCounter, FoldUpdate, IssueUpdate,
    JobKey, PendingClaim, Records, StoreBackend, StoreError, SweepReport,
};
pub use links::{LinkStore, MemoryLinks};
pub use records::{FoldRecord, LinkRecord, Routing, StoredAlert, TargetState};
pub use wakers::Wakers;

use std::path::Path;
use std::sync::Arc;

use crate::alert::Alert;
use crate::job::DeadLetter;
use crate::sdk::issue::SdkIssue;

/// The store herald runs on: any backend, behind one cheap, cloneable handle.
#[derive(Clone)]
pub struct Store(Arc<dyn StoreBackend>);

impl Store {
    /// Opens (or creates) the embedded store in `dir` (see [`sled::SledStore::open`]).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store::new(Arc::new(sled::SledStore::open(dir)?)))
    }

    pub fn new(backend: Arc<dyn StoreBackend>) -> Store {
        Store(backend)
    }

    /// The links part of the store, for the GitHub targets.
    pub fn links(&self) -> Arc<dyn LinkStore> {
        self.0.clone()
    }

    /// Updates the fold record of (`target`, `fold_key`) with `update`, which gets the current
    /// record and returns the new one and a decision; returns the decision of the run whose
    /// record was stored (`update` may run more than once under contention).
    pub fn update_fold<T>(
        &self,
        target: &str,
        fold_key: &str,
        mut update: impl FnMut(Option<FoldRecord>) -> (Option<FoldRecord>, T),
    ) -> Result<T, StoreError> {
        let mut decision = None;
        self.0.update_fold_record(target, fold_key, &mut |record| {
            let (record, decided) = update(record);
            decision = Some(decided);
            record
        })?;
        decision.ok_or_else(|| StoreError::Backend("the fold record was never read".into()))
    }

    /// Replaces SDK issue `id` with what `update` makes of it (`None`: unchanged; an issue is
    /// only removed by the sweep), atomically, and hands back what `update` decided on its last
    /// run.
    pub fn update_issue<T>(
        &self,
        id: &str,
        mut update: impl FnMut(Option<SdkIssue>) -> (Option<SdkIssue>, T),
    ) -> Result<T, StoreError> {
        let mut decision = None;
        self.0.update_issue(id, &mut |current| {
            let (changed, decided) = update(current.clone());
            decision = Some(decided);
            changed.or(current)
        })?;
        decision.ok_or_else(|| StoreError::Backend("the issue was never read".into()))
    }
}

impl Store {
    /// The dead letters of `target` (or of every target), each with its alert if it is still
    /// stored: what people are shown of them.
    pub fn dead_letters_with_alerts(
        &self,
        target: Option<&str>,
    ) -> Result<Vec<(DeadLetter, Option<Alert>)>, StoreError> {
        let mut listed = Vec::new();
        for dead in self.dead_letters() {
            let dead = dead?;
            if target.is_some_and(|target| target != dead.job.target) {
                continue;
            }
            let alert = self.alert(dead.job.alert_id)?.map(|stored| stored.alert);
            listed.push((dead, alert));
        }
        Ok(listed)
    }
}

impl std::ops::Deref for Store {
    type Target = dyn StoreBackend;

    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}
