//! Tolerant readers for Sentry's JSON: ids that are strings here and integers there, counts sent
//! as strings, timestamps with `Z` or `+00:00` or as Unix seconds, fields that are absent or null.
//! Each reader answers `None` rather than failing, because a quirk in one field must never cost
//! the whole callback.

use super::json::Json;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Follows a path of object keys; `None` as soon as one is missing or not an object.
pub fn at<'v>(value: &'v Json<'v>, path: &[&str]) -> Option<&'v Json<'v>> {
    path.iter().try_fold(value, |current, key| current.get(key))
}

/// A non-empty string, or a number written as a string (ids arrive both ways).
pub fn text(value: Option<&Json>) -> Option<String> {
    match value? {
        Json::String(s) if !s.trim().is_empty() => Some(s.to_string()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A count that may be a JSON number or a numeric string (`"count": "3"`, `"userCount": 3`).
pub fn count(value: Option<&Json>) -> Option<u64> {
    match value? {
        Json::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A timestamp: RFC 3339 with `Z` or an offset, a naive ISO time (taken as UTC), or Unix seconds.
pub fn timestamp(value: Option<&Json>) -> Option<DateTime<Utc>> {
    match value? {
        Json::String(s) => {
            let s = s.trim();
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
                .or_else(|| {
                    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .ok()
                        .map(|naive| Utc.from_utc_datetime(&naive))
                })
        }
        Json::Number(n) => {
            let seconds = n.as_f64()?;
            if !(0.0..=1.0e11).contains(&seconds) {
                return None;
            }
            let whole = seconds.trunc() as i64;
            let nanos = ((seconds - seconds.trunc()) * 1e9) as u32;
            Utc.timestamp_opt(whole, nanos).single()
        }
        _ => None,
    }
}

/// Event tags: Sentry sends `[["key", "value"], …]`; some payloads use `[{"key":…,"value":…}]`
/// or a plain object. All three are read; anything else is skipped.
pub fn tags(value: Option<&Json>) -> Vec<(String, String)> {
    match value {
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Json::Array(pair) if pair.len() == 2 => {
                    Some((text(pair.first())?, text(pair.get(1)).unwrap_or_default()))
                }
                Json::Object(_) => Some((
                    text(item.get("key"))?,
                    text(item.get("value")).unwrap_or_default(),
                )),
                _ => None,
            })
            .collect(),
        Some(Json::Object(map)) => map
            .iter()
            .filter_map(|(key, value)| Some((key.to_string(), text(Some(value))?)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The value of one tag, if present.
pub fn tag<'t>(tags: &'t [(String, String)], key: &str) -> Option<&'t str> {
    tags.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The number after `/issues/` in a Sentry URL (API or web), for payloads older than 2022 that
/// carry only `issue_url`.
pub fn issue_id_from_url(url: &str) -> Option<String> {
    let rest = &url[url.find("/issues/")? + "/issues/".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!digits.is_empty()).then_some(digits)
}

/// The project slug in an event's API URL: `…/api/0/projects/{org}/{project}/events/{id}/`.
pub fn project_from_event_url(url: &str) -> Option<String> {
    let rest = &url[url.find("/projects/")? + "/projects/".len()..];
    let mut parts = rest.split('/');
    let _organization = parts.next()?;
    let project = parts.next()?;
    (!project.is_empty() && parts.next() == Some("events")).then(|| project.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON value from its text.
    fn json(text: &str) -> Json<'_> {
        Json::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn ids_and_counts_in_both_forms() {
        assert_eq!(text(Some(&json(r#""100""#))), Some("100".into()));
        assert_eq!(text(Some(&json(r#"100"#))), Some("100".into()));
        assert_eq!(text(Some(&json(r#"null"#))), None);
        assert_eq!(text(Some(&json(r#""""#))), None);
        assert_eq!(count(Some(&json(r#""3""#))), Some(3));
        assert_eq!(count(Some(&json(r#"3"#))), Some(3));
        assert_eq!(count(Some(&json(r#""many""#))), None);
        assert_eq!(count(Some(&json(r#"-1"#))), None);
    }

    #[test]
    fn timestamps_in_every_form() {
        let z = timestamp(Some(&json(r#""2020-04-30T05:54:15.092476Z""#))).unwrap();
        let offset = timestamp(Some(&json(r#""2020-04-30T05:54:15.092476+00:00""#))).unwrap();
        let naive = timestamp(Some(&json(r#""2020-04-30T05:54:15.092476""#))).unwrap();
        assert_eq!(z, offset);
        assert_eq!(z, naive);
        let unix = timestamp(Some(&json(r#"1566248777.677"#))).unwrap();
        assert_eq!(unix.timestamp(), 1566248777);
        assert_eq!(timestamp(Some(&json(r#""yesterday""#))), None);
        assert_eq!(timestamp(Some(&json("1.7976931348623157e308"))), None);
        assert_eq!(timestamp(Some(&json(r#"-5"#))), None);
    }

    #[test]
    fn tags_in_every_form() {
        let pairs = tags(Some(&json(
            r#"[["level", "error"], ["os", "Linux"], ["bad"]]"#,
        )));
        assert_eq!(
            pairs,
            vec![
                ("level".into(), "error".into()),
                ("os".into(), "Linux".into())
            ]
        );
        let objects = tags(Some(&json(r#"[{"key": "env", "value": "prod"}]"#)));
        assert_eq!(objects, vec![("env".into(), "prod".into())]);
        assert_eq!(tag(&objects, "env"), Some("prod"));
        assert!(tags(Some(&json(r#""nope""#))).is_empty());
    }

    #[test]
    fn ids_from_urls() {
        assert_eq!(
            issue_id_from_url("https://sentry.io/api/0/issues/1117540176/"),
            Some("1117540176".into())
        );
        assert_eq!(issue_id_from_url("https://sentry.io/issues/"), None);
        assert_eq!(
            project_from_event_url(
                "https://sentry.io/api/0/projects/test-org/front-end/events/e48/"
            ),
            Some("front-end".into())
        );
        assert_eq!(
            project_from_event_url("https://sentry.io/api/0/projects/x"),
            None
        );
    }
}
