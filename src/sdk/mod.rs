//! Sentry SDKs posting straight to herald (a DSN that points at it): the envelope and store
//! endpoints' bodies, read into alerts. Beside `sentry` (Sentry's webhooks) and `alertmanager`:
//! it parses, scrubs and groups; the HTTP layer answers, the intake stores.
//!
//! An event becomes an alert about its issue (its group, [`event::group_of`]): resource `issue`
//! action `created` for the first event of an issue herald has seen, else `event_alert`
//! `triggered`, which the intake folds into counts like Sentry's own repeats.

pub mod auth;
pub mod decode;
pub mod envelope;
pub mod event;
mod settings;

pub use settings::{ProjectQuota, SdkConfig, SdkProject};

use serde_json::value::RawValue;

use crate::alert::{Alert, Frame, Level, Source};
use event::SdkEvent;

/// The resource and action of an event whose issue herald has not seen before.
pub const NEW_ISSUE: (&str, &str) = ("issue", "created");
/// The resource and action of any later event of an issue.
pub const REPEAT: (&str, &str) = ("event_alert", "triggered");

/// The key of the claim that makes an event its issue's first: per project and issue.
pub fn first_seen_key(event: &SdkEvent) -> String {
    format!("sdk-issue/{}/{}", event.project_id, event.issue)
}

/// The alert `event` makes, as the first of its issue (`new`) or a repeat. The alert's payload is
/// the scrubbed event itself: nothing the SDK sent beyond it is stored.
pub fn alert_of(event: &SdkEvent, new: bool) -> Result<Alert, serde_json::Error> {
    let raw = RawValue::from_string(serde_json::to_string(event)?)?;
    Ok(alert_with(event, new, raw))
}

/// A stored event read back (`resource` is what the intake decided).
pub fn reread(resource: &str, payload: &[u8]) -> Result<Alert, serde_json::Error> {
    let event: SdkEvent = serde_json::from_slice(payload)?;
    let raw = RawValue::from_string(String::from_utf8_lossy(payload).into_owned())?;
    Ok(alert_with(&event, resource == NEW_ISSUE.0, raw))
}

fn alert_with(event: &SdkEvent, new: bool, raw: Box<RawValue>) -> Alert {
    let (resource, action) = if new { NEW_ISSUE } else { REPEAT };
    let mut alert = Alert::blank(
        Source::SentrySdk,
        resource,
        action,
        Some(format!("sdk/{}", event.project_id)),
        raw,
    );
    alert.project = Some(event.project.clone());
    alert.environment = event.environment.clone();
    alert.release = event.release.clone();
    alert.level = Some(
        event
            .level
            .as_deref()
            .and_then(Level::parse)
            .unwrap_or(Level::Error),
    );
    alert.title = event.title.clone();
    alert.culprit = event.culprit.clone();
    alert.issue_id = Some(event.issue.clone());
    alert.event_id = Some(event.event_id.clone()).filter(|id| !id.is_empty());
    alert.first_seen = event.timestamp;
    alert.last_seen = event.timestamp;
    alert.tags = event.tags.clone();
    if let Some(server) = &event.server_name {
        if alert.tag("server_name").is_none() {
            alert.tags.push(("server_name".into(), server.clone()));
        }
    }
    alert.frames = event
        .frames
        .iter()
        .filter(|frame| frame.in_app)
        .map(|frame| Frame {
            function: frame.function.clone(),
            module: frame.module.clone(),
            filename: frame.filename.clone(),
            lineno: frame.lineno,
        })
        .collect();
    alert.recognized = true;
    // An event without an id (rare: SDKs give each one) is told apart by what it says.
    let id = if event.event_id.is_empty() {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(alert.raw.get().as_bytes());
        format!("digest-{}", hex::encode(&digest[..16]))
    } else {
        event.event_id.clone()
    };
    alert.dedupe_key = format!("sdk/{}/event/{id}", event.project_id);
    alert.first_seen_key = Some(first_seen_key(event));
    alert
}
