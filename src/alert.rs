//! The normalized [`Alert`]: the one shape every route, dedupe rule and target works from.
//!
//! Sentry speaks in a dozen payload shapes (issues, issue alerts, metric alerts, errors, comments,
//! the legacy plugin, and whatever it adds next year). Everything downstream of the intake sees only
//! this struct, so a target never needs to know which of those shapes a message came from.
//! The raw payload is kept verbatim beside the normalized fields, so nothing Sentry said is lost
//! and a later template can reach for a field this model does not lift out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a callback came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Sentry's integration platform (internal or public integration), signed.
    Sentry,
    /// The legacy "WebHooks" plugin of older self-hosted Sentry, authenticated by a URL token.
    SentryLegacyPlugin,
    /// Prometheus Alertmanager's webhook notifier (payload version 4).
    Alertmanager,
    /// Grafana alerting's webhook contact point (payload version 1).
    Grafana,
    /// A Sentry SDK posting straight to herald (a DSN that points at it).
    SentrySdk,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sentry => "sentry",
            Source::SentryLegacyPlugin => "sentry_legacy_plugin",
            Source::Alertmanager => "alertmanager",
            Source::Grafana => "grafana",
            Source::SentrySdk => "sentry_sdk",
        }
    }

    /// Reads the name routes and `--source` use.
    pub fn parse(text: &str) -> Option<Source> {
        [
            Source::Sentry,
            Source::SentryLegacyPlugin,
            Source::Alertmanager,
            Source::Grafana,
            Source::SentrySdk,
        ]
        .into_iter()
        .find(|source| source.as_str() == text)
    }
}

/// Sentry's event levels, ordered from least to most severe so routes can say "at least error".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Debug,
        Level::Info,
        Level::Warning,
        Level::Error,
        Level::Fatal,
    ];

    /// Reads Sentry's spelling of a level; `warn` and `critical` are aliases some SDKs send.
    pub fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(Level::Debug),
            "info" | "log" | "sample" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            "fatal" | "critical" => Some(Level::Fatal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who an issue was assigned to (`issue.assigned`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignee {
    /// `user` or `team`.
    pub kind: String,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A metric alert's incident, as Sentry reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricAlert {
    /// The incident id (`data.metric_alert.id`): stable across critical → warning → resolved.
    pub incident_id: Option<String>,
    pub rule_id: Option<String>,
    pub rule_name: Option<String>,
    pub status: MetricStatus,
    pub description_title: Option<String>,
    pub description_text: Option<String>,
}

/// A metric alert's state. Sentry sends it twice: as the webhook action and as a numeric
/// `status` (20 critical, 10 warning, 2 closed); the action wins when both are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricStatus {
    Critical,
    Warning,
    Resolved,
    Open,
    Unknown,
}

/// A comment on a Sentry issue (`comment.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: Option<String>,
    pub text: Option<String>,
    pub author: Option<String>,
}

/// One stack frame of the application's own code (`in_app`), without its variables: frame
/// variables can hold secrets and personal data, so they are never lifted out of the raw payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    pub function: Option<String>,
    pub module: Option<String>,
    pub filename: Option<String>,
    pub lineno: Option<u64>,
}

/// A notification about a group of alerts (Alertmanager, Grafana): one message tells them all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertGroup {
    pub receiver: String,
    /// The sender's name for the group, stable per route and group labels.
    pub group_key: String,
    /// `firing` when any alert of the group fires, else `resolved`.
    pub status: String,
    /// The sender's own page (Alertmanager's `externalURL`).
    pub external_url: Option<String>,
    /// Alerts the sender left out of this notification (`max_alerts`).
    pub truncated: u64,
    /// The labels the group is formed by (`group_by`).
    pub group_labels: Vec<(String, String)>,
    pub members: Vec<GroupMember>,
}

/// One alert of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The sender's hash of the alert's labels: one alert, over all its firing episodes.
    pub fingerprint: String,
    pub firing: bool,
    pub level: Option<Level>,
    /// `alertname`.
    pub name: String,
    /// `summary` (else `title`, `message`) annotation, else the name.
    pub summary: String,
    pub description: Option<String>,
    /// `instance` (else `pod`, `job`) label.
    pub instance: Option<String>,
    /// The page that explains it: the rule's graph, Grafana's panel or dashboard.
    pub link: Option<String>,
    pub runbook: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    /// Set once resolved.
    pub ends_at: Option<DateTime<Utc>>,
    /// Every label, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Grafana's query values, as it prints them.
    pub values: Option<String>,
    /// This firing episode, or this resolve, was in an earlier message already.
    pub said_before: bool,
}

impl GroupMember {
    /// Names what this member says, once per firing episode and once per resolve: a repeat of
    /// the same notification says nothing new, a re-fire after a resolve does.
    pub fn episode_key(&self, scope: &str, receiver: &str) -> String {
        let started = self.starts_at.map(|t| t.timestamp_micros()).unwrap_or(0);
        let state = if self.firing { "firing" } else { "resolved" };
        format!(
            "episode/{scope}/{receiver}/{}/{started}/{state}",
            self.fingerprint
        )
    }
}

/// One Sentry callback, normalized.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    pub source: Source,
    /// `issue`, `event_alert`, `metric_alert`, `error`, `comment`, `installation`, or any newer one.
    pub resource: String,
    /// `created`, `resolved`, `triggered`, `critical`, … as Sentry named it.
    pub action: String,
    /// `installation.uuid`: scopes dedupe keys, since issue ids are only unique per Sentry instance.
    pub installation: Option<String>,
    /// Project slug.
    pub project: Option<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub level: Option<Level>,
    pub title: String,
    pub culprit: Option<String>,
    pub issue_id: Option<String>,
    pub short_id: Option<String>,
    /// The page a person should open in Sentry.
    pub link: Option<String>,
    pub event_id: Option<String>,
    pub event_count: Option<u64>,
    pub user_count: Option<u64>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Event tags, in Sentry's order.
    pub tags: Vec<(String, String)>,
    /// The issue alert rule that fired (`event_alert.triggered`, legacy plugin).
    pub triggered_rule: Option<String>,
    pub assignee: Option<Assignee>,
    /// `issue.resolved` carries how: `now`, `in_release`, `in_next_release`, …
    pub resolution_type: Option<String>,
    pub metric_alert: Option<MetricAlert>,
    pub comment: Option<Comment>,
    /// In-app frames, innermost last, as Sentry orders them.
    pub frames: Vec<Frame>,
    /// Alertmanager and Grafana: the group this notification is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<AlertGroup>,
    /// Whether herald knows this resource and action. Unknown ones are stored and answered 2xx
    /// (Sentry adds new ones every year), and only routed where a route asks for them by name.
    pub recognized: bool,
    /// What makes two callbacks "the same thing said twice" (REFERENCE.md §1), scoped by installation.
    pub dedupe_key: String,
    /// The payload exactly as received. Not serialized with the alert: the store keeps the payload
    /// itself and normalizes it again when it reads it.
    #[serde(skip, default = "RawPayload::null")]
    pub raw: RawPayload,
}

impl Alert {
    /// An alert that says nothing yet but where it came from, for a parser to fill in.
    pub fn blank(
        source: Source,
        resource: &str,
        action: &str,
        installation: Option<String>,
        raw: RawPayload,
    ) -> Alert {
        Alert {
            source,
            resource: resource.to_string(),
            action: action.to_string(),
            installation,
            project: None,
            environment: None,
            release: None,
            level: None,
            title: String::new(),
            culprit: None,
            issue_id: None,
            short_id: None,
            link: None,
            event_id: None,
            event_count: None,
            user_count: None,
            first_seen: None,
            last_seen: None,
            tags: Vec::new(),
            triggered_rule: None,
            assignee: None,
            resolution_type: None,
            metric_alert: None,
            comment: None,
            frames: Vec::new(),
            group: None,
            recognized: false,
            dedupe_key: String::new(),
            raw,
        }
    }

    /// The value of tag (or label) `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// For a group: what each member says, each with its episode key (see
    /// [`GroupMember::episode_key`]), sorted by key so that concurrent callbacks claim them in
    /// one order.
    pub fn episode_keys(&self) -> Vec<(usize, String)> {
        let Some(group) = &self.group else {
            return Vec::new();
        };
        let scope = self.installation.as_deref().unwrap_or("-");
        let mut keys: Vec<(usize, String)> = group
            .members
            .iter()
            .enumerate()
            .map(|(index, member)| (index, member.episode_key(scope, &group.receiver)))
            .collect();
        keys.sort_by(|a, b| a.1.cmp(&b.1));
        keys.dedup_by(|a, b| a.1 == b.1);
        keys
    }

    /// `resource.action`, the name operators see in logs and metrics.
    pub fn event_name(&self) -> String {
        format!("{}.{}", self.resource, self.action)
    }

    /// The issue this alert is about, as `installation/issue id` (see [`issue_key`]).
    pub fn issue_key(&self) -> Option<String> {
        issue_key(self.installation.as_deref(), self.issue_id.as_deref())
    }
}

/// Names a Sentry issue across installations: `installation/issue id` (`-` for no
/// installation). Fold records, issue order and GitHub links are all keyed by it.
pub fn issue_key(installation: Option<&str>, issue_id: Option<&str>) -> Option<String> {
    Some(format!("{}/{}", installation.unwrap_or("-"), issue_id?))
}

/// A payload kept exactly as it was sent: the text of one JSON value, without the whitespace
/// around it.
///
/// Made only from text a parser has just read as JSON, or that herald wrote itself, so it is not
/// parsed a second time to check it (`serde_json`'s `RawValue` would be: on the intake that
/// second parse was 3 % of a callback's CPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPayload(Box<str>);

impl RawPayload {
    /// `body`, which the caller has just parsed as one JSON value. Refused if it is not UTF-8:
    /// serde_json checks the strings it reads, not those it skips (members a type ignores).
    pub fn parsed(body: &[u8]) -> Result<RawPayload, std::str::Utf8Error> {
        let text = std::str::from_utf8(body)?;
        let json_whitespace = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
        Ok(RawPayload(text.trim_matches(json_whitespace).into()))
    }

    /// `value`, serialized.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<RawPayload, serde_json::Error> {
        Ok(RawPayload(serde_json::to_string(value)?.into()))
    }

    /// What an alert deserialized from its normalized form (a schema-1 store) carries.
    pub fn null() -> RawPayload {
        RawPayload("null".into())
    }

    pub fn get(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::RawPayload;

    #[test]
    fn a_parsed_payload_is_its_text_without_the_whitespace_around_it() {
        let body = b" \r\n\t{\"title\": \"caf\xc3\xa9 \"}\n ";
        let raw = RawPayload::parsed(body).unwrap();
        assert_eq!(raw.get(), "{\"title\": \"caf\u{e9} \"}");
        // serde_json's RawValue keeps the same text.
        let checked: Box<serde_json::value::RawValue> = serde_json::from_slice(body).unwrap();
        assert_eq!(raw.get(), checked.get());
        assert!(RawPayload::parsed(b"{\"x\": \"\xff\"}").is_err());
    }
}
