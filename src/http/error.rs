//! [`ApiError`]: every way an HTTP request can fail, and the status code each one maps to.
//! Responses carry one sentence for the caller; internals (store errors) go to the log only.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Credentials that are valid somewhere, but not for this (an SDK key of another project).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("herald cannot store this callback right now; nothing was accepted")]
    StoreUnavailable(#[source] StoreError),
    #[error("herald is shutting down; nothing was accepted")]
    ShuttingDown,
    #[error("the body did not arrive within {timeout:?}; nothing was accepted")]
    BodyTimeout { timeout: std::time::Duration },
    /// An SDK project sent more events this minute than `sdk.events_per_minute`.
    #[error("project {project} sent more than {per_minute} events this minute; try again in {retry_after} s")]
    SdkQuota {
        project: u64,
        per_minute: u32,
        retry_after: u64,
    },
    /// `server.body_memory` is spent on other requests' bodies.
    #[error("herald is reading too many callbacks at once; nothing was accepted, try again")]
    Busy,
    #[error("{0}")]
    NotFound(String),
    #[error("this path does not take this method")]
    MethodNotAllowed,
    /// A failure of herald's own (a task that died): the log says what.
    #[error("herald failed to answer this request")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::SdkQuota { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::StoreUnavailable(_) | ApiError::ShuttingDown | ApiError::Busy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// A short machine-readable name, used as the `outcome` in logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::PayloadTooLarge { .. } => "too_large",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::BodyTimeout { .. } => "body_timeout",
            ApiError::Busy => "busy",
            ApiError::SdkQuota { .. } => "rate_limited",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<crate::triage::TriageError> for ApiError {
    fn from(error: crate::triage::TriageError) -> Self {
        use crate::triage::TriageError;
        match error {
            TriageError::UnknownIssue(id) => {
                ApiError::NotFound(format!("no issue has id {:?}", crate::text::printable(&id)))
            }
            TriageError::Refused(reason) => ApiError::BadRequest(reason),
            TriageError::Store(error) => ApiError::from(error),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::StoreUnavailable(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::StoreUnavailable(source) = &self {
            // Said once, then once a minute, however many requests meet it.
            static STORE_FAILING: crate::repeated::Repeated = crate::repeated::Repeated::new();
            if let Some(unsaid) = STORE_FAILING.say() {
                tracing::error!(error = %source, refused_meanwhile = unsaid, "the store cannot write; callbacks are answered 503 until it can");
            }
        }
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, "answering 500");
        }
        let mut response =
            (self.status(), Json(json!({ "error": self.to_string() }))).into_response();
        if matches!(self, ApiError::Busy) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::SdkQuota { retry_after, .. } = &self {
            // Whole seconds: sentry-python skips a limit it cannot read as an integer.
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            if let Ok(limits) = HeaderValue::from_str(&format!(
                "{retry_after}:error;default:project:herald_overload"
            )) {
                headers.insert(HeaderName::from_static("x-sentry-rate-limits"), limits);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_status() {
        let store_error = StoreError::Backend("disk full".into());
        let cases = [
            (ApiError::Unauthorized("x"), 401),
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::PayloadTooLarge { limit: 1 }, 413),
            (ApiError::StoreUnavailable(store_error), 503),
            (ApiError::ShuttingDown, 503),
            (ApiError::Busy, 503),
            (
                ApiError::BodyTimeout {
                    timeout: std::time::Duration::from_secs(1),
                },
                408,
            ),
            (ApiError::Internal("disk full".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            // Internals stay out of the answer.
            assert!(!error.to_string().contains("disk full"));
        }
    }
}
