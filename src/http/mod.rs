//! herald's HTTP surface on one axum router: the hooks (Sentry, Alertmanager, Grafana), the health probes, the metrics and
//! the admin API.

mod admin;
mod console;
mod drain;
mod error;
mod github;
mod health;
mod intake;
mod issues;
mod listener;
mod sdk;

pub use error::ApiError;
pub use issues::item as issue_json;
pub use listener::{serve, ConnectionLimits};

use arc_swap::ArcSwap;
use axum::routing::{get, post};
use axum::Router;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::Config;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::sentry::SignatureVerifier;
use crate::store::{Store, Wakers};

/// Everything a request handler needs. What comes from the config is in [`Reloadable`], replaced as a
/// whole when the config is reloaded (SIGHUP), so a request sees one config from start to end.
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub reloadable: ArcSwap<Reloadable>,
    /// Set when shutdown begins: the hooks answer 503 from then on.
    pub shutting_down: AtomicBool,
    /// Set when the store can write no more until herald restarts: the hooks answer 503.
    pub store_failed: AtomicBool,
    /// SDK projects' events of the current minute (`sdk.events_per_minute`).
    pub sdk_quota: crate::sdk::ProjectQuota,
    /// The console's signed-out sessions.
    pub sessions: console::Sessions,
}

/// The parts of the state that a config reload replaces.
pub struct Reloadable {
    pub config: Arc<Config>,
    pub intake: Intake,
    pub verifier: SignatureVerifier,
    pub wakers: Wakers,
    /// `server.body_memory`, shared by the requests being read.
    pub body_memory: intake::BodyMemory,
    /// The targets as the console's playground renders for them (they never send), built once
    /// per config; the templates' error when they do not build.
    pub preview_targets: Result<Vec<Arc<crate::targets::Target>>, String>,
}

impl Reloadable {
    pub fn new(config: Arc<Config>, store: Store, wakers: Wakers) -> Reloadable {
        Reloadable {
            intake: Intake::new(&config, store, wakers.clone()),
            verifier: SignatureVerifier::new(&config.sentry.client_secrets),
            body_memory: intake::BodyMemory::new(config.server.body_memory),
            preview_targets: crate::targets::build_all(
                &config.targets,
                config.templates.timezone(),
                Arc::new(crate::store::MemoryLinks::default()),
            )
            .map_err(|error| error.to_string()),
            wakers,
            config,
        }
    }

    pub fn legacy_tokens(&self) -> &[Secret] {
        &self.config.sentry.legacy_tokens
    }

    pub fn target_names(&self) -> Vec<String> {
        self.config.target_names()
    }
}

impl AppState {
    pub fn new(store: Store, metrics: Arc<Metrics>, reloadable: Reloadable) -> Self {
        AppState {
            store,
            metrics,
            reloadable: ArcSwap::from_pointee(reloadable),
            shutting_down: AtomicBool::new(false),
            store_failed: AtomicBool::new(false),
            sdk_quota: Default::default(),
            sessions: Default::default(),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    // A DSN whose URL has a path (`server.public_url = "https://h.example/sentry"`) makes SDKs
    // post under it: the SDK routes are served there too (a change takes a restart).
    let prefix = state
        .reloadable
        .load()
        .config
        .server
        .public_url
        .as_deref()
        .and_then(|url| reqwest::Url::parse(url).ok())
        .map(|url| url.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    let mut router = Router::new()
        .route("/hooks/sentry", post(intake::sentry_hook))
        .route("/hooks/sentry/legacy/{token}", post(intake::legacy_hook))
        .route("/hooks/alertmanager", post(intake::alertmanager_hook))
        .route("/hooks/grafana", post(intake::grafana_hook))
        .route("/hooks/github", post(github::hook));
    for base in std::iter::once("").chain(Some(prefix.as_str()).filter(|p| !p.is_empty())) {
        for slash in ["/", ""] {
            router = router
                .route(
                    &format!("{base}/api/{{project}}/envelope{slash}"),
                    post(sdk::envelope).options(sdk::preflight),
                )
                .route(
                    &format!("{base}/api/{{project}}/store{slash}"),
                    post(sdk::store).options(sdk::preflight),
                );
        }
    }
    router
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/dead-letters", get(admin::list_dead_letters))
        .route("/api/dead-letters/replay", post(admin::replay_dead_letters))
        .route(
            "/api/dead-letters/{id}/replay",
            post(admin::replay_dead_letter),
        )
        .route("/api/issues", get(issues::list))
        .route("/api/issues/{id}", get(issues::show))
        .route("/api/issues/{id}/resolve", post(issues::resolve))
        .route("/api/issues/{id}/mute", post(issues::mute))
        .route("/api/issues/{id}/reopen", post(issues::reopen))
        .route("/api/targets", get(admin::list_targets))
        .route("/api/targets/{name}/pause", post(admin::pause_target))
        .route("/api/targets/{name}/resume", post(admin::resume_target))
        .merge(console::routes())
        // Last, so that they cover every route above.
        .method_not_allowed_fallback(wrong_method)
        .fallback(no_such_path)
        .layer(axum::middleware::from_fn(drain::drain_unread_bodies))
        .with_state(state)
}

/// Nothing is served at this path.
async fn no_such_path() -> ApiError {
    ApiError::NotFound("herald serves nothing at this path".into())
}

/// The path is served, not with this method (axum adds `Allow`).
async fn wrong_method() -> ApiError {
    ApiError::MethodNotAllowed
}
