//! The `webhook` target: POSTs JSON to any URL, optionally signed with the Standard Webhooks
//! scheme (REFERENCE.md §5), so a team's own systems can receive herald's alerts and verify them.
//!
//! The default body is herald's documented alert JSON (see [`payload`]); a `template` replaces it.
//! `webhook-id` is the job's idempotency key, the same on every retry of one message, so a receiver
//! can drop what it already processed; `webhook-timestamp` and the signature are made per attempt.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::time::Duration;

use super::http::{self, validate_url};
use super::{
    BuildContext, Delivery, KindSettings, Limits, Message, Outcome, RateLimit, TargetKind,
};
use crate::job::FailureReason;
use crate::render::MessageView;
use crate::secret::Secret;
use crate::store::BoxFuture;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: Secret,
    /// Standard Webhooks signing secrets (`whsec_…`); during a rotation, several: each signs.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub secret: Vec<Secret>,
    /// Extra request headers (an `Authorization` header, say); their values are treated as secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// Put Sentry's raw payload in the default body, under `raw`.
    #[serde(default)]
    pub include_raw: bool,
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Secret),
        Many(Vec<Secret>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl KindSettings for WebhookSettings {
    fn validate(&self) -> Result<(), (String, String)> {
        validate_url(&self.url)?;
        for (index, secret) in self.secret.iter().enumerate() {
            if signing_key(secret).is_none() {
                return Err((
                    format!("secret[{index}]"),
                    "must be a Standard Webhooks secret: \"whsec_\" followed by base64".into(),
                ));
            }
        }
        for (name, value) in &self.headers {
            let valid = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && reqwest::header::HeaderValue::from_str(value.expose()).is_ok();
            if !valid {
                return Err((
                    format!("headers.{name}"),
                    "is not a valid HTTP header".into(),
                ));
            }
        }
        Ok(())
    }

    fn identity(&self) -> &str {
        self.url.expose()
    }

    fn build(&self, _name: &str, timeout: Duration, context: &BuildContext) -> Box<dyn TargetKind> {
        Box::new(WebhookTarget::new(
            self.clone(),
            context.client.clone(),
            timeout,
        ))
    }
}

/// The HMAC key of a `whsec_…` secret: the base64 after the prefix, decoded.
fn signing_key(secret: &Secret) -> Option<Vec<u8>> {
    let encoded = secret.expose().strip_prefix("whsec_")?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// `v1,<base64>` for each key, space-separated: HMAC-SHA256 over `id.timestamp.body`.
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &str) -> String {
    keys.iter()
        .map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key)
                .expect("HMAC-SHA256 accepts keys of any length");
            mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// herald's default body: the alert as templates see it, and the delivery's identity. Stable:
/// fields are added, never renamed or removed, within `"version": 1`.
pub fn payload(view: &MessageView, idempotency_key: &str, raw: Option<&str>) -> String {
    let mut body = json!({
        "type": "herald.alert",
        "version": 1,
        "id": idempotency_key,
        "alert": view,
    });
    if let Some(raw) = raw.and_then(|raw| serde_json::from_str::<Value>(raw).ok()) {
        body["raw"] = raw;
    }
    body.to_string()
}

pub struct WebhookTarget {
    settings: WebhookSettings,
    keys: Vec<Vec<u8>>,
    client: reqwest::Client,
    timeout: Duration,
}

impl WebhookTarget {
    pub fn new(settings: WebhookSettings, client: reqwest::Client, timeout: Duration) -> Self {
        let keys = settings.secret.iter().filter_map(signing_key).collect();
        WebhookTarget {
            settings,
            keys,
            client,
            timeout,
        }
    }

    async fn deliver(&self, message: &Message<'_>) -> Outcome {
        let body = &message.text;
        let mut request = self
            .client
            .post(self.settings.url.expose())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", message.idempotency_key);
        if !self.keys.is_empty() {
            let timestamp = chrono::Utc::now().timestamp();
            request = request
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signature_header(&self.keys, message.idempotency_key, timestamp, body),
                );
        }
        for (name, value) in &self.settings.headers {
            request = request.header(name.as_str(), value.expose());
        }
        match http::send(request.body(body.clone())).await {
            Ok(answer) => classify(answer.status, answer.retry_after, &answer.body),
            Err(failed) => failed,
        }
    }
}

impl TargetKind for WebhookTarget {
    /// Four in flight: a team's own endpoint takes concurrent requests, and publishes no limit.
    fn limits(&self) -> Limits {
        Limits {
            concurrency: 4,
            rate: RateLimit::NONE,
        }
    }

    fn request_body(&self, message: &Message<'_>) -> String {
        message.text.clone()
    }

    fn send<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(self.deliver(message))
    }

    /// Without a template, herald's own JSON (with the raw payload if asked for).
    fn untemplated_text(&self, delivery: &Delivery<'_>) -> Option<String> {
        let raw = delivery.raw.filter(|_| self.settings.include_raw);
        Some(payload(delivery.view, delivery.idempotency_key, raw))
    }
}

/// Standard Webhooks' rules: 2xx delivered; 408, 429, 5xx retried (429 waits at least a minute,
/// or as told); 410 Gone stops the target until its settings change; any other 4xx is permanent.
fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> Outcome {
    let answer = format!("HTTP {status}: {}", http::snippet(body));
    match status {
        200..=299 => Outcome::Delivered { answer },
        410 => Outcome::Gone { answer },
        429 => Outcome::slow_down(
            Some(retry_after.unwrap_or_default().max(Duration::from_secs(60))),
            FailureReason::RateLimited,
            answer,
        ),
        408 | 500..=599 => Outcome::retry_after(
            retry_after,
            if status == 408 {
                FailureReason::Timeout
            } else {
                FailureReason::ServerError
            },
            answer,
        ),
        401 | 403 => Outcome::permanent(FailureReason::AuthError, answer),
        _ => Outcome::permanent(FailureReason::ClientError, answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_standard_webhooks() {
        // The example from the Standard Webhooks specification's reference implementations.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let signature = signature_header(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn answers_are_classified() {
        assert!(matches!(classify(204, None, ""), Outcome::Delivered { .. }));
        assert!(matches!(classify(410, None, "gone"), Outcome::Gone { .. }));
        assert!(matches!(
            classify(503, None, ""),
            Outcome::Retry {
                pause_target: false,
                ..
            }
        ));
        assert!(matches!(
            classify(408, None, ""),
            Outcome::Retry {
                reason: FailureReason::Timeout,
                ..
            }
        ));
        match classify(429, Some(Duration::from_secs(5)), "") {
            Outcome::Retry {
                after,
                pause_target: true,
                ..
            } => assert_eq!(after, Some(Duration::from_secs(60))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(400, None, ""),
            Outcome::Permanent {
                reason: FailureReason::ClientError,
                ..
            }
        ));
        assert!(matches!(
            classify(401, None, ""),
            Outcome::Permanent {
                reason: FailureReason::AuthError,
                ..
            }
        ));
    }

    #[test]
    fn secrets_must_be_whsec() {
        let settings = |secret: &str| WebhookSettings {
            url: Secret::new("https://example.com/hook"),
            secret: vec![Secret::new(secret)],
            headers: BTreeMap::new(),
            include_raw: false,
        };
        assert!(settings("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .validate()
            .is_ok());
        assert!(settings("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .validate()
            .is_err());
        assert!(settings("whsec_not base64!").validate().is_err());
    }
}
