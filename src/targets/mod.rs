//! Targets: the places herald delivers to, one file per kind behind one trait, [`TargetKind`].
//!
//! A kind knows its wire format and how to read its downstream's answers. It does not know about
//! retries, schedules, dead letters or rate limits: it makes one attempt and says how it went, as an
//! [`Outcome`]; it publishes its limits ([`Limits`]) and the queue keeps to them (Alertmanager's
//! split). [`Target`] is what the queue holds: a kind with its name, templates and limits.
//!
//! Adding a kind: a file here with its settings (`KindSettings`: validation and `build`), its
//! `TargetKind` and its `classify`, and one line in `settings.rs`'s registry.

pub mod console;
pub mod dingtalk;
pub mod feishu;
pub mod github;
pub mod webhook;
pub mod wecom;

mod fit;
mod http;
mod outcome;
mod settings;

pub use fit::{fit_body, was_cut, Measure};
pub use outcome::Outcome;
pub use settings::{target_config, BuildContext, KindSettings, TargetConfig, TargetSettings};

use std::sync::Arc;
use std::time::Duration;

use crate::alert::Level;
use crate::job::FailureReason;
use crate::render::{
    level_icon, truncate_chars, DigestView, GroupView, MessageView, PartView, TemplateError,
    TemplateSource, Templates,
};
use crate::route::Mentions;
use crate::store::{BoxFuture, LinkStore};

/// All a kind of target implements.
pub trait TargetKind: Send + Sync {
    /// How many deliveries may be in flight at once, and the downstream's published rate limit.
    fn limits(&self) -> Limits;

    /// The request body for `message`, exactly as it goes on the wire (what `herald render` prints).
    fn request_body(&self, message: &Message<'_>) -> String;

    /// One attempt at delivering `message`. Never panics, never retries, never sleeps.
    fn send<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Outcome>;

    /// Whether `message` is too large for the downstream, so that its text would be cut: a
    /// group's message is then sent in parts that each fit. Kinds without a size limit, and those
    /// whose message must stay one (a GitHub issue), never overflow.
    fn overflows(&self, _message: &Message<'_>) -> bool {
        false
    }

    /// How much of the downstream's size limit `body` (a body of this kind) takes: used, limit,
    /// and what is measured. `None` for kinds without a limit.
    fn size_of(&self, _body: &str) -> Option<SizeUse> {
        None
    }

    /// The message's text when the target has no template: `None` renders the kind's default
    /// template. (The webhook sends herald's own JSON instead.)
    fn untemplated_text(&self, _delivery: &Delivery<'_>) -> Option<String> {
        None
    }
}

/// A body's size against the downstream's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeUse {
    pub used: usize,
    pub limit: usize,
    /// What is measured: "bytes of the request body", …
    pub unit: &'static str,
}

/// The size of the string at `pointer` in the JSON `body`, measured by `measure`.
fn field_size(body: &str, pointer: &str, measure: fit::Measure) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(measure.of(value.pointer(pointer)?.as_str()?))
}

/// What a kind allows the queue: the downstream's limits, which herald keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deliveries in flight at once.
    pub concurrency: usize,
    pub rate: RateLimit,
}

impl Limits {
    /// One delivery at a time, within `rate`.
    pub fn one_at_a_time(rate: RateLimit) -> Limits {
        Limits {
            concurrency: 1,
            rate,
        }
    }
}

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

/// One alert to deliver: the alert as templates see it, whom the routes want @-mentioned, and the
/// job's identity, which stays the same over every retry (DingTalk's `msgUuid` is derived from it).
pub struct Delivery<'a> {
    pub view: &'a MessageView,
    pub mentions: &'a Mentions,
    pub idempotency_key: &'a str,
    /// The sender's payload as received, for targets that forward it (never given to templates).
    pub raw: Option<&'a str>,
    /// Parts of a split message already delivered by earlier attempts of this job.
    pub parts_sent: usize,
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
    /// The page to open in Sentry (or Alertmanager, Grafana); kept however much the text is cut.
    pub link: Option<String>,
    /// What a button to `link` says: "Open in Sentry".
    pub link_label: String,
    /// The most severe level in the message (targets @-mention everyone at chosen levels).
    pub level: Option<Level>,
    /// "Resolved" messages mention nobody.
    pub resolved: bool,
    pub mentions: &'a Mentions,
    pub idempotency_key: &'a str,
    /// The alert as templates see it; `None` for a digest of several.
    pub view: Option<&'a MessageView>,
}

impl<'a> Message<'a> {
    fn of_alert(delivery: &Delivery<'a>, text: String) -> Message<'a> {
        let view = delivery.view;
        let mut title = if view.title == view.headline {
            format!("{} {}", view.icon(), view.title)
        } else {
            format!("{} {}: {}", view.icon(), view.headline, view.title)
        };
        if let Some(part) = view.group.as_ref().and_then(|group| group.part) {
            title = format!("({}/{}) {title}", part.number, part.of);
        }
        Message {
            title: truncate_chars(&title, 100),
            text,
            link: view.link.clone(),
            link_label: view.link_label(),
            level: view.level,
            resolved: view.resolved,
            mentions: delivery.mentions,
            idempotency_key: delivery.idempotency_key,
            view: Some(view),
        }
    }

    fn of_digest(delivery: &DigestDelivery<'a>, text: String) -> Message<'a> {
        let view = delivery.view;
        let level = view.items.iter().filter_map(|item| item.level).max();
        Message {
            title: format!("{} {} Sentry alerts", level_icon(level), view.count),
            text,
            link: None,
            link_label: String::new(),
            level,
            resolved: false,
            mentions: delivery.mentions,
            idempotency_key: delivery.idempotency_key,
            view: None,
        }
    }

    /// Whether this message @-mentions the whole group: never when resolved; when a route asked
    /// for it, or at one of the target's `mention_all` levels.
    pub fn mentions_everyone(&self, levels: &[Level]) -> bool {
        !self.resolved
            && (self.mentions.all || self.level.is_some_and(|level| levels.contains(&level)))
    }
}

/// A configured target, ready to send.
pub struct Target {
    pub name: String,
    pub kind: &'static str,
    /// What the downstream allows; the queue keeps to it.
    pub limits: Limits,
    /// See [`TargetSettings::fingerprint`].
    pub fingerprint: String,
    wire: Box<dyn TargetKind>,
    templates: Arc<Templates>,
}

impl Target {
    pub fn new(config: &TargetConfig, templates: Arc<Templates>, context: &BuildContext) -> Target {
        let wire = config.settings.build(&config.name, config.timeout, context);
        Target {
            name: config.name.clone(),
            kind: config.settings.kind(),
            limits: wire.limits(),
            fingerprint: config.settings.fingerprint(),
            wire,
            templates,
        }
    }

    /// Whether this target can merge several alerts into one digest message.
    pub fn digests(&self) -> bool {
        self.limits.rate.is_limited() && self.templates.has_digest(&self.name)
    }

    /// How much of the downstream's size limit a body this target rendered takes.
    pub fn size_of(&self, body: &str) -> Option<SizeUse> {
        self.wire.size_of(body)
    }

    /// Renders the message this target would send for `delivery`, exactly as it would go on the
    /// wire: one request body, or one per part when it is sent in parts.
    pub fn render(&self, delivery: &Delivery<'_>) -> Result<Vec<String>, TemplateError> {
        let parts = self.parts(delivery)?;
        Ok(parts
            .iter()
            .map(|part| {
                let key = part.idempotency_key(delivery);
                let delivery = part.delivery(delivery, &key);
                self.wire
                    .request_body(&Message::of_alert(&delivery, part.text.clone()))
            })
            .collect())
    }

    /// The message's text: the target's template, or what the kind sends without one.
    fn text(&self, delivery: &Delivery<'_>) -> Result<String, TemplateError> {
        if !self.templates.has(&self.name) {
            if let Some(text) = self.wire.untemplated_text(delivery) {
                return Ok(text);
            }
        }
        self.templates.render(&self.name, delivery.view)
    }

    /// The message for `delivery` as it is sent: whole, or, when a group's message would be cut
    /// to fit the downstream's size limit, in parts that each list as many of its alerts as fit,
    /// in order ("(1/3)"). Each part lists at least one alert; only an alert too large by itself
    /// is cut.
    fn parts(&self, delivery: &Delivery<'_>) -> Result<Vec<Part>, TemplateError> {
        let text = self.text(delivery)?;
        let whole = Message::of_alert(delivery, text);
        let listed = delivery.view.group.as_ref().map_or(0, GroupView::listed);
        if listed < 2 || !self.wire.overflows(&whole) {
            return Ok(vec![Part {
                view: None,
                text: whole.text,
            }]);
        }
        // Measured as the widest part: numbered two digits, and carrying "+N more".
        let widest = PartView { number: 99, of: 99 };
        let mut ranges = Vec::new();
        let mut start = 0;
        while start < listed {
            let mut end = start + 1;
            while end < listed {
                let candidate = self.part(delivery, start..end + 1, widest)?;
                let key = candidate.idempotency_key(delivery);
                let message =
                    Message::of_alert(&candidate.delivery(delivery, &key), candidate.text.clone());
                if self.wire.overflows(&message) {
                    break;
                }
                end += 1;
            }
            ranges.push(start..end);
            start = end;
        }
        let of = ranges.len();
        ranges
            .into_iter()
            .enumerate()
            .map(|(at, range)| self.part(delivery, range, PartView { number: at + 1, of }))
            .collect()
    }

    fn part(
        &self,
        delivery: &Delivery<'_>,
        listed: std::ops::Range<usize>,
        part: PartView,
    ) -> Result<Part, TemplateError> {
        let view = delivery.view.part(listed, part);
        let text = self.templates.render(&self.name, &view)?;
        Ok(Part {
            view: Some(view),
            text,
        })
    }

    /// One attempt at delivering an alert: the next part not yet sent, when it is sent in parts
    /// (all but the last answer `Continue`, so the job stays queued in its place). Never panics,
    /// never retries.
    pub async fn deliver(&self, delivery: &Delivery<'_>) -> Outcome {
        let mut parts = match self.parts(delivery) {
            Ok(parts) => parts,
            Err(error) => return template_failure(error),
        };
        let remaining = parts.len().saturating_sub(delivery.parts_sent).max(1);
        let part = parts.swap_remove(parts.len() - remaining);
        let key = part.idempotency_key(delivery);
        let outcome = self
            .wire
            .send(&Message::of_alert(
                &part.delivery(delivery, &key),
                part.text.clone(),
            ))
            .await;
        match outcome {
            Outcome::Delivered { answer } if remaining > 1 => Outcome::Continue {
                after: Duration::ZERO,
                answer,
            },
            outcome => outcome,
        }
    }

    /// One attempt at delivering a digest of several alerts.
    pub async fn deliver_digest(&self, delivery: &DigestDelivery<'_>) -> Outcome {
        match self.templates.render_digest(&self.name, delivery.view) {
            Ok(text) => self.wire.send(&Message::of_digest(delivery, text)).await,
            Err(error) => template_failure(error),
        }
    }
}

/// One message of an alert's: the whole (`view` is the delivery's) or one part of a split.
struct Part {
    view: Option<MessageView>,
    text: String,
}

impl Part {
    /// Each part is its own message to the downstream (DingTalk's `msgUuid`).
    fn idempotency_key(&self, delivery: &Delivery<'_>) -> String {
        match self
            .view
            .as_ref()
            .and_then(|view| view.group.as_ref()?.part)
        {
            Some(part) => format!("{}-part{}", delivery.idempotency_key, part.number),
            None => delivery.idempotency_key.to_string(),
        }
    }

    fn delivery<'a>(&'a self, whole: &Delivery<'a>, key: &'a str) -> Delivery<'a> {
        Delivery {
            view: self.view.as_ref().unwrap_or(whole.view),
            mentions: whole.mentions,
            idempotency_key: key,
            raw: whole.raw,
            parts_sent: whole.parts_sent,
        }
    }
}

fn template_failure(error: TemplateError) -> Outcome {
    Outcome::permanent(FailureReason::Other, error.to_string())
}

/// Every configured target, ready to send. `links` is where GitHub targets keep their links.
/// Fails on a template that does not compile or render, naming the file and line.
pub fn build_all(
    targets: &[TargetConfig],
    timezone: chrono_tz::Tz,
    links: Arc<dyn LinkStore>,
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
    let context = BuildContext {
        client: http::client(),
        links,
    };
    Ok(targets
        .iter()
        .map(|target| Arc::new(Target::new(target, templates.clone(), &context)))
        .collect())
}
