//! `POST /api/{project}/envelope/` and `POST /api/{project}/store/`: Sentry SDKs posting straight
//! to herald, with the CORS browsers need.
//!
//! Order of checks: the project (404), a key carried in the request (401 without one), the body
//! (413 over `server.body_limit` as sent or `sdk.envelope_limit` decompressed, 400 when broken),
//! the envelope's `dsn` when the request carried no key, the key (403 when it is not the
//! project's), then the event. 200 `{"id": …}` only once the event is on disk: SDKs never retry.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

use super::intake::{accept, header_text, log_outcome, read_limited, refuse_unless_accepting};
use super::{ApiError, AppState};
use crate::alert::Source;
use crate::sdk::{auth, decode, envelope, event};
use crate::secret::is_one_of;

/// What herald drops, told to the SDK so it stops sending it (sentry-python honours this on a
/// 200): transactions, spans, profiles, replays, sessions, attachments, logs, metrics, check-ins.
const NOT_WANTED: &str = "3600:transaction;span;profile;profile_chunk;replay;session;attachment;log_item;trace_metric;monitor:project:herald_unsupported";

pub async fn envelope(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(
        handle(
            &state,
            &project,
            query.as_deref(),
            &headers,
            body,
            Shape::Envelope,
        )
        .await,
    )
}

pub async fn store(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer(
        handle(
            &state,
            &project,
            query.as_deref(),
            &headers,
            body,
            Shape::Event,
        )
        .await,
    )
}

/// A browser's preflight.
pub async fn preflight() -> Response {
    with_cors(StatusCode::OK.into_response())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Envelope,
    Event,
}

async fn handle(
    state: &AppState,
    project: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
    shape: Shape,
) -> Result<Option<String>, ApiError> {
    let live = state.reloadable.load_full();
    let result = async {
        refuse_unless_accepting(state)?;
        let sdk = &live.config.sdk;
        let project = project
            .parse::<u64>()
            .ok()
            .and_then(|id| sdk.project(id))
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no project {project:?} in herald's [[sdk.projects]]"
                ))
            })?;
        let carried = header_text(headers, "x-sentry-auth")
            .or_else(|| header_text(headers, header::AUTHORIZATION.as_str()))
            .and_then(auth::key_of_auth_header)
            .map(str::to_string)
            .or_else(|| query.and_then(auth::key_of_query));
        if carried.is_none() && shape == Shape::Event {
            return Err(missing_key());
        }
        let sent = read_limited(headers, body, &live).await?;
        let limit = usize::try_from(sdk.envelope_limit).unwrap_or(usize::MAX);
        let decoded = decode::decode(
            header_text(headers, header::CONTENT_ENCODING.as_str()),
            &sent,
            limit,
        )
        .map_err(|error| match error {
            decode::DecodeError::TooLarge { .. } => ApiError::PayloadTooLarge {
                limit: sdk.envelope_limit,
            },
            other => ApiError::BadRequest(other.to_string()),
        })?;
        let (envelope_id, key, payload) = match shape {
            Shape::Event => (None, carried, Some(decoded.as_slice())),
            Shape::Envelope => {
                let (header, items) = envelope::parse(&decoded)
                    .map_err(|error| ApiError::BadRequest(error.to_string()))?;
                let key = carried.or_else(|| header.dsn.as_deref().and_then(auth::key_of_dsn));
                let event = items
                    .into_iter()
                    .find(|item| item.kind == "event")
                    .map(|item| item.payload);
                (header.event_id, key, event)
            }
        };
        let key = key.ok_or_else(missing_key)?;
        if !is_one_of(&key, &project.public_keys) {
            return Err(ApiError::Forbidden(format!(
                "this key is not one of project {}'s",
                project.id
            )));
        }
        // Only an event becomes an alert; the rest is accepted and dropped.
        let Some(payload) = payload else {
            return Ok(None);
        };
        state
            .sdk_quota
            .take(project.id, sdk.events_per_minute)
            .map_err(|wait| ApiError::SdkQuota {
                project: project.id,
                per_minute: sdk.events_per_minute,
                retry_after: wait.as_secs().max(1),
            })?;
        let event = event::read_event(payload, &project.name, project.id, envelope_id.as_deref())
            .map_err(|error| ApiError::BadRequest(error.to_string()))?;
        let alert =
            crate::sdk::alert_of(&event).map_err(|error| ApiError::Internal(error.to_string()))?;
        let receipt = accept(state, &live, alert).await?;
        Ok(Some((receipt, event.event_id)))
    }
    .await;
    match result {
        Ok(None) => Ok(None),
        Ok(Some((receipt, event_id))) => {
            log_outcome(state, Source::SentrySdk, "sdk", Ok(&receipt));
            Ok(Some(event_id).filter(|id| !id.is_empty()))
        }
        Err(error) => {
            log_outcome(state, Source::SentrySdk, "sdk", Err(&error));
            Err(error)
        }
    }
}

fn missing_key() -> ApiError {
    ApiError::Unauthorized(
        "missing X-Sentry-Auth (or ?sentry_key=): send the project's public key from its DSN",
    )
}

/// 200 `{"id": …}` (`{}` without an event), or the refusal; CORS on both.
fn answer(result: Result<Option<String>, ApiError>) -> Response {
    let response = match result {
        Ok(id) => {
            let body = match id {
                Some(id) => json!({ "id": id }),
                None => json!({}),
            };
            let mut response = (StatusCode::OK, Json(body)).into_response();
            response.headers_mut().insert(
                HeaderName::from_static("x-sentry-rate-limits"),
                HeaderValue::from_static(NOT_WANTED),
            );
            response
        }
        Err(error) => error.into_response(),
    };
    with_cors(response)
}

fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("access-control-allow-origin", "*"),
        ("access-control-allow-methods", "POST, OPTIONS"),
        (
            "access-control-allow-headers",
            "x-sentry-auth, x-requested-with, origin, accept, content-type, content-encoding, authorization, sentry-trace, baggage",
        ),
        (
            "access-control-expose-headers",
            "x-sentry-error, x-sentry-rate-limits, retry-after",
        ),
        ("access-control-max-age", "3600"),
        ("cross-origin-resource-policy", "cross-origin"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}
