//! Text as herald shows it anywhere: cut to a length, and made safe for a log line or a terminal.
//! A leaf, so that the parsers (which cut what they keep) and the renderers share one of each.

/// At most `max_chars` characters; a cut text ends with `…`.
pub fn truncate_chars(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some(_) => {
            let keep: String = text.chars().take(max_chars.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

/// `text` made safe for one line of a log or a terminal: control characters (newlines, escape
/// sequences, …) and bidirectional overrides are written as escapes (`\n`, `\u{1b}`), so a payload
/// field or a downstream's answer can neither forge a log line nor move a terminal's cursor.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("héllo", 10), "héllo");
        assert_eq!(truncate_chars("héllo wörld", 5), "héll…");
        assert_eq!(truncate_chars("错误错误错误", 3), "错误…");
    }

    #[test]
    fn printable_text_is_one_harmless_line() {
        assert_eq!(printable("plain 中文"), "plain 中文");
        assert_eq!(
            printable("a\nINFO forged\u{1b}[2J\r\u{202E}x"),
            "a\\nINFO forged\\u{1b}[2J\\r\\u{202e}x"
        );
    }
}
