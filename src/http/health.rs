//! `GET /healthz` (the process answers) and `GET /readyz` (it can accept callbacks).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::AppState;
use crate::secret::TokenCheck;

/// Whether the request may see what `/metrics` and `/readyz` count: always, unless
/// `server.metrics_token` is set.
fn may_see_counts(state: &AppState, headers: &HeaderMap) -> bool {
    let live = state.reloadable.load();
    let Some(token) = &live.config.server.metrics_token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    TokenCheck::of(given, std::slice::from_ref(token)) == TokenCheck::Accepted
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready while the store can write and herald is not shutting down. The body carries the counts an
/// operator looks at first.
pub async fn readyz(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let store = &state.store;
    let said = if state.shutting_down.load(Ordering::Relaxed) {
        "shutting_down"
    } else if state.store_failed.load(Ordering::Relaxed) {
        "store_failed"
    } else if store.reachable().await.is_err() {
        "store_unreachable"
    } else {
        "ready"
    };
    let status = if said == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = if said != "store_unreachable" && may_see_counts(&state, &headers) {
        json!({
            "status": said,
            "alerts": store.alert_count(),
            "queued_jobs": store.queued_job_count(),
            "dead_letters": store.dead_letter_count(),
        })
    } else {
        json!({ "status": said })
    };
    (status, Json(body))
}

/// Prometheus text format.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<
    (
        StatusCode,
        [(axum::http::HeaderName, &'static str); 1],
        String,
    ),
    super::ApiError,
> {
    if !may_see_counts(&state, &headers) {
        return Err(super::ApiError::Unauthorized(
            "missing or wrong Authorization: Bearer <server.metrics_token>",
        ));
    }
    let targets = state.reloadable.load().target_names();
    let store = state.store.clone();
    let metrics = state.metrics.clone();
    let text = tokio::task::spawn_blocking(move || metrics.render(&store, &targets))
        .await
        .map_err(|e| super::ApiError::Internal(format!("the metrics task failed: {e}")))?
        .map_err(|e| match e {
            crate::metrics::RenderError::Store(e) => super::ApiError::StoreUnavailable(e),
            e @ crate::metrics::RenderError::Encode(_) => super::ApiError::Internal(e.to_string()),
        })?;
    Ok((
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}
