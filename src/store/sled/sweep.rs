//! The sled backend's sweep: what can no longer matter is removed, oldest first.

use crate::sdk::issue::SdkIssue;
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::time::Duration;

use super::keys::parse_claim;
use super::SledStore;
use crate::job::DeliveryJob;
use crate::store::{FoldRecord, StoreBackend, StoreError, SweepReport};

/// See [`StoreBackend::sweep`]. Claims in `claims` are in time order, so the expired ones are in
/// the prefix older than `remember`; folds are scanned; the spool drops whole segments (an alert
/// goes with the first segment to hold nothing needed after `retention`, with its deliveries).
pub(super) fn sweep(
    store: &SledStore,
    now: DateTime<Utc>,
    remember: Duration,
    fold_window: Duration,
    retention: Duration,
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    let now_ms = now.timestamp_millis().max(0) as u64;
    let remember_ms = remember.as_millis() as u64;
    let forgotten_before = (now_ms.saturating_sub(remember_ms) + 1).to_be_bytes();
    for entry in store.claims.range(..forgotten_before) {
        let (key, value) = entry?;
        let expired = parse_claim(&key, &value).is_none_or(|c| c.expired(now_ms, remember_ms));
        if expired && store.claims.remove(key)?.is_some() {
            report.dedupe_records += 1;
        }
    }
    store.claim_index.forget_older_than(now_ms, remember);
    let window = chrono::Duration::from_std(fold_window).unwrap_or_default();
    for entry in store.folds.iter() {
        let (key, value) = entry?;
        let done = serde_json::from_slice::<FoldRecord>(&value)
            .map(|r| r.folded == 0 && r.window_start + window <= now)
            .unwrap_or(true);
        if done
            && store
                .folds
                .compare_and_swap(&key, Some(&value), None::<&[u8]>)?
                .is_ok()
        {
            report.fold_records += 1;
        }
    }
    // Alerts that jobs due later or dead letters still need (jobs in the spool keep their own
    // segments, and their alerts', from going).
    let mut referenced = HashSet::new();
    for entry in store.jobs.iter().values() {
        referenced.insert(serde_json::from_slice::<DeliveryJob>(&entry?)?.alert_id);
    }
    for dead in store.dead_letters() {
        referenced.insert(dead?.job.alert_id);
    }
    let cutoff = now - chrono::Duration::from_std(retention).unwrap_or_default();
    let kept_after_ms = cutoff.timestamp_millis().max(0) as u64;
    let swept = store
        .spool
        .sweep(now_ms, kept_after_ms, &|id| referenced.contains(&id))?;
    report.dedupe_records += swept.claims;
    report.alerts = swept.alerts;
    for entry in store.issues.iter() {
        let (key, value) = entry?;
        let forgotten = serde_json::from_slice::<SdkIssue>(&value)
            .map(|issue| issue.last_seen <= cutoff)
            .unwrap_or(false);
        if forgotten
            && store
                .issues
                .compare_and_swap(&key, Some(&value), None::<&[u8]>)?
                .is_ok()
        {
            report.issues += 1;
        }
    }
    Ok(report)
}
