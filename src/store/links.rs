//! The GitHub target's own corner of the store: which GitHub issue each Sentry issue is linked to.
//! It gets this narrow handle ([`crate::store::Store::links`]), not the store.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{BoxFuture, LinkRecord, StoreError};

/// Links by (target, key), where the key names a repo, an installation and a Sentry issue.
pub trait LinkStore: Send + Sync {
    /// The link of `key` (repo/installation/issue) for `target`.
    fn link(&self, target: &str, key: &str) -> Result<Option<LinkRecord>, StoreError>;

    /// Saves a link and waits until it is durable: a link must survive a crash that follows it.
    fn save_link<'a>(
        &'a self,
        target: &'a str,
        key: &'a str,
        record: &'a LinkRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Links kept for one process only: for `herald send-test`, which runs beside a serving herald
/// (whose store it cannot open) and must still never open two issues for one test alert.
#[derive(Default)]
pub struct MemoryLinks {
    links: Mutex<HashMap<(String, String), LinkRecord>>,
}

impl MemoryLinks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), LinkRecord>> {
        // Plain data; nothing that can panic runs under the lock.
        self.links
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LinkStore for MemoryLinks {
    fn link(&self, target: &str, key: &str) -> Result<Option<LinkRecord>, StoreError> {
        Ok(self.lock().get(&(target.into(), key.into())).cloned())
    }

    fn save_link<'a>(
        &'a self,
        target: &'a str,
        key: &'a str,
        record: &'a LinkRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock()
            .insert((target.into(), key.into()), record.clone());
        Box::pin(std::future::ready(Ok(())))
    }
}
