//! Templates: what a message says, separate from how a target sends it.
//!
//! Every target kind has a default handlebars template in `templates/`, embedded in the binary; a
//! target may name its own file with `template = PATH`. All templates are compiled, and rendered
//! once against a sample alert, when the config is loaded, so a broken template stops herald at
//! start (naming the file and line) instead of failing a delivery at 3 a.m.
//!
//! Templates see a [`MessageView`], never the raw payload: Sentry events carry request bodies,
//! cookies, headers and frame variables, and none of that belongs in a chat group.
//!
//! HTML escaping is off (these are markdown and plain text, not HTML); escaping is explicit, per
//! output format, through the `md` and `json` helpers.

mod templates;
mod view;

pub use templates::{
    default_digest_template, default_template, TemplateError, TemplateSource, Templates,
};
pub use view::{
    DigestItem, DigestView, FoldedView, GroupView, LevelCount, MemberView, MessageView, PartView,
    Tag,
};

pub use crate::text::{printable, truncate_chars};

use chrono::{DateTime, Utc};

use crate::alert::Level;

pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        let after = previous.replace(c);
        match c {
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            // GitHub turns `@name` and `@org/team` into a mention (and a notification) whatever
            // the escaping: a zero-width space after the `@` keeps it text. (`me@host` and
            // `shop@1.4.2` are no mentions and stay as they are.)
            '@' if !after.is_some_and(char::is_alphanumeric)
                && chars.peek().is_some_and(|next| next.is_alphanumeric()) =>
            {
                out.push('@');
                out.push(ZERO_WIDTH_SPACE);
            }
            _ => out.push(c),
        }
    }
    out
}

const ZERO_WIDTH_SPACE: char = '\u{200B}';

/// `text` as one inline code span, whatever it holds: the fence is a run of backticks longer than
/// any in `text`, so nothing in it can close the span early (and inside a span nothing is
/// markdown: no heading, image, link or mention). Line breaks become spaces.
pub fn code_span(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // A span that starts or ends with a backtick needs a space inside its fence.
    if text.starts_with('`') || text.ends_with('`') {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

/// The contents of a JSON string literal (without the quotes).
pub fn escape_json(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

pub fn level_icon(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Fatal) => "🔥",
        Some(Level::Error) => "🔴",
        Some(Level::Warning) => "🟠",
        Some(Level::Info) => "🔵",
        Some(Level::Debug) => "⚪",
        None => "🔔",
    }
}

/// "3 minutes ago", "2 days ago", "just now"; `in …` for a time after `now`.
pub fn relative_time(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - time).num_seconds();
    let (amount, future) = (seconds.unsigned_abs(), seconds < 0);
    if amount < 45 {
        return "just now".into();
    }
    let (value, unit) = match amount {
        0..=5_399 => (((amount + 30) / 60).max(1), "minute"),
        5_400..=129_599 => ((amount + 1_800) / 3_600, "hour"),
        _ => ((amount + 43_200) / 86_400, "day"),
    };
    let plural = if value == 1 { "" } else { "s" };
    if future {
        format!("in {value} {unit}{plural}")
    } else {
        format!("{value} {unit}{plural} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_escaping_neutralizes_formatting() {
        assert_eq!(
            escape_markdown("*bold* _x_ [a](b) `c`"),
            r"\*bold\* \_x\_ \[a\](b) \`c\`"
        );
        assert_eq!(escape_markdown("line\n# heading"), r"line \# heading");
        assert_eq!(escape_markdown("中文 ok"), "中文 ok");
        assert_eq!(
            escape_markdown("cc @octo-org/admins and me@host, @ alone, shop@1.4.2"),
            "cc @\u{200B}octo-org/admins and me@host, @ alone, shop@1.4.2"
        );
    }

    #[test]
    fn a_code_span_holds_anything() {
        assert_eq!(code_span("f (a.py:3)"), "`f (a.py:3)`");
        assert_eq!(
            code_span("x` ## @team ![i](u) `y"),
            "``x` ## @team ![i](u) `y``"
        );
        assert_eq!(code_span("``a"), "``` ``a ```");
        assert_eq!(code_span("a\n# b"), "`a # b`");
    }

    #[test]
    fn json_escaping() {
        assert_eq!(escape_json("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }

    #[test]
    fn relative_times() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(relative_time(at("2026-01-01T23:59:30Z"), now), "just now");
        assert_eq!(
            relative_time(at("2026-01-01T23:57:00Z"), now),
            "3 minutes ago"
        );
        assert_eq!(
            relative_time(at("2026-01-01T22:00:00Z"), now),
            "2 hours ago"
        );
        assert_eq!(relative_time(at("2025-12-30T00:00:00Z"), now), "3 days ago");
        assert_eq!(
            relative_time(at("2026-01-02T00:01:00Z"), now),
            "in 1 minute"
        );
    }
}
