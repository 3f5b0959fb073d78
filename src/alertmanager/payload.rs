//! The body Alertmanager's webhook notifier sends (version "4") and Grafana's webhook contact
//! point's (version "1": the same, with a rendered title and message and links per alert), read
//! into one [`Alert`] about the group.

use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::settings::LabelIntakeConfig;
use crate::alert::{Alert, AlertGroup, GroupMember, Level, RawPayload, Source};

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not a notification: {0}")]
    Malformed(String),
    #[error(
        "payload version {0:?} is not one herald reads here (Alertmanager sends \"4\", Grafana \"1\")"
    )]
    UnknownVersion(String),
    #[error("the notification lists no alerts")]
    NoAlerts,
}

/// What the intake's settings decided about a body, kept beside it in the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Each alert's level, in the body's order.
    #[serde(default)]
    pub levels: Vec<Level>,
    /// The alerts an earlier message told already (indices into the body's list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub said_before: Vec<usize>,
}

impl Decisions {
    /// What `alert` (from [`parse`]) was decided to be; `None` for an alert of another sender.
    pub fn of(alert: &Alert) -> Option<Decisions> {
        let group = alert.group.as_ref()?;
        Some(Decisions {
            installation: alert.installation.clone(),
            project: alert.project.clone(),
            environment: alert.environment.clone(),
            levels: group
                .members
                .iter()
                .map(|m| m.level.unwrap_or(Level::Warning))
                .collect(),
            said_before: group
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.said_before)
                .map(|(index, _)| index)
                .collect(),
        })
    }
}

/// Reads a body that arrived from `source`, deciding names and levels by `settings`.
pub fn parse(
    source: Source,
    body: &[u8],
    settings: &LabelIntakeConfig,
) -> Result<Alert, PayloadError> {
    let (wire, raw) = read(source, body)?;
    let common = if wire.common_labels.is_empty() {
        &wire.alerts[0].labels
    } else {
        &wire.common_labels
    };
    let decisions = Decisions {
        installation: settings
            .installation
            .clone()
            .or_else(|| wire.external_url()),
        project: LabelIntakeConfig::first_label(&settings.project_labels, common),
        environment: LabelIntakeConfig::first_label(&settings.environment_labels, common),
        levels: wire
            .alerts
            .iter()
            .map(|alert| settings.level_of(&alert.labels))
            .collect(),
        said_before: Vec::new(),
    };
    Ok(build(source, wire, raw, &decisions))
}

/// Reads a stored body again, as it was decided when it was accepted.
pub fn reread(source: Source, body: &[u8], decisions: &Decisions) -> Result<Alert, PayloadError> {
    let (wire, raw) = read(source, body)?;
    Ok(build(source, wire, raw, decisions))
}

#[derive(Deserialize)]
struct Notification {
    #[serde(default)]
    receiver: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    alerts: Vec<WireAlert>,
    #[serde(default, rename = "groupLabels")]
    group_labels: BTreeMap<String, String>,
    #[serde(default, rename = "commonLabels")]
    common_labels: BTreeMap<String, String>,
    #[serde(default, rename = "commonAnnotations")]
    common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    external_url: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default, rename = "groupKey")]
    group_key: String,
    #[serde(default, rename = "truncatedAlerts")]
    truncated_alerts: u64,
}

impl Notification {
    /// The sender's own page, without the trailing `/`; none when it did not say.
    fn external_url(&self) -> Option<String> {
        Some(self.external_url.trim_end_matches('/').to_string()).filter(|url| !url.is_empty())
    }
}

#[derive(Deserialize)]
struct WireAlert {
    #[serde(default)]
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "startsAt")]
    starts_at: String,
    #[serde(default, rename = "endsAt")]
    ends_at: String,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
    #[serde(default)]
    fingerprint: String,
    // Grafana's additions.
    #[serde(default, rename = "dashboardURL")]
    dashboard_url: String,
    #[serde(default, rename = "panelURL")]
    panel_url: String,
    #[serde(default, rename = "valueString")]
    value_string: String,
    #[serde(default)]
    values: Option<BTreeMap<String, serde_json::Value>>,
}

fn read(source: Source, body: &[u8]) -> Result<(Notification, RawPayload), PayloadError> {
    let wire: Notification =
        serde_json::from_slice(body).map_err(|error| PayloadError::Malformed(error.to_string()))?;
    let raw =
        RawPayload::parsed(body).map_err(|error| PayloadError::Malformed(error.to_string()))?;
    let version = wire.version.as_deref().unwrap_or_default();
    let known = match source {
        Source::Grafana => version == "1" || version == "4",
        _ => version == "4",
    };
    if !known {
        let shown = wire.version.clone().unwrap_or_else(|| "none".into());
        return Err(PayloadError::UnknownVersion(shown));
    }
    if wire.alerts.is_empty() {
        return Err(PayloadError::NoAlerts);
    }
    Ok((wire, raw))
}

fn build(source: Source, wire: Notification, raw: RawPayload, decisions: &Decisions) -> Alert {
    let external_url = wire.external_url();
    let members: Vec<GroupMember> = wire
        .alerts
        .iter()
        .enumerate()
        .map(|(index, alert)| GroupMember {
            said_before: decisions.said_before.contains(&index),
            ..member(
                source,
                alert,
                decisions.levels.get(index).copied(),
                &external_url,
            )
        })
        .collect();
    let any_firing = members.iter().any(|m| m.firing);
    let action = match wire.status.as_str() {
        "firing" | "resolved" => wire.status.clone(),
        _ if any_firing => "firing".into(),
        _ => "resolved".into(),
    };
    let mut alert = Alert::blank(
        source,
        "alert",
        &action,
        decisions.installation.clone(),
        raw,
    );
    alert.recognized = true;
    alert.level = members
        .iter()
        .filter(|m| m.firing || !any_firing)
        .filter_map(|m| m.level)
        .max();
    let alertname = wire
        .group_labels
        .get("alertname")
        .or(wire.common_labels.get("alertname"));
    alert.title = wire
        .common_annotations
        .get("summary")
        .cloned()
        .or_else(|| (members.len() == 1).then(|| members[0].summary.clone()))
        .or_else(|| alertname.cloned())
        .unwrap_or_else(|| format!("alerts of {}", wire.receiver));
    alert.culprit = wire.common_labels.get("instance").cloned();
    alert.project = decisions.project.clone();
    alert.environment = decisions.environment.clone();
    alert.issue_id = Some(if wire.group_key.is_empty() {
        format!("{}:{}", wire.receiver, matchers(&wire.group_labels))
    } else {
        wire.group_key.clone()
    });
    let mut links: Vec<&str> = members.iter().filter_map(|m| m.link.as_deref()).collect();
    links.dedup();
    alert.link = match (links.as_slice(), &external_url) {
        ([one], _) => Some(one.to_string()),
        (_, Some(external)) => Some(group_page(source, external, &wire.group_labels)),
        ([first, ..], None) => Some(first.to_string()),
        ([], None) => None,
    };
    alert.first_seen = members.iter().filter_map(|m| m.starts_at).min();
    alert.tags = wire
        .common_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    alert.dedupe_key = dedupe_key(source, decisions.installation.as_deref(), &wire);
    alert.group = Some(AlertGroup {
        receiver: wire.receiver,
        group_key: wire.group_key,
        status: action,
        external_url,
        truncated: wire.truncated_alerts,
        group_labels: wire.group_labels.into_iter().collect(),
        members,
    });
    alert
}

fn member(
    source: Source,
    alert: &WireAlert,
    level: Option<Level>,
    external_url: &Option<String>,
) -> GroupMember {
    let label = |name: &str| alert.labels.get(name).filter(|v| !v.is_empty()).cloned();
    let annotation = |name: &str| {
        alert
            .annotations
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    };
    let name = label("alertname").unwrap_or_else(|| "alert".into());
    let non_empty = |url: &str| Some(url.to_string()).filter(|u| !u.is_empty());
    let link = match source {
        Source::Grafana => non_empty(&alert.panel_url)
            .or_else(|| non_empty(&alert.dashboard_url))
            .or_else(|| non_empty(&alert.generator_url)),
        _ => non_empty(&alert.generator_url).or_else(|| {
            external_url.as_ref().map(|external| {
                let only = BTreeMap::from([("alertname".to_string(), name.clone())]);
                group_page(source, external, &only)
            })
        }),
    };
    let values = Some(alert.value_string.trim().to_string())
        .filter(|v| !v.is_empty())
        .or_else(|| {
            alert
                .values
                .as_ref()
                .filter(|v| !v.is_empty())
                .map(|values| {
                    values
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
        });
    GroupMember {
        fingerprint: if alert.fingerprint.is_empty() {
            fingerprint(&alert.labels)
        } else {
            alert.fingerprint.clone()
        },
        firing: alert.status != "resolved",
        level,
        summary: annotation("summary")
            .or_else(|| annotation("title"))
            .or_else(|| annotation("message"))
            .unwrap_or_else(|| name.clone()),
        name,
        description: annotation("description"),
        instance: label("instance")
            .or_else(|| label("pod"))
            .or_else(|| label("host")),
        link,
        runbook: annotation("runbook_url").or_else(|| annotation("runbook")),
        starts_at: time(&alert.starts_at),
        ends_at: time(&alert.ends_at).filter(|_| alert.status == "resolved"),
        labels: alert
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        values,
        said_before: false,
    }
}

/// RFC 3339 with any offset; Go's zero time (`0001-01-01T00:00:00Z`, "not ended yet") is none.
fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| t.timestamp() > 0)
}

/// `{alertname="HighErrorRate", env="prod"}`.
fn matchers(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// The sender's page for the alerts with these labels.
fn group_page(source: Source, external: &str, labels: &BTreeMap<String, String>) -> String {
    match source {
        Source::Grafana => format!("{external}/alerting/list"),
        _ => format!(
            "{external}/#/alerts?filter={}",
            utf8_percent_encode(&matchers(labels), NON_ALPHANUMERIC)
        ),
    }
}

/// Alertmanager's fingerprint of a label set, for a sender that leaves it out: FNV-1a/64 over
/// the sorted names and values, each followed by 0xff.
fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, value) in labels {
        for byte in name
            .bytes()
            .chain([0xff])
            .chain(value.bytes())
            .chain([0xff])
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The same notification said twice (HA twins, a retry after a lost answer): the same receiver,
/// group, and alerts in the same states. What changes between repeats of an unchanged group
/// (`notification_reason`, `truncatedAlerts`, common labels) is left out.
fn dedupe_key(source: Source, installation: Option<&str>, wire: &Notification) -> String {
    let mut states: Vec<String> = wire
        .alerts
        .iter()
        .map(|a| {
            format!(
                "{}\u{0}{}\u{0}{}\u{0}{}",
                a.fingerprint, a.status, a.starts_at, a.ends_at
            )
        })
        .collect();
    states.sort();
    let mut hash = Sha256::new();
    for part in [wire.receiver.as_str(), wire.group_key.as_str()]
        .into_iter()
        .chain(states.iter().map(String::as_str))
    {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    format!(
        "{}/{}/{}",
        source.as_str(),
        installation.unwrap_or("-"),
        hex::encode(hash.finalize())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRING: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager/01-firing-group-of-2.json");
    const REPEAT: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager/02-repeat-interval-resend.json");
    const MIXED: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager/03-mixed-one-resolved.json");
    const TRUNCATED: &[u8] =
        include_bytes!("../../tests/fixtures/alertmanager/06-max-alerts-1.json");

    fn parsed(body: &[u8]) -> Alert {
        parse(Source::Alertmanager, body, &LabelIntakeConfig::default()).unwrap()
    }

    #[test]
    fn a_body_that_is_not_utf8_is_malformed_even_in_a_member_herald_skips() {
        let opening = FIRING.iter().position(|b| *b == b'{').unwrap();
        let mut body = b"{\"unknownMember\": \"\xff\",".to_vec();
        body.extend_from_slice(&FIRING[opening + 1..]);
        assert!(
            serde_json::from_slice::<Notification>(&body).is_ok(),
            "skipped unread"
        );
        let error = parse(Source::Alertmanager, &body, &LabelIntakeConfig::default()).unwrap_err();
        assert!(matches!(error, PayloadError::Malformed(_)), "{error}");
    }

    #[test]
    fn a_firing_group() {
        let alert = parsed(FIRING);
        assert_eq!(alert.event_name(), "alert.firing");
        assert_eq!(alert.title, "High 5xx rate on api");
        assert_eq!(alert.level, Some(Level::Fatal));
        assert_eq!(alert.project.as_deref(), Some("api"));
        assert_eq!(alert.environment.as_deref(), Some("prod"));
        assert_eq!(
            alert.installation.as_deref(),
            Some("http://127.0.0.1:40263")
        );
        assert_eq!(alert.tag("severity"), Some("critical"));
        let group = alert.group.as_ref().unwrap();
        assert_eq!(group.members.len(), 2);
        assert!(group
            .members
            .iter()
            .all(|m| m.firing && m.ends_at.is_none()));
        assert_eq!(group.members[0].instance.as_deref(), Some("10.0.0.1:8080"));
        assert!(group.members[0]
            .link
            .as_deref()
            .unwrap()
            .starts_with("http://prometheus.example:9090/graph"));
        assert_eq!(
            group.members[0].fingerprint,
            fingerprint(&BTreeMap::from(
                [
                    ("alertname", "HighErrorRate"),
                    ("env", "prod"),
                    ("instance", "10.0.0.1:8080"),
                    ("job", "api"),
                    ("service", "api"),
                    ("severity", "critical"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()))
            )),
            "herald's fingerprint is Alertmanager's"
        );
    }

    #[test]
    fn a_repeat_is_the_same_notification_and_a_change_is_not() {
        assert_eq!(parsed(FIRING).dedupe_key, parsed(REPEAT).dedupe_key);
        assert_ne!(parsed(FIRING).dedupe_key, parsed(MIXED).dedupe_key);
        let mixed = parsed(MIXED);
        let group = mixed.group.unwrap();
        assert!(group.members[0].firing);
        assert!(!group.members[1].firing);
        assert!(group.members[1].ends_at.is_some());
        assert_eq!(mixed.action, "firing");
    }

    #[test]
    fn truncation_and_a_missing_generator_url() {
        let alert = parsed(TRUNCATED);
        let group = alert.group.as_ref().unwrap();
        assert_eq!(group.truncated, 2);
        let link = group.members[0].link.as_deref().unwrap();
        assert!(
            link.starts_with("http://127.0.0.1:40263/#/alerts?filter=%7Balertname%3D"),
            "{link}"
        );
    }

    #[test]
    fn stored_decisions_read_back_the_same_alert() {
        let settings = LabelIntakeConfig {
            installation: Some("prod-am".into()),
            default_level: Level::Error,
            ..Default::default()
        };
        let mut alert = parse(Source::Alertmanager, MIXED, &settings).unwrap();
        alert.group.as_mut().unwrap().members[1].said_before = true;
        let decisions = Decisions::of(&alert).unwrap();
        assert_eq!(decisions.said_before, [1]);
        let again = reread(Source::Alertmanager, MIXED, &decisions).unwrap();
        assert_eq!(again.group, alert.group);
        assert_eq!(again.installation.as_deref(), Some("prod-am"));
        assert_eq!(again.dedupe_key, alert.dedupe_key);
    }

    #[test]
    fn refusals_say_why() {
        let settings = LabelIntakeConfig::default();
        let error = |body: &str| {
            parse(Source::Alertmanager, body.as_bytes(), &settings)
                .unwrap_err()
                .to_string()
        };
        assert!(error("{").contains("not a notification"));
        assert!(error(r#"{"version":"5","alerts":[{}]}"#).contains("\"5\""));
        assert!(error(r#"{"alerts":[{}]}"#).contains("\"none\""));
        assert!(error(r#"{"version":"4","alerts":[]}"#).contains("no alerts"));
        assert!(error(r#"{"version":"4","alerts":[{"labels":{"a":1}}]}"#)
            .contains("not a notification"));
        assert!(parse(
            Source::Grafana,
            br#"{"version":"1","alerts":[{"status":"firing"}]}"#,
            &settings
        )
        .is_ok());
    }
}
