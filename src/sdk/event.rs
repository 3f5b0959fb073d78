//! An SDK event as herald keeps it: an allowlist of fields, read leniently from what the SDK sent,
//! with secrets masked in what is kept. Frame variables, source lines, requests, users, cookies,
//! breadcrumb data, `extra` and `contexts` are never read, so never stored, shown or forwarded.
//! The kept document (this module's [`SdkEvent`]) is what the store holds and what an alert is
//! read from again.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

use crate::text::truncate_chars;

/// An event, scrubbed: everything herald keeps of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkEvent {
    /// The project's name in herald's config, and its DSN id.
    pub project: String,
    pub project_id: u64,
    /// The issue the event belongs to, `h1:` and 16 hex digits (see [`group_of`]).
    pub issue: String,
    pub event_id: String,
    pub timestamp: Option<DateTime<Utc>>,
    pub level: Option<String>,
    pub platform: Option<String>,
    pub logger: Option<String>,
    pub transaction: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub server_name: Option<String>,
    pub title: String,
    pub culprit: Option<String>,
    /// The exception chain, oldest first (the last one was raised).
    pub exceptions: Vec<SdkException>,
    /// The raised exception's frames, oldest first, without variables or source.
    pub frames: Vec<SdkFrame>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkException {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: Option<String>,
    pub module: Option<String>,
    pub handled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkFrame {
    pub filename: Option<String>,
    pub module: Option<String>,
    pub function: Option<String>,
    pub lineno: Option<u64>,
    pub in_app: bool,
}

/// Why an event item could not be read: said in the 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event is not a JSON object ({0})")]
pub struct EventError(pub String);

/// The most characters kept of a title, a message or a tag value.
const MAX_TEXT: usize = 400;
const MAX_TAGS: usize = 50;
const MAX_FRAMES: usize = 50;

/// Reads the event item `payload` of project (`project`, `project_id`); `envelope_event_id` wins
/// over the payload's own.
pub fn read_event(
    payload: &[u8],
    project: &str,
    project_id: u64,
    envelope_event_id: Option<&str>,
) -> Result<SdkEvent, EventError> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| EventError(e.to_string()))?;
    if !value.is_object() {
        return Err(EventError("it is not an object".into()));
    }
    let text = |key: &str| short_text(value.get(key));
    let exceptions: Vec<&Value> = match value.get("exception") {
        Some(Value::Object(map)) => map
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().collect())
            .unwrap_or_default(),
        Some(Value::Array(list)) => list.iter().collect(),
        _ => Vec::new(),
    };
    let chain: Vec<SdkException> = exceptions
        .iter()
        .map(|exception| SdkException {
            kind: short_text(exception.get("type")).unwrap_or_else(|| "Error".into()),
            value: short_text(exception.get("value")).map(|v| mask(&v)),
            module: short_text(exception.get("module")),
            handled: exception
                .pointer("/mechanism/handled")
                .and_then(Value::as_bool),
        })
        .collect();
    let frames: Vec<SdkFrame> = exceptions
        .last()
        .and_then(|raised| raised.pointer("/stacktrace/frames"))
        .and_then(Value::as_array)
        .map(|frames| {
            let kept: Vec<SdkFrame> = frames
                .iter()
                .map(|frame| SdkFrame {
                    filename: short_text(frame.get("filename")),
                    module: short_text(frame.get("module")),
                    function: short_text(frame.get("function")),
                    lineno: frame.get("lineno").and_then(Value::as_u64),
                    in_app: frame.get("in_app").and_then(Value::as_bool) == Some(true),
                })
                .collect();
            let skip = kept.len().saturating_sub(MAX_FRAMES);
            kept.into_iter().skip(skip).collect()
        })
        .unwrap_or_default();
    let (template, formatted) = message_of(&value);
    let logger = text("logger");
    let title = match chain.last() {
        Some(raised) => match &raised.value {
            Some(value) if !value.is_empty() => format!("{}: {}", raised.kind, first_line(value)),
            _ => raised.kind.clone(),
        },
        None => formatted
            .as_deref()
            .map(|m| first_line(&mask(m)).to_string())
            .unwrap_or_else(|| "(no message)".into()),
    };
    let crash_frame = frames
        .iter()
        .rev()
        .find(|frame| frame.in_app)
        .or(frames.last());
    let culprit = text("transaction").or_else(|| {
        crash_frame.and_then(|frame| {
            let function = frame.function.as_deref()?;
            Some(
                match frame.module.as_deref().or(frame.filename.as_deref()) {
                    Some(place) => format!("{function} in {place}"),
                    None => function.to_string(),
                },
            )
        })
    });
    let fingerprint: Vec<String> = value
        .get("fingerprint")
        .and_then(Value::as_array)
        .map(|parts| parts.iter().filter_map(|p| short_text(Some(p))).collect())
        .unwrap_or_default();
    let issue = group_of(
        &fingerprint,
        &chain,
        &frames,
        logger.as_deref(),
        template.as_deref(),
        formatted.as_deref(),
    );
    let event_id = envelope_event_id
        .map(str::to_string)
        .or_else(|| text("event_id"))
        .unwrap_or_default()
        .replace('-', "")
        .to_ascii_lowercase();
    Ok(SdkEvent {
        project: project.to_string(),
        project_id,
        issue,
        event_id,
        timestamp: timestamp_of(value.get("timestamp")),
        level: text("level"),
        platform: text("platform"),
        logger,
        transaction: text("transaction"),
        release: text("release"),
        environment: text("environment"),
        server_name: text("server_name"),
        title: truncate_chars(&title, MAX_TEXT),
        culprit,
        exceptions: chain,
        frames,
        tags: tags_of(value.get("tags")),
    })
}

/// The message's template (a logged message's `%s` form) and its text.
fn message_of(event: &Value) -> (Option<String>, Option<String>) {
    let entry = event.get("logentry").or_else(|| event.get("message"));
    match entry {
        Some(Value::String(text)) => (None, Some(truncate_chars(text, MAX_TEXT))),
        Some(Value::Object(entry)) => {
            let template = short_text(entry.get("message"));
            let formatted = short_text(entry.get("formatted")).or_else(|| template.clone());
            (template, formatted)
        }
        _ => (None, None),
    }
}

/// Tags as an object or as `[key, value]` pairs; values as text.
fn tags_of(tags: Option<&Value>) -> Vec<(String, String)> {
    let pairs: Vec<(String, String)> = match tags {
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), short_text(Some(v))?)))
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|pair| {
                let pair = pair.as_array()?;
                Some((short_text(pair.first())?, short_text(pair.get(1))?))
            })
            .collect(),
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .take(MAX_TAGS)
        .map(|(k, v)| (truncate_chars(k.trim(), 64).replace(' ', "-"), mask(&v)))
        .collect()
}

/// RFC 3339 with or without an offset (naive is UTC), or Unix seconds.
fn timestamp_of(value: Option<&Value>) -> Option<DateTime<Utc>> {
    match value? {
        Value::String(text) => DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|naive| Utc.from_utc_datetime(&naive))
            }),
        Value::Number(seconds) => {
            let seconds = seconds.as_f64()?;
            DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
        }
        _ => None,
    }
}

/// A string value (numbers and booleans as their text), at most [`MAX_TEXT`] characters.
fn short_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(truncate_chars(s, MAX_TEXT)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}").unwrap());
static SECRET_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z0-9_-]*(?:token|secret|passw(?:or)?d|api[_-]?key|auth[a-z]*|session|cookie|signature)[a-z0-9_-]*)\s*([=:])\s*[^\s&,;]+").unwrap()
});
static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\d(?:[ -]?\d){11,18}\b").unwrap());
static IPV4: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:\d{1,3}\.){3}\d{1,3}\b").unwrap());
static LONG_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Za-z0-9_\-+/]{32,}={0,2}").unwrap());

/// `text` with what looks private written as a placeholder: e-mail addresses, `token=…`-like
/// pairs, card-like digit runs, IPv4 addresses and long tokens.
pub fn mask(text: &str) -> String {
    let text = SECRET_PAIR.replace_all(text, "$1$2[Filtered]");
    let text = EMAIL.replace_all(&text, "[email]");
    let text = CARD.replace_all(&text, "[number]");
    let text = IPV4.replace_all(&text, "[ip]");
    LONG_TOKEN.replace_all(&text, "[token]").into_owned()
}

static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:0x[0-9a-fA-F]+|[0-9a-fA-F]{8,}|\d+(?:\.\d+)?)\b").unwrap());
static QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"'[^']*'|"[^"]*""#).unwrap());

/// A message with its numbers, ids and quoted values replaced, for grouping.
fn parameterised(text: &str) -> String {
    let text = mask(first_line(text));
    let text = QUOTED.replace_all(&text, "<quoted>");
    NUMBER.replace_all(&text, "<int>").into_owned()
}

/// The issue an event belongs to, grouping algorithm `h1`: its `fingerprint` (`{{ default }}`
/// standing for what follows), else the exception chain's types and the raised exception's
/// in-app frames as `module:function` (never line numbers or values, so a bug stays one issue
/// when code above it moves or its message carries an id), else the logger and the message's
/// template, else its text with numbers, ids and quoted values masked.
pub fn group_of(
    fingerprint: &[String],
    chain: &[SdkException],
    frames: &[SdkFrame],
    logger: Option<&str>,
    template: Option<&str>,
    formatted: Option<&str>,
) -> String {
    let default_parts = || -> Vec<String> {
        if let Some(raised) = chain.last() {
            let mut parts: Vec<String> = chain
                .iter()
                .map(|e| match e.module.as_deref().filter(|m| !m.is_empty()) {
                    Some(module) => format!("{module}.{}", e.kind),
                    None => e.kind.clone(),
                })
                .collect();
            let in_app = frames.iter().any(|f| f.in_app);
            let mut places: Vec<String> = frames
                .iter()
                .filter(|f| f.in_app || !in_app)
                .filter_map(|f| {
                    let function = f.function.as_deref()?;
                    let place = f
                        .module
                        .clone()
                        .or_else(|| f.filename.as_deref().map(basename))
                        .unwrap_or_default();
                    Some(format!("{place}:{function}"))
                })
                .collect();
            places.dedup();
            let skip = places.len().saturating_sub(30);
            if places.is_empty() {
                parts.push(parameterised(raised.value.as_deref().unwrap_or_default()));
            }
            parts.extend(places.into_iter().skip(skip));
            return parts;
        }
        let logger = logger.unwrap_or_default().to_string();
        match (template, formatted) {
            (Some(template), _) => vec![logger, template.to_string()],
            (None, Some(text)) => vec![logger, parameterised(text)],
            (None, None) => vec![logger],
        }
    };
    let parts: Vec<String> = if fingerprint.is_empty() {
        default_parts()
    } else {
        fingerprint
            .iter()
            .flat_map(|part| match part.trim() {
                "{{ default }}" | "{{default}}" => default_parts(),
                other => vec![other.to_string()],
            })
            .collect()
    };
    let digest = Sha256::digest(format!("h1\n{}", parts.join("\n")).as_bytes());
    format!("h1:{}", &hex::encode(digest)[..16])
}

/// A file's name without its folders, lower-cased, with hash-like runs of digits left out.
fn basename(filename: &str) -> String {
    let name = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    name.to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_looks_private_is_masked() {
        let masked = mask(
            "charge failed for alice@example.com card 4111 1111 1111 1111 from 10.1.2.3 token=abc123 api_key: xyz",
        );
        assert_eq!(
            masked,
            "charge failed for [email] card [number] from [ip] token=[Filtered] api_key:[Filtered]"
        );
        assert_eq!(mask("division by zero"), "division by zero");
    }

    #[test]
    fn grouping_ignores_lines_values_and_ids() {
        let chain = |value: &str| {
            vec![SdkException {
                kind: "KeyError".into(),
                value: Some(value.into()),
                module: None,
                handled: Some(true),
            }]
        };
        let frame = |lineno| SdkFrame {
            filename: Some("app.py".into()),
            module: Some("__main__".into()),
            function: Some("checkout".into()),
            lineno: Some(lineno),
            in_app: true,
        };
        let one = group_of(&[], &chain("'user_1'"), &[frame(40)], None, None, None);
        let moved = group_of(&[], &chain("'user_2'"), &[frame(52)], None, None, None);
        assert_eq!(one, moved);
        let other = group_of(&[], &chain("'x'"), &[], None, None, None);
        assert_ne!(one, other);
        let fingerprinted = group_of(
            &["payments".into()],
            &chain("x"),
            &[frame(1)],
            None,
            None,
            None,
        );
        let with_default = group_of(
            &["payments".into(), "{{ default }}".into()],
            &chain("x"),
            &[frame(1)],
            None,
            None,
            None,
        );
        assert_ne!(fingerprinted, with_default);
        assert_ne!(fingerprinted, one);
        let logged = |n: u32| {
            group_of(
                &[],
                &[],
                &[],
                Some("shop.payments"),
                Some("Charge failed for order %s"),
                Some(&format!("Charge failed for order {n}")),
            )
        };
        assert_eq!(logged(7), logged(8));
        let plain = |n: u32| {
            group_of(
                &[],
                &[],
                &[],
                None,
                None,
                Some(&format!("timeout for order {n}")),
            )
        };
        assert_eq!(plain(1), plain(2));
    }
}
