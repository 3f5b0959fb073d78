//! The byte layout of every sled key (the table is in the module doc of `store::sled`), and of
//! the key a job queued in the spool is handed out with.

use sha2::Digest;
use std::collections::BTreeMap;

use super::spool::Position;
use crate::job::{AlertId, DeliveryJob, JobId};
use crate::store::{JobKey, StoreError};

/// A dedupe key claimed for an alert, and when: what a `claims` entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DedupeClaim {
    /// Hashed: a dedupe key can be long (installation, resource, ids, a rule's name) and there is
    /// one claim per callback; 16 bytes of SHA-256 keep them small.
    pub hash: [u8; 16],
    pub alert_id: AlertId,
    pub seen_ms: u64,
    /// How long this claim is remembered, when longer than `dedupe.remember` (a group's episode
    /// claims are kept for `store.retention`); 0: as long as `dedupe.remember`.
    pub keep_ms: u64,
}

impl DedupeClaim {
    /// The claim's value: the alert id, then `keep_ms` (a herald that knew only the id reads the
    /// first 8 bytes and is none the worse).
    pub(super) fn value(&self) -> [u8; 16] {
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&self.alert_id.to_be_bytes());
        value[8..].copy_from_slice(&self.keep_ms.to_be_bytes());
        value
    }

    /// Whether it is forgotten at `now_ms`, when claims are remembered for `remember_ms`.
    pub(super) fn expired(&self, now_ms: u64, remember_ms: u64) -> bool {
        self.seen_ms + remember_ms.max(self.keep_ms) <= now_ms
    }
}

/// Counts the keys of a tree keyed `target name, 0x00, …` per target name.
pub(super) fn count_per_target(tree: &sled::Tree) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut counts = BTreeMap::new();
    for key in tree.iter().keys() {
        *counts.entry(target_of_key(&key?)).or_insert(0) += 1;
    }
    Ok(counts)
}

pub(super) fn dead_letter_key(target: &str, job: JobId) -> Vec<u8> {
    let mut key = target_prefix(target);
    key.extend_from_slice(&job.to_be_bytes());
    key
}

/// A job's key when it is queued in the spool: `0xff` (never the first byte of a UTF-8 target
/// name, which starts a `jobs` key), its place, its target.
pub(super) fn spool_job_key(at: Position, target: &str) -> JobKey {
    let mut key = Vec::with_capacity(9 + target.len());
    key.push(0xff);
    key.extend_from_slice(&at.to_be_bytes());
    key.extend_from_slice(target.as_bytes());
    JobKey::from_bytes(key)
}

/// The place and target of a job queued in the spool, if `key` is one.
pub(super) fn parse_spool_job_key(key: &JobKey) -> Option<(Position, String)> {
    let bytes = key.as_bytes();
    if bytes.first() != Some(&0xff) {
        return None;
    }
    let at = be_u64(bytes, 1)?;
    Some((at, String::from_utf8_lossy(&bytes[9..]).into_owned()))
}

/// What ends a target's spool cursor key in `targets`.
pub(super) const SPOOL_CURSOR_SUFFIX: &[u8] = b"\0spool";

pub(super) fn spool_cursor_key(target: &str) -> Vec<u8> {
    let mut key = target.as_bytes().to_vec();
    key.extend_from_slice(SPOOL_CURSOR_SUFFIX);
    key
}

pub(super) fn operator_pause_key(target: &str) -> Vec<u8> {
    let mut key = target_prefix(target);
    key.extend_from_slice(b"paused");
    key
}

/// 16 bytes of SHA-256 of a dedupe key.
pub(super) fn dedupe_hash(key: &str) -> [u8; 16] {
    sha2::Sha256::digest(key.as_bytes())[..16]
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

pub(super) fn claim_key(claim: &DedupeClaim) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&claim.seen_ms.to_be_bytes());
    key[8..].copy_from_slice(&claim.hash);
    key
}

pub(super) fn parse_claim(key: &[u8], value: &[u8]) -> Option<DedupeClaim> {
    Some(DedupeClaim {
        seen_ms: be_u64(key, 0)?,
        hash: key.get(8..24)?.try_into().ok()?,
        alert_id: be_u64(value, 0)?,
        keep_ms: be_u64(value, 8).unwrap_or(0),
    })
}

/// The big-endian u64 at `at` in `bytes`, if there are 8 bytes there.
pub(super) fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

pub(super) fn fold_tree_key(target: &str, fold_key: &str) -> Vec<u8> {
    let mut key = target_prefix(target);
    key.extend_from_slice(fold_key.as_bytes());
    key
}

pub(super) fn target_prefix(target: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(target.len() + 1);
    prefix.extend_from_slice(target.as_bytes());
    prefix.push(0);
    prefix
}

/// (due time in ms, job id) of a `jobs` key whose target name is `name_len` bytes.
pub(super) fn parse_job_key(key: &[u8], name_len: usize) -> Option<(u64, JobId)> {
    let rest = key.get(name_len + 1..)?;
    let due = be_u64(rest, 0)?;
    let id = be_u64(rest, 8)?;
    Some((due, id))
}

/// The target name a key of a target-prefixed tree (`jobs`, `dead_letters`, …) starts with.
pub(super) fn target_of_key(key: &[u8]) -> String {
    let name = key.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(name).into_owned()
}

/// `jobs` key: target name, 0x00, due time (ms, BE), job id (BE).
pub(super) fn job_key(job: &DeliveryJob) -> Vec<u8> {
    let mut key = Vec::with_capacity(job.target.len() + 17);
    key.extend_from_slice(job.target.as_bytes());
    key.push(0);
    key.extend_from_slice(&(job.due_at.timestamp_millis().max(0) as u64).to_be_bytes());
    key.extend_from_slice(&job.id.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

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
