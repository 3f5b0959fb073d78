//! herald's HTTP surface: the Sentry hooks and the health probes, on one axum router.

mod error;
mod health;
mod intake;

pub use error::ApiError;

use axum::routing::{get, post};
use axum::Router;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::Config;
use crate::intake::Intake;
use crate::queue::Wakers;
use crate::secret::Secret;
use crate::sentry::SignatureVerifier;
use crate::store::Store;

/// Everything a request handler needs, built once at start.
pub struct AppState {
    pub store: Store,
    pub intake: Intake,
    pub verifier: SignatureVerifier,
    pub legacy_tokens: Vec<Secret>,
    pub body_limit: u64,
    /// Set when shutdown begins: the hooks answer 503 from then on.
    pub shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(config: &Config, store: Store, wakers: Wakers) -> Self {
        AppState {
            intake: Intake::new(config, store.clone(), wakers),
            store,
            verifier: SignatureVerifier::new(&config.sentry.client_secrets),
            legacy_tokens: config.sentry.legacy_tokens.clone(),
            body_limit: config.server.body_limit,
            shutting_down: AtomicBool::new(false),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/hooks/sentry", post(intake::sentry_hook))
        .route("/hooks/sentry/legacy/{token}", post(intake::legacy_hook))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}
