//! Generic webhooks (Standard Webhooks), Feishu/Lark and WeCom targets, black box, against fake
//! servers on loopback that check what the real ones check.

mod common;

use base64::Engine;
use common::downstream::{FakeDownstream, Request};
use common::{fixture, Herald};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WHSEC_OLD: &str = "whsec_c2VjcmV0LWJlaW5nLXJvdGF0ZWQtb3V0";

/// Standard Webhooks verification, written here from the specification (not herald's code):
/// the signed content is `id.timestamp.body`, the key the base64 after `whsec_`, and any one of
/// the space-separated `v1,` signatures may match; the timestamp must be within 5 minutes.
fn verify_standard_webhook(secret: &str, request: &Request) -> bool {
    let id = request.header("webhook-id");
    let timestamp = request.header("webhook-timestamp");
    let Ok(seconds) = timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - seconds).abs() > 300 {
        return false;
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(&request.body);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(&content);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    request
        .header("webhook-signature")
        .split(' ')
        .filter_map(|part| part.strip_prefix("v1,"))
        .any(|signature| signature == expected)
}

fn issue(n: u64, title: &str) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture("issue-created.json")).unwrap();
    payload["data"]["issue"]["id"] = Value::String(n.to_string());
    payload["data"]["issue"]["title"] = Value::String(title.into());
    payload["data"]["issue"]["web_url"] =
        Value::String(format!("https://sentry.io/organizations/acme/issues/{n}/"));
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test]
async fn webhook_is_signed_and_keeps_its_id_over_retries() {
    let hook = FakeDownstream::start(200, "ok").await;
    hook.script([(503, "busy"), (500, "oops")]);
    let herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = [\"{WHSEC}\", \"{WHSEC_OLD}\"]\n\
         retry = [\"100ms\", \"100ms\"]\ninclude_raw = true\nheaders = {{ Authorization = \"Bearer hook-token\" }}\n",
        hook.url("/sentry")
    ));
    assert_eq!(
        herald
            .post_sentry("issue", &issue(41, "KeyError: basket"))
            .await
            .status(),
        202
    );
    let received = hook.wait_for(3, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;

    let id = received[0].header("webhook-id");
    assert!(!id.is_empty());
    for request in &received {
        assert_eq!(
            request.header("webhook-id"),
            id,
            "the same id on every retry"
        );
        assert!(
            verify_standard_webhook(WHSEC, request),
            "signed with the current secret"
        );
        assert!(
            verify_standard_webhook(WHSEC_OLD, request),
            "and with the one being rotated out"
        );
        assert!(!verify_standard_webhook("whsec_d3Jvbmctc2VjcmV0", request));
        assert_eq!(request.header("authorization"), "Bearer hook-token");
        assert_eq!(request.header("content-type"), "application/json");
    }
    let body = received[2].json();
    assert_eq!(body["type"], "herald.alert");
    assert_eq!(body["version"], 1);
    assert_eq!(body["id"], Value::String(id));
    assert_eq!(body["alert"]["title"], "KeyError: basket");
    assert_eq!(body["alert"]["issue_id"], "41");
    assert_eq!(
        body["alert"]["link"],
        "https://sentry.io/organizations/acme/issues/41/"
    );
    assert_eq!(
        body["raw"]["data"]["issue"]["id"], "41",
        "the raw payload, as asked"
    );
    assert!(
        !herald.logs().contains("hook-token"),
        "a header's value is never logged"
    );
}

#[tokio::test]
async fn webhook_410_stops_the_target_until_its_settings_change() {
    let hook = FakeDownstream::start(200, "ok").await;
    hook.script([(410, "endpoint removed")]);
    let target = |url: &str| {
        format!("[[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"{url}\"\nretry = [\"100ms\"]\n")
    };
    let mut herald = Herald::start_with_targets(&target(&hook.url("/old")));
    herald.post_sentry("issue", &issue(1, "first")).await;
    hook.wait_for(1, Duration::from_secs(10)).await;
    herald.post_sentry("issue", &issue(2, "second")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        hook.received().len(),
        1,
        "nothing more is sent to a gone endpoint"
    );
    assert_eq!(
        herald.readiness().await["queued_jobs"],
        2,
        "both messages wait"
    );
    assert_eq!(herald.readiness().await["dead_letters"], 0);
    herald
        .wait_for_log("TARGET audit IS GONE (HTTP 410)", Duration::from_secs(10))
        .await;

    // The same settings after a restart: still stopped.
    herald.kill();
    let mut restarted = herald.restart();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hook.received().len(), 1);
    restarted.kill();

    // A new URL: both messages are delivered.
    let config = std::fs::read_to_string(&restarted.config_path)
        .unwrap()
        .replace("/old", "/new");
    let moved = Herald::start_with(restarted.dir.clone(), &config);
    let received = hook.wait_for(3, Duration::from_secs(10)).await;
    moved.wait_until_drained(Duration::from_secs(5)).await;
    let titles: Vec<String> = received[1..]
        .iter()
        .map(|r| r.json()["alert"]["title"].as_str().unwrap().to_string())
        .collect();
    assert!(
        titles.contains(&"first".to_string()) && titles.contains(&"second".to_string()),
        "{titles:?}"
    );
}

#[tokio::test]
async fn webhook_other_4xx_is_a_dead_letter() {
    let hook = FakeDownstream::start(422, "no such field").await;
    let herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        hook.url("/x")
    ));
    herald.post_sentry("issue", &issue(3, "x")).await;
    hook.wait_for(1, Duration::from_secs(10)).await;
    let ready = herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(ready["dead_letters"], 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed_nor_counted_as_delivered() {
    // Where a redirect would lead: it must receive nothing, not even the secret header.
    let elsewhere = FakeDownstream::start(200, "ok").await;
    let location = elsewhere.url("/collect?token=stolen-path-token");
    let redirector = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move { axum::response::Redirect::temporary(&location) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, redirector).await.unwrap() });
    let herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"http://{address}/hook\"\n\
         secret = [\"{WHSEC}\"]\nheaders = {{ X-Api-Key = \"api-key-secret\" }}\n",
    ));
    herald.post_sentry("issue", &issue(5, "x")).await;
    herald
        .wait_for_log("DELIVERY REFUSED", Duration::from_secs(10))
        .await;
    let ready = herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(ready["dead_letters"], 1, "a 307 is not delivery");
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
    let logs = herald.logs();
    assert!(
        logs.contains(&format!("redirected to http://{}", elsewhere.address)),
        "{logs}"
    );
    assert!(
        !logs.contains("stolen-path-token"),
        "only the origin is named: {logs}"
    );
}

/// Feishu's check: HMAC-SHA256 keyed with `timestamp + "\n" + secret` over nothing, base64.
fn feishu_sign(secret: &str, timestamp: &str) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{timestamp}\n{secret}").as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// DingTalk's algorithm, which Feishu must refuse: keyed with the secret over `timestamp\nsecret`.
fn dingtalk_style_sign(secret: &str, timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn feishu_accepts(secret: &str, request: &Request) -> bool {
    let body = request.json();
    let (Some(timestamp), Some(sign)) = (body["timestamp"].as_str(), body["sign"].as_str()) else {
        return false;
    };
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 3600);
    fresh && sign == feishu_sign(secret, timestamp)
}

#[test]
fn feishu_reference_vector_and_the_inverted_algorithm() {
    assert_eq!(
        feishu_sign("demo", "1599360473"),
        "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
    );
    assert_ne!(
        dingtalk_style_sign("demo", "1599360473"),
        feishu_sign("demo", "1599360473")
    );
}

#[tokio::test]
async fn feishu_card_is_signed_as_feishu_checks_it() {
    let bot = FakeDownstream::start(200, r#"{"code":0,"msg":"success"}"#).await;
    let herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"lark\"\nkind = \"feishu\"\nurl = \"{}\"\nsecret = \"feishu-secret\"\nmention_open_ids = [\"ou_abc\"]\nmention_all = [\"fatal\"]\n",
        bot.url("/open-apis/bot/v2/hook/token")
    ));
    herald
        .post_sentry("issue", &issue(5, "PanicError: ledger"))
        .await;
    let received = bot.wait_for(1, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;
    let request = &received[0];
    assert!(
        feishu_accepts("feishu-secret", request),
        "{}",
        request.json()
    );
    // The same body signed DingTalk's way would be refused.
    let body = request.json();
    let timestamp = body["timestamp"].as_str().unwrap();
    assert_ne!(
        body["sign"].as_str().unwrap(),
        dingtalk_style_sign("feishu-secret", timestamp)
    );

    assert_eq!(body["msg_type"], "interactive");
    let card = &body["card"];
    assert_eq!(
        card["header"]["template"], "carmine",
        "fatal is the darkest red"
    );
    assert!(card["header"]["title"]["content"]
        .as_str()
        .unwrap()
        .contains("PanicError: ledger"));
    let markdown = card["elements"][0]["content"].as_str().unwrap();
    assert!(
        markdown.contains("<at id=ou_abc></at>") && markdown.contains("<at id=all></at>"),
        "{markdown}"
    );
    assert_eq!(
        card["elements"][1]["actions"][0]["url"],
        "https://sentry.io/organizations/acme/issues/5/"
    );
}

#[tokio::test]
async fn feishu_codes_decide_even_with_http_400() {
    let bot = FakeDownstream::start(200, r#"{"code":0,"msg":"success"}"#).await;
    bot.script([(200, r#"{"code":11232,"msg":"frequency limited"}"#), (400, r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#)]);
    let herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"lark\"\nkind = \"feishu\"\nurl = \"{}\"\nthrottle_pause = \"300ms\"\nretry = [\"100ms\"]\n",
        bot.url("/hook")
    ));
    herald.post_sentry("issue", &issue(6, "x")).await;
    bot.wait_for(2, Duration::from_secs(10)).await;
    let ready = herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(
        ready["dead_letters"], 1,
        "19021 is permanent, after 11232 was waited out"
    );
    let received = bot.received();
    assert!(received[1].at.duration_since(received[0].at) >= Duration::from_millis(250));
}

#[tokio::test]
async fn wecom_markdown_stays_under_4096_bytes_for_a_huge_event() {
    let robot = FakeDownstream::start(200, r#"{"errcode":0,"errmsg":"ok"}"#).await;
    let template = tempfile::NamedTempFile::new().unwrap();
    // A template that shows everything, stack frames included, so the limit must do the cutting.
    std::fs::write(
        template.path(),
        "### {{title}}\n{{location}}\n{{#each frames}}> {{this}}\n{{/each}}",
    )
    .unwrap();
    let herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"wx\"\nkind = \"wecom\"\nurl = \"{}\"\nmention_user_ids = [\"zhangsan\"]\ntemplate = \"{}\"\n",
        robot.url("/cgi-bin/webhook/send?key=abc"),
        template.path().display()
    ));
    let mut payload: Value =
        serde_json::from_slice(&fixture("event_alert-triggered.json")).unwrap();
    let event = &mut payload["data"]["event"];
    event["title"] = Value::String("数据库连接失败 ".repeat(400));
    let frame = serde_json::json!({"function": "处理订单请求的非常长的函数名", "filename": "app/services/orders/处理.py", "lineno": 42, "in_app": true});
    event["exception"]["values"][0]["stacktrace"]["frames"] = Value::Array(vec![frame; 300]);
    event["issue_id"] = Value::String("99".into());
    assert_eq!(
        herald
            .post_sentry("event_alert", &serde_json::to_vec(&payload).unwrap())
            .await
            .status(),
        202
    );
    let received = robot.wait_for(1, Duration::from_secs(10)).await;
    let body = received[0].json();
    assert_eq!(body["msgtype"], "markdown");
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(content.len() <= 4096, "{} bytes", content.len());
    assert!(
        content.len() > 3500,
        "cut no more than needed: {}",
        content.len()
    );
    assert!(content.contains("<@zhangsan>"), "the mention is kept");
    assert!(
        content.contains(
            "[Open in Sentry](https://sentry.io/organizations/test-org/issues/1117540176/events/"
        ),
        "the link is kept"
    );
    assert!(content.starts_with("### 数据库连接失败"));
}

#[tokio::test]
async fn wecom_bad_key_is_permanent_and_rate_limit_pauses() {
    let robot = FakeDownstream::start(200, r#"{"errcode":0,"errmsg":"ok"}"#).await;
    robot.script([
        (200, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#),
        (200, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#),
    ]);
    let herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"wx\"\nkind = \"wecom\"\nurl = \"{}\"\nthrottle_pause = \"300ms\"\nretry = []\n",
        robot.url("/send?key=abc")
    ));
    herald.post_sentry("issue", &issue(8, "x")).await;
    robot.wait_for(2, Duration::from_secs(10)).await;
    let ready = herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(ready["dead_letters"], 1);
    let received = robot.received();
    assert!(received[1].at.duration_since(received[0].at) >= Duration::from_millis(250));
}
