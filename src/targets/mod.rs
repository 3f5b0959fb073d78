//! Targets: the places herald delivers to, one file per kind.
//!
//! A target knows its wire format and how to read its downstream's answers. It does not know about
//! retries, schedules, dead letters or rate limits: it makes one attempt and says how it went, as an
//! [`Outcome`]. The queue owns everything else (Alertmanager's split).

pub mod console;
pub mod dingtalk;
pub mod feishu;
pub mod github;
pub mod webhook;
pub mod wecom;

mod settings;

pub use settings::{target_config, KindSettings, TargetConfig, TargetSettings};

use std::sync::Arc;
use std::time::Duration;

use crate::alert::Level;
use crate::job::FailureReason;
use crate::render::{
    level_icon, truncate_chars, DigestView, MessageView, TemplateError, TemplateSource, Templates,
};
use crate::route::Mentions;
use crate::store::Store;

/// A downstream's published limits. Each window gets a margin (a second a minute, a tenth of a
/// second a second) for the downstream's clock and for the time a request spends on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: Option<u32>,
    pub per_second: Option<u32>,
}

impl RateLimit {
    pub const NONE: RateLimit = RateLimit {
        per_minute: None,
        per_second: None,
    };

    pub fn per_minute(limit: u32) -> RateLimit {
        RateLimit {
            per_minute: Some(limit).filter(|n| *n > 0),
            per_second: None,
        }
    }

    pub fn is_limited(&self) -> bool {
        self.per_minute.is_some() || self.per_second.is_some()
    }
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The downstream accepted the message.
    Delivered { answer: String },
    /// Worth trying again: after `after` if the downstream said when, else on the queue's schedule.
    /// `pause_target` asks the queue to send nothing to this target until then (a throttled robot).
    Retry {
        after: Option<Duration>,
        pause_target: bool,
        reason: FailureReason,
        answer: String,
    },
    /// Trying again cannot help (bad credentials, a refused keyword, a malformed message).
    Permanent {
        reason: FailureReason,
        answer: String,
    },
    /// The endpoint is gone for good (HTTP 410): stop sending to this target until its settings
    /// change. The message itself waits, queued.
    Gone { answer: String },
}

impl Outcome {
    /// Try again on the queue's schedule.
    pub fn retry(reason: FailureReason, answer: impl Into<String>) -> Outcome {
        Outcome::retry_after(None, reason, answer)
    }

    /// Try again after `after` if the downstream said when, else on the queue's schedule.
    pub fn retry_after(
        after: Option<Duration>,
        reason: FailureReason,
        answer: impl Into<String>,
    ) -> Outcome {
        Outcome::Retry {
            after,
            pause_target: false,
            reason,
            answer: answer.into(),
        }
    }

    /// The downstream asked to be sent less: send nothing to this target for `after` (or the
    /// queue's default pause), then try again.
    pub fn slow_down(
        after: Option<Duration>,
        reason: FailureReason,
        answer: impl Into<String>,
    ) -> Outcome {
        Outcome::Retry {
            after,
            pause_target: true,
            reason,
            answer: answer.into(),
        }
    }

    pub fn permanent(reason: FailureReason, answer: impl Into<String>) -> Outcome {
        Outcome::Permanent {
            reason,
            answer: answer.into(),
        }
    }
}

/// One alert to deliver: the alert as templates see it, whom the routes want @-mentioned, and the
/// job's identity, which stays the same over every retry (DingTalk's `msgUuid` is derived from it).
pub struct Delivery<'a> {
    pub view: &'a MessageView,
    pub mentions: &'a Mentions,
    pub idempotency_key: &'a str,
    /// Sentry's payload as received, for targets that forward it (never given to templates).
    pub raw: Option<&'a str>,
}

/// Several alerts merged into one message, when a target's rate limit cannot take them one by one.
pub struct DigestDelivery<'a> {
    pub view: &'a DigestView,
    pub mentions: &'a Mentions,
    pub idempotency_key: &'a str,
}

/// A rendered message as a target's wire format needs it.
pub struct Message<'a> {
    /// One line: chat apps show it in notifications.
    pub title: String,
    /// The rendered template.
    pub text: String,
    /// The page to open in Sentry; kept however much the text is cut.
    pub link: Option<String>,
    /// The most severe level in the message (targets @-mention everyone at chosen levels).
    pub level: Option<Level>,
    /// "Resolved" messages mention nobody.
    pub resolved: bool,
    pub mentions: &'a Mentions,
    pub idempotency_key: &'a str,
}

impl<'a> Message<'a> {
    fn of_alert(delivery: &Delivery<'a>, text: String) -> Message<'a> {
        let view = delivery.view;
        let icon = if view.resolved {
            "✅"
        } else {
            level_icon(view.level)
        };
        let title = if view.title == view.headline {
            format!("{icon} {}", view.title)
        } else {
            format!("{icon} {}: {}", view.headline, view.title)
        };
        Message {
            title: truncate_chars(&title, 100),
            text,
            link: view.link.clone(),
            level: view.level,
            resolved: view.resolved,
            mentions: delivery.mentions,
            idempotency_key: delivery.idempotency_key,
        }
    }

    fn of_digest(delivery: &DigestDelivery<'a>, text: String) -> Message<'a> {
        let view = delivery.view;
        let level = view.items.iter().filter_map(|item| item.level).max();
        Message {
            title: format!("{} {} Sentry alerts", level_icon(level), view.count),
            text,
            link: None,
            level,
            resolved: false,
            mentions: delivery.mentions,
            idempotency_key: delivery.idempotency_key,
        }
    }
}

/// A configured target, ready to send.
pub struct Target {
    pub name: String,
    pub kind: &'static str,
    /// How many deliveries may be in flight at once.
    pub concurrency: usize,
    /// The downstream's rate limits, which herald keeps to.
    pub limit: RateLimit,
    /// See [`TargetSettings::fingerprint`].
    pub fingerprint: String,
    sender: Sender,
    templates: Arc<Templates>,
}

enum Sender {
    Console(console::ConsoleTarget),
    DingTalk(dingtalk::DingTalkTarget),
    Webhook(webhook::WebhookTarget),
    Feishu(feishu::FeishuTarget),
    Wecom(wecom::WecomTarget),
    Github(github::GithubTarget),
}

impl Target {
    /// `store` is where a GitHub target keeps its links; without one (`render`, `send-test`), a
    /// GitHub target opens issues without linking them.
    pub fn new(
        config: &TargetConfig,
        templates: Arc<Templates>,
        client: reqwest::Client,
        store: Option<&Store>,
    ) -> Target {
        let timeout = config.timeout;
        let (sender, concurrency, limit) = match &config.settings {
            TargetSettings::Console(_) => {
                (Sender::Console(console::ConsoleTarget), 1, RateLimit::NONE)
            }
            TargetSettings::DingTalk(settings) => (
                Sender::DingTalk(dingtalk::DingTalkTarget::new(
                    settings.clone(),
                    client,
                    timeout,
                )),
                1,
                RateLimit::per_minute(settings.max_per_minute),
            ),
            TargetSettings::Webhook(settings) => (
                Sender::Webhook(webhook::WebhookTarget::new(
                    settings.clone(),
                    client,
                    timeout,
                )),
                4,
                RateLimit::NONE,
            ),
            TargetSettings::Feishu(settings) => (
                Sender::Feishu(feishu::FeishuTarget::new(settings.clone(), client, timeout)),
                1,
                feishu::FeishuSettings::rate_limit(),
            ),
            TargetSettings::Wecom(settings) => (
                Sender::Wecom(wecom::WecomTarget::new(settings.clone(), client, timeout)),
                1,
                RateLimit::per_minute(20),
            ),
            TargetSettings::Github(settings) => (
                Sender::Github(github::GithubTarget::new(
                    &config.name,
                    settings.clone(),
                    client,
                    timeout,
                    store.cloned(),
                )),
                1,
                github::GithubSettings::rate_limit(),
            ),
        };
        Target {
            name: config.name.clone(),
            kind: config.settings.kind(),
            concurrency,
            limit,
            fingerprint: config.settings.fingerprint(),
            sender,
            templates,
        }
    }

    /// Whether this target can merge several alerts into one digest message.
    pub fn digests(&self) -> bool {
        self.limit.per_minute.is_some() && self.templates.has_digest(&self.name)
    }

    /// Renders the message this target would send for `delivery`, exactly as it would go on the wire.
    pub fn render(&self, delivery: &Delivery<'_>) -> Result<String, TemplateError> {
        let message = Message::of_alert(delivery, self.text(delivery)?);
        Ok(match &self.sender {
            Sender::Console(_) | Sender::Webhook(_) => message.text,
            Sender::DingTalk(target) => target.request_body(&message, None),
            Sender::Feishu(target) => target.request_body(&message, None),
            Sender::Wecom(target) => target.request_body(&message),
            Sender::Github(target) => target.create_body(&message, delivery.view),
        })
    }

    /// The message's text: the target's template, or for a webhook without one, herald's JSON.
    fn text(&self, delivery: &Delivery<'_>) -> Result<String, TemplateError> {
        match &self.sender {
            Sender::Webhook(target) if !self.templates.has(&self.name) => {
                let raw = delivery.raw.filter(|_| target.include_raw());
                Ok(webhook::payload(
                    delivery.view,
                    delivery.idempotency_key,
                    raw,
                ))
            }
            _ => self.templates.render(&self.name, delivery.view),
        }
    }

    /// One attempt at delivering an alert. Never panics, never retries.
    pub async fn deliver(&self, delivery: &Delivery<'_>) -> Outcome {
        match self.text(delivery) {
            Ok(text) => match &self.sender {
                // GitHub acts on the Sentry issue's state, not just on a message.
                Sender::Github(target) => {
                    target
                        .deliver(&Message::of_alert(delivery, text), delivery.view)
                        .await
                }
                _ => self.send(&Message::of_alert(delivery, text)).await,
            },
            Err(error) => template_failure(error),
        }
    }

    /// One attempt at delivering a digest of several alerts.
    pub async fn deliver_digest(&self, delivery: &DigestDelivery<'_>) -> Outcome {
        match self.templates.render_digest(&self.name, delivery.view) {
            Ok(text) => self.send(&Message::of_digest(delivery, text)).await,
            Err(error) => template_failure(error),
        }
    }

    async fn send(&self, message: &Message<'_>) -> Outcome {
        match &self.sender {
            Sender::Console(target) => target.deliver(&message.text),
            Sender::DingTalk(target) => target.deliver(message).await,
            Sender::Webhook(target) => target.deliver(message).await,
            Sender::Feishu(target) => target.deliver(message).await,
            Sender::Wecom(target) => target.deliver(message).await,
            Sender::Github(_) => {
                Outcome::permanent(FailureReason::Other, "GitHub takes no digests")
            }
        }
    }
}

fn template_failure(error: TemplateError) -> Outcome {
    Outcome::permanent(FailureReason::Other, error.to_string())
}

/// Every configured target, ready to send. Fails on a template that does not compile or render,
/// naming the file and line.
pub fn build_all(
    targets: &[TargetConfig],
    timezone: chrono_tz::Tz,
    store: Option<&Store>,
) -> Result<Vec<Arc<Target>>, TemplateError> {
    let sources: Vec<TemplateSource> = targets
        .iter()
        .map(|target| TemplateSource {
            target: target.name.clone(),
            kind: target.settings.kind(),
            path: target.template.clone(),
        })
        .collect();
    let templates = Arc::new(Templates::load(&sources, timezone)?);
    let client = http_client();
    Ok(targets
        .iter()
        .map(|target| {
            Arc::new(Target::new(
                target,
                templates.clone(),
                client.clone(),
                store,
            ))
        })
        .collect())
}

/// The HTTP client every target shares (connection pools are per host, so sharing costs nothing).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// Checks a downstream URL at config time.
pub(crate) fn validate_url(url: &crate::secret::Secret) -> Result<(), (String, String)> {
    let parsed = reqwest::Url::parse(url.expose())
        .map_err(|e| ("url".to_string(), format!("is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(("url".into(), "must be an http or https URL".into()));
    }
    Ok(())
}

/// Builds a body from `text` with `build`, cutting `text` on a character boundary until the body
/// is at most `max_bytes`. `build` adds what must never be cut (links, mentions, keywords).
pub(crate) fn fit_body(text: &str, max_bytes: usize, build: impl Fn(&str) -> String) -> String {
    let mut body = build(text);
    let mut kept = text.trim().to_string();
    while body.len() > max_bytes && !kept.is_empty() {
        let excess = body.len() - max_bytes;
        let mut cut = kept.len().saturating_sub(excess + 32);
        while cut > 0 && !kept.is_char_boundary(cut) {
            cut -= 1;
        }
        kept.truncate(cut);
        body = build(&format!("{kept}\n\n… (cut to fit the size limit)"));
    }
    body
}

/// A request that got no HTTP answer: retried. The message never names the URL, which may hold
/// a token.
pub(crate) fn http_failure(error: &reqwest::Error) -> Outcome {
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
    Outcome::Retry {
        after: None,
        pause_target: false,
        reason,
        answer: what.to_string(),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these APIs and is ignored).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(24 * 3600)))
}

/// An answer without the downstream's own error code: judged by its HTTP status.
pub(crate) fn classify_http_status(
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> Outcome {
    let answer = format!("HTTP {status}: {body}");
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
