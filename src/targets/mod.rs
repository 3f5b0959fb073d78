//! Targets: the places herald delivers to, one file per kind.
//!
//! A target knows its wire format and how to read its downstream's answers. It does not know about
//! retries, schedules, dead letters or rate limits: it makes one attempt and says how it went, as an
//! [`Outcome`]. The queue owns everything else (Alertmanager's split).

pub mod console;
pub mod dingtalk;

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use crate::alert::Level;
use crate::config::{Config, TargetConfig};
use crate::queue::RetrySchedule;
use crate::render::{
    level_icon, truncate_chars, DigestView, MessageView, TemplateError, Templates,
};
use crate::route::Mentions;

/// The kind-specific part of a `[[targets]]` table.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetSettings {
    Console(console::ConsoleSettings),
    DingTalk(dingtalk::DingTalkSettings),
}

impl TargetSettings {
    pub const KINDS: [&'static str; 2] = ["console", "dingtalk"];

    /// Reads the keys of `table` that belong to `kind` (the shared keys are already taken out).
    /// Errors carry the key path relative to the target and a message.
    pub fn from_table(kind: &str, table: toml::Table) -> Result<Self, (String, String)> {
        let value = toml::Value::Table(table);
        match kind {
            "console" => crate::config::typed(value, "").map(TargetSettings::Console),
            "dingtalk" => {
                let settings: dingtalk::DingTalkSettings = crate::config::typed(value, "")?;
                settings.validate()?;
                Ok(TargetSettings::DingTalk(settings))
            }
            other => Err((
                "kind".into(),
                format!(
                    "is {other:?}, which is not a known target kind (known: {})",
                    Self::KINDS.join(", ")
                ),
            )),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            TargetSettings::Console(_) => "console",
            TargetSettings::DingTalk(_) => "dingtalk",
        }
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
}

/// Why an attempt failed, in the categories operators chart (Alertmanager's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    ClientError,
    ServerError,
    AuthError,
    RateLimited,
    Timeout,
    Other,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ClientError => "client_error",
            FailureReason::ServerError => "server_error",
            FailureReason::AuthError => "auth_error",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::Timeout => "timeout",
            FailureReason::Other => "other",
        }
    }
}

/// One alert to deliver: the alert as templates see it, whom the routes want @-mentioned, and the
/// job's identity, which stays the same over every retry (DingTalk's `msgUuid` is derived from it).
pub struct Delivery<'a> {
    pub view: &'a MessageView,
    pub mentions: &'a Mentions,
    pub idempotency_key: &'a str,
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
    pub timeout: Duration,
    /// How many deliveries may be in flight at once.
    pub concurrency: usize,
    /// At most this many attempts per minute (`None`: no limit).
    pub per_minute_limit: Option<u32>,
    sender: Sender,
    templates: Arc<Templates>,
}

enum Sender {
    Console(console::ConsoleTarget),
    DingTalk(dingtalk::DingTalkTarget),
}

impl Target {
    pub fn new(
        config: &TargetConfig,
        templates: Arc<Templates>,
        client: reqwest::Client,
    ) -> Target {
        let (sender, concurrency, per_minute_limit) = match &config.settings {
            TargetSettings::Console(_) => (Sender::Console(console::ConsoleTarget), 1, None),
            TargetSettings::DingTalk(settings) => (
                Sender::DingTalk(dingtalk::DingTalkTarget::new(
                    settings.clone(),
                    client,
                    config.timeout,
                )),
                1,
                Some(settings.max_per_minute).filter(|n| *n > 0),
            ),
        };
        Target {
            name: config.name.clone(),
            kind: config.settings.kind(),
            timeout: config.timeout,
            concurrency,
            per_minute_limit,
            sender,
            templates,
        }
    }

    /// Whether this target can merge several alerts into one digest message.
    pub fn digests(&self) -> bool {
        self.per_minute_limit.is_some() && self.templates.has_digest(&self.name)
    }

    /// Renders the message this target would send for `delivery`, exactly as it would go on the wire.
    pub fn render(&self, delivery: &Delivery<'_>) -> Result<String, TemplateError> {
        let text = self.templates.render(&self.name, delivery.view)?;
        Ok(self.wire_body(&Message::of_alert(delivery, text)))
    }

    fn wire_body(&self, message: &Message<'_>) -> String {
        match &self.sender {
            Sender::Console(_) => message.text.clone(),
            Sender::DingTalk(target) => target.request_body(message, None),
        }
    }

    /// One attempt at delivering an alert. Never panics, never retries.
    pub async fn deliver(&self, delivery: &Delivery<'_>) -> Outcome {
        match self.templates.render(&self.name, delivery.view) {
            Ok(text) => self.send(&Message::of_alert(delivery, text)).await,
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
        }
    }
}

fn template_failure(error: TemplateError) -> Outcome {
    Outcome::Permanent {
        reason: FailureReason::Other,
        answer: error.to_string(),
    }
}

/// A configured target and the retry schedule the queue applies to it.
pub type Configured = (Arc<Target>, RetrySchedule);

/// Every configured target, ready to send, with its retry schedule. Fails on a template that does
/// not compile or render, naming the file and line.
pub fn build_all(config: &Config) -> Result<Vec<Configured>, TemplateError> {
    let templates = Arc::new(Templates::load(
        &config.targets,
        config.templates.timezone(),
    )?);
    let client = http_client();
    Ok(config
        .targets
        .iter()
        .map(|target| {
            let schedule = target
                .retry
                .clone()
                .map(RetrySchedule::new)
                .unwrap_or_else(RetrySchedule::standard);
            (
                Arc::new(Target::new(target, templates.clone(), client.clone())),
                schedule,
            )
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
