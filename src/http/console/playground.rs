//! The playground: a payload (pasted, or a stored alert's) rendered for a target as herald would
//! send it — the message as the chat tool shows it, the exact request body, its size against the
//! target's limit, whom it would @ — and where the routes send it. Nothing is stored or sent.

use axum::extract::{Form, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::fmt::Write;
use std::sync::Arc;

use super::page::{esc, layout, token_field};
use super::session::Session;
use super::{may_change, signed_in};
use crate::alert::Source;
use crate::config::Config;
use crate::http::{AppState, Reloadable};
use crate::render::MessageView;
use crate::route::Mentions;
use crate::targets::Delivery;

const SOURCES: [Source; 5] = [
    Source::Sentry,
    Source::SentryLegacyPlugin,
    Source::Alertmanager,
    Source::Grafana,
    Source::SentrySdk,
];

#[derive(Deserialize, Default)]
pub struct Pick {
    /// A stored alert whose payload fills the form.
    alert: Option<u64>,
}

#[derive(Deserialize, Default)]
pub struct Try {
    form_token: Option<String>,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    target: String,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(pick): Query<Pick>,
) -> Response {
    let (live, session) = match signed_in(&state, &headers) {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let mut form = Try {
        source: Source::Sentry.as_str().into(),
        resource: "issue".into(),
        ..Try::default()
    };
    let mut note = String::new();
    if let Some(id) = pick.alert {
        match state.store.alert(id) {
            Ok(Some(stored)) => {
                form.payload = stored.alert.raw.get().to_string();
                form.source = stored.alert.source.as_str().into();
                form.resource = stored.alert.resource.clone();
            }
            _ => note = format!("<p role=\"alert\" class=\"error\">Alert {id} is not stored.</p>"),
        }
    }
    let body = format!("{note}{}", form_html(&live.config, &session, &form));
    layout("Playground", "/ui/playground", &session, &body).into_response()
}

pub async fn render(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<Try>,
) -> Response {
    let (live, session) = match may_change(&state, &headers, form.form_token.as_deref()) {
        Ok(allowed) => allowed,
        Err(response) => return response,
    };
    let result = rendered(&live, &form);
    let body = format!("{}{result}", form_html(&live.config, &session, &form));
    layout("Playground", "/ui/playground", &session, &body).into_response()
}

fn form_html(config: &Config, session: &Session, form: &Try) -> String {
    let sources: String = SOURCES
        .iter()
        .map(|source| {
            let name = source.as_str();
            let selected = if form.source == name { " selected" } else { "" };
            format!("<option value=\"{name}\"{selected}>{name}</option>")
        })
        .collect();
    let targets: String = config
        .targets
        .iter()
        .map(|target| {
            let selected = if form.target == target.name {
                " selected"
            } else {
                ""
            };
            format!(
                "<option value=\"{0}\"{selected}>{0} ({1})</option>",
                esc(&target.name),
                target.settings.kind()
            )
        })
        .collect();
    format!(
        "<form method=\"post\" action=\"/ui/playground\" class=\"playground\">{}\
         <label for=\"payload\">Payload</label>\
         <textarea id=\"payload\" name=\"payload\" rows=\"14\" spellcheck=\"false\" required>{}</textarea>\
         <div class=\"row\"><label>Source <select name=\"source\">{sources}</select></label>\
         <label>Sentry resource <input name=\"resource\" value=\"{}\"></label>\
         <label>Target <select id=\"target\" name=\"target\">{targets}</select></label>\
         <button type=\"submit\">Render</button></div></form>",
        token_field(session),
        esc(&form.payload),
        esc(&form.resource),
    )
}

/// What the payload becomes, as HTML.
fn rendered(live: &Reloadable, form: &Try) -> String {
    let config = &live.config;
    let problem = |text: &str| {
        format!(
            "<section aria-live=\"polite\"><p role=\"alert\" class=\"error\">{}</p></section>",
            esc(text)
        )
    };
    let Some(source) = Source::parse(&form.source) else {
        return problem("Pick a source.");
    };
    let resource = if form.resource.trim().is_empty() {
        "issue"
    } else {
        form.resource.trim()
    };
    let alert = match crate::intake::read_payload(config, source, resource, form.payload.as_bytes())
    {
        Ok(alert) => alert,
        Err(error) => return problem(&format!("herald cannot read this payload: {error}")),
    };
    let targets = match &live.preview_targets {
        Ok(targets) => targets,
        Err(error) => return problem(error),
    };
    let Some(target) = targets.iter().find(|t| t.name == form.target) else {
        return problem("Pick a target.");
    };
    let router = config.router();
    let routed = router.route(&alert);
    let mut out = String::from(
        "<section aria-live=\"polite\" aria-labelledby=\"result\"><h2 id=\"result\">Result</h2>",
    );
    let _ = write!(
        out,
        "<p>herald reads it as <strong>{}</strong> ({}, level {}).</p>",
        esc(&alert.title),
        esc(&alert.event_name()),
        alert.level.map_or("none", |l| l.as_str())
    );
    if routed.is_empty() {
        out.push_str("<p>The routes send it to no target.</p>");
    } else {
        out.push_str("<p>The routes send it to:</p><ul class=\"routed\">");
        for routed in &routed {
            let people = routed.mentions.describe();
            let _ = write!(
                out,
                "<li>{}{}</li>",
                esc(routed.target),
                if people.is_empty() {
                    String::new()
                } else {
                    format!(", mentioning {}", esc(&people))
                }
            );
        }
        out.push_str("</ul>");
    }
    let mentions = routed
        .iter()
        .find(|r| r.target == target.name)
        .map(|r| r.mentions.clone())
        .unwrap_or_else(Mentions::default);
    let view = MessageView::new(&alert, 0, 0, chrono::Utc::now());
    let bodies = match target.render(&Delivery {
        view: &view,
        mentions: &mentions,
        idempotency_key: "herald-playground",
        raw: None,
        parts_sent: 0,
    }) {
        Ok(bodies) => bodies,
        Err(error) => return format!("{out}{}", problem(&error.to_string())),
    };
    let whom = mentions.describe();
    let _ = write!(
        out,
        "<h3>For {} ({})</h3><p>It would @ {}.</p>",
        esc(&target.name),
        target.kind,
        if whom.is_empty() {
            "no one".to_string()
        } else {
            esc(&whom)
        }
    );
    for (at, body) in bodies.iter().enumerate() {
        if bodies.len() > 1 {
            let _ = write!(out, "<h4>Part {} of {}</h4>", at + 1, bodies.len());
        }
        if let Some(size) = target.size_of(body) {
            let _ = write!(
                out,
                "<p class=\"size\">{} of {} {} ({}%).</p>",
                size.used,
                size.limit,
                size.unit,
                size.used * 100 / size.limit.max(1)
            );
        }
        if let Some(text) = message_text(body) {
            let _ = write!(
                out,
                "<figure class=\"message\"><figcaption>As the chat shows it</figcaption><div class=\"markdown\">{}</div></figure>",
                markdown(&text)
            );
        }
        let pretty = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| body.clone());
        let _ = write!(
            out,
            "<figure><figcaption>The request body, exactly ({} bytes)</figcaption><pre class=\"body\"><code>{}</code></pre></figure>",
            body.len(),
            esc(&pretty)
        );
    }
    out.push_str("</section>");
    out
}

/// The message's text in a body: the longest `text`, `content` or `body` string in it.
fn message_text(body: &str) -> Option<String> {
    fn walk(value: &serde_json::Value, found: &mut Option<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match value {
                        serde_json::Value::String(text)
                            if matches!(key.as_str(), "text" | "content" | "body")
                                && found.as_ref().is_none_or(|f| f.len() < text.len()) =>
                        {
                            *found = Some(text.clone())
                        }
                        other => walk(other, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let mut found = None;
    walk(&value, &mut found);
    found
}

/// Markdown as HTML; HTML in the markdown is shown as text, never passed through, and a link
/// or image that is not http(s) or mailto goes nowhere.
fn markdown(text: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, Tag};
    let safe = |url: &str| {
        let lower = url.trim().to_ascii_lowercase();
        lower.starts_with("https://")
            || lower.starts_with("http://")
            || lower.starts_with("mailto:")
    };
    let events = Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(
        |event| match event {
            Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) if !safe(&dest_url) => Event::Start(Tag::Link {
                link_type,
                dest_url: "#".into(),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) if !safe(&dest_url) => Event::Start(Tag::Image {
                link_type,
                dest_url: "#".into(),
                title,
                id,
            }),
            other => other,
        },
    );
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}
