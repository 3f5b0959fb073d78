//! The overview: every target's health and queue, pause and resume; the last hour's callbacks;
//! the store.

use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use std::fmt::Write;
use std::sync::Arc;

use super::page::{button, esc, layout, segment, time};
use super::session::FormToken;
use super::{failed, may_change, signed_in};
use crate::http::admin::{set_operator_pause, target_rows};
use crate::http::AppState;

pub async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (live, session) = match signed_in(&state, &headers) {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let rows = match target_rows(&state, &live) {
        Ok(rows) => rows,
        Err(error) => return failed(&session, error),
    };
    let mut body = String::from(
        "<section aria-labelledby=\"targets\"><h2 id=\"targets\">Targets</h2><div class=\"scroll\"><table>\
         <thead><tr><th scope=\"col\">Target</th><th scope=\"col\">Kind</th><th scope=\"col\">Queued</th>\
         <th scope=\"col\">Dead letters</th><th scope=\"col\">Last success</th><th scope=\"col\">Last error</th>\
         <th scope=\"col\">State</th><th scope=\"col\">Action</th></tr></thead><tbody>",
    );
    for row in &rows {
        let mut state_text = Vec::new();
        if row.paused_by_operator == Some(true) {
            state_text.push("paused by an operator".to_string());
        }
        if let Some(until) = row.paused_until.filter(|until| *until > chrono::Utc::now()) {
            state_text.push(format!(
                "the downstream asked for a pause until {}",
                time(until)
            ));
        }
        if row.gone == Some(true) {
            state_text.push("gone (HTTP 410): fix its settings".into());
        }
        if !row.configured {
            state_text.push("no longer configured: its jobs wait".into());
        }
        if state_text.is_empty() {
            state_text.push("sending".into());
        }
        let action = match row.paused_by_operator {
            Some(true) => button(
                &format!("/ui/targets/{}/resume", segment(&row.name)),
                &format!("Resume {}", row.name),
                &session,
                "",
            ),
            Some(false) => button(
                &format!("/ui/targets/{}/pause", segment(&row.name)),
                &format!("Pause {}", row.name),
                &session,
                "",
            ),
            None => String::new(),
        };
        let last_error = row
            .last_error
            .as_ref()
            .map(|error| format!("{}: {}", time(error.at), error.answer))
            .unwrap_or_else(|| "—".into());
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td><a href=\"/ui/dead-letters?target={}\">{}</a></td>\
             <td>{}</td><td class=\"answer\">{}</td><td>{}</td><td>{action}</td></tr>",
            esc(&row.name),
            esc(row.kind.unwrap_or("—")),
            row.queue_depth,
            segment(&row.name),
            row.dead_letters,
            row.last_success.map(time).unwrap_or_else(|| "—".into()),
            esc(&last_error),
            esc(&state_text.join("; ")),
        );
    }
    body.push_str("</tbody></table></div></section>");

    body.push_str(
        "<section aria-labelledby=\"intake\"><h2 id=\"intake\">Callbacks in the last hour</h2>",
    );
    let recent = state.metrics.recent_intake.last_hour();
    if recent.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th scope=\"col\">Source</th><th scope=\"col\">Outcome</th>\
             <th scope=\"col\">Callbacks</th></tr></thead><tbody>",
        );
        for ((source, outcome), count) in &recent {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{count}</td></tr>",
                esc(source),
                esc(outcome)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");

    let size = state.store.size_on_disk().unwrap_or(0);
    let _ = write!(
        body,
        "<section aria-labelledby=\"store\"><h2 id=\"store\">Store</h2><dl>\
         <dt>Where</dt><dd>{}</dd><dt>Size on disk</dt><dd>{:.1} MiB</dd><dt>Alerts kept</dt><dd>{}</dd>\
         <dt>Jobs queued</dt><dd>{}</dd><dt>Dead letters</dt><dd>{}</dd></dl></section>",
        esc(&state.store.location()),
        size as f64 / (1024.0 * 1024.0),
        state.store.alert_count(),
        state.store.queued_job_count(),
        state.store.dead_letter_count(),
    );
    layout("Overview", "/ui/overview", &session, &body).into_response()
}

pub async fn pause(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<FormToken>,
) -> Response {
    set_paused(&state, &headers, &name, form, true)
}

pub async fn resume(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<FormToken>,
) -> Response {
    set_paused(&state, &headers, &name, form, false)
}

fn set_paused(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    form: FormToken,
    paused: bool,
) -> Response {
    let (live, session) = match may_change(state, headers, form.form_token.as_deref()) {
        Ok(allowed) => allowed,
        Err(response) => return response,
    };
    match set_operator_pause(state, &live, name, paused) {
        Ok(()) => Redirect::to("/ui/overview").into_response(),
        Err(error) => failed(&session, error),
    }
}
