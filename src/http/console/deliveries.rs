//! Deliveries: the recent alerts, newest first, each with what herald understood, where it was
//! routed or folded, and every attempt with its time, latency and answer. Filtered by target,
//! issue, level and outcome; paged by alert id, so a page costs the same at any store size.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use super::dead_letters::attempts_table;
use super::page::{esc, layout, segment, time};
use super::{failed, signed_in};
use crate::http::AppState;
use crate::job::{AlertId, DeadLetter, DeliveryJob};
use crate::store::{StoreError, StoredAlert};

/// Alerts shown on one page.
const PAGE: usize = 25;
/// The most alerts one page reads to find them (a filter that matches little pages on).
const SCAN: usize = 2_000;

const OUTCOMES: [&str; 5] = ["delivered", "queued", "dead", "folded", "unrouted"];

#[derive(Deserialize, Default)]
pub struct Filter {
    target: Option<String>,
    issue: Option<String>,
    level: Option<String>,
    outcome: Option<String>,
    before: Option<AlertId>,
}

impl Filter {
    fn get(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
}

/// What became of an alert at one target.
struct AtTarget {
    target: String,
    outcome: &'static str,
    attempts: Vec<crate::job::Attempt>,
    answer: Option<String>,
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
    let (shown, next) = match find(&state, &filter) {
        Ok(found) => found,
        Err(error) => return failed(&session, error.into()),
    };
    let mut body = filter_form(&filter);
    if shown.is_empty() {
        body.push_str("<p>No alerts match.</p>");
    }
    for (stored, targets) in &shown {
        body.push_str(&card(stored, targets));
    }
    if let Some(before) = next {
        let mut query = format!("before={before}");
        for (key, value) in [
            ("target", &filter.target),
            ("issue", &filter.issue),
            ("level", &filter.level),
            ("outcome", &filter.outcome),
        ] {
            if let Some(value) = Filter::get(value) {
                let _ = write!(query, "&{key}={}", segment(value));
            }
        }
        let _ = write!(
            body,
            "<p><a href=\"/ui/deliveries?{query}\" rel=\"next\">Older alerts</a></p>"
        );
    }
    layout("Deliveries", "/ui/deliveries", &session, &body).into_response()
}

type Found = (Vec<(StoredAlert, Vec<AtTarget>)>, Option<AlertId>);

/// Up to a page of matching alerts, and where the next page starts.
fn find(state: &AppState, filter: &Filter) -> Result<Found, StoreError> {
    let mut dead: HashMap<AlertId, Vec<DeadLetter>> = HashMap::new();
    for letter in state.store.dead_letters() {
        let letter = letter?;
        dead.entry(letter.job.alert_id).or_default().push(letter);
    }
    let mut shown = Vec::new();
    let mut last = None;
    for (scanned, stored) in state.store.alerts_newest_first(filter.before).enumerate() {
        if scanned == SCAN || shown.len() == PAGE {
            return Ok((shown, last));
        }
        let stored = stored?;
        last = Some(stored.id);
        let delivered = state.store.deliveries_of(stored.id)?;
        let targets = outcomes(
            &stored,
            delivered,
            dead.remove(&stored.id).unwrap_or_default(),
        );
        if matches(filter, &stored, &targets) {
            shown.push((stored, targets));
        }
    }
    Ok((shown, None))
}

fn outcomes(
    stored: &StoredAlert,
    delivered: Vec<DeliveryJob>,
    dead: Vec<DeadLetter>,
) -> Vec<AtTarget> {
    let mut targets: Vec<AtTarget> = Vec::new();
    for job in delivered {
        targets.push(AtTarget {
            target: job.target.clone(),
            outcome: "delivered",
            answer: job.attempts.last().map(|a| a.answer.clone()),
            attempts: job.attempts,
        });
    }
    for letter in dead {
        targets.push(AtTarget {
            target: letter.job.target.clone(),
            outcome: "dead",
            answer: Some(format!(
                "{}: {}",
                letter.reason.as_str(),
                letter.last_answer
            )),
            attempts: letter.job.attempts,
        });
    }
    for name in &stored.routing.queued {
        if !targets.iter().any(|t| &t.target == name) {
            targets.push(AtTarget {
                target: name.clone(),
                outcome: "queued",
                attempts: Vec::new(),
                answer: None,
            });
        }
    }
    for name in &stored.routing.folded {
        if !targets.iter().any(|t| &t.target == name) {
            targets.push(AtTarget {
                target: name.clone(),
                outcome: "folded",
                attempts: Vec::new(),
                answer: None,
            });
        }
    }
    targets
}

fn matches(filter: &Filter, stored: &StoredAlert, targets: &[AtTarget]) -> bool {
    let alert = &stored.alert;
    if let Some(issue) = Filter::get(&filter.issue) {
        if alert.issue_id.as_deref() != Some(issue) && alert.short_id.as_deref() != Some(issue) {
            return false;
        }
    }
    if let Some(level) = Filter::get(&filter.level) {
        if alert.level.map(|l| l.as_str()) != Some(level) {
            return false;
        }
    }
    let target = Filter::get(&filter.target);
    let outcome = Filter::get(&filter.outcome);
    if outcome == Some("unrouted") {
        return targets.is_empty() && target.is_none();
    }
    if target.is_none() && outcome.is_none() {
        return true;
    }
    targets
        .iter()
        .any(|at| target.is_none_or(|t| t == at.target) && outcome.is_none_or(|o| o == at.outcome))
}

fn filter_form(filter: &Filter) -> String {
    let value = |v: &Option<String>| esc(Filter::get(v).unwrap_or_default());
    let options: String = std::iter::once("")
        .chain(OUTCOMES)
        .map(|o| {
            let selected = if Filter::get(&filter.outcome) == Some(o) {
                " selected"
            } else {
                ""
            };
            let label = if o.is_empty() { "any" } else { o };
            format!("<option value=\"{o}\"{selected}>{label}</option>")
        })
        .collect();
    format!(
        "<form method=\"get\" action=\"/ui/deliveries\" class=\"filters\" role=\"search\">\
         <label>Target <input name=\"target\" value=\"{}\"></label>\
         <label>Issue id <input name=\"issue\" value=\"{}\"></label>\
         <label>Level <input name=\"level\" value=\"{}\" placeholder=\"error\"></label>\
         <label>Outcome <select name=\"outcome\">{options}</select></label>\
         <button type=\"submit\">Filter</button></form>",
        value(&filter.target),
        value(&filter.issue),
        value(&filter.level),
    )
}

fn card(stored: &StoredAlert, targets: &[AtTarget]) -> String {
    let alert = &stored.alert;
    let mut facts = String::new();
    let mut fact = |name: &str, value: Option<&str>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            let _ = write!(facts, "<dt>{name}</dt><dd>{}</dd>", esc(value));
        }
    };
    fact("Received", Some(&time(stored.received_at)));
    fact("From", Some(alert.source.as_str()));
    fact("Event", Some(&alert.event_name()));
    fact("Level", alert.level.map(|l| l.as_str()));
    fact("Project", alert.project.as_deref());
    fact("Environment", alert.environment.as_deref());
    fact("Release", alert.release.as_deref());
    fact(
        "Issue",
        alert.short_id.as_deref().or(alert.issue_id.as_deref()),
    );
    fact("Where", alert.culprit.as_deref());
    let link = alert
        .link
        .as_deref()
        .filter(|l| l.starts_with("https://") || l.starts_with("http://"))
        .map(|l| {
            format!(
                "<p><a href=\"{}\" rel=\"noreferrer\">Open the issue</a></p>",
                esc(l)
            )
        })
        .unwrap_or_default();
    let mut routed = String::new();
    if targets.is_empty() {
        routed.push_str("<p>Routed to no target.</p>");
    }
    for at in targets {
        let said = match at.outcome {
            "delivered" => "delivered",
            "dead" => "a dead letter",
            "queued" => "queued, waiting to be sent",
            _ => "folded into the count of an earlier message",
        };
        let _ = write!(
            routed,
            "<h3>{} <span class=\"outcome {}\">{}</span></h3>",
            esc(&at.target),
            at.outcome,
            said
        );
        if let Some(answer) = &at.answer {
            let _ = write!(routed, "<p class=\"answer\">{}</p>", esc(answer));
        }
        if !at.attempts.is_empty() {
            routed.push_str(&attempts_table(&at.attempts));
        }
    }
    format!(
        "<article class=\"card\" aria-label=\"Alert {id}\"><h2>{title}</h2><dl>{facts}</dl>{link}\
         <p><a href=\"/ui/playground?alert={id}\">Try it in the playground</a></p>{routed}</article>",
        id = stored.id,
        title = esc(&alert.title),
    )
}
