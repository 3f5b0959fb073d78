//! The `dingtalk` target: a DingTalk group's custom robot (自定义机器人).
//!
//! Wire rules (REFERENCE.md §2): optional signing appends `timestamp` and `sign` to the URL, signed
//! afresh on every attempt (DingTalk refuses timestamps older than an hour); answers are HTTP 200
//! with an `errcode`, which decides everything (never the `errmsg`); `msgUuid`, fixed per job, makes
//! a resent message harmless; mentions must be both in `at` and written in the text; a body may be
//! at most 20,000 bytes.

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

/// DingTalk refuses bodies over 20,000 bytes.
pub const MAX_BODY_BYTES: usize = 20_000;
/// After a "too long" answer (460101), the message is resent cut to this size.
const SHRUNK_BODY_BYTES: usize = 4_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkSettings {
    /// The robot's webhook URL as DingTalk shows it, `access_token` included.
    pub url: Secret,
    /// The robot's signing secret (加签, starts with `SEC`), if signing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// A keyword the robot requires in every message (keyword security).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    /// Phone numbers to @ in every alert (not in "resolved" messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_mobiles: Vec<String>,
    /// DingTalk user ids to @ in every alert (not in "resolved" messages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_user_ids: Vec<String>,
    /// Levels at which the whole group is @-mentioned, e.g. `["fatal"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention_all: Vec<Level>,
    /// `markdown` (default) or `action_card` (an "Open in Sentry" button; no @-mentions).
    #[serde(default)]
    pub message: MessageStyle,
    /// DingTalk throttles a robot for 10 minutes past 20 messages a minute; herald stays under it.
    #[serde(default = "default_max_per_minute")]
    pub max_per_minute: u32,
    /// How long to leave a robot alone after DingTalk says it is sending too fast (130101/410100).
    #[serde(default = "default_throttle_pause", with = "crate::de::duration")]
    pub throttle_pause: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStyle {
    #[default]
    Markdown,
    ActionCard,
}

fn default_max_per_minute() -> u32 {
    20
}

fn default_throttle_pause() -> Duration {
    Duration::from_secs(600)
}

impl KindSettings for DingTalkSettings {
    fn validate(&self) -> Result<(), (String, String)> {
        validate_url(&self.url)?;
        if self
            .secret
            .as_ref()
            .is_some_and(|s| s.expose().trim().is_empty())
        {
            return Err((
                "secret".into(),
                "is empty (leave it out if the robot does not sign)".into(),
            ));
        }
        if self.mention_mobiles.len() + self.mention_user_ids.len() > 50 {
            return Err((
                "mention_mobiles".into(),
                "and mention_user_ids name more than 50 people, DingTalk's limit".into(),
            ));
        }
        if self.max_per_minute > 20 {
            return Err((
                "max_per_minute".into(),
                "is over 20: DingTalk throttles a robot for 10 minutes past 20 messages a minute"
                    .into(),
            ));
        }
        Ok(())
    }

    fn identity(&self) -> &str {
        self.url.expose()
    }

    fn build(&self, _name: &str, timeout: Duration, context: &BuildContext) -> Box<dyn TargetKind> {
        Box::new(DingTalkTarget::new(
            self.clone(),
            context.client.clone(),
            timeout,
        ))
    }
}

/// `sign` for a timestamp (ms): base64 of HMAC-SHA256 keyed with the secret over
/// `timestamp + "\n" + secret`. Not URL-encoded here: the URL builder encodes it, once.
pub fn sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub struct DingTalkTarget {
    settings: DingTalkSettings,
    client: reqwest::Client,
    timeout: Duration,
}

impl DingTalkTarget {
    pub fn new(settings: DingTalkSettings, client: reqwest::Client, timeout: Duration) -> Self {
        DingTalkTarget {
            settings,
            client,
            timeout,
        }
    }

    async fn deliver(&self, message: &Message<'_>) -> Outcome {
        let first_answer = match self.attempt(&self.body(message, MAX_BODY_BYTES)).await {
            Attempted::Done(outcome) => return outcome,
            Attempted::TooLong(answer) => answer,
        };
        // DingTalk's idea of "too long" can be stricter than its documented limit: send a much
        // shorter version (link, mentions and keyword kept) right away, as part of this attempt.
        let shortened = self.body(message, SHRUNK_BODY_BYTES);
        match self.attempt(&shortened).await {
            Attempted::Done(Outcome::Delivered { answer }) => Outcome::Delivered {
                answer: format!("{answer} (resent shortened after {first_answer})"),
            },
            Attempted::Done(outcome) => outcome,
            Attempted::TooLong(answer) => Outcome::permanent(
                FailureReason::ClientError,
                format!("{answer} (even at {SHRUNK_BODY_BYTES} bytes)"),
            ),
        }
    }

    async fn attempt(&self, body: &str) -> Attempted {
        let url = match self.signed_url() {
            Ok(url) => url,
            Err(error) => {
                return Attempted::Done(Outcome::permanent(FailureReason::ClientError, error))
            }
        };
        let request = http::post_json(&self.client, url, self.timeout, body.to_string());
        match http::send(request).await {
            Ok(answer) => classify(
                answer.status,
                answer.retry_after,
                &answer.body,
                self.settings.throttle_pause,
            ),
            Err(failed) => Attempted::Done(failed),
        }
    }

    /// The robot URL with a fresh `timestamp` and `sign` when signing is on.
    fn signed_url(&self) -> Result<reqwest::Url, String> {
        let mut url = reqwest::Url::parse(self.settings.url.expose())
            .map_err(|_| "the robot URL is not a URL".to_string())?;
        if let Some(secret) = &self.settings.secret {
            let timestamp = chrono::Utc::now().timestamp_millis();
            url.query_pairs_mut()
                .append_pair("timestamp", &timestamp.to_string())
                .append_pair("sign", &sign(secret.expose(), timestamp));
        }
        Ok(url)
    }

    /// The JSON body for `message`, at most `max_bytes`: the text is cut on a character boundary
    /// if needed, and the link, mentions and keyword are always kept.
    fn body(&self, message: &Message<'_>, max_bytes: usize) -> String {
        let text = message.text.as_str();
        let style = match (self.settings.message, message.link.as_deref()) {
            (MessageStyle::ActionCard, Some(_)) => MessageStyle::ActionCard,
            _ => MessageStyle::Markdown,
        };
        let mention_people = !message.resolved && style == MessageStyle::Markdown;
        let mention_all = mention_people && message.mentions_everyone(&self.settings.mention_all);

        let mut footer = String::new();
        if let Some(link) = message.link.as_deref().filter(|l| !text.contains(l)) {
            if style == MessageStyle::Markdown {
                footer.push_str(&format!("\n\n[{}]({link})", message.link_label));
            }
        }
        let mut mobiles: Vec<&str> = Vec::new();
        let mut user_ids: Vec<&str> = Vec::new();
        if mention_people {
            let mentions = message.mentions;
            for mobile in self
                .settings
                .mention_mobiles
                .iter()
                .chain(&mentions.mobiles)
                .map(String::as_str)
                .chain(mentions.ids_of_people(|p| p.dingtalk_mobile.as_ref()))
            {
                if !mobiles.contains(&mobile) {
                    mobiles.push(mobile);
                }
            }
            for user in self
                .settings
                .mention_user_ids
                .iter()
                .chain(&mentions.user_ids)
                .map(String::as_str)
                .chain(mentions.ids_of_people(|p| p.dingtalk_user_id.as_ref()))
            {
                if !user_ids.contains(&user) {
                    user_ids.push(user);
                }
            }
            // DingTalk notifies only whom the text names too (`@<mobile>`); people it does not
            // know are named as text.
            let unknown = mentions
                .names_without(|p| p.dingtalk_mobile.as_ref().or(p.dingtalk_user_id.as_ref()));
            let names: Vec<String> = mobiles
                .iter()
                .chain(&user_ids)
                .copied()
                .chain(unknown)
                .map(|who| format!("@{who}"))
                .collect();
            if !names.is_empty() {
                footer.push_str(&format!("\n\n{}", names.join(" ")));
            }
        }
        if let Some(keyword) = self
            .settings
            .keyword
            .as_deref()
            .filter(|k| !text.contains(k))
        {
            footer.push_str(&format!("\n\n{keyword}"));
        }

        let build = |body_text: &str| -> String {
            let full = format!("{}{footer}", body_text.trim());
            let body = match style {
                MessageStyle::ActionCard => json!({
                    "msgtype": "actionCard",
                    "actionCard": {
                        "title": message.title,
                        "text": full,
                        "singleTitle": message.link_label,
                        "singleURL": message.link,
                    },
                    "msgUuid": message.idempotency_key,
                }),
                MessageStyle::Markdown => json!({
                    "msgtype": "markdown",
                    "markdown": { "title": message.title, "text": full },
                    "at": { "atMobiles": mobiles, "atUserIds": user_ids, "isAtAll": mention_all },
                    "msgUuid": message.idempotency_key,
                }),
            };
            body.to_string()
        };

        fit_body(text, max_bytes, Measure::Bytes, build)
    }
}

impl TargetKind for DingTalkTarget {
    fn limits(&self) -> Limits {
        Limits::one_at_a_time(RateLimit::per_minute(self.settings.max_per_minute))
    }

    fn size_of(&self, body: &str) -> Option<super::SizeUse> {
        Some(super::SizeUse {
            used: body.len(),
            limit: MAX_BODY_BYTES,
            unit: "bytes of the request body",
        })
    }

    fn request_body(&self, message: &Message<'_>) -> String {
        self.body(message, MAX_BODY_BYTES)
    }

    fn overflows(&self, message: &Message<'_>) -> bool {
        was_cut(&self.request_body(message))
    }

    fn send<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(self.deliver(message))
    }
}

enum Attempted {
    Done(Outcome),
    TooLong(String),
}

/// Reads DingTalk's answer. HTTP status first (proxies and outages), then `errcode`.
fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
    throttle_pause: Duration,
) -> Attempted {
    if !(200..300).contains(&status) {
        return Attempted::Done(http::classify_status(status, retry_after, body));
    }
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let errcode = parsed.as_ref().and_then(|v| match v.get("errcode")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let errmsg = parsed
        .as_ref()
        .and_then(|v| v.get("errmsg")?.as_str().map(str::to_string))
        .unwrap_or_default();
    let Some(errcode) = errcode else {
        return Attempted::Done(Outcome::retry(
            FailureReason::Other,
            format!("HTTP {status} without an errcode: {}", http::snippet(body)),
        ));
    };
    let answer = format!("errcode {errcode}: {errmsg}");
    Attempted::Done(match errcode {
        0 => Outcome::Delivered { answer },
        130101 | 410100 => {
            Outcome::slow_down(Some(throttle_pause), FailureReason::RateLimited, answer)
        }
        460101 | 101002 => return Attempted::TooLong(answer),
        310000 | 300001 | 300005 | 400101 | 400102 | 400106 => {
            Outcome::permanent(FailureReason::AuthError, answer)
        }
        400013 | 400105 | 400402 | 40035 | 43004 | 430101..=430104 => {
            Outcome::permanent(FailureReason::ClientError, answer)
        }
        -1 => Outcome::retry(FailureReason::ServerError, answer),
        _ => Outcome::retry(FailureReason::Other, answer),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_signing_vectors() {
        assert_eq!(
            sign("secret", 1_700_000_000_000),
            "OuzzJR5+xZ4/EYwqtNt6sMYZQMTa/HEGvc9miJe7XzY="
        );
        assert_eq!(
            sign("this is secret", 1_577_836_800_000),
            "fFV9t5lBS7KH4+5B0JjR99ab+AJkXFauQXycgTkS/tc="
        );
    }

    fn outcome(status: u16, body: &str) -> Outcome {
        match classify(status, None, body, Duration::from_secs(600)) {
            Attempted::Done(outcome) => outcome,
            Attempted::TooLong(answer) => {
                Outcome::permanent(FailureReason::Other, format!("TOO LONG {answer}"))
            }
        }
    }

    fn target(extra: &str) -> DingTalkTarget {
        let table: toml::Table =
            format!("url = \"https://oapi.dingtalk.com/robot/send?access_token=x\"\n{extra}")
                .parse()
                .unwrap();
        let settings: DingTalkSettings = toml::Value::Table(table).try_into().unwrap();
        DingTalkTarget::new(settings, reqwest::Client::new(), Duration::from_secs(1))
    }

    fn message<'a>(
        resource: &str,
        body: &str,
        mentions: &'a crate::route::Mentions,
    ) -> Message<'a> {
        let alert = crate::sentry::parse_integration_payload(resource, body.as_bytes()).unwrap();
        let view = crate::render::MessageView::new(&alert, 1, 2, chrono::Utc::now());
        Message {
            title: view.title.clone(),
            text: "#### text".into(),
            link: view.link.clone(),
            link_label: view.link_label(),
            level: view.level,
            resolved: view.resolved,
            mentions,
            idempotency_key: "k",
            view: None,
        }
    }

    const FATAL_ISSUE: &str = r#"{"action":"created","data":{"issue":{"id":"7","title":"boom","level":"fatal","web_url":"https://s.io/issues/7/"}}}"#;

    #[test]
    fn action_card_has_a_button_to_sentry() {
        let nobody = crate::route::Mentions::default();
        let card = target("message = \"action_card\"");
        let body: Value =
            serde_json::from_str(&card.request_body(&message("issue", FATAL_ISSUE, &nobody)))
                .unwrap();
        assert_eq!(body["msgtype"], "actionCard");
        assert_eq!(body["actionCard"]["singleTitle"], "Open in Sentry");
        assert_eq!(body["actionCard"]["singleURL"], "https://s.io/issues/7/");
        assert_eq!(body["msgUuid"], "k");
        // Without a link there is no button to show: plain markdown.
        let no_link = message(
            "issue",
            r#"{"action":"created","data":{"issue":{"id":"7","title":"boom"}}}"#,
            &nobody,
        );
        let body: Value = serde_json::from_str(&card.request_body(&no_link)).unwrap();
        assert_eq!(body["msgtype"], "markdown");
    }

    #[test]
    fn resolved_messages_mention_nobody() {
        let route_mentions = crate::route::Mentions {
            mobiles: vec!["139".into()],
            all: true,
            ..Default::default()
        };
        let resolved = message(
            "issue",
            r#"{"action":"resolved","data":{"issue":{"id":"7","title":"boom","level":"fatal"}}}"#,
            &route_mentions,
        );
        let target = target("mention_mobiles = [\"138\"]\nmention_all = [\"fatal\"]");
        let body: Value = serde_json::from_str(&target.request_body(&resolved)).unwrap();
        assert_eq!(body["at"]["isAtAll"], false);
        assert_eq!(body["at"]["atMobiles"], serde_json::json!([]));
        assert!(!body["markdown"]["text"].as_str().unwrap().contains("@13"));
    }

    #[test]
    fn route_mentions_join_the_target_s_own() {
        let route_mentions = crate::route::Mentions {
            mobiles: vec!["139".into(), "138".into()],
            user_ids: vec!["payments-owner".into()],
            ..Default::default()
        };
        let fatal = message("issue", FATAL_ISSUE, &route_mentions);
        let body: Value =
            serde_json::from_str(&target("mention_mobiles = [\"138\"]").request_body(&fatal))
                .unwrap();
        assert_eq!(body["at"]["atMobiles"], serde_json::json!(["138", "139"]));
        assert_eq!(
            body["at"]["atUserIds"],
            serde_json::json!(["payments-owner"])
        );
        assert_eq!(body["at"]["isAtAll"], false);
        let text = body["markdown"]["text"].as_str().unwrap();
        assert!(text.contains("@138 @139 @payments-owner"), "{text}");
    }

    #[test]
    fn people_are_mentioned_by_their_dingtalk_ids_or_named() {
        let people: crate::people::People = toml::from_str(
            "[lin]\ndingtalk_mobile = \"13900001111\"\nfeishu_open_id = \"ou_1\"\n\
             [bob]\nfeishu_open_id = \"ou_2\"\n",
        )
        .unwrap();
        let route: crate::route::RouteConfig = toml::from_str(
            "targets = [\"a\"]\nmention = [\"lin\", \"bob\"]\nmention_from_labels = [\"owner\"]\n",
        )
        .unwrap();
        let router = crate::route::Router::new(&[route], vec!["a".into()], people);
        let alert = crate::sentry::parse_integration_payload(
            "event_alert",
            br#"{"action":"triggered","data":{"event":{"issue_id":"1","level":"error","tags":[["owner","carol"]]}}}"#,
        )
        .unwrap();
        let mentions = router.route(&alert).remove(0).mentions;
        let body: Value = serde_json::from_str(&target("").request_body(&message(
            "issue",
            FATAL_ISSUE,
            &mentions,
        )))
        .unwrap();
        assert_eq!(body["at"]["atMobiles"], serde_json::json!(["13900001111"]));
        let text = body["markdown"]["text"].as_str().unwrap();
        assert!(text.contains("@13900001111 @bob @carol"), "{text}");
    }

    #[test]
    fn errcodes_are_classified_as_reference_says() {
        assert!(matches!(
            outcome(200, r#"{"errcode":0,"errmsg":"ok"}"#),
            Outcome::Delivered { .. }
        ));
        assert!(matches!(
            outcome(200, r#"{"errcode":"0","errmsg":"ok"}"#),
            Outcome::Delivered { .. }
        ));
        assert!(matches!(
            outcome(200, r#"{"errcode":-1,"errmsg":"busy"}"#),
            Outcome::Retry {
                pause_target: false,
                ..
            }
        ));
        for code in [130101, 410100] {
            let result = outcome(
                200,
                &format!(r#"{{"errcode":{code},"errmsg":"send too fast"}}"#),
            );
            assert!(
                matches!(
                    result,
                    Outcome::Retry {
                        pause_target: true,
                        after: Some(_),
                        reason: FailureReason::RateLimited,
                        ..
                    }
                ),
                "{code}"
            );
        }
        for code in [460101, 101002] {
            let result = outcome(200, &format!(r#"{{"errcode":{code},"errmsg":"too long"}}"#));
            assert!(
                matches!(result, Outcome::Permanent { ref answer, .. } if answer.starts_with("TOO LONG")),
                "{code}"
            );
        }
        for code in [
            310000, 300001, 300005, 400101, 400102, 400106, 400013, 400105, 400402, 40035, 43004,
            430101, 430102, 430103, 430104,
        ] {
            let result = outcome(200, &format!(r#"{{"errcode":{code},"errmsg":"no"}}"#));
            assert!(matches!(result, Outcome::Permanent { .. }), "{code}");
        }
        assert!(matches!(
            outcome(500, "oops"),
            Outcome::Retry {
                reason: FailureReason::ServerError,
                ..
            }
        ));
        assert!(matches!(
            outcome(429, ""),
            Outcome::Retry {
                pause_target: true,
                ..
            }
        ));
        assert!(matches!(
            outcome(404, "no such robot"),
            Outcome::Permanent { .. }
        ));
        assert!(matches!(
            outcome(200, "<html>proxy</html>"),
            Outcome::Retry { .. }
        ));
        // errmsg never decides.
        assert!(matches!(
            outcome(200, r#"{"errcode":0,"errmsg":"sign not match"}"#),
            Outcome::Delivered { .. }
        ));
    }
}
