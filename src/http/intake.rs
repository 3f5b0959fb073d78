//! The front door: `POST /hooks/sentry`, `POST /hooks/sentry/legacy/{token}`,
//! `POST /hooks/alertmanager` and `POST /hooks/grafana`.
//!
//! Order of checks: the credentials a request carries in its headers (401), size (413), the
//! signature over the body (401), then shape (400). An unauthenticated caller learns nothing about
//! what herald would have accepted, and a caller without credentials makes herald hold nothing of
//! its body (what the client still sends is read and dropped after the answer: `drain.rs`). The
//! handler does no network I/O: it stores the alert and its delivery jobs, waits for them to be on
//! disk, and answers 202.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use http_body_util::BodyExt;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ApiError, AppState, Reloadable};
use crate::alert::{Alert, Level, Source};
use crate::alertmanager::{self, verify_grafana_signature};
use crate::render::printable;
use crate::secret::{is_one_of, TokenCheck};
use crate::sentry::{parse_integration_payload, parse_legacy_payload, PayloadError};
use crate::store::StoreError;

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

/// The hooks take the whole request: axum's `HeaderMap` extractor would copy every header of
/// every callback.
pub async fn sentry_hook(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<(StatusCode, Json<IntakeReceipt>), ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let resource = header_text(headers, RESOURCE_HEADER);
    let live = state.reloadable.load_full();
    let result = async {
        refuse_unless_accepting(&state)?;
        let Some(signature) = header_text(headers, SIGNATURE_HEADER) else {
            return Err(ApiError::Unauthorized(
                "missing Sentry-Hook-Signature header",
            ));
        };
        let body = read_limited(headers, body, &live).await?;
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
    log_outcome(
        &state,
        Source::Sentry,
        resource.unwrap_or("-"),
        result.as_ref(),
    );
    result.map(|receipt| (StatusCode::ACCEPTED, Json(receipt)))
}

pub async fn legacy_hook(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<IntakeReceipt>), ApiError> {
    let (parts, body) = request.into_parts();
    let live = state.reloadable.load_full();
    let result = async {
        refuse_unless_accepting(&state)?;
        if !is_one_of(&token, live.legacy_tokens()) {
            return Err(ApiError::Unauthorized("unknown legacy webhook token"));
        }
        let body = read_limited(&parts.headers, body, &live).await?;
        let alert = parse_legacy_payload(&body).map_err(payload_error)?;
        accept(&state, &live, alert).await
    }
    .await;
    log_outcome(
        &state,
        Source::SentryLegacyPlugin,
        "legacy",
        result.as_ref(),
    );
    result.map(|receipt| (StatusCode::ACCEPTED, Json(receipt)))
}

pub async fn alertmanager_hook(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<(StatusCode, Json<IntakeReceipt>), ApiError> {
    let (parts, body) = request.into_parts();
    label_hook(&state, Source::Alertmanager, &parts.headers, body).await
}

pub async fn grafana_hook(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<(StatusCode, Json<IntakeReceipt>), ApiError> {
    let (parts, body) = request.into_parts();
    label_hook(&state, Source::Grafana, &parts.headers, body).await
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
    let result = async {
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
        refuse_unless_accepting(state)?;
        let refused = match TokenCheck::of(
            header_text(headers, header::AUTHORIZATION.as_str()),
            &settings.tokens,
        ) {
            TokenCheck::Accepted => None,
            TokenCheck::Missing => Some(
                "missing Authorization: send a configured token as a bearer token or as the \
                     basic-auth password",
            ),
            TokenCheck::Wrong => {
                Some("the Authorization token is not one of the configured tokens")
            }
        };
        if let Some(reason) = refused {
            return Err(ApiError::Unauthorized(reason));
        }
        let body = read_limited(headers, body, &live).await?;
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
    log_outcome(state, source, source.as_str(), result.as_ref());
    result.map(|receipt| (StatusCode::ACCEPTED, Json(receipt)))
}

/// Dedupes, routes, folds, stores and flushes: after this returns `Ok`, it is all on disk.
pub(super) async fn accept(
    state: &AppState,
    live: &Reloadable,
    mut alert: Alert,
) -> Result<IntakeReceipt, ApiError> {
    let receipt = live.intake.accept(&mut alert).await?;
    if state.store.needs_reopening() {
        // Committed, but into a store that is no longer on disk (its folder was removed).
        return Err(ApiError::StoreUnavailable(StoreError::Backend(
            "the data folder was removed or replaced".into(),
        )));
    }
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

/// 503 while herald is shutting down, or while its store can write no more (until it restarts).
pub(super) fn refuse_unless_accepting(state: &AppState) -> Result<(), ApiError> {
    if state.shutting_down.load(Ordering::Relaxed) {
        Err(ApiError::ShuttingDown)
    } else if state.store_failed.load(Ordering::Relaxed) {
        Err(ApiError::StoreUnavailable(StoreError::Backend(
            "the store cannot write until herald restarts".into(),
        )))
    } else {
        Ok(())
    }
}

/// A request body read within herald's limits. What it reserved of `server.body_memory` is given
/// back when it is dropped, after the callback has been parsed and stored.
pub(super) struct ReadBody {
    bytes: Bytes,
    _reserved: Vec<OwnedSemaphorePermit>,
}

impl std::ops::Deref for ReadBody {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads the body, at most `server.body_limit` bytes, refusing it (413) as soon as it is known to
/// exceed it: from `Content-Length` before reading, or while reading a chunked body. The whole
/// body must arrive within `server.body_timeout` (408), and every byte held is first reserved from
/// `server.body_memory`, shared by all requests: when that is spent (many large or slow bodies at
/// once), the callback is answered 503 at once rather than herald growing without bound.
pub(super) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    live: &Reloadable,
) -> Result<ReadBody, ApiError> {
    let server = &live.config.server;
    let limit = server.body_limit;
    let declared =
        header_text(headers, header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let limit_bytes = usize::try_from(limit).unwrap_or(usize::MAX);
    let expected = declared
        .map_or(0, |length| length as usize)
        .min(limit_bytes);
    let budget = &live.body_memory;
    let mut reserved = Vec::new();
    let mut held = 0;
    if expected > 0 {
        match budget.reserve(expected) {
            Ok(reservation) => reserved.push(reservation),
            Err(busy) => return Err(busy),
        }
        held = expected;
    }
    let mut body = body;
    let reading = async {
        // A body that arrives in one frame (most callbacks) is kept as it came, not copied.
        let mut first: Option<Bytes> = None;
        let mut joined: Vec<u8> = Vec::new();
        let mut length = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                ApiError::BadRequest(format!("the body could not be read: {error}"))
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if length + data.len() > limit_bytes {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            if length + data.len() > held {
                let more = (length + data.len() - held).max(BodyMemory::UNIT);
                reserved.push(budget.reserve(more)?);
                held += more;
            }
            length += data.len();
            if first.is_none() && joined.is_empty() {
                first = Some(data);
                continue;
            }
            if let Some(earlier) = first.take() {
                joined.reserve(expected.max(length));
                joined.extend_from_slice(&earlier);
            }
            joined.extend_from_slice(&data);
        }
        Ok(first.unwrap_or_else(|| Bytes::from(joined)))
    };
    let outcome = tokio::time::timeout(server.body_timeout, reading).await;
    match outcome {
        Ok(Ok(bytes)) => Ok(ReadBody {
            bytes,
            _reserved: reserved,
        }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ApiError::BodyTimeout {
            timeout: server.body_timeout,
        }),
    }
}

/// The bytes of request bodies herald holds at once (`server.body_memory`), shared by every
/// request being read.
pub struct BodyMemory {
    kib: Arc<Semaphore>,
}

impl BodyMemory {
    /// Reserved at least this much at a time, so that a body arriving in small chunks does not
    /// take a reservation per chunk.
    const UNIT: usize = 16 * 1024;

    pub fn new(bytes: u64) -> BodyMemory {
        let kib = usize::try_from(bytes / 1024).unwrap_or(usize::MAX);
        BodyMemory {
            kib: Arc::new(Semaphore::new(kib.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Reserves `bytes` now, or refuses: a body waiting for memory would hold its connection.
    fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        self.kib
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| ApiError::Busy)
    }
}

pub(super) fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

fn payload_error(error: PayloadError) -> ApiError {
    ApiError::BadRequest(error.to_string())
}

/// One log line and one metric per callback, whatever became of it.
pub(super) fn log_outcome(
    state: &AppState,
    source: Source,
    resource: &str,
    result: Result<&IntakeReceipt, &ApiError>,
) {
    let outcome = match result {
        Ok(receipt) => receipt.status,
        Err(error) => error.outcome(),
    };
    state.metrics.recent_intake.count(source.as_str(), outcome);
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
            resource = %printable(&receipt.resource),
            action = %printable(&receipt.action),
            issue_id = %printable(receipt.issue_id.as_deref().unwrap_or("-")),
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
