//! Dead letters: each with its target, alert, reason, the downstream's last answer and every
//! attempt; replay one, or all of a target's.

use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::fmt::Write;
use std::sync::Arc;

use super::page::{button, esc, layout, time};
use super::session::FormToken;
use super::{failed, may_change, signed_in};
use crate::http::admin::replay;
use crate::http::{ApiError, AppState};
use crate::job::Attempt;

/// The most dead letters one page lists.
const PAGE: usize = 200;

#[derive(Deserialize)]
pub struct Filter {
    target: Option<String>,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    let (_, session) = match signed_in(&state, &headers) {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let target = filter.target.filter(|t| !t.is_empty());
    let listed = match state.store.dead_letters_with_alerts(target.as_deref()) {
        Ok(listed) => listed,
        Err(error) => return failed(&session, error.into()),
    };
    let mut body = String::new();
    if listed.is_empty() {
        body.push_str("<p>No dead letters.</p>");
    }
    let mut targets: Vec<&str> = listed.iter().map(|(d, _)| d.job.target.as_str()).collect();
    targets.dedup();
    for name in &targets {
        let count = listed.iter().filter(|(d, _)| d.job.target == *name).count();
        let hidden = format!(
            "<input type=\"hidden\" name=\"target\" value=\"{}\">",
            esc(name)
        );
        let _ = write!(
            body,
            "<p>{} has {count} dead letters. {}</p>",
            esc(name),
            button(
                "/ui/dead-letters/replay",
                &format!("Replay all of {name}"),
                &session,
                &hidden
            )
        );
    }
    for (dead, alert) in listed.iter().rev().take(PAGE) {
        let title = alert
            .as_ref()
            .map(|a| a.title.clone())
            .unwrap_or_else(|| "(the alert is no longer stored)".into());
        let _ = write!(
            body,
            "<article class=\"card\" aria-label=\"Dead letter {id}\"><h2>{title}</h2><dl>\
             <dt>Target</dt><dd>{target}</dd><dt>Died</dt><dd>{died}</dd><dt>Reason</dt><dd>{reason}</dd>\
             <dt>Last answer</dt><dd class=\"answer\">{answer}</dd><dt>Alert</dt><dd>{alert_id}</dd></dl>\
             {attempts}{replay}</article>",
            id = dead.job.id,
            title = esc(&title),
            target = esc(&dead.job.target),
            died = time(dead.died_at),
            reason = esc(dead.reason.as_str()),
            answer = esc(&dead.last_answer),
            alert_id = dead.job.alert_id,
            attempts = attempts_table(&dead.job.attempts),
            replay = button(
                &format!("/ui/dead-letters/{}/replay", dead.job.id),
                "Replay",
                &session,
                ""
            ),
        );
    }
    let current = target
        .as_deref()
        .map(|t| {
            format!(
                "<p>Showing {}'s only. <a href=\"/ui/dead-letters\">All targets</a></p>",
                esc(t)
            )
        })
        .unwrap_or_default();
    let body = format!("{current}{body}");
    layout("Dead letters", "/ui/dead-letters", &session, &body).into_response()
}

/// Every attempt: when, how long, what came of it and what the downstream said.
pub(super) fn attempts_table(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        return "<p>Not attempted yet.</p>".into();
    }
    let mut table = String::from(
        "<div class=\"scroll\"><table class=\"attempts\"><thead><tr><th scope=\"col\">Attempt at</th>\
         <th scope=\"col\">Latency</th><th scope=\"col\">Result</th><th scope=\"col\">Answer</th></tr></thead><tbody>",
    );
    for attempt in attempts {
        let result = serde_json::to_value(attempt.result)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let reason = attempt
            .reason
            .map(|r| format!(" ({})", r.as_str()))
            .unwrap_or_default();
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{} ms</td><td>{}{}</td><td class=\"answer\">{}</td></tr>",
            time(attempt.at),
            attempt.latency_ms,
            esc(&result),
            esc(&reason),
            esc(&attempt.answer)
        );
    }
    table.push_str("</tbody></table></div>");
    table
}

pub async fn replay_one(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(form): Form<FormToken>,
) -> Response {
    let (live, session) = match may_change(&state, &headers, form.form_token.as_deref()) {
        Ok(allowed) => allowed,
        Err(response) => return response,
    };
    match replay(&state, &live, &|job| job.id == id) {
        Ok(replayed) if replayed.is_empty() => failed(
            &session,
            ApiError::NotFound(format!("no dead letter has id {id}")),
        ),
        Ok(_) => Redirect::to("/ui/dead-letters").into_response(),
        Err(error) => failed(&session, error),
    }
}

#[derive(Deserialize)]
pub struct ReplayTarget {
    form_token: Option<String>,
    target: String,
}

pub async fn replay_target(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<ReplayTarget>,
) -> Response {
    let (live, session) = match may_change(&state, &headers, form.form_token.as_deref()) {
        Ok(allowed) => allowed,
        Err(response) => return response,
    };
    match replay(&state, &live, &|job| job.target == form.target) {
        Ok(_) => Redirect::to("/ui/dead-letters").into_response(),
        Err(error) => failed(&session, error),
    }
}
