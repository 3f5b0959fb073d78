//! The admin API (`/api/…`): dead letters, targets, pause and resume. Off unless
//! `server.admin_token` is set; every request must carry `Authorization: Bearer <admin_token>`.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

use super::{ApiError, AppState, Reloadable};
use crate::job::DeliveryJob;
use crate::secret::TokenCheck;

/// Checks the bearer token (in constant time; the scheme in any case, or as basic auth's
/// password) and hands back the live config.
pub(super) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Arc<Reloadable>, ApiError> {
    let live = state.reloadable.load_full();
    let Some(token) = &live.config.server.admin_token else {
        return Err(ApiError::NotFound(
            "the admin API is off: set server.admin_token to use it".into(),
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match TokenCheck::of(given, std::slice::from_ref(token)) {
        TokenCheck::Accepted => Ok(live),
        TokenCheck::Missing => Err(ApiError::Unauthorized(
            "missing Authorization: Bearer <admin_token>",
        )),
        TokenCheck::Wrong => Err(ApiError::Unauthorized("wrong admin token")),
    }
}

#[derive(Deserialize)]
pub struct TargetFilter {
    target: Option<String>,
}

#[derive(Serialize)]
struct DeadLetterItem {
    id: String,
    target: String,
    alert_id: String,
    issue_id: Option<String>,
    title: Option<String>,
    reason: &'static str,
    /// The downstream's last answer as it said it (errcode and message, or HTTP status and body).
    last_answer: String,
    died_at: DateTime<Utc>,
    attempts: usize,
}

pub async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(filter): Query<TargetFilter>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let items: Vec<DeadLetterItem> = state
        .store
        .dead_letters_with_alerts(filter.target.as_deref())?
        .into_iter()
        .map(|(dead, alert)| DeadLetterItem {
            id: dead.job.id.to_string(),
            target: dead.job.target.clone(),
            alert_id: dead.job.alert_id.to_string(),
            issue_id: alert.as_ref().and_then(|a| a.issue_id.clone()),
            title: alert.map(|a| a.title),
            reason: dead.reason.as_str(),
            last_answer: dead.last_answer,
            died_at: dead.died_at,
            attempts: dead.job.attempts.len(),
        })
        .collect();
    Ok(Json(json!({ "dead_letters": items })))
}

pub async fn replay_dead_letter(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let live = authorize(&state, &headers)?;
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{id:?} is not a dead letter id")))?;
    let replayed = replay(&state, &live, &|job| job.id == id)?;
    if replayed.is_empty() {
        return Err(ApiError::NotFound(format!("no dead letter has id {id}")));
    }
    Ok(Json(replayed_answer(&replayed)))
}

pub async fn replay_dead_letters(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(filter): Query<TargetFilter>,
) -> Result<Json<Value>, ApiError> {
    let live = authorize(&state, &headers)?;
    let target = filter.target.ok_or_else(|| {
        ApiError::BadRequest("say which target's dead letters to replay: ?target=NAME".into())
    })?;
    let replayed = replay(&state, &live, &|job| job.target == target)?;
    Ok(Json(replayed_answer(&replayed)))
}

/// Queues again the dead letters `select` picks, wakes their targets and logs each.
pub(super) fn replay(
    state: &AppState,
    live: &Reloadable,
    select: &dyn Fn(&DeliveryJob) -> bool,
) -> Result<Vec<DeliveryJob>, ApiError> {
    let replayed = state
        .store
        .replay_dead_letters(select, crate::clock::now())?;
    let targets: Vec<&str> = replayed.iter().map(|job| job.target.as_str()).collect();
    live.wakers.wake(&targets);
    for job in &replayed {
        tracing::info!(target_name = %job.target, job_id = job.id, "dead letter replayed by an operator");
    }
    Ok(replayed)
}

fn replayed_answer(replayed: &[DeliveryJob]) -> Value {
    json!({ "replayed": replayed.iter().map(|job| job.id.to_string()).collect::<Vec<_>>() })
}

/// A target's last failed attempt: when, and what the downstream said.
#[derive(Serialize)]
pub(super) struct LastError {
    pub at: DateTime<Utc>,
    pub answer: String,
}

/// A target as the admin API and the console show it.
#[derive(Serialize)]
pub(super) struct TargetRow {
    pub name: String,
    pub kind: Option<&'static str>,
    pub queue_depth: u64,
    pub dead_letters: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_by_operator: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gone: Option<bool>,
    pub configured: bool,
}

/// Every configured target, then those the config no longer has whose jobs or dead letters
/// wait in the store (removed, or renamed: a new name is a new target): shown, not hidden.
pub(super) fn target_rows(state: &AppState, live: &Reloadable) -> Result<Vec<TargetRow>, ApiError> {
    let queued = state.store.queued_jobs_per_target()?;
    let dead = state.store.dead_letters_per_target()?;
    let mut rows = Vec::new();
    for target in &live.config.targets {
        let name = target.name.as_str();
        let saved = state.store.target_state(name)?;
        rows.push(TargetRow {
            name: name.to_string(),
            kind: Some(target.settings.kind()),
            queue_depth: queued.get(name).copied().unwrap_or(0),
            dead_letters: dead.get(name).copied().unwrap_or(0),
            last_success: saved.last_success,
            last_error: saved
                .last_error
                .map(|(at, answer)| LastError { at, answer }),
            paused_until: saved.paused_until,
            paused_by_operator: Some(state.store.operator_paused(name)?),
            gone: Some(saved.gone_for.is_some()),
            configured: true,
        });
    }
    let stranded: std::collections::BTreeSet<&String> = queued
        .keys()
        .chain(dead.keys())
        .filter(|name| live.config.target(name).is_none())
        .collect();
    for name in stranded {
        rows.push(TargetRow {
            name: name.clone(),
            kind: None,
            queue_depth: queued.get(name).copied().unwrap_or(0),
            dead_letters: dead.get(name).copied().unwrap_or(0),
            last_success: None,
            last_error: None,
            paused_until: None,
            paused_by_operator: None,
            gone: None,
            configured: false,
        });
    }
    Ok(rows)
}

pub async fn list_targets(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let live = authorize(&state, &headers)?;
    Ok(Json(json!({ "targets": target_rows(&state, &live)? })))
}

pub async fn pause_target(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &headers, &name, true)
}

pub async fn resume_target(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &headers, &name, false)
}

fn set_paused(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    let live = authorize(state, headers)?;
    set_operator_pause(state, &live, name, paused)?;
    Ok(Json(json!({ "target": name, "paused": paused })))
}

/// Pauses or resumes a configured target on an operator's word (the API's and the console's).
pub(super) fn set_operator_pause(
    state: &AppState,
    live: &Reloadable,
    name: &str,
    paused: bool,
) -> Result<(), ApiError> {
    if live.config.target(name).is_none() {
        return Err(ApiError::NotFound(format!("no target is named {name:?}")));
    }
    state.store.set_operator_pause(name, paused)?;
    if !paused {
        live.wakers.wake(&[name]);
    }
    tracing::warn!(
        target_name = name,
        paused,
        "target {} by an operator",
        if paused { "paused" } else { "resumed" }
    );
    Ok(())
}
