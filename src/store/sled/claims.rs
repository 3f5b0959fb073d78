//! Dedupe claims of the sled backend: looked up in memory ([`ClaimIndex`], rebuilt from the
//! `claims` tree on open) and written in time order at the end of `claims`. A write into the
//! middle of a large tree for every callback was the intake's largest single cost; time order
//! also lets a sweep stop at the first claim still remembered.

use std::collections::HashMap;
use std::sync::Arc;

use super::keys::{claim_key, parse_claim, DedupeClaim};
use crate::job::AlertId;
use crate::store::{ClaimHandle, StoreError};

/// A claim taken in the index whose callback is not on disk yet. Dropped unsettled (the callback
/// failed, or its request went away), it is released: a retry of the callback must not be taken
/// for a duplicate of what was not stored.
pub(super) struct SledPendingClaim {
    pub claims: sled::Tree,
    pub index: Arc<ClaimIndex>,
    pub claim: DedupeClaim,
    pub settled: bool,
}

impl ClaimHandle for SledPendingClaim {
    fn write(&self) -> Result<(), StoreError> {
        self.claims
            .insert(claim_key(&self.claim), &self.claim.value())?;
        Ok(())
    }

    fn settle(mut self: Box<Self>) {
        self.index.settle(&self.claim);
        self.settled = true;
    }
}

impl Drop for SledPendingClaim {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.index.release(&self.claim);
        if let Err(error) = self.claims.remove(claim_key(&self.claim)) {
            tracing::error!(%error, "cannot remove the dedupe claim of a callback that failed");
        }
    }
}

/// The longest a duplicate waits for its original to reach the disk.
pub(super) const PENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Every dedupe claim of the store, in memory: the newest per key, and whether its callback is
/// still on its way to disk. Entries older than `remember` are dropped by each sweep.
pub(super) struct ClaimIndex {
    claims: std::sync::Mutex<HashMap<[u8; 16], IndexedClaim>>,
    /// Woken whenever a pending claim settles or is released.
    changed: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy)]
struct IndexedClaim {
    alert_id: AlertId,
    seen_ms: u64,
    keep_ms: u64,
    pending: bool,
}

impl ClaimIndex {
    pub(super) fn load(claims: &sled::Tree) -> Result<ClaimIndex, StoreError> {
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
    /// Claims `claim`'s key: `Ok(None)` when this caller is the first (its claim is pending until
    /// settled), `Ok(Some(first))` for a duplicate. A duplicate of a callback still on its way to
    /// disk waits for it, at most [`PENDING_WAIT`]: an original whose commit hangs (a dying disk)
    /// must not hold every copy of it, and their connections, forever.
    pub(super) async fn claim(
        &self,
        claim: DedupeClaim,
        remember: std::time::Duration,
    ) -> Result<Option<AlertId>, StoreError> {
        let remember_ms = remember.as_millis() as u64;
        let deadline = tokio::time::Instant::now() + PENDING_WAIT;
        loop {
            // Created before looking, so a change made after the look is not missed.
            let changed = self.changed.notified();
            {
                let mut claims = self.lock();
                match claims.get(&claim.hash) {
                    Some(first) if first.seen_ms + remember_ms > claim.seen_ms => {
                        if !first.pending {
                            return Ok(Some(first.alert_id));
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
                        return Ok(None);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(StoreError::Backend(
                    "the first copy of this callback is still being stored; try again".into(),
                ));
            }
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

    pub(super) fn forget_older_than(&self, now_ms: u64, remember: std::time::Duration) {
        let remember_ms = remember.as_millis() as u64;
        let mut claims = self.lock();
        claims.retain(|_, claim| {
            claim.pending || claim.seen_ms + remember_ms.max(claim.keep_ms) > now_ms
        });
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
            keep_ms: claim.keep_ms,
            pending: false,
        }
    }
}
