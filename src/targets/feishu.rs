//! The `feishu` target: a Feishu (or Lark) group's custom bot (自定义机器人).
//!
//! Wire rules (REFERENCE.md §3): signing is DingTalk's turned around — the key is
//! `timestamp + "\n" + secret` and the message is empty, the timestamp is in seconds, and both go
//! in the JSON body, not the URL. Answers carry a `code` (0 is success) with HTTP 200 or 400: the
//! body always decides. 5 messages a second and 100 a minute per bot; bodies up to 20 KB.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
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

pub const MAX_BODY_BYTES: usize = 20_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuSettings {
    /// The bot's webhook URL (`open.feishu.cn` or, for Lark, `open.larksuite.com`).
    pub url: Secret,
    /// The bot's signing secret (签名校验), if signing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// A keyword the bot requires in every message (keyword security).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    /// Feishu open_ids (`ou_…`) to @ in every alert (not in "resolved" messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_open_ids: Vec<String>,
    /// Levels at which everyone in the group is @-mentioned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_all: Vec<Level>,
    /// How long to leave the bot alone after Feishu says it is sending too much (11232, 9499).
    #[serde(default = "default_throttle_pause", with = "crate::de::duration")]
    pub throttle_pause: Duration,
}

fn default_throttle_pause() -> Duration {
    Duration::from_secs(60)
}

impl KindSettings for FeishuSettings {
    fn validate(&self) -> Result<(), (String, String)> {
        validate_url(&self.url)?;
        if self
            .secret
            .as_ref()
            .is_some_and(|s| s.expose().trim().is_empty())
        {
            return Err((
                "secret".into(),
                "is empty (leave it out if the bot does not sign)".into(),
            ));
        }
        Ok(())
    }

    fn identity(&self) -> &str {
        self.url.expose()
    }

    fn build(&self, _name: &str, timeout: Duration, context: &BuildContext) -> Box<dyn TargetKind> {
        Box::new(FeishuTarget::new(
            self.clone(),
            context.client.clone(),
            timeout,
        ))
    }
}

/// `sign` for a timestamp (seconds): base64 of HMAC-SHA256 keyed with `timestamp + "\n" + secret`
/// over an empty message.
pub fn sign(secret: &str, timestamp: i64) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{timestamp}\n{secret}").as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The card header's colour for a level.
fn header_colour(level: Option<Level>, resolved: bool) -> &'static str {
    if resolved {
        return "green";
    }
    match level {
        Some(Level::Fatal) => "carmine",
        Some(Level::Error) => "red",
        Some(Level::Warning) => "orange",
        Some(Level::Info) => "blue",
        Some(Level::Debug) | None => "grey",
    }
}

pub struct FeishuTarget {
    settings: FeishuSettings,
    client: reqwest::Client,
    timeout: Duration,
}

impl FeishuTarget {
    pub fn new(settings: FeishuSettings, client: reqwest::Client, timeout: Duration) -> Self {
        FeishuTarget {
            settings,
            client,
            timeout,
        }
    }

    /// The interactive card for `message`, with `timestamp`/`sign` when signing is on, at most
    /// 20,000 bytes (the markdown is cut, the button to Sentry kept).
    fn body(&self, message: &Message<'_>, signed_at: Option<i64>) -> String {
        let mention_people = !message.resolved;
        let mut footer = String::new();
        if mention_people {
            let mentions = message.mentions;
            let mut people: Vec<String> = self
                .settings
                .mention_open_ids
                .iter()
                .chain(&mentions.user_ids)
                .map(String::as_str)
                .chain(mentions.ids_of_people(|p| p.feishu_open_id.as_ref()))
                .map(|id| format!("<at id={id}></at>"))
                .chain(
                    mentions
                        .names_without(|p| p.feishu_open_id.as_ref())
                        .map(|name| format!("@{name}")),
                )
                .collect();
            if message.mentions_everyone(&self.settings.mention_all) {
                people.push("<at id=all></at>".into());
            }
            if !people.is_empty() {
                footer.push_str(&format!("\n\n{}", people.join(" ")));
            }
        }
        if let Some(keyword) = self
            .settings
            .keyword
            .as_deref()
            .filter(|k| !message.text.contains(k))
        {
            footer.push_str(&format!("\n\n{keyword}"));
        }
        let build = |text: &str| {
            let mut elements =
                vec![json!({"tag": "markdown", "content": format!("{}{footer}", text.trim())})];
            if let Some(link) = &message.link {
                elements.push(json!({"tag": "action", "actions": [{
                    "tag": "button",
                    "text": {"tag": "plain_text", "content": message.link_label},
                    "type": "primary",
                    "url": link,
                }]}));
            }
            let mut body = json!({
                "msg_type": "interactive",
                "card": {
                    "config": {"wide_screen_mode": true},
                    "header": {
                        "title": {"tag": "plain_text", "content": message.title},
                        "template": header_colour(message.level, message.resolved),
                    },
                    "elements": elements,
                },
            });
            if let (Some(secret), Some(timestamp)) = (&self.settings.secret, signed_at) {
                body["timestamp"] = Value::String(timestamp.to_string());
                body["sign"] = Value::String(sign(secret.expose(), timestamp));
            }
            body.to_string()
        };
        fit_body(&message.text, MAX_BODY_BYTES, Measure::Bytes, build)
    }

    async fn deliver(&self, message: &Message<'_>) -> Outcome {
        let body = self.body(message, Some(chrono::Utc::now().timestamp()));
        let request = http::post_json(&self.client, self.settings.url.expose(), self.timeout, body);
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

impl TargetKind for FeishuTarget {
    /// Feishu's custom bots take at most 5 messages a second and 100 a minute.
    fn limits(&self) -> Limits {
        Limits::one_at_a_time(RateLimit {
            per_minute: Some(100),
            per_second: Some(5),
        })
    }

    /// As `herald render` shows it: unsigned (a signature is made per attempt).
    fn size_of(&self, body: &str) -> Option<super::SizeUse> {
        Some(super::SizeUse {
            used: body.len(),
            limit: MAX_BODY_BYTES,
            unit: "bytes of the request body",
        })
    }

    fn request_body(&self, message: &Message<'_>) -> String {
        self.body(message, None)
    }

    fn overflows(&self, message: &Message<'_>) -> bool {
        was_cut(&self.request_body(message))
    }

    fn send<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(self.deliver(message))
    }
}

/// Reads Feishu's answer: the body's `code` (or the older `StatusCode`) decides, whatever the
/// HTTP status; without one, the HTTP status does.
fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
    throttle_pause: Duration,
) -> Outcome {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code").or_else(|| v.get("StatusCode"))?.as_i64());
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.get("msg")
                .or_else(|| v.get("StatusMessage"))?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    let Some(code) = code else {
        return http::classify_status(status, retry_after, body);
    };
    let answer = format!("code {code}: {message}");
    match code {
        0 => Outcome::Delivered { answer },
        11232 | 9499 => Outcome::slow_down(
            Some(retry_after.unwrap_or(throttle_pause)),
            FailureReason::RateLimited,
            answer,
        ),
        19021 | 19022 => Outcome::permanent(FailureReason::AuthError, answer),
        19024 => Outcome::permanent(FailureReason::ClientError, answer),
        _ if status >= 500 => Outcome::retry_after(retry_after, FailureReason::ServerError, answer),
        _ if (400..500).contains(&status) => Outcome::permanent(FailureReason::ClientError, answer),
        _ => Outcome::retry(FailureReason::Other, answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_signing_vector() {
        assert_eq!(
            sign("demo", 1_599_360_473),
            "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
        );
    }

    #[test]
    fn codes_decide_whatever_the_http_status() {
        let pause = Duration::from_secs(60);
        assert!(matches!(
            classify(200, None, r#"{"code":0,"msg":"success"}"#, pause),
            Outcome::Delivered { .. }
        ));
        assert!(matches!(
            classify(
                200,
                None,
                r#"{"StatusCode":0,"StatusMessage":"success"}"#,
                pause
            ),
            Outcome::Delivered { .. }
        ));
        for code in [19021, 19022, 19024] {
            let body = format!(r#"{{"code":{code},"msg":"no"}}"#);
            assert!(
                matches!(classify(400, None, &body, pause), Outcome::Permanent { .. }),
                "{code}"
            );
            assert!(
                matches!(classify(200, None, &body, pause), Outcome::Permanent { .. }),
                "{code}"
            );
        }
        for code in [11232, 9499] {
            let body = format!(r#"{{"code":{code},"msg":"too many request"}}"#);
            assert!(
                matches!(
                    classify(200, None, &body, pause),
                    Outcome::Retry {
                        pause_target: true,
                        ..
                    }
                ),
                "{code}"
            );
        }
        assert!(matches!(
            classify(502, None, "bad gateway", pause),
            Outcome::Retry { .. }
        ));
    }
}
