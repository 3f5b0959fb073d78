//! Signing in to the console: the admin token for a session cookie, the form token that every
//! POST carries, and the origin check that refuses what another site sends.

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;

use super::page;
use crate::http::AppState;
use crate::secret::{is_one_of, Secret};

const COOKIE: &str = "herald_session";
/// How long a session lasts.
const LIFETIME_SECONDS: i64 = 12 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// Sessions signed out in this process, until they would have expired anyway.
#[derive(Default)]
pub struct Sessions {
    revoked: Mutex<HashMap<String, i64>>,
}

/// A signed-in person's session.
pub struct Session {
    nonce: String,
    key: Vec<u8>,
}

impl Session {
    /// The token this session's forms carry.
    pub fn form_token(&self) -> String {
        sign(&self.key, &format!("form.{}", self.nonce))[..32].to_string()
    }

    pub fn form_token_matches(&self, given: Option<&str>) -> bool {
        let expected = Secret::new(self.form_token());
        given.is_some_and(|given| is_one_of(given, std::slice::from_ref(&expected)))
    }
}

/// The key sessions are signed with: from the admin token, so that every replica has it and a
/// new token ends every session.
fn session_key(admin_token: &Secret) -> Vec<u8> {
    sign(
        admin_token.expose().as_bytes(),
        "herald console sessions v1",
    )
    .into_bytes()
}

fn sign(key: &[u8], text: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Sessions {
    /// The session the request's cookie proves, if it is valid, unexpired and not signed out.
    pub fn check(&self, admin_token: &Secret, headers: &HeaderMap) -> Option<Session> {
        let value = cookie(headers, COOKIE)?;
        let mut parts = value.split('.');
        let (expires, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let key = session_key(admin_token);
        let expected = Secret::new(sign(&key, &format!("{expires}.{nonce}")));
        if !is_one_of(mac, std::slice::from_ref(&expected)) {
            return None;
        }
        let expires: i64 = expires.parse().ok()?;
        if expires <= chrono::Utc::now().timestamp() || self.lock().contains_key(nonce) {
            return None;
        }
        Some(Session {
            nonce: nonce.to_string(),
            key,
        })
    }

    fn revoke(&self, session: &Session) {
        let now = chrono::Utc::now().timestamp();
        let mut revoked = self.lock();
        revoked.retain(|_, expires| *expires > now);
        revoked.insert(session.nonce.clone(), now + LIFETIME_SECONDS);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // Plain data; nothing that can panic runs under the lock.
        self.revoked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The value of cookie `name` in the request.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the request came from herald's own pages: a browser says so in `Sec-Fetch-Site`, or
/// by an `Origin` naming the host it asked; a request with neither (a script) is judged by its
/// form token alone.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

pub async fn sign_in_form(State(state): State<std::sync::Arc<AppState>>) -> Response {
    if state.reloadable.load().config.server.admin_token.is_none() {
        return super::off();
    }
    page::bare("Sign in", &form("")).into_response()
}

fn form(problem: &str) -> String {
    format!(
        "<h1>herald</h1>{problem}<form method=\"post\" action=\"/ui/sign-in\" class=\"sign-in\">\
         <label for=\"token\">Admin token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>"
    )
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

pub async fn sign_in(
    State(state): State<std::sync::Arc<AppState>>,
    headers: HeaderMap,
    Form(given): Form<SignIn>,
) -> Response {
    let live = state.reloadable.load_full();
    let Some(token) = &live.config.server.admin_token else {
        return super::off();
    };
    if !same_origin(&headers) {
        return super::refused_cross_site();
    }
    if !is_one_of(given.token.trim(), std::slice::from_ref(token)) {
        tracing::warn!("console sign-in refused: wrong admin token");
        let problem = "<p role=\"alert\" class=\"error\">Wrong admin token.</p>";
        return (
            StatusCode::UNAUTHORIZED,
            page::bare("Sign in", &form(problem)),
        )
            .into_response();
    }
    let expires = chrono::Utc::now().timestamp() + LIFETIME_SECONDS;
    let nonce = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let mac = sign(&session_key(token), &format!("{expires}.{nonce}"));
    // Behind an HTTPS proxy the cookie never travels in clear.
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{COOKIE}={expires}.{nonce}.{mac}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECONDS}{}",
        if secure { "; Secure" } else { "" }
    );
    tracing::info!("console sign-in");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/overview")).into_response()
}

#[derive(Deserialize)]
pub struct FormToken {
    pub form_token: Option<String>,
}

pub async fn sign_out(
    State(state): State<std::sync::Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<FormToken>,
) -> Response {
    let session = match super::may_change(&state, &headers, form.form_token.as_deref()) {
        Ok((_, session)) => session,
        Err(response) => return response,
    };
    state.sessions.revoke(&session);
    let cleared = format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cleared)], Redirect::to("/ui/sign-in")).into_response()
}
