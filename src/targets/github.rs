//! The `github` target: one GitHub issue per Sentry issue, kept in step with Sentry.
//!
//! - The first alert about a Sentry issue (its `issue.created`, or the first alert of an issue with
//!   no GitHub issue yet) opens a GitHub issue; later alerts add nothing (or, if asked, a comment —
//!   folding already makes that at most one per window).
//! - `issue.resolved` closes it as completed, `issue.ignored` as not planned (switchable),
//!   `issue.unresolved` reopens it with a comment (written by the next attempt, which the queue
//!   makes a second later); the current state is read first and what is already true is skipped.
//! - Never two GitHub issues for one Sentry issue: every issue herald opens carries a hidden
//!   marker; before a create, herald durably notes that a create is under way, and if a note from
//!   an earlier try is found (a timeout, a reset, a crash after the POST), it looks for the marker
//!   among recent issues before creating again. The link (Sentry issue → number) is stored, on disk,
//!   before the job is done.
//! - GitHub's rules (REFERENCE.md §4): bearer token, `Accept`, API version, `User-Agent`; writes one at
//!   a time and at least a second apart; 403/429 with `retry-after` or `x-ratelimit-remaining: 0` wait
//!   as told (a minute at least otherwise); 401/404/410/422 are permanent.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::http::{self, validate_url};
use super::{
    fit_body, BuildContext, KindSettings, Limits, Measure, Message, Outcome, RateLimit, TargetKind,
};
use crate::alert::Level;
use crate::job::FailureReason;
use crate::render::{truncate_chars, MessageView};
use crate::secret::Secret;
use crate::store::{BoxFuture, LinkRecord, LinkStore, StoreError};

/// GitHub refuses issue bodies over 65,536 characters.
pub const MAX_BODY_CHARS: usize = 65_536;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubSettings {
    /// `owner/name`.
    pub repo: String,
    pub token: Secret,
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignees: Vec<String>,
    /// An extra label per level, e.g. `{ fatal = "P0", error = "bug" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub level_labels: BTreeMap<Level, String>,
    /// Close as "not planned" when the Sentry issue is archived/ignored.
    #[serde(default = "yes")]
    pub close_on_ignore: bool,
    /// Reopen (with a comment) when Sentry says the issue is unresolved again.
    #[serde(default = "yes")]
    pub reopen_on_unresolve: bool,
    /// Copy Sentry comments to the GitHub issue.
    #[serde(default)]
    pub mirror_comments: bool,
    /// Comment on the GitHub issue for later alerts of a linked issue (at most one per fold window).
    #[serde(default)]
    pub comment_on_repeat: bool,
    /// The secret of the repository's webhook to `/hooks/github`: closing an issue herald opened
    /// for an SDK issue then resolves it (reopening reopens it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<Secret>,
}

fn default_api_url() -> String {
    "https://api.github.com".into()
}

fn yes() -> bool {
    true
}

impl KindSettings for GithubSettings {
    fn validate(&self) -> Result<(), (String, String)> {
        let parts: Vec<&str> = self.repo.split('/').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            return Err((
                "repo".into(),
                format!("{:?} must be \"owner/name\"", self.repo),
            ));
        }
        validate_url(&Secret::new(self.api_url.clone())).map_err(|(_, m)| ("api_url".into(), m))?;
        // It is printed by check-config and logged: it must hold nothing secret.
        if reqwest::Url::parse(&self.api_url)
            .is_ok_and(|url| !url.username().is_empty() || url.password().is_some())
        {
            return Err((
                "api_url".into(),
                "must not carry credentials (user:password@): the target authenticates with token"
                    .into(),
            ));
        }
        if self.token.expose().trim().is_empty() {
            return Err(("token".into(), "is empty".into()));
        }
        if self
            .webhook_secret
            .as_ref()
            .is_some_and(|secret| secret.expose().trim().is_empty())
        {
            return Err(("webhook_secret".into(), "is empty".into()));
        }
        Ok(())
    }

    fn identity(&self) -> &str {
        self.token.expose()
    }

    fn build(&self, name: &str, timeout: Duration, context: &BuildContext) -> Box<dyn TargetKind> {
        Box::new(GithubTarget {
            name: name.to_string(),
            settings: self.clone(),
            client: context.client.clone(),
            timeout,
            links: context.links.clone(),
        })
    }
}

/// What a Sentry alert means for its GitHub issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Open,
    /// Alertmanager, Grafana: a group fires; open its issue, or reopen and comment.
    Fire,
    Close {
        not_planned: bool,
    },
    Reopen,
    Comment,
    Nothing,
}

pub struct GithubTarget {
    name: String,
    settings: GithubSettings,
    client: reqwest::Client,
    timeout: Duration,
    /// Where this target's links are kept.
    links: Arc<dyn LinkStore>,
}

/// A GitHub API answer, read.
enum Answer {
    Ok(Value),
    Failed(Outcome),
}

impl GithubTarget {
    /// The body of the issue herald would open: the rendered template cut to GitHub's limit in
    /// characters, then the marker (never cut).
    pub fn issue_body(&self, text: &str, view: &MessageView) -> String {
        let marker = marker(view);
        fit_body(text, MAX_BODY_CHARS, Measure::Chars, |kept| {
            format!("{kept}\n\n{marker}")
        })
    }

    /// The request body of a create, as `herald render` shows it.
    pub fn create_body(&self, message: &Message<'_>, view: &MessageView) -> String {
        let mut labels = self.settings.labels.clone();
        if let Some(label) = view.level.and_then(|l| self.settings.level_labels.get(&l)) {
            labels.push(label.clone());
        }
        let mut assignees = self.settings.assignees.clone();
        for login in message.mentions.ids_of_people(|p| p.github.as_ref()) {
            if !assignees
                .iter()
                .any(|known| known.eq_ignore_ascii_case(login))
            {
                assignees.push(login.to_string());
            }
        }
        json!({
            "title": truncate_chars(&view.title, 256),
            "body": self.issue_body(&message.text, view),
            "labels": labels,
            "assignees": assignees,
        })
        .to_string()
    }

    async fn deliver(&self, message: &Message<'_>, view: &MessageView) -> Outcome {
        let Some(issue_key) = view.issue_key() else {
            return Outcome::Delivered {
                answer: "not about a Sentry issue: nothing to do on GitHub".into(),
            };
        };
        let key = format!("{}/{issue_key}", self.settings.repo);
        let link = match self.links.link(&self.name, &key) {
            Ok(link) => link.unwrap_or_default(),
            Err(error) => {
                return Outcome::retry(
                    FailureReason::Other,
                    format!("cannot read the link: {error}"),
                )
            }
        };
        match (self.action(view), link.number) {
            (Action::Open, None) | (Action::Comment, None) => {
                self.open(message, view, &key, link).await
            }
            (Action::Open, Some(number)) => Outcome::Delivered {
                answer: format!("already linked to #{number}"),
            },
            (Action::Close { not_planned }, Some(number)) => self.close(number, not_planned).await,
            (Action::Reopen, Some(number)) => self.reopen(number, message, view, &key, &link).await,
            (Action::Fire, None) => self.open(message, view, &key, link).await,
            (Action::Fire, Some(number)) => self.reopen(number, message, view, &key, &link).await,
            (Action::Comment, Some(number)) => self.comment(number, &message.text).await,
            (_, None) | (Action::Nothing, _) => Outcome::Delivered {
                answer: "nothing to do on GitHub".into(),
            },
        }
    }

    fn action(&self, view: &MessageView) -> Action {
        match (view.resource.as_str(), view.action.as_str()) {
            ("issue", "created") => Action::Open,
            ("issue", "resolved") => Action::Close { not_planned: false },
            ("issue", "ignored" | "archived") if self.settings.close_on_ignore => {
                Action::Close { not_planned: true }
            }
            ("issue", "unresolved") if self.settings.reopen_on_unresolve => Action::Reopen,
            ("comment", "created") if self.settings.mirror_comments => Action::Comment,
            ("event_alert" | "error" | "activity_alert", _) if self.settings.comment_on_repeat => {
                Action::Comment
            }
            ("event_alert" | "error" | "activity_alert", _) => Action::Open,
            ("alert", "firing") => Action::Fire,
            ("alert", "resolved") => Action::Close { not_planned: false },
            _ => Action::Nothing,
        }
    }

    /// Opens the GitHub issue, unless an earlier, uncertain try already did.
    async fn open(
        &self,
        message: &Message<'_>,
        view: &MessageView,
        key: &str,
        link: LinkRecord,
    ) -> Outcome {
        if let Some(since) = link.creating_since {
            match self.find_marked(view, since).await {
                Ok(Some(number)) => {
                    return self
                        .link(key, number, "found the issue an earlier try opened")
                        .await
                }
                Ok(None) => {}
                Err(outcome) => return outcome,
            }
        }
        let intent = LinkRecord {
            creating_since: Some(link.creating_since.unwrap_or_else(chrono::Utc::now)),
            ..LinkRecord::default()
        };
        if let Err(error) = self.save_link(key, &intent).await {
            return Outcome::retry(
                FailureReason::Other,
                format!("cannot note the create: {error}"),
            );
        }
        let body = self.create_body(message, view);
        match self
            .request(
                reqwest::Method::POST,
                &format!("/repos/{}/issues", self.settings.repo),
                Some(body),
            )
            .await
        {
            Answer::Ok(created) => match created["number"].as_u64() {
                Some(number) => self.link(key, number, "opened").await,
                None => Outcome::retry(
                    FailureReason::Other,
                    "GitHub answered the create without an issue number",
                ),
            },
            Answer::Failed(outcome) => outcome,
        }
    }

    async fn link(&self, key: &str, number: u64, what: &str) -> Outcome {
        let record = LinkRecord::to(number);
        match self.save_link(key, &record).await {
            Ok(()) => Outcome::Delivered {
                answer: format!("{what} #{number}"),
            },
            Err(error) => Outcome::retry(
                FailureReason::Other,
                format!("opened #{number} but cannot store the link: {error}"),
            ),
        }
    }

    async fn save_link(&self, key: &str, record: &LinkRecord) -> Result<(), StoreError> {
        self.links.save_link(&self.name, key, record).await
    }

    /// Looks through the issues updated since `since` for herald's marker of this Sentry issue.
    async fn find_marked(
        &self,
        view: &MessageView,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<u64>, Outcome> {
        let marker = marker(view);
        let since = (since - chrono::Duration::minutes(5))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let path = format!(
            "/repos/{}/issues?state=all&sort=created&direction=desc&per_page=100&since={since}",
            self.settings.repo
        );
        match self.request(reqwest::Method::GET, &path, None).await {
            Answer::Ok(Value::Array(issues)) => Ok(issues
                .iter()
                .find(|issue| {
                    issue["body"]
                        .as_str()
                        // herald's marker is the body's last line; the same text anywhere
                        // else came from an alert's fields, not from herald.
                        .is_some_and(|body| body.trim_end().ends_with(&marker))
                })
                .and_then(|issue| issue["number"].as_u64())),
            Answer::Ok(_) => Ok(None),
            Answer::Failed(outcome) => Err(outcome),
        }
    }

    async fn state(&self, number: u64) -> Result<Value, Outcome> {
        match self
            .request(
                reqwest::Method::GET,
                &format!("/repos/{}/issues/{number}", self.settings.repo),
                None,
            )
            .await
        {
            Answer::Ok(issue) => Ok(issue),
            Answer::Failed(outcome) => Err(outcome),
        }
    }

    async fn close(&self, number: u64, not_planned: bool) -> Outcome {
        let issue = match self.state(number).await {
            Ok(issue) => issue,
            Err(outcome) => return outcome,
        };
        if issue["state"] == "closed" {
            return Outcome::Delivered {
                answer: format!("#{number} was already closed"),
            };
        }
        let reason = if not_planned {
            "not_planned"
        } else {
            "completed"
        };
        let body = json!({"state": "closed", "state_reason": reason});
        self.write(
            reqwest::Method::PATCH,
            &format!("issues/{number}"),
            body,
            format!("closed #{number} as {reason}"),
        )
        .await
    }

    /// One write to the repo (`path` under `/repos/OWNER/NAME/`); `done` is the answer on success.
    async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
        done: String,
    ) -> Outcome {
        let path = format!("/repos/{}/{path}", self.settings.repo);
        match self.request(method, &path, Some(body.to_string())).await {
            Answer::Ok(_) => Outcome::Delivered { answer: done },
            Answer::Failed(outcome) => outcome,
        }
    }

    /// Reopens, then comments on the regression in a later attempt: GitHub wants writes a second
    /// apart, and the queue, not this target, does the waiting. The link notes that the comment is
    /// due, so the next attempt, finding the issue open, writes it.
    /// Reopens issue `number` and comments on it: a Sentry regression, or a group of alerts that
    /// fires again (whose message is the comment; on an issue still open it is only commented).
    async fn reopen(
        &self,
        number: u64,
        message: &Message<'_>,
        view: &MessageView,
        key: &str,
        link: &LinkRecord,
    ) -> Outcome {
        let issue = match self.state(number).await {
            Ok(issue) => issue,
            Err(outcome) => return outcome,
        };
        let firing_again = view.group.is_some();
        if issue["state"] == "open" {
            if !link.comment_after_reopen && !firing_again {
                return Outcome::Delivered {
                    answer: format!("#{number} was already open"),
                };
            }
            let text = if firing_again {
                message.text.clone()
            } else {
                let release = view.release.as_deref().unwrap_or("an unknown release");
                format!("Regressed in {release}: Sentry marked this issue unresolved again.")
            };
            let commented = self.comment(number, &text).await;
            if !matches!(commented, Outcome::Delivered { .. }) {
                return commented;
            }
            let answer = match self.save_link(key, &LinkRecord::to(number)).await {
                Ok(()) => format!("reopened #{number} and commented"),
                Err(error) => format!(
                    "reopened #{number} and commented (the link could not be updated: {error})"
                ),
            };
            return Outcome::Delivered { answer };
        }
        let body = json!({"state": "open", "state_reason": "reopened"});
        let reopened = self
            .write(
                reqwest::Method::PATCH,
                &format!("issues/{number}"),
                body,
                String::new(),
            )
            .await;
        if !matches!(reopened, Outcome::Delivered { .. }) {
            return reopened;
        }
        let comment_due = LinkRecord {
            comment_after_reopen: true,
            ..LinkRecord::to(number)
        };
        match self.save_link(key, &comment_due).await {
            Ok(()) => Outcome::Continue {
                after: Duration::from_secs(1),
                answer: format!("reopened #{number}; the comment follows"),
            },
            Err(error) => Outcome::Delivered {
                answer: format!("reopened #{number}; no comment (cannot note it: {error})"),
            },
        }
    }

    async fn comment(&self, number: u64, text: &str) -> Outcome {
        let body = json!({"body": truncate_chars(text, MAX_BODY_CHARS)});
        self.write(
            reqwest::Method::POST,
            &format!("issues/{number}/comments"),
            body,
            format!("commented on #{number}"),
        )
        .await
    }

    async fn request(&self, method: reqwest::Method, path: &str, body: Option<String>) -> Answer {
        let url = format!("{}{path}", self.settings.api_url.trim_end_matches('/'));
        let mut request = self
            .client
            .request(method, url)
            .timeout(self.timeout)
            .bearer_auth(self.settings.token.expose())
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let read = match http::send(request).await {
            Ok(read) => read,
            Err(failed) => return Answer::Failed(failed),
        };
        let (status, headers, text) = (read.status, &read.headers, &read.body);
        let parsed: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Answer::Ok(parsed);
        }
        let message = parsed["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| http::snippet(text));
        let answer = format!("HTTP {status}: {message}");
        let exhausted = headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            == Some("0");
        Answer::Failed(match status {
            403 | 429
                if exhausted
                    || headers.contains_key(reqwest::header::RETRY_AFTER)
                    || status == 429 =>
            {
                let told = read.retry_after.or_else(|| reset_wait(headers));
                Outcome::slow_down(
                    Some(told.unwrap_or(Duration::from_secs(60))),
                    FailureReason::RateLimited,
                    answer,
                )
            }
            401 | 403 => Outcome::permanent(FailureReason::AuthError, answer),
            404 | 410 | 422 => Outcome::permanent(FailureReason::ClientError, answer),
            _ => http::classify_status(status, read.retry_after, &message),
        })
    }
}

const MARKER_START: &str = "<!-- herald:sentry-issue ";
const MARKER_END: &str = " -->";

/// The hidden marker in every issue herald opens: which Sentry issue it is for.
fn marker(view: &MessageView) -> String {
    let issue_id = view.issue_id.as_deref().unwrap_or("-");
    let issue = crate::alert::issue_key(view.installation.as_deref(), Some(issue_id));
    format!("{MARKER_START}{}{MARKER_END}", issue.unwrap_or_default())
}

/// The issue key (`installation/issue`) in the marker that ends a GitHub issue's body herald
/// wrote, if it does end with one.
pub fn marked_issue_key(body: &str) -> Option<&str> {
    let line = body.trim_end().rsplit('\n').next()?;
    line.trim()
        .strip_prefix(MARKER_START)?
        .strip_suffix(MARKER_END)
        .filter(|key| !key.contains(char::is_whitespace))
}

/// The wait until `x-ratelimit-reset` (Unix seconds), when the rate limit is used up.
fn reset_wait(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let reset: i64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    let seconds = (reset - chrono::Utc::now().timestamp()).clamp(1, 3600);
    Some(Duration::from_secs(seconds as u64))
}

impl TargetKind for GithubTarget {
    /// Writes one at a time, a second apart, at most 80 a minute.
    fn limits(&self) -> Limits {
        Limits::one_at_a_time(RateLimit {
            per_minute: Some(80),
            per_second: Some(1),
        })
    }

    /// The create request for the alert (a digest has no issue of its own: its text).
    fn size_of(&self, body: &str) -> Option<super::SizeUse> {
        Some(super::SizeUse {
            used: super::field_size(body, "/body", super::fit::Measure::Chars)?,
            limit: MAX_BODY_CHARS,
            unit: "characters of the issue body",
        })
    }

    fn request_body(&self, message: &Message<'_>) -> String {
        match message.view {
            Some(view) => self.create_body(message, view),
            None => message.text.clone(),
        }
    }

    /// GitHub acts on the Sentry issue's state, not only on a message.
    fn send<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match message.view {
                Some(view) => self.deliver(message, view).await,
                None => Outcome::permanent(FailureReason::Other, "GitHub takes no digests"),
            }
        })
    }
}
