//! The admin API's SDK issues: `GET /api/issues[?project=…&status=…&limit=…]`, `GET
//! /api/issues/{id}`, and `POST /api/issues/{id}/resolve|mute|reopen`. Behind the admin token.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

use super::admin::authorize;
use super::{ApiError, AppState};
use crate::sdk::issue::{Resolution, SdkIssue, Status};
use crate::triage::{self, Change, TriageError};

/// The most issues one listing returns.
const MAX_LISTED: usize = 1000;

#[derive(Deserialize)]
pub struct IssueFilter {
    project: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(filter): Query<IssueFilter>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    if let Some(status) = filter.status.as_deref() {
        if !Status::NAMES.contains(&status) {
            return Err(ApiError::BadRequest(format!(
                "status {status:?} is not one of {}",
                Status::NAMES.join(", ")
            )));
        }
    }
    let issues = triage::list(
        &state.store,
        filter.project.as_deref(),
        filter.status.as_deref(),
    )?;
    let total = issues.len();
    let limit = filter.limit.unwrap_or(100).clamp(1, MAX_LISTED);
    let now = crate::clock::now();
    let items: Vec<Value> = issues
        .iter()
        .take(limit)
        .map(|issue| item(issue, now))
        .collect();
    Ok(Json(json!({ "issues": items, "total": total })))
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    match state.store.issue(&id)? {
        Some(issue) => Ok(Json(item(&issue, crate::clock::now()))),
        None => Err(TriageError::UnknownIssue(id).into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    /// Resolved in this release: events of older releases are not regressions.
    release: Option<String>,
    /// Resolved in the release after the newest one seen.
    #[serde(default)]
    in_next_release: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    /// For how long (`"2h"`, `"7d"`).
    #[serde(rename = "for")]
    duration: Option<String>,
    until: Option<DateTime<Utc>>,
}

pub async fn resolve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let body: ResolveBody = parse_body(&body)?;
    let how = match (body.release, body.in_next_release) {
        (Some(_), true) => {
            return Err(ApiError::BadRequest(
                "say release or in_next_release, not both".into(),
            ))
        }
        (Some(release), false) => Resolution::InRelease(release),
        (None, true) => Resolution::InNextRelease,
        (None, false) => Resolution::Now,
    };
    apply(&state, &id, Change::Resolve(how)).await
}

pub async fn mute(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let body: MuteBody = parse_body(&body)?;
    let until = match (body.duration, body.until) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest("say for or until, not both".into()))
        }
        (Some(text), None) => Some(
            triage::mute_until(&text)
                .map_err(|reason| ApiError::BadRequest(format!("for: {reason}")))?,
        ),
        (None, until) => until,
    };
    apply(&state, &id, Change::Mute { until }).await
}

pub async fn reopen(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    apply(&state, &id, Change::Reopen).await
}

/// Applies a change, logs it, and answers with the issue and where a resolve was told.
pub(super) async fn apply(
    state: &AppState,
    id: &str,
    change: Change,
) -> Result<Json<Value>, ApiError> {
    let live = state.reloadable.load_full();
    let changed = triage::change(&state.store, &live.intake, id, change).await?;
    let status = changed.issue.status.name();
    tracing::info!(issue_id = id, status, "SDK issue changed");
    let mut answer = item(&changed.issue, crate::clock::now());
    if let Some(receipt) = changed.told {
        answer["told"] = json!(receipt.queued);
    }
    Ok(Json(answer))
}

fn parse_body<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|error| ApiError::BadRequest(format!("the body is not what this takes: {error}")))
}

/// An issue as the admin API shows it (and the CLI prints it).
pub fn item(issue: &SdkIssue, now: DateTime<Utc>) -> Value {
    let status = issue.status_at(now);
    let mut item = json!({
        "id": issue.id,
        "project": issue.project,
        "title": issue.title,
        "culprit": issue.culprit,
        "level": issue.level,
        "environment": issue.environment,
        "count": issue.count,
        "first_seen": issue.first_seen,
        "last_seen": issue.last_seen,
        "status": status.name(),
        "releases": issue.releases.iter().map(|r| &r.name).collect::<Vec<_>>(),
        "regressions": issue.regressions,
        "grouping": issue.group.split(':').next().unwrap_or_default(),
    });
    match status {
        Status::Resolved { at } => item["resolved_at"] = json!(at),
        Status::ResolvedInRelease { at, release } => {
            item["resolved_at"] = json!(at);
            item["resolved_in"] = json!(release);
        }
        Status::ResolvedInNextRelease { at, after } => {
            item["resolved_at"] = json!(at);
            item["resolved_after"] = json!(after);
        }
        Status::Muted { until } => item["muted_until"] = json!(until),
        Status::Open => {}
    }
    item
}
