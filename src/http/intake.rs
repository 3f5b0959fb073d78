//! The front door: `POST /hooks/sentry`, `POST /hooks/sentry/legacy/{token}`,
//! `POST /hooks/alertmanager` and `POST /hooks/grafana`.
//!
//! Order of checks: size (413), authenticity (401), then shape (400). An unauthenticated caller
//! learns nothing about what herald would have accepted. The handler does no network I/O: it
//! stores the alert and its delivery jobs, waits for them to be on disk, and answers 202.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use http_body_util::BodyExt;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState, Reloadable};
use crate::alert::{Alert, Level, Source};
use crate::alertmanager::{self, verify_grafana_signature, TokenCheck};
use crate::sentry::{parse_integration_payload, parse_legacy_payload, PayloadError};

const SIGNATURE_HEADER: &str = "sentry-hook-signature";
const RESOURCE_HEADER: &str = "sentry-hook-resource";

/// The answer to an accepted callback: what herald understood, and where it will go.
#[derive(Debug, Serialize)]
pub struct IntakeReceipt {
    pub status: &'static str,
    pub duplicate: bool,
    pub alert_id: String,
    pub resource: String,
    pub action: String,
    pub recognized: bool,
    pub issue_id: Option<String>,
    pub level: Option<Level>,
    pub title: String,
    pub link: Option<String>,
    /// Targets a message was queued for.
    pub targets: Vec<String>,
    /// Targets for which this alert was folded into the count of an earlier one of its issue.
    pub folded: Vec<String>,
}

pub async fn sentry_hook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IntakeReceipt>), ApiError> {
    let resource = header_text(&headers, RESOURCE_HEADER);
    let live = state.reloadable.load_full();
    let result = async {
        refuse_if_shutting_down(&state)?;
        let body = read_limited(&headers, body, live.config.server.body_limit).await?;
        let signature = header_text(&headers, SIGNATURE_HEADER).ok_or(ApiError::Unauthorized(
            "missing Sentry-Hook-Signature header",
        ))?;
        if !live.verifier.verify(&body, signature) {
            return Err(ApiError::Unauthorized(
                "Sentry-Hook-Signature does not match the body under any configured client secret",
            ));
        }
        let resource = resource
            .ok_or_else(|| ApiError::BadRequest("missing Sentry-Hook-Resource header".into()))?;
        if resource.is_empty()
            || resource.len() > 64
            || !resource
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ApiError::BadRequest(format!(
                "Sentry-Hook-Resource {resource:?} is not a resource name"
            )));
        }
        let alert = parse_integration_payload(resource, &body).map_err(payload_error)?;
        accept(&state, &live, alert).await
    }
    .await;
    log_outcome(&state, resource.unwrap_or("-"), &result);
    result.map(|receipt| (StatusCode::ACCEPTED, Json(receipt)))
}

pub async fn legacy_hook(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IntakeReceipt>), ApiError> {
    let live = state.reloadable.load_full();
    let result = async {
        refuse_if_shutting_down(&state)?;
        let body = read_limited(&headers, body, live.config.server.body_limit).await?;
        // Every token is compared, so the time taken does not reveal which one (if any) matched.
        let known = live.legacy_tokens().iter().fold(false, |found, candidate| {
            bool::from(candidate.expose().as_bytes().ct_eq(token.as_bytes())) | found
        });
        if !known {
            return Err(ApiError::Unauthorized("unknown legacy webhook token"));
        }
        let alert = parse_legacy_payload(&body).map_err(payload_error)?;
        accept(&state, &live, alert).await
    }
    .await;
    log_outcome(&state, "legacy", &result);
    result.map(|receipt| (StatusCode::ACCEPTED, Json(receipt)))
}

pub async fn alertmanager_hook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IntakeReceipt>), ApiError> {
    label_hook(&state, Source::Alertmanager, &headers, body).await
}

pub async fn grafana_hook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IntakeReceipt>), ApiError> {
    label_hook(&state, Source::Grafana, &headers, body).await
}

const GRAFANA_SIGNATURE_HEADER: &str = "x-grafana-alerting-signature";

/// Alertmanager and Grafana: a token (bearer or basic-auth password), Grafana's signature when
/// configured, then the body. A 4xx makes Alertmanager post the group again every
/// group_interval, so only what a retry cannot fix is answered 4xx; a store that cannot write
/// is a 503, which it retries within its flush.
async fn label_hook(
    state: &AppState,
    source: Source,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IntakeReceipt>), ApiError> {
    let live = state.reloadable.load_full();
    let result =
        async {
            let settings = match source {
                Source::Grafana => live.config.grafana.as_ref(),
                _ => live.config.alertmanager.as_ref(),
            }
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "the {} intake is off: add [{}] to herald's config",
                    source.as_str(),
                    source.as_str()
                ))
            })?;
            refuse_if_shutting_down(state)?;
            let body = read_limited(headers, body, live.config.server.body_limit).await?;
            match TokenCheck::of(
                header_text(headers, header::AUTHORIZATION.as_str()),
                &settings.tokens,
            ) {
                TokenCheck::Accepted => {}
                TokenCheck::Missing => return Err(ApiError::Unauthorized(
                    "missing Authorization: send a configured token as a bearer token or as the \
                     basic-auth password",
                )),
                TokenCheck::Wrong => {
                    return Err(ApiError::Unauthorized(
                        "the Authorization token is not one of the configured tokens",
                    ))
                }
            }
            if let Some(secret) = &settings.hmac_secret {
                let timestamp = settings
                    .hmac_timestamp_header
                    .as_deref()
                    .map(|name| header_text(headers, name).unwrap_or_default());
                verify_grafana_signature(
                    secret,
                    &body,
                    header_text(headers, GRAFANA_SIGNATURE_HEADER),
                    timestamp,
                    chrono::Utc::now(),
                )
                .map_err(ApiError::Unauthorized)?;
            }
            let alert = alertmanager::parse(source, &body, settings)
                .map_err(|error| ApiError::BadRequest(error.to_string()))?;
            accept(state, &live, alert).await
        }
        .await;
    log_outcome(state, source.as_str(), &result);
    result.map(|receipt| (StatusCode::ACCEPTED, Json(receipt)))
}

/// Dedupes, routes, folds, stores and flushes: after this returns `Ok`, it is all on disk.
async fn accept(
    state: &AppState,
    live: &Reloadable,
    mut alert: Alert,
) -> Result<IntakeReceipt, ApiError> {
    let receipt = live.intake.accept(&mut alert).await?;
    if receipt.duplicate {
        state.metrics.deduplicated();
    }
    state.metrics.folded(receipt.folded.len());
    Ok(IntakeReceipt {
        status: if receipt.duplicate {
            "duplicate"
        } else {
            "accepted"
        },
        duplicate: receipt.duplicate,
        alert_id: receipt.alert_id.to_string(),
        targets: receipt.queued,
        folded: receipt.folded,
        resource: alert.resource,
        action: alert.action,
        recognized: alert.recognized,
        issue_id: alert.issue_id,
        level: alert.level,
        title: alert.title,
        link: alert.link,
    })
}

fn refuse_if_shutting_down(state: &AppState) -> Result<(), ApiError> {
    if state.shutting_down.load(Ordering::Relaxed) {
        Err(ApiError::ShuttingDown)
    } else {
        Ok(())
    }
}

/// Reads the body, at most `limit` bytes, refusing it (413) as soon as it is known to exceed it:
/// from `Content-Length` before reading, or while reading a chunked body. Over the limit, what the client still sends is read and
/// dropped (up to [`DRAIN_MAX_BYTES`], for at most [`DRAIN_MAX_TIME`]) before the 413 goes out: a
/// client still sending when herald closes the connection would get a reset, not the answer.
async fn read_limited(headers: &HeaderMap, mut body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let declared =
        header_text(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        drain(body).await;
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
    let expected = declared
        .map_or(0, |length| length as usize)
        .min(limit_bytes);
    let mut read = Vec::with_capacity(expected);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            ApiError::BadRequest(format!("the body could not be read: {error}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if read.len() + data.len() > limit_bytes {
            drain(body).await;
            return Err(ApiError::PayloadTooLarge { limit });
        }
        read.extend_from_slice(&data);
    }
    Ok(Bytes::from(read))
}

/// The most of a refused body herald reads to let its client hear the 413.
const DRAIN_MAX_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and drops what is left of `body`, within the bounds above; nothing is kept.
async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        let mut drained = 0;
        while let Some(Ok(frame)) = body.frame().await {
            drained += frame.data_ref().map_or(0, Bytes::len);
            if drained > DRAIN_MAX_BYTES {
                break;
            }
        }
    })
    .await;
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

fn payload_error(error: PayloadError) -> ApiError {
    ApiError::BadRequest(error.to_string())
}

/// One log line and one metric per callback, whatever became of it.
fn log_outcome(state: &AppState, resource: &str, result: &Result<IntakeReceipt, ApiError>) {
    match result {
        // Only what passed the signature check may name a label; unknown names are "other".
        Ok(receipt) if receipt.recognized => {
            state
                .metrics
                .webhook(&receipt.resource, &receipt.action, receipt.status)
        }
        Ok(receipt) => state.metrics.webhook("other", "other", receipt.status),
        Err(error) => state.metrics.webhook("unknown", "unknown", error.outcome()),
    }
    match result {
        Ok(receipt) => tracing::info!(
            resource = %receipt.resource,
            action = %receipt.action,
            issue_id = %receipt.issue_id.as_deref().unwrap_or("-"),
            alert_id = %receipt.alert_id,
            targets = receipt.targets.len(),
            folded = receipt.folded.len(),
            outcome = receipt.status,
            "callback"
        ),
        Err(error) => tracing::warn!(
            resource = ?resource,
            outcome = error.outcome(),
            status = error.status().as_u16(),
            reason = %error,
            "callback refused"
        ),
    }
}
