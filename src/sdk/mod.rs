//! Sentry SDKs posting straight to herald (a DSN that points at it): the envelope and store
//! endpoints' bodies, read into alerts. Beside `sentry` (Sentry's webhooks) and `alertmanager`:
//! it parses, scrubs and groups; the HTTP layer answers, the intake stores.
//!
//! An event becomes an alert about its issue (its group, [`event::group_of`], kept as an
//! [`issue::SdkIssue`]): resource `issue` action `created` for the issue's first event,
//! `issue` `unresolved` for a regression, else `event_alert` `triggered`, which the intake folds
//! into counts like Sentry's own repeats. What an event is, the intake decides with the issue's
//! record ([`issue::SdkIssue::observe`]); the parser makes every event a "New issue" first.

pub mod auth;
pub mod decode;
pub mod envelope;
pub mod event;
pub mod issue;
mod settings;

pub use settings::{ProjectQuota, SdkConfig, SdkProject};

use crate::alert::{Alert, Frame, Level, RawPayload, Source};
use event::SdkEvent;

/// The resource and action of an event whose issue herald has not seen before.
pub const NEW_ISSUE: (&str, &str) = ("issue", "created");
/// The resource and action of an event of a resolved issue.
pub const REGRESSION: (&str, &str) = ("issue", "unresolved");
/// The resource and action of any later event of an issue.
pub const REPEAT: (&str, &str) = ("event_alert", "triggered");
/// The resource and action of the message an operator's resolve sends.
pub const RESOLVED: (&str, &str) = ("issue", "resolved");

/// The alert `event` makes, as its issue's first (the intake says otherwise once it has read the
/// issue). The alert's payload is the scrubbed event itself: nothing the SDK sent beyond it is
/// stored.
pub fn alert_of(event: &SdkEvent) -> Result<Alert, serde_json::Error> {
    Ok(alert_with(event, NEW_ISSUE, RawPayload::of(event)?))
}

/// A stored event read back, with what the intake decided about it.
pub fn reread(facts: &Decided, payload: &[u8]) -> Result<Alert, serde_json::Error> {
    let event: SdkEvent = serde_json::from_slice(payload)?;
    let raw = RawPayload::parsed(payload).map_err(serde::de::Error::custom)?;
    let mut alert = alert_with(&event, (&facts.resource, &facts.action), raw);
    facts.apply(&mut alert);
    Ok(alert)
}

/// What the intake decided about an event that its payload does not say: what it is to its issue,
/// the issue's count then, and where the issue is shown. Stored beside the event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decided {
    pub resource: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Decided {
    pub fn of(alert: &Alert) -> Decided {
        Decided {
            resource: alert.resource.clone(),
            action: alert.action.clone(),
            count: alert.event_count,
            first_seen: alert.first_seen,
            link: alert.link.clone(),
        }
    }

    fn apply(&self, alert: &mut Alert) {
        alert.event_count = self.count.or(alert.event_count);
        alert.first_seen = self.first_seen.or(alert.first_seen);
        alert.link = self.link.clone().or(alert.link.take());
    }
}

/// Marks `alert` (an event of `issue`) as what its issue's record says it is.
pub fn decide(alert: &mut Alert, issue: &issue::SdkIssue, sighting: issue::Sighting) {
    let (resource, action) = sighting.resource_and_action();
    alert.resource = resource.to_string();
    alert.action = action.to_string();
    alert.event_count = Some(issue.count);
    alert.first_seen = Some(issue.first_seen);
}

/// The "Resolved" message of an issue an operator (or its GitHub issue) resolved: an alert
/// about the issue as last seen, without an event. Its payload names no event.
pub fn resolved_alert(issue: &issue::SdkIssue) -> Result<Alert, serde_json::Error> {
    let event = SdkEvent {
        project: issue.project.clone(),
        project_id: issue.project_id,
        issue: issue.group.clone(),
        event_id: String::new(),
        timestamp: Some(issue.last_seen),
        level: issue.level.clone(),
        platform: None,
        logger: None,
        transaction: None,
        release: issue.latest_release().map(str::to_string),
        environment: issue.environment.clone(),
        server_name: None,
        title: issue.title.clone(),
        culprit: issue.culprit.clone(),
        exceptions: Vec::new(),
        frames: Vec::new(),
        tags: Vec::new(),
    };
    let mut alert = alert_with(&event, RESOLVED, RawPayload::of(&event)?);
    alert.event_count = Some(issue.count);
    alert.first_seen = Some(issue.first_seen);
    alert.dedupe_key = format!(
        "sdk/{}/resolved/{}/{}",
        issue.project_id, issue.group, issue.resolutions
    );
    Ok(alert)
}

fn alert_with(event: &SdkEvent, (resource, action): (&str, &str), raw: RawPayload) -> Alert {
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
    alert
}
