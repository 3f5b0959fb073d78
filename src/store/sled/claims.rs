//! Dedupe claims of the sled backend. A claim remembered for a day or less (every callback's) is
//! written to the spool, which finds it again from then on. A claim kept longer (a group's
//! episodes, kept for `store.retention`) is written in time order at the end of the `claims` tree
//! and kept in memory ([`ClaimIndex`], rebuilt from the tree on open): they are few, and a spool
//! segment is not held for days for their sake. Claims whose callback is still on its way to disk
//! are in the index too, whatever their kind: a duplicate waits for them.

use std::collections::HashMap;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use super::keys::{claim_key, parse_claim, DedupeClaim};
use super::spool::{Spool, TakePrefix};
use crate::job::AlertId;
use crate::store::{ClaimHandle, StoreError};

/// Claims kept longer than this are written to the `claims` tree rather than the spool.
const SPOOLED_AT_MOST_MS: u64 = 24 * 3600 * 1000;

impl DedupeClaim {
    fn spooled(&self) -> bool {
        self.keep_ms <= SPOOLED_AT_MOST_MS
    }
}

/// A claim taken in the index whose callback is not on disk yet. Dropped unsettled (the callback
/// failed, or its request went away), it is released: a retry of the callback must not be taken
/// for a duplicate of what was not stored.
pub(super) struct SledPendingClaim {
    pub claims: sled::Tree,
    pub spool: Arc<Spool>,
    pub index: Arc<ClaimIndex>,
    pub claim: DedupeClaim,
    pub settled: bool,
    /// Whether the claim went to the spool (which then needs to hear it is released).
    pub spooled: AtomicBool,
}

impl ClaimHandle for SledPendingClaim {
    fn write(&self) -> Result<(), StoreError> {
        if self.claim.spooled() {
            self.spool.append_claim(&self.claim)?;
            self.spooled.store(true, Ordering::Relaxed);
        } else {
            self.claims
                .insert(claim_key(&self.claim), &self.claim.value())?;
        }
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
        // The spool first: once the index lets go, a lookup must not find the claim there.
        let released = if self.spooled.load(Ordering::Relaxed) {
            self.spool.append_release(&self.claim.hash)
        } else if self.claim.spooled() {
            Ok(())
        } else {
            self.claims
                .remove(claim_key(&self.claim))
                .map(|_| ())
                .map_err(StoreError::from)
        };
        if let Err(error) = released {
            tracing::error!(%error, "cannot remove the dedupe claim of a callback that failed");
        }
        self.index.release(&self.claim);
    }
}

/// The longest a duplicate waits for its original to reach the disk.
pub(super) const PENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The dedupe claims kept in memory: those kept long (the newest per key), and those whose
/// callback is still on its way to disk. Entries older than `remember` are dropped by each sweep.
pub(super) struct ClaimIndex {
    claims: std::sync::Mutex<HashMap<[u8; 16], IndexedClaim, TakePrefix>>,
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
        // Older herald wrote every claim here; they are loaded alike and forgotten by the sweep.
        let mut index = HashMap::default();
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], IndexedClaim, TakePrefix>> {
        // The map holds plain data and no code that can panic runs under the lock.
        self.claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims `claim`'s key (looked up here, then in `spool`): `Ok(None)` when this caller is the
    /// first (its claim is pending until settled), `Ok(Some(first))` for a duplicate. A duplicate
    /// of a callback still on its way to disk waits for it, at most [`PENDING_WAIT`]: an original
    /// whose commit hangs (a dying disk) must not hold every copy of it, and their connections,
    /// forever.
    pub(super) async fn claim(
        &self,
        claim: DedupeClaim,
        remember: std::time::Duration,
        spool: &Spool,
    ) -> Result<Option<AlertId>, StoreError> {
        let remember_ms = remember.as_millis() as u64;
        let deadline = tokio::time::Instant::now() + PENDING_WAIT;
        loop {
            // Created before looking, so a change made after the look is not missed.
            let changed = self.changed.notified();
            {
                let mut claims = self.lock();
                // Looked up in the spool under the lock: a claim settles (leaves the index) only
                // once the spool has it, so one of the two always sees it.
                let first = match claims.get(&claim.hash) {
                    Some(indexed) => Some(*indexed),
                    None => spool
                        .claim(&claim.hash)?
                        .map(|found| IndexedClaim::settled(&found)),
                };
                match first {
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

    /// The claim's callback is on disk: a spooled claim leaves the index (the spool has it), a
    /// long-kept one stays, settled.
    fn settle(&self, claim: &DedupeClaim) {
        {
            let mut claims = self.lock();
            if claims
                .get(&claim.hash)
                .is_some_and(|entry| entry.alert_id == claim.alert_id)
            {
                if claim.spooled() {
                    claims.remove(&claim.hash);
                } else if let Some(entry) = claims.get_mut(&claim.hash) {
                    entry.pending = false;
                }
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
