//! Schema migrations of the sled backend, run in place when a store of an older herald is opened.
//! Each is idempotent: interrupted by a crash, it runs again on the next start.

use super::keys::{be_u64, claim_key, DedupeClaim};
use super::spool::Spool;
use crate::store::alert_record::{self, AlertHeader};
use crate::store::{StoreError, StoredAlert};

/// Schema 1 kept a normalized copy of each alert in `alerts` and its payload in `payloads`:
/// rewrites each alert as header and payload, then drops `payloads`. Interrupted (a crash), it is
/// run again on the next start and skips what it already rewrote: a schema-1 record is compact
/// JSON, which never holds a raw newline, and a schema-2 record always does.
pub(super) fn alerts_from_schema_1(db: &sled::Db, alerts: &sled::Tree) -> Result<(), StoreError> {
    let payloads = db.open_tree("payloads")?;
    let mut migrated = 0u64;
    for entry in alerts.iter() {
        let (key, value) = entry?;
        if alert_record::split(&value).is_some() {
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
            decisions: None,
            routing: Default::default(),
            sdk: None,
        };
        alerts.insert(key, alert_record::encode(&header, payload)?)?;
        migrated += 1;
    }
    db.drop_tree("payloads")?;
    tracing::info!(alerts = migrated, "store migrated from schema 1 to 2");
    Ok(())
}

/// Schema 2 kept dedupe claims by hash (`dedupe`: hash → alert id, claimed at): rewrites them in
/// time order into `claims`, then drops `dedupe`. Interrupted, it is run again and rewrites the
/// same keys.
pub(super) fn dedupe_to_claims(db: &sled::Db) -> Result<(), StoreError> {
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
                keep_ms: 0,
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

/// Schema 3 kept alerts and the record of each delivery in sled (`alerts`, `deliveries`): copies
/// them into the spool, makes it durable, then drops both trees. Interrupted, it is run again and
/// skips the alerts the spool already holds (a delivery may then be listed twice).
pub(super) fn alerts_and_deliveries_to_spool(
    db: &sled::Db,
    spool: &Spool,
) -> Result<(), StoreError> {
    let alerts = db.open_tree("alerts")?;
    let deliveries = db.open_tree("deliveries")?;
    let (mut moved_alerts, mut moved_deliveries) = (0u64, 0u64);
    for entry in alerts.iter() {
        let (key, record) = entry?;
        let Some(id) = be_u64(&key, 0) else { continue };
        if spool.alert(id)?.is_none() {
            let received_ms = alert_record::split(&record).map_or(0, |(header, _)| {
                header.received_at.timestamp_millis().max(0) as u64
            });
            spool.append_alert(id, received_ms, &record)?;
            moved_alerts += 1;
        }
    }
    for entry in deliveries.iter() {
        let (key, json) = entry?;
        let Some(id) = be_u64(&key, 0) else { continue };
        spool.append_delivery_json(id, &json)?;
        moved_deliveries += 1;
    }
    spool.sync_now()?;
    db.drop_tree("alerts")?;
    db.drop_tree("deliveries")?;
    if moved_alerts + moved_deliveries > 0 {
        tracing::info!(
            alerts = moved_alerts,
            deliveries = moved_deliveries,
            "alerts and deliveries moved to the spool (schema 4)"
        );
    }
    Ok(())
}
