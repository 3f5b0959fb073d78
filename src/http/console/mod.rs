//! The web console at `/ui/`: what was sent where, dead letters with replay, a template
//! playground. Server-rendered HTML with one embedded stylesheet: no JavaScript, no CDN, one
//! binary. Off (404) unless `server.admin_token` is set, like the admin API.
//!
//! - A person signs in with the admin token; herald answers with a session cookie (HttpOnly,
//!   SameSite=Strict, Secure behind an HTTPS proxy, 12 hours). The cookie is signed with a key
//!   derived from the admin token, so every replica accepts it and changing the token signs
//!   everyone out; signing out revokes it in this process.
//! - Every state-changing action is a POST form carrying a token bound to the session (and a
//!   request another site sends is refused by its `Origin` or `Sec-Fetch-Site` too).
//! - Pages show what the admin API shows: targets' URLs and secrets never (the kinds and names
//!   only), payloads as templates see them.

mod dead_letters;
mod deliveries;
mod issues;
mod overview;
mod page;
mod playground;
mod session;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

use super::{ApiError, AppState, Reloadable};
use session::Session;
pub use session::Sessions;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/style.css", get(stylesheet))
        .route(
            "/ui/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/overview", get(overview::page))
        .route("/ui/targets/{name}/pause", post(overview::pause))
        .route("/ui/targets/{name}/resume", post(overview::resume))
        .route("/ui/deliveries", get(deliveries::page))
        .route("/ui/dead-letters", get(dead_letters::page))
        .route("/ui/dead-letters/replay", post(dead_letters::replay_target))
        .route(
            "/ui/dead-letters/{id}/replay",
            post(dead_letters::replay_one),
        )
        .route("/ui/issues", get(issues::list))
        .route("/ui/issues/{id}", get(issues::show))
        .route("/ui/issues/{id}/{verb}", post(issues::change))
        .route(
            "/ui/playground",
            get(playground::page).post(playground::render),
        )
        .layer(axum::middleware::map_response(guarded))
}

/// What every console answer carries: no script runs (a link in a rendered payload cannot either),
/// no other site frames it, nothing is cached.
async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    response
}

async fn home(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match signed_in(&state, &headers) {
        Ok(_) => Redirect::to("/ui/overview").into_response(),
        Err(response) => response,
    }
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

/// The live config and the session of a signed-in person, or the answer for anyone else: 404
/// when the console is off, else a redirect to the sign-in form.
#[allow(clippy::result_large_err)] // the refusal is the answer, sent as it is
fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Arc<Reloadable>, Session), Response> {
    let live = state.reloadable.load_full();
    let Some(token) = &live.config.server.admin_token else {
        return Err(off());
    };
    match state.sessions.check(token, headers) {
        Some(session) => Ok((live, session)),
        None => Err(Redirect::to("/ui/sign-in").into_response()),
    }
}

/// For a POST: a signed-in person, on herald's own page (the form's token, and no other site's
/// `Origin`), else 403.
#[allow(clippy::result_large_err)] // the refusal is the answer, sent as it is
fn may_change(
    state: &AppState,
    headers: &HeaderMap,
    form_token: Option<&str>,
) -> Result<(Arc<Reloadable>, Session), Response> {
    let (live, session) = signed_in(state, headers)?;
    if !session::same_origin(headers) || !session.form_token_matches(form_token) {
        return Err(refused_cross_site());
    }
    Ok((live, session))
}

fn off() -> Response {
    (
        StatusCode::NOT_FOUND,
        "the console is off: set server.admin_token to use it",
    )
        .into_response()
}

fn refused_cross_site() -> Response {
    (
        StatusCode::FORBIDDEN,
        page::bare(
            "Refused",
            "<p role=\"alert\">This request did not come from herald's own page (a missing or stale \
             form token, or another site's origin). Nothing was changed.</p>\
             <p><a href=\"/ui/overview\">Back to the overview</a></p>",
        ),
    )
        .into_response()
}

/// A store or config failure on a page: said on the page, with its status.
fn failed(session: &Session, error: ApiError) -> Response {
    let status = error.status();
    let body = format!(
        "<p role=\"alert\" class=\"error\">{}</p>",
        page::esc(&error.to_string())
    );
    (status, page::layout("Error", "", session, &body)).into_response()
}
