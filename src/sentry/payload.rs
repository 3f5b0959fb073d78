//! Sentry payloads → [`Alert`].
//!
//! One function per resource lifts out what people need to read; everything else stays in the
//! raw payload. Unknown resources and actions are not errors: they become an alert with
//! `recognized = false`, are stored, and are answered 2xx, because Sentry adds new ones every year
//! and refusing them would lose what a later herald could route.

use sha2::{Digest, Sha256};

use super::fields::{
    at, count, issue_id_from_url, project_from_event_url, tag, tags, text, timestamp,
};
use super::json::Json;
use crate::alert::{
    Alert, Assignee, Comment, Frame, Level, MetricAlert, MetricStatus, RawPayload, Source,
};

/// Why a body cannot be read as a Sentry payload. Always the sender's fault: a 400.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body is JSON but not an object")]
    NotAnObject,
}

/// Parses an integration-platform callback. `resource` is the `Sentry-Hook-Resource` header:
/// the body itself does not say what it is.
pub fn parse_integration_payload(resource: &str, body: &[u8]) -> Result<Alert, PayloadError> {
    let (value, raw) = read_json(body)?;
    let action = text(value.get("action")).unwrap_or_else(|| "unknown".to_string());
    let installation = text(at(&value, &["installation", "uuid"]));
    let empty = Json::Null;
    let data = value.get("data").unwrap_or(&empty);

    let mut alert = Alert::blank(Source::Sentry, resource, &action, installation, raw);
    match resource {
        "issue" => read_issue(&mut alert, data),
        "event_alert" => read_event(&mut alert, data.get("event").unwrap_or(&empty), data),
        "error" => read_event(&mut alert, data.get("error").unwrap_or(&empty), data),
        "metric_alert" => read_metric_alert(&mut alert, data),
        "comment" => read_comment(&mut alert, data, &value),
        "installation" => read_installation(&mut alert, data),
        "activity_alert" => read_activity_alert(&mut alert, data),
        "seer" => read_seer(&mut alert, data),
        "preprod_artifact" => read_preprod_artifact(&mut alert, data),
        _ => {}
    }
    alert.recognized = is_recognized(resource, &action);
    if alert.title.is_empty() {
        alert.title = alert.event_name();
    }
    alert.dedupe_key = dedupe_key(&alert, data, body);
    Ok(alert)
}

/// Parses a callback of the legacy "WebHooks" plugin: no headers, the issue at the top level.
pub fn parse_legacy_payload(body: &[u8]) -> Result<Alert, PayloadError> {
    let (value, raw) = read_json(body)?;
    let mut alert = Alert::blank(
        Source::SentryLegacyPlugin,
        "event_alert",
        "triggered",
        None,
        raw,
    );
    let empty = Json::Null;
    let event = value.get("event").unwrap_or(&empty);
    alert.issue_id = text(value.get("id"));
    alert.project = text(value.get("project_slug")).or_else(|| text(value.get("project")));
    alert.level = level_of(value.get("level")).or_else(|| level_of(event.get("level")));
    alert.culprit = text(value.get("culprit"));
    alert.title = text(event.get("title"))
        .or_else(|| text(value.get("message")))
        .unwrap_or_default();
    alert.link = text(value.get("url"));
    alert.event_id = text(event.get("event_id")).or_else(|| text(event.get("id")));
    alert.tags = tags(event.get("tags"));
    alert.environment = text(event.get("environment"))
        .or_else(|| tag(&alert.tags, "environment").map(String::from));
    alert.release =
        text(event.get("release")).or_else(|| tag(&alert.tags, "release").map(String::from));
    alert.last_seen =
        timestamp(event.get("timestamp")).or_else(|| timestamp(event.get("datetime")));
    alert.frames = in_app_frames(event);
    alert.triggered_rule = match value.get("triggering_rules") {
        Some(Json::Array(rules)) => {
            let names: Vec<String> = rules.iter().filter_map(|r| text(Some(r))).collect();
            (!names.is_empty()).then(|| names.join(", "))
        }
        other => text(other),
    };
    alert.recognized = true;
    if alert.title.is_empty() {
        alert.title = "Sentry alert".to_string();
    }
    alert.dedupe_key = format!(
        "legacy/{}/{}",
        alert.issue_id.as_deref().unwrap_or("-"),
        alert.event_id.clone().unwrap_or_else(|| body_digest(body))
    );
    Ok(alert)
}

/// The body as a JSON object, and the same bytes kept verbatim.
fn read_json(body: &[u8]) -> Result<(Json<'_>, RawPayload), PayloadError> {
    let value = Json::parse(body).map_err(|e| PayloadError::MalformedJson(e.to_string()))?;
    if !value.is_object() {
        return Err(PayloadError::NotAnObject);
    }
    let raw = RawPayload::parsed(body).map_err(|e| PayloadError::MalformedJson(e.to_string()))?;
    Ok((value, raw))
}

/// The resources and actions of REFERENCE.md §1 whose shape herald knows.
fn is_recognized(resource: &str, action: &str) -> bool {
    match resource {
        "issue" => matches!(
            action,
            "created" | "resolved" | "assigned" | "ignored" | "archived" | "unresolved"
        ),
        "event_alert" => action == "triggered",
        "error" => action == "created",
        "metric_alert" => matches!(action, "critical" | "warning" | "resolved" | "open"),
        "comment" => matches!(action, "created" | "updated" | "deleted"),
        "installation" => matches!(action, "created" | "deleted"),
        _ => false,
    }
}

fn level_of(value: Option<&Json>) -> Option<Level> {
    Level::parse(value?.as_str()?)
}

/// `data.issue` of `issue.*` (and of `activity_alert`, which carries the same object).
fn read_issue(alert: &mut Alert, data: &Json) {
    let Some(issue) = data.get("issue") else {
        return;
    };
    alert.issue_id = text(issue.get("id"));
    alert.short_id = text(issue.get("shortId"));
    alert.title = text(issue.get("title"))
        .or_else(|| text(at(issue, &["metadata", "title"])))
        .unwrap_or_default();
    alert.culprit = text(issue.get("culprit"));
    alert.level = level_of(issue.get("level"));
    alert.project = text(at(issue, &["project", "slug"]));
    alert.link = text(issue.get("web_url")).or_else(|| text(issue.get("permalink")));
    alert.event_count = count(issue.get("count"));
    alert.user_count = count(issue.get("userCount"));
    alert.first_seen = timestamp(issue.get("firstSeen"));
    alert.last_seen = timestamp(issue.get("lastSeen"));
    alert.resolution_type = text(data.get("resolution_type"));
    let assignee = data.get("assignee").or_else(|| issue.get("assignedTo"));
    alert.assignee = assignee.filter(|a| a.is_object()).map(|a| Assignee {
        kind: text(a.get("type")).unwrap_or_else(|| "user".to_string()),
        name: text(a.get("name")),
        email: text(a.get("email")),
    });
}

/// `data.event` of `event_alert.triggered`, `data.error` of `error.created`.
fn read_event(alert: &mut Alert, event: &Json, data: &Json) {
    alert.event_id = text(event.get("event_id"));
    alert.issue_id = text(event.get("issue_id")).or_else(|| {
        ["issue_url", "web_url"]
            .iter()
            .find_map(|key| issue_id_from_url(event.get(key)?.as_str()?))
    });
    alert.title = text(event.get("title"))
        .or_else(|| text(event.get("message")))
        .or_else(|| {
            let kind = text(at(event, &["metadata", "type"]))?;
            let value = text(at(event, &["metadata", "value"])).unwrap_or_default();
            Some(format!("{kind}: {value}"))
        })
        .unwrap_or_default();
    alert.culprit = text(event.get("culprit")).or_else(|| text(event.get("location")));
    alert.level = level_of(event.get("level"));
    alert.link = text(event.get("web_url"));
    alert.tags = tags(event.get("tags"));
    alert.project = event
        .get("url")
        .and_then(Json::as_str)
        .and_then(project_from_event_url)
        .or_else(|| {
            event
                .get("project")
                .filter(|p| p.is_object())
                .and_then(|p| text(p.get("slug")))
        });
    alert.environment = text(event.get("environment"))
        .or_else(|| tag(&alert.tags, "environment").map(String::from));
    alert.release = text(event.get("release"))
        .or_else(|| text(at(event, &["release", "version"])))
        .or_else(|| tag(&alert.tags, "release").map(String::from));
    alert.last_seen =
        timestamp(event.get("datetime")).or_else(|| timestamp(event.get("timestamp")));
    alert.frames = in_app_frames(event);
    alert.triggered_rule =
        text(data.get("triggered_rule")).or_else(|| text(at(data, &["issue_alert", "title"])));
}

/// The in-app frames of the outermost exception (Sentry lists chained exceptions oldest first,
/// so the last value is the one that was raised). Only names and positions are taken.
fn in_app_frames(event: &Json) -> Vec<Frame> {
    let Some(Json::Array(values)) = at(event, &["exception", "values"]) else {
        return Vec::new();
    };
    let Some(Json::Array(frames)) = values.last().and_then(|v| at(v, &["stacktrace", "frames"]))
    else {
        return Vec::new();
    };
    frames
        .iter()
        .filter(|frame| frame.get("in_app").and_then(Json::as_bool) == Some(true))
        .map(|frame| Frame {
            function: text(frame.get("function")),
            module: text(frame.get("module")),
            filename: text(frame.get("filename")).or_else(|| text(frame.get("abs_path"))),
            lineno: count(frame.get("lineno")),
        })
        .collect()
}

fn read_metric_alert(alert: &mut Alert, data: &Json) {
    let incident = data.get("metric_alert").unwrap_or(&Json::Null);
    let rule = incident.get("alert_rule").unwrap_or(&Json::Null);
    let status = match alert.action.as_str() {
        "critical" => MetricStatus::Critical,
        "warning" => MetricStatus::Warning,
        "resolved" => MetricStatus::Resolved,
        "open" => MetricStatus::Open,
        _ => match count(incident.get("status")) {
            Some(20) => MetricStatus::Critical,
            Some(10) => MetricStatus::Warning,
            Some(2) => MetricStatus::Resolved,
            _ => MetricStatus::Unknown,
        },
    };
    let metric = MetricAlert {
        incident_id: text(incident.get("id")),
        rule_id: text(rule.get("id")),
        rule_name: text(rule.get("name")),
        status,
        description_title: text(data.get("description_title")),
        // Sentry's examples carry a literal backslash-n where a line break is meant.
        description_text: text(data.get("description_text")).map(|t| t.replace("\\n", "\n")),
    };
    alert.title = metric
        .description_title
        .clone()
        .or_else(|| text(incident.get("title")))
        .or_else(|| metric.rule_name.clone())
        .unwrap_or_default();
    alert.level = Some(match status {
        MetricStatus::Critical => Level::Error,
        MetricStatus::Warning => Level::Warning,
        _ => Level::Info,
    });
    alert.link = text(data.get("web_url"));
    alert.project = [incident.get("projects"), rule.get("projects")]
        .into_iter()
        .flatten()
        .find_map(|projects| text(projects.as_array()?.first()));
    alert.environment = text(rule.get("environment"));
    alert.first_seen = timestamp(incident.get("date_started"))
        .or_else(|| timestamp(incident.get("date_detected")));
    alert.triggered_rule = metric.rule_name.clone();
    alert.metric_alert = Some(metric);
}

fn read_comment(alert: &mut Alert, data: &Json, envelope: &Json) {
    let comment = Comment {
        id: text(data.get("comment_id")),
        text: text(data.get("comment")),
        author: text(at(envelope, &["actor", "name"])),
    };
    alert.issue_id = text(data.get("issue_id"));
    alert.project = text(data.get("project_slug"));
    alert.last_seen = timestamp(data.get("timestamp"));
    let verb = match alert.action.as_str() {
        "created" => "New comment",
        "updated" => "Comment edited",
        "deleted" => "Comment deleted",
        _ => "Comment",
    };
    alert.title = match (&comment.author, &alert.issue_id) {
        (Some(author), Some(issue)) => format!("{verb} by {author} on issue {issue}"),
        (None, Some(issue)) => format!("{verb} on issue {issue}"),
        _ => verb.to_string(),
    };
    alert.comment = Some(comment);
}

fn read_installation(alert: &mut Alert, data: &Json) {
    let organization = text(at(data, &["installation", "organization", "slug"]));
    alert.title = match organization {
        Some(org) => format!("Sentry integration {} for {org}", alert.action),
        None => format!("Sentry integration {}", alert.action),
    };
}

/// `activity_alert` carries the issue object plus the alert that fired on its activity.
fn read_activity_alert(alert: &mut Alert, data: &Json) {
    read_issue(alert, data);
    alert.triggered_rule = text(at(data, &["alert", "title"]));
}

fn read_seer(alert: &mut Alert, data: &Json) {
    alert.issue_id = text(data.get("group_id"));
    let step = alert.action.replace('_', " ");
    alert.title = match &alert.issue_id {
        Some(issue) => format!("Seer {step} for issue {issue}"),
        None => format!("Seer {step}"),
    };
}

fn read_preprod_artifact(alert: &mut Alert, data: &Json) {
    alert.project = text(data.get("projectSlug"));
    let app = text(at(data, &["appInfo", "name"])).unwrap_or_else(|| "build".to_string());
    let version = text(at(data, &["appInfo", "version"]))
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    alert.title = format!("{app}{version}: {}", alert.action.replace('_', " "));
}

/// REFERENCE.md §1's stable keys, scoped by installation. Where a payload lacks the fields its
/// key is made of, the body's digest stands in: identical retries still match.
fn dedupe_key(alert: &Alert, data: &Json, body: &[u8]) -> String {
    let scope = alert.installation.as_deref().unwrap_or("-");
    let resource = alert.resource.as_str();
    let action = alert.action.as_str();
    let specific = match resource {
        "issue" if action == "created" => alert.issue_id.as_ref().map(|id| format!("{id}/created")),
        "issue" => alert.issue_id.as_ref().map(|id| {
            let state = match (&alert.assignee, action) {
                (Some(assignee), "assigned") => format!(
                    "{}:{}",
                    assignee.kind,
                    assignee
                        .email
                        .as_deref()
                        .or(assignee.name.as_deref())
                        .unwrap_or("-")
                ),
                _ => {
                    let status = text(at(data, &["issue", "status"])).unwrap_or_default();
                    let resolution = alert.resolution_type.as_deref().unwrap_or_default();
                    format!("{status}:{resolution}")
                }
            };
            format!("{id}/{action}/{state}")
        }),
        "error" => alert.event_id.clone(),
        "event_alert" => alert
            .event_id
            .as_ref()
            .map(|event| format!("{event}/{}", alert.triggered_rule.as_deref().unwrap_or("-"))),
        "metric_alert" => alert
            .metric_alert
            .as_ref()
            .and_then(|m| m.incident_id.as_ref())
            .map(|incident| format!("{incident}/{action}")),
        "comment" => alert
            .comment
            .as_ref()
            .and_then(|c| c.id.as_ref())
            .map(|id| format!("{id}/{action}")),
        "installation" => Some(action.to_string()),
        _ => None,
    };
    let specific = specific.unwrap_or_else(|| format!("{action}/{}", body_digest(body)));
    format!("{scope}/{resource}/{specific}")
}

fn body_digest(body: &[u8]) -> String {
    hex::encode(&Sha256::digest(body)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bodies_are_payload_errors() {
        assert!(matches!(
            parse_integration_payload("issue", b"{not json"),
            Err(PayloadError::MalformedJson(_))
        ));
        assert!(matches!(
            parse_integration_payload("issue", b"[1,2]"),
            Err(PayloadError::NotAnObject)
        ));
        assert!(matches!(
            parse_legacy_payload(b""),
            Err(PayloadError::MalformedJson(_))
        ));
    }

    #[test]
    fn unknown_resources_are_kept_with_a_title() {
        let alert = parse_integration_payload("brand_new", br#"{"action":"happened"}"#).unwrap();
        assert!(!alert.recognized);
        assert_eq!(alert.title, "brand_new.happened");
        assert!(alert.dedupe_key.starts_with("-/brand_new/happened/"));
    }

    #[test]
    fn wrong_types_in_known_fields_do_not_fail_the_callback() {
        let body = br#"{"action":"created","data":{"issue":{"id":{"x":1},"level":7,"count":[],"title":null}}}"#;
        let alert = parse_integration_payload("issue", body).unwrap();
        assert_eq!(alert.issue_id, None);
        assert_eq!(alert.level, None);
        assert_eq!(alert.title, "issue.created");
    }
}
