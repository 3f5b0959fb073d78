//! How an alert is stored: as its sender sent it, behind a one-line header with the little the
//! payload does not say (when, from which source and resource). One write per callback instead of
//! a normalized copy beside the payload, and a queued alert is read with the normalizer of the
//! herald that sends it. The only file of the store that knows the parsers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Routing, StoreError, StoredAlert};
use crate::alert::{Alert, Source};
use crate::alertmanager::{self, Decisions};
use crate::job::AlertId;
use crate::sentry::{parse_integration_payload, parse_legacy_payload};

/// What is kept beside a payload: what is needed to read it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertHeader {
    #[serde(with = "crate::rfc3339")]
    pub received_at: DateTime<Utc>,
    pub source: Source,
    /// The `Sentry-Hook-Resource` header the payload came with.
    pub resource: String,
    /// Alertmanager and Grafana: what the intake decided about the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Decisions>,
    /// Where the intake sent it.
    #[serde(default, skip_serializing_if = "is_unrouted")]
    pub routing: Routing,
    /// SDK events: what the event was to its issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<crate::sdk::Decided>,
}

impl AlertHeader {
    pub fn of(alert: &Alert, received_at: DateTime<Utc>, routing: &Routing) -> AlertHeader {
        AlertHeader {
            received_at,
            routing: routing.clone(),
            source: alert.source,
            resource: alert.resource.clone(),
            decisions: Decisions::of(alert),
            sdk: (alert.source == Source::SentrySdk).then(|| crate::sdk::Decided::of(alert)),
        }
    }
}

fn is_unrouted(routing: &Routing) -> bool {
    routing == &Routing::default()
}

/// A stored alert record: the header as one line of JSON (serde_json writes no newline), then the
/// payload exactly as received.
pub fn encode(header: &AlertHeader, payload: &str) -> Result<Vec<u8>, StoreError> {
    // Room for a header (~100 bytes) and the payload at once.
    let mut record = Vec::with_capacity(256 + payload.len());
    serde_json::to_writer(&mut record, header)?;
    record.push(b'\n');
    record.extend_from_slice(payload.as_bytes());
    Ok(record)
}

/// A record's header and payload, without normalizing the payload; `None` if it has no header.
pub fn split(record: &[u8]) -> Option<(AlertHeader, &[u8])> {
    let newline = record.iter().position(|b| *b == b'\n')?;
    let header = serde_json::from_slice(&record[..newline]).ok()?;
    Some((header, &record[newline + 1..]))
}

/// A record read back into an alert, normalized again from its payload.
pub fn decode(id: AlertId, record: &[u8]) -> Result<StoredAlert, StoreError> {
    let unreadable = |reason: String| StoreError::UnreadableAlert { id, reason };
    let (header, payload) = split(record).ok_or_else(|| unreadable("no header".into()))?;
    let alert = match header.source {
        Source::Sentry => {
            parse_integration_payload(&header.resource, payload).map_err(|error| error.to_string())
        }
        Source::SentryLegacyPlugin => {
            parse_legacy_payload(payload).map_err(|error| error.to_string())
        }
        Source::SentrySdk => {
            // Stored before the decision was kept: a first event, or a repeat.
            let decided = header.sdk.clone().unwrap_or_else(|| crate::sdk::Decided {
                resource: header.resource.clone(),
                action: if header.resource == crate::sdk::NEW_ISSUE.0 {
                    "created"
                } else {
                    "triggered"
                }
                .into(),
                count: None,
                first_seen: None,
                link: None,
            });
            crate::sdk::reread(&decided, payload).map_err(|error| error.to_string())
        }
        Source::Alertmanager | Source::Grafana => alertmanager::reread(
            header.source,
            payload,
            &header.decisions.unwrap_or_default(),
        )
        .map_err(|error| error.to_string()),
    }
    .map_err(unreadable)?;
    Ok(StoredAlert {
        id,
        received_at: header.received_at,
        alert,
        routing: header.routing,
    })
}
