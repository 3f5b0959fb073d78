//! The `wecom` target: a WeCom (企业微信) group robot.
//!
//! Wire rules (REFERENCE.md §3): no signing (the `key` in the URL is the credential); markdown
//! content at most 4,096 bytes (mentions as `<@userid>` in the text), text content at most 2,048
//! bytes (mentions in `mentioned_list` / `mentioned_mobile_list`); 20 messages a minute per robot.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

use super::http::{self, validate_url};
use super::{
    fit_body, was_cut, BuildContext, KindSettings, Limits, Measure, Message, Outcome, RateLimit,
    TargetKind,
};
use crate::alert::Level;
use crate::job::FailureReason;
use crate::secret::Secret;
use crate::store::BoxFuture;

pub const MAX_MARKDOWN_BYTES: usize = 4_096;
pub const MAX_TEXT_BYTES: usize = 2_048;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomSettings {
    /// The robot's webhook URL, `key` included.
    pub url: Secret,
    /// `markdown` (default) or `text` (plain text; the only kind that can @ by phone number).
    #[serde(default)]
    pub message: WecomMessage,
    /// WeCom user ids to @ in every alert (not in "resolved" messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_user_ids: Vec<String>,
    /// Phone numbers to @ (text messages only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_mobiles: Vec<String>,
    /// Levels at which everyone is @-mentioned (text messages only: `@all`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_all: Vec<Level>,
    /// How long to leave the robot alone after WeCom says it is sending too much (45009).
    #[serde(default = "default_throttle_pause", with = "crate::de::duration")]
    pub throttle_pause: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WecomMessage {
    #[default]
    Markdown,
    Text,
}

fn default_throttle_pause() -> Duration {
    Duration::from_secs(60)
}

impl KindSettings for WecomSettings {
    fn validate(&self) -> Result<(), (String, String)> {
        validate_url(&self.url)
    }

    fn identity(&self) -> &str {
        self.url.expose()
    }

    fn build(&self, _name: &str, timeout: Duration, context: &BuildContext) -> Box<dyn TargetKind> {
        Box::new(WecomTarget::new(
            self.clone(),
            context.client.clone(),
            timeout,
        ))
    }
}

pub struct WecomTarget {
    settings: WecomSettings,
    client: reqwest::Client,
    timeout: Duration,
}

impl WecomTarget {
    pub fn new(settings: WecomSettings, client: reqwest::Client, timeout: Duration) -> Self {
        WecomTarget {
            settings,
            client,
            timeout,
        }
    }

    /// The JSON body: its `content` cut to WeCom's limit in bytes, the link and mentions kept.
    fn body(&self, message: &Message<'_>) -> String {
        let mention = !message.resolved;
        let all = message.mentions_everyone(&self.settings.mention_all);
        let user_ids: Vec<&str> = if mention {
            self.settings
                .mention_user_ids
                .iter()
                .chain(&message.mentions.user_ids)
                .map(String::as_str)
                .chain(message.mentions.ids_of_people(|p| p.wecom_user_id.as_ref()))
                .collect()
        } else {
            Vec::new()
        };
        let unknown: Vec<String> = if mention {
            message
                .mentions
                .names_without(|p| p.wecom_user_id.as_ref())
                .map(|name| format!("@{name}"))
                .collect()
        } else {
            Vec::new()
        };
        let mut footer = String::new();
        if let Some(link) = message
            .link
            .as_deref()
            .filter(|l| !message.text.contains(l))
        {
            footer.push_str(&match self.settings.message {
                WecomMessage::Markdown => format!("\n\n[{}]({link})", message.link_label),
                WecomMessage::Text => format!("\n\n{link}"),
            });
        }
        match self.settings.message {
            WecomMessage::Markdown => {
                let people: Vec<String> = user_ids
                    .iter()
                    .map(|id| format!("<@{id}>"))
                    .chain(unknown)
                    .collect();
                if !people.is_empty() {
                    footer.push_str(&format!("\n\n{}", people.join(" ")));
                }
                let content = fit_content(&message.text, &footer, MAX_MARKDOWN_BYTES);
                json!({"msgtype": "markdown", "markdown": {"content": content}}).to_string()
            }
            WecomMessage::Text => {
                let mut mentioned: Vec<&str> = user_ids.clone();
                let mut mobiles: Vec<&str> = if mention {
                    self.settings
                        .mention_mobiles
                        .iter()
                        .chain(&message.mentions.mobiles)
                        .map(String::as_str)
                        .collect()
                } else {
                    Vec::new()
                };
                if all {
                    mentioned.push("@all");
                    mobiles.push("@all");
                }
                if !unknown.is_empty() {
                    footer.push_str(&format!("\n\n{}", unknown.join(" ")));
                }
                let content = fit_content(&message.text, &footer, MAX_TEXT_BYTES);
                json!({"msgtype": "text", "text": {
                    "content": content,
                    "mentioned_list": mentioned,
                    "mentioned_mobile_list": mobiles,
                }})
                .to_string()
            }
        }
    }

    async fn deliver(&self, message: &Message<'_>) -> Outcome {
        let request = http::post_json(
            &self.client,
            self.settings.url.expose(),
            self.timeout,
            self.body(message),
        );
        match http::send(request).await {
            Ok(answer) => classify(
                answer.status,
                answer.retry_after,
                &answer.body,
                self.settings.throttle_pause,
            ),
            Err(failed) => failed,
        }
    }
}

impl TargetKind for WecomTarget {
    /// WeCom's group robots take at most 20 messages a minute.
    fn limits(&self) -> Limits {
        Limits::one_at_a_time(RateLimit::per_minute(20))
    }

    fn size_of(&self, body: &str) -> Option<super::SizeUse> {
        let (pointer, limit, unit) = match self.settings.message {
            WecomMessage::Markdown => {
                ("/markdown/content", MAX_MARKDOWN_BYTES, "bytes of markdown")
            }
            WecomMessage::Text => ("/text/content", MAX_TEXT_BYTES, "bytes of text"),
        };
        Some(super::SizeUse {
            used: super::field_size(body, pointer, super::fit::Measure::Bytes)?,
            limit,
            unit,
        })
    }

    fn request_body(&self, message: &Message<'_>) -> String {
        self.body(message)
    }

    fn overflows(&self, message: &Message<'_>) -> bool {
        was_cut(&self.request_body(message))
    }

    fn send<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(self.deliver(message))
    }
}

/// `text` cut (on a character boundary) so that `text + footer` is at most `max` bytes.
fn fit_content(text: &str, footer: &str, max: usize) -> String {
    fit_body(text, max, Measure::Bytes, |kept| {
        format!("{}{footer}", kept.trim())
    })
}

/// Reads WeCom's answer: `errcode` 0 is success; 93000 (bad key) and 40058 (too long) are
/// permanent; 45009 (too many) pauses the robot.
fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
    throttle_pause: Duration,
) -> Outcome {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let Some(code) = parsed.as_ref().and_then(|v| v.get("errcode")?.as_i64()) else {
        return http::classify_status(status, retry_after, body);
    };
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("errmsg")?.as_str())
        .unwrap_or_default();
    let answer = format!("errcode {code}: {message}");
    match code {
        0 => Outcome::Delivered { answer },
        45009 => Outcome::slow_down(
            Some(retry_after.unwrap_or(throttle_pause)),
            FailureReason::RateLimited,
            answer,
        ),
        93000 => Outcome::permanent(FailureReason::AuthError, answer),
        40058 => Outcome::permanent(FailureReason::ClientError, answer),
        -1 => Outcome::retry(FailureReason::ServerError, answer),
        _ => Outcome::retry(FailureReason::Other, answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_cut_on_a_character_boundary() {
        let footer = "\n\n[Open in Sentry](https://s.io/1)";
        let content = fit_content(&"错".repeat(3000), footer, MAX_MARKDOWN_BYTES);
        assert!(content.len() <= MAX_MARKDOWN_BYTES);
        assert!(content.ends_with(footer));
        assert!(content.contains("cut to fit"));
    }

    #[test]
    fn errcodes() {
        let pause = Duration::from_secs(60);
        assert!(matches!(
            classify(200, None, r#"{"errcode":0,"errmsg":"ok"}"#, pause),
            Outcome::Delivered { .. }
        ));
        assert!(matches!(
            classify(200, None, r#"{"errcode":45009,"errmsg":"freq"}"#, pause),
            Outcome::Retry {
                pause_target: true,
                ..
            }
        ));
        assert!(matches!(
            classify(
                200,
                None,
                r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
                pause
            ),
            Outcome::Permanent { .. }
        ));
        assert!(matches!(
            classify(200, None, r#"{"errcode":40058,"errmsg":"too long"}"#, pause),
            Outcome::Permanent { .. }
        ));
        assert!(matches!(
            classify(503, None, "", pause),
            Outcome::Retry { .. }
        ));
    }
}
