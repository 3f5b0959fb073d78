//! The HTTP every kind shares: one client, one way to send a request and read its answer, and
//! the reading of an answer that carries no code of the downstream's own.

use std::time::Duration;

use super::Outcome;
use crate::job::FailureReason;
use crate::render::truncate_chars;
use crate::secret::Secret;

/// The most of an answer's body herald reads. The downstreams answer in a few hundred bytes;
/// a broken or hostile one cannot make herald hold more than this per attempt.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The HTTP client every target shares (connection pools are per host, so sharing costs nothing).
/// It follows no redirect: one would carry the alert, its signature and the target's secret
/// headers to wherever the answer points, and count as delivered (see [`send`]).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// A downstream's answer, read.
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds, if the answer had one.
    pub retry_after: Option<Duration>,
    pub headers: reqwest::header::HeaderMap,
    /// The body, or its first [`MAX_ANSWER_BYTES`] (cut on a character boundary).
    pub body: String,
}

/// Sends `request` and reads the answer. A request that got no answer, or whose answer could not
/// be read, is an [`Outcome`] to retry; a redirect is refused for good: the target's `url` is not
/// where the downstream is, and only the operator can say whether the new place is to be trusted.
pub async fn send(request: reqwest::RequestBuilder) -> Result<Answer, Outcome> {
    let (client, request) = request.build_split();
    let request = request.map_err(|error| failure(&error))?;
    let sent = credentials_in(&request);
    let mut response = client
        .execute(request)
        .await
        .map_err(|error| failure(&error))?;
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        return Err(redirected(status, response.headers()));
    }
    let retry_after = retry_after(response.headers());
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| failure(&error))? {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(Answer {
        status,
        retry_after,
        headers,
        body: masked(&String::from_utf8_lossy(&body), &sent),
    })
}

/// What a request carried that its downstream may echo back in an answer, which herald stores
/// and logs: the URL's query values, long path segments (a hook's key) and password, and the
/// values of every header but the plain ones (`Bearer <token>` and the token alone).
fn credentials_in(request: &reqwest::Request) -> Vec<String> {
    use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
    let url = request.url();
    let mut found: Vec<String> = url.query_pairs().map(|(_, v)| v.into_owned()).collect();
    found.extend(
        url.path_segments()
            .into_iter()
            .flatten()
            .filter(|segment| segment.len() >= 16)
            .map(str::to_string),
    );
    found.extend(url.password().map(str::to_string));
    for (name, value) in request.headers() {
        if [ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT].contains(name) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            found.push(value.to_string());
            if let Some((_, token)) = value.rsplit_once(' ') {
                found.push(token.to_string());
            }
        }
    }
    // Short values (a header's `1`, a version) are not secrets, and masking them would garble
    // answers; longest first, so a value is masked whole before a part of it is.
    found.retain(|value| value.len() >= 8);
    found.sort_by_key(|value| std::cmp::Reverse(value.len()));
    found
}

/// `answer` with every value in `sent` written as `***`.
fn masked(answer: &str, sent: &[String]) -> String {
    let mut answer = answer.to_string();
    for value in sent {
        if answer.contains(value.as_str()) {
            answer = answer.replace(value.as_str(), Secret::MASK);
        }
    }
    answer
}

/// A POST of a JSON `body` to `url`, within `timeout`.
pub fn post_json(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    timeout: Duration,
    body: String,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .timeout(timeout)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .body(body)
}

/// A request that got no answer, or no readable one: retried. The message never names the URL,
/// which may hold a token.
fn failure(error: &reqwest::Error) -> Outcome {
    let reason = if error.is_timeout() {
        FailureReason::Timeout
    } else {
        FailureReason::Other
    };
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the answer could not be read"
    } else {
        "the request failed"
    };
    Outcome::retry(reason, what)
}

/// A 3xx, not followed. The answer names only the origin it pointed to: the rest of the location
/// may hold a token.
fn redirected(status: u16, headers: &reqwest::header::HeaderMap) -> Outcome {
    let origin = headers
        .get(reqwest::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| reqwest::Url::parse(location).ok())
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null");
    let to = origin.map_or_else(|| "elsewhere".to_string(), |origin| format!("to {origin}"));
    Outcome::permanent(
        FailureReason::ClientError,
        format!(
            "HTTP {status}: redirected {to}; herald follows no redirect: set the target's url to \
             the downstream's address"
        ),
    )
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these APIs and is ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(24 * 3600)))
}

/// How an answer's body is shown in logs, dead letters and the admin API: its start.
pub fn snippet(body: &str) -> String {
    truncate_chars(body.trim(), 300)
}

/// An answer without the downstream's own error code: judged by its HTTP status. `said` is its
/// body, or what the downstream said in it; it is shown as its [`snippet`].
pub fn classify_status(status: u16, retry_after: Option<Duration>, said: &str) -> Outcome {
    let answer = format!("HTTP {status}: {}", snippet(said));
    match status {
        429 => Outcome::slow_down(
            retry_after.or(Some(Duration::from_secs(60))),
            FailureReason::RateLimited,
            answer,
        ),
        408 | 500..=599 => Outcome::retry_after(retry_after, FailureReason::ServerError, answer),
        401 | 403 => Outcome::permanent(FailureReason::AuthError, answer),
        400..=499 => Outcome::permanent(FailureReason::ClientError, answer),
        _ => Outcome::retry(
            FailureReason::Other,
            format!("{answer} (no code in the answer)"),
        ),
    }
}

/// Checks a downstream URL at config time; errors name the key `url`.
pub fn validate_url(url: &Secret) -> Result<(), (String, String)> {
    let parsed = reqwest::Url::parse(url.expose())
        .map_err(|e| ("url".to_string(), format!("is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(("url".into(), "must be an http or https URL".into()));
    }
    Ok(())
}
