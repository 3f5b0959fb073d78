//! The frame every console page shares: the navigation, the sign-out button, escaping.

use axum::response::Html;
use chrono::{DateTime, Utc};

use super::session::Session;

const NAVIGATION: [(&str, &str); 5] = [
    ("/ui/overview", "Overview"),
    ("/ui/deliveries", "Deliveries"),
    ("/ui/dead-letters", "Dead letters"),
    ("/ui/issues", "Issues"),
    ("/ui/playground", "Playground"),
];

/// Text made safe for HTML, in an element or a quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What a path segment or a query value may carry as it is: RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Text as one segment of a URL's path or a query value.
pub fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, UNRESERVED).to_string()
}

/// A time as people read it here: `2026-12-01 14:03:22 UTC`.
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A page with the navigation (`current` is the path of the page shown).
pub fn layout(title: &str, current: &str, session: &Session, body: &str) -> Html<String> {
    let links: String = NAVIGATION
        .iter()
        .map(|(path, name)| {
            let here = if *path == current {
                " aria-current=\"page\""
            } else {
                ""
            };
            format!("<li><a href=\"{path}\"{here}>{name}</a></li>")
        })
        .collect();
    let sign_out = button("/ui/sign-out", "Sign out", session, "");
    Html(document(
        title,
        &format!(
            "<header><nav aria-label=\"Console\"><span class=\"brand\">herald</span><ul>{links}</ul>{sign_out}</nav></header>\
             <main><h1>{}</h1>{body}</main>",
            esc(title)
        ),
    ))
}

/// A page without navigation (signing in, a refusal).
pub fn bare(title: &str, body: &str) -> Html<String> {
    Html(document(
        title,
        &format!("<main class=\"narrow\">{body}</main>"),
    ))
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{} · herald</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head>\
         <body>{body}</body></html>",
        esc(title)
    )
}

/// A one-button POST form carrying the session's form token (and `hidden`, already HTML).
pub fn button(action: &str, label: &str, session: &Session, hidden: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}{hidden}<button type=\"submit\">{}</button></form>",
        esc(action),
        token_field(session),
        esc(label)
    )
}

/// The hidden field with the session's form token.
pub fn token_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"form_token\" value=\"{}\">",
        session.form_token()
    )
}
