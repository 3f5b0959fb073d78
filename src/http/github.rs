//! `POST /hooks/github`: a repository's webhook (event `issues`). Closing an issue herald opened
//! for an SDK issue resolves that issue (closed as "not planned": muted until reopened); reopening
//! it reopens it. Signed with the `webhook_secret` of a GitHub target of that repository
//! (`X-Hub-Signature-256`); anything else GitHub sends is answered 200 and ignored, so its
//! delivery log stays green.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

use super::intake::{header_text, read_limited, refuse_unless_accepting};
use super::issues::apply;
use super::{ApiError, AppState};
use crate::sdk::issue::{issue_id_of_key, Resolution};
use crate::sentry::SignatureVerifier;
use crate::targets::github::marked_issue_key;
use crate::targets::TargetSettings;
use crate::triage::Change;

pub async fn hook(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let live = state.reloadable.load_full();
    let secrets: Vec<(&str, &crate::secret::Secret)> = live
        .config
        .targets
        .iter()
        .filter_map(|target| match &target.settings {
            TargetSettings::Github(github) => github
                .webhook_secret
                .as_ref()
                .map(|secret| (github.repo.as_str(), secret)),
            _ => None,
        })
        .collect();
    if secrets.is_empty() {
        return Err(ApiError::NotFound(
            "the GitHub hook is off: set webhook_secret on a github target".into(),
        ));
    }
    refuse_unless_accepting(&state)?;
    let Some(signature) = header_text(&headers, "x-hub-signature-256") else {
        return Err(ApiError::Unauthorized(
            "missing X-Hub-Signature-256: set the webhook's secret",
        ));
    };
    let body = read_limited(&headers, body, &live).await?;
    let signature = signature.strip_prefix("sha256=").unwrap_or_default();
    let repos: Vec<&str> = secrets
        .iter()
        .filter(|(_, secret)| {
            SignatureVerifier::new(std::slice::from_ref(*secret)).verify(&body, signature)
        })
        .map(|(repo, _)| *repo)
        .collect();
    if repos.is_empty() {
        return Err(ApiError::Unauthorized(
            "X-Hub-Signature-256 does not match any github target's webhook_secret",
        ));
    }
    let event = header_text(&headers, "x-github-event").unwrap_or_default();
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("the body is not JSON: {error}")))?;
    let ignored = |why: &str| Ok(Json(json!({ "ignored": why })));
    if event != "issues" {
        return ignored("herald reads only the issues event");
    }
    let repo = payload["repository"]["full_name"]
        .as_str()
        .unwrap_or_default();
    if !repos.iter().any(|r| r.eq_ignore_ascii_case(repo)) {
        return ignored("no github target with this secret is for this repository");
    }
    let change = match (
        payload["action"].as_str(),
        payload["issue"]["state_reason"].as_str(),
    ) {
        (Some("closed"), Some("not_planned")) => Change::Mute { until: None },
        (Some("closed"), _) => Change::Resolve(Resolution::Now),
        (Some("reopened"), _) => Change::Reopen,
        _ => return ignored("only a close or a reopen changes an issue"),
    };
    let Some(issue_id) = payload["issue"]["body"]
        .as_str()
        .and_then(marked_issue_key)
        .and_then(issue_id_of_key)
    else {
        return ignored("not an issue herald opened for an SDK issue");
    };
    match apply(&state, &issue_id, change).await {
        Err(ApiError::NotFound(_)) => ignored("herald no longer has this issue"),
        other => other,
    }
}
