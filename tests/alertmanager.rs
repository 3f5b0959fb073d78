//! The Alertmanager and Grafana intakes, black box: herald on loopback, the bodies Alertmanager
//! 0.25 really sent (tests/fixtures/alertmanager), and a fake DingTalk robot that checks
//! signatures and records what it got. `tests/alertmanager_live.rs` does the same with a real
//! Alertmanager posting.

mod common;

use common::dingtalk::FakeDingTalk;
use common::Herald;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "am-token-0123";
const ROBOT_SECRET: &str = "SEC-alertmanager-robot";
const GRAFANA_TOKEN: &str = "gf-token-0123";
const GRAFANA_HMAC: &str = "gf-hmac-secret";

fn am_fixture(name: &str) -> Vec<u8> {
    common::fixture_in("alertmanager", name)
}

fn start(robot: &FakeDingTalk, extra: &str) -> Herald {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
body_limit = "64KiB"

[alertmanager]
tokens = ["{TOKEN}"]

[grafana]
tokens = ["{GRAFANA_TOKEN}"]
hmac_secret = "{GRAFANA_HMAC}"
hmac_timestamp_header = "X-Grafana-Alerting-Signature-Timestamp"

[dedupe]
redelivery_window = "1s"

[templates]
timezone = "Asia/Shanghai"

[people.lin]
dingtalk_mobile = "13900001111"
github = "lin-gh"

[[targets]]
name = "oncall"
kind = "dingtalk"
url = "{url}"
secret = "{ROBOT_SECRET}"
timeout = "2s"

[[targets]]
name = "stdout"
kind = "console"

{extra}
"#,
        data = dir.path().join("data").display(),
        url = robot.url(),
    );
    Herald::start_with(dir, &config)
}

async fn post(herald: &Herald, auth: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut request = herald
        .client()
        .post(herald.url("/hooks/alertmanager"))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn bearer() -> Option<&'static str> {
    Some("Bearer am-token-0123")
}

fn text(received: &common::dingtalk::Received) -> String {
    received.body["markdown"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn every_refusal_says_why_and_stores_nothing() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    let herald = start(&robot, "");
    let body = am_fixture("01-firing-group-of-2.json");

    let (status, answer) = post(&herald, None, &body).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("Authorization"));
    assert_eq!(post(&herald, Some("Bearer wrong"), &body).await.0, 401);
    let basic_wrong = format!("Basic {}", base64_of("herald:wrong"));
    assert_eq!(post(&herald, Some(&basic_wrong), &body).await.0, 401);

    let (status, answer) = post(&herald, bearer(), b"{\"version\":").await;
    assert_eq!(status, 400);
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("not a notification"));
    let (status, answer) = post(
        &herald,
        bearer(),
        br#"{"version":"3","alerts":[{"status":"firing"}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("\"3\""),
        "{answer}"
    );
    let huge = vec![b' '; 70 * 1024];
    assert_eq!(post(&herald, bearer(), &huge).await.0, 413);

    assert_eq!(herald.readiness().await["queued_jobs"], 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(robot.received().is_empty());

    // The same body, properly authenticated (as bearer, and as basic auth's password).
    let (status, answer) = post(&herald, bearer(), &body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["targets"], serde_json::json!(["oncall", "stdout"]));
    let basic = format!("Basic {}", base64_of(&format!("herald:{TOKEN}")));
    let (status, answer) = post(&herald, Some(&basic), &body).await;
    assert_eq!(status, 202);
    assert_eq!(answer["status"], "duplicate", "{answer}");
}

#[tokio::test]
async fn one_message_per_notification_each_alert_told_once() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    let herald = start(&robot, "");

    // The group's first notification: one message with both alerts.
    let (status, first) = post(&herald, bearer(), &am_fixture("01-firing-group-of-2.json")).await;
    assert_eq!(status, 202, "{first}");
    let received = robot.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received[0].signature_ok, Some(true));
    let message = text(&received[0]);
    assert!(message.contains("Firing: 2 alerts"), "{message}");
    assert!(message.contains("10.0.0.1:8080") && message.contains("10.0.0.2:8080"));
    // Times in templates.timezone (06:57:58Z is 14:57:58 in Shanghai).
    assert!(message.contains("14:57:58"), "{message}");
    assert!(
        message.contains("[Details](http://prometheus.example:9090/graph?"),
        "each alert links to its rule's graph: {message}"
    );

    // Alertmanager re-posts it at once (an HA twin): a duplicate.
    let (_, twin) = post(&herald, bearer(), &am_fixture("01-firing-group-of-2.json")).await;
    assert_eq!(twin["status"], "duplicate");

    // After the redelivery window, repeat_interval's byte-identical resend: counted, not sent.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, repeat) = post(
        &herald,
        bearer(),
        &am_fixture("02-repeat-interval-resend.json"),
    )
    .await;
    assert_eq!(repeat["status"], "accepted", "{repeat}");
    assert_eq!(repeat["folded"], serde_json::json!(["oncall", "stdout"]));
    assert_eq!(repeat["targets"], serde_json::json!([]));

    // One alert resolved: a message with the firing one, the resolved one and the count.
    let (_, mixed) = post(&herald, bearer(), &am_fixture("03-mixed-one-resolved.json")).await;
    assert_eq!(mixed["targets"], serde_json::json!(["oncall", "stdout"]));
    let received = robot.wait_for(2, Duration::from_secs(10)).await;
    let message = text(&received[1]);
    assert!(message.contains("Firing: 1 alert, 1 resolved"), "{message}");
    assert!(
        message.contains("resolved 2026-12-01 14:58:28"),
        "{message}"
    );
    assert!(
        message.contains("×1 more"),
        "the repeat is counted: {message}"
    );

    // The same resolve said again (after the window): nothing new, nothing sent.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, again) = post(&herald, bearer(), &am_fixture("03-mixed-one-resolved.json")).await;
    assert_eq!(again["targets"], serde_json::json!([]), "{again}");

    // All resolved: only the newly resolved alert, said once.
    let (_, resolved) = post(&herald, bearer(), &am_fixture("04-all-resolved.json")).await;
    assert_eq!(resolved["action"], "resolved");
    let received = robot.wait_for(3, Duration::from_secs(10)).await;
    let message = text(&received[2]);
    assert!(message.contains("✅ Resolved"), "{message}");
    assert!(
        message.contains("10.0.0.1:8080") && !message.contains("10.0.0.2:8080"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, again) = post(&herald, bearer(), &am_fixture("04-all-resolved.json")).await;
    assert_eq!(again["targets"], serde_json::json!([]));

    // It fires again later: a new episode, told again.
    let refire = String::from_utf8(am_fixture("01-firing-group-of-2.json"))
        .unwrap()
        .replace("2026-12-01T06:57:58.404747Z", "2026-12-01T07:30:00Z");
    let (_, refired) = post(&herald, bearer(), refire.as_bytes()).await;
    assert_eq!(refired["targets"], serde_json::json!(["oncall", "stdout"]));
    let received = robot.wait_for(4, Duration::from_secs(10)).await;
    assert!(text(&received[3]).contains("Firing: 2 alerts"));
    herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(robot.received().len(), 4, "nothing else was sent");

    // What was told is remembered across a restart.
    let mut herald = herald;
    herald.kill();
    let herald = herald.restart();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, again) = post(&herald, bearer(), &am_fixture("04-all-resolved.json")).await;
    assert_eq!(
        again["status"], "accepted",
        "past the redelivery window: {again}"
    );
    assert_eq!(again["targets"], serde_json::json!([]), "{again}");
    let (_, again) = post(&herald, bearer(), refire.as_bytes()).await;
    assert_eq!(again["status"], "accepted", "{again}");
    assert_eq!(again["targets"], serde_json::json!([]), "{again}");
}

#[tokio::test]
async fn labels_route_and_name_people() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    let herald = start(
        &robot,
        r#"
[[routes]]
targets = ["oncall"]
match = { source = ["alertmanager"], labels = { env = ["prod"] } }
mention_from_labels = ["owner"]

[[routes]]
targets = ["stdout"]
"#,
    );
    // Another label set is another alert: its own fingerprint (here: its own start).
    let owned = |owner: &str, env: &str| {
        String::from_utf8(am_fixture("01-firing-group-of-2.json"))
            .unwrap()
            .replace(
                "\"env\":\"prod\"",
                &format!("\"env\":\"{env}\",\"owner\":\"{owner}\""),
            )
            .replace(
                "06:57:58.404747Z",
                &format!("06:{:02}:00Z", owner.len() + env.len()),
            )
    };
    let (_, answer) = post(&herald, bearer(), owned("lin", "prod").as_bytes()).await;
    assert_eq!(answer["targets"], serde_json::json!(["oncall"]), "{answer}");
    let received = robot.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        received[0].body["at"]["atMobiles"],
        serde_json::json!(["13900001111"])
    );
    assert!(text(&received[0]).contains("@13900001111"));

    let (_, answer) = post(&herald, bearer(), owned("ghost", "prod").as_bytes()).await;
    assert_eq!(answer["targets"], serde_json::json!(["oncall"]));
    let received = robot.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(received[1].body["at"]["atMobiles"], serde_json::json!([]));
    assert!(text(&received[1]).contains("@ghost"), "named as text");
    herald
        .wait_for_log("not in [people]", Duration::from_secs(5))
        .await;

    let (_, answer) = post(&herald, bearer(), owned("lin", "staging").as_bytes()).await;
    assert_eq!(answer["targets"], serde_json::json!(["stdout"]));
}

fn grafana_signature(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(GRAFANA_HMAC.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn grafana_is_signed_and_told_like_alertmanager() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    let herald = start(&robot, "");
    let body = am_fixture("grafana-firing.json");
    let send = |signature: String, timestamp: String| {
        herald
            .client()
            .post(herald.url("/hooks/grafana"))
            .bearer_auth(GRAFANA_TOKEN)
            .header("X-Grafana-Alerting-Signature", signature)
            .header("X-Grafana-Alerting-Signature-Timestamp", timestamp)
            .body(body.clone())
            .send()
    };
    let now = chrono::Utc::now().timestamp().to_string();
    let stale = (chrono::Utc::now().timestamp() - 3600).to_string();
    assert_eq!(
        send("00".repeat(32), now.clone()).await.unwrap().status(),
        401
    );
    let old = send(grafana_signature(&stale, &body), stale).await.unwrap();
    assert_eq!(old.status(), 401);
    assert!(old.text().await.unwrap().contains("five minutes"));
    let accepted = send(grafana_signature(&now, &body), now).await.unwrap();
    assert_eq!(accepted.status(), 202);
    let received = robot.wait_for(1, Duration::from_secs(10)).await;
    let message = text(&received[0]);
    assert!(message.contains("CPU above 90% on db-1"), "{message}");
    assert!(
        message.contains("viewPanel=2"),
        "the panel is the link: {message}"
    );
    // 00:10 UTC is 08:10 in Shanghai; Grafana sent it with a +08:00 offset.
    assert!(message.contains("08:10:00"), "{message}");
}

#[tokio::test]
async fn an_intake_not_configured_is_not_found() {
    let herald = Herald::start();
    let response = herald
        .client()
        .post(herald.url("/hooks/alertmanager"))
        .bearer_auth(TOKEN)
        .body(am_fixture("01-firing-group-of-2.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("[alertmanager]"));
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn herald_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_config_route_and_render_know_people_and_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[alertmanager]\ntokens = [\"{TOKEN}\"]\n[people.lin]\ndingtalk_mobile = \"13900001111\"\n\
                 [[targets]]\nname = \"oncall\"\nkind = \"dingtalk\"\nurl = \"https://oapi.dingtalk.com/robot/send?access_token=x\"\n\
                 [[routes]]\ntargets = [\"oncall\"]\nmatch = {{ source = [\"alertmanager\"], labels = {{ env = [\"prod\"] }} }}\n{extra}\n"
            ),
        )
        .unwrap();
    };
    let path = config.to_str().unwrap();

    write("mention = [\"lin\"]");
    let checked = herald_cli(&["check-config", "--config", path]);
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{stdout}");
    assert!(!stdout.contains(TOKEN), "the token is a secret: {stdout}");
    assert!(
        stdout.contains("label env in [prod] -> oncall mentioning @lin"),
        "{stdout}"
    );

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alertmanager/06-max-alerts-1.json");
    let fixture = fixture.to_str().unwrap();
    let routed = herald_cli(&[
        "route",
        "--config",
        path,
        "--source",
        "alertmanager",
        fixture,
    ]);
    let stdout = String::from_utf8_lossy(&routed.stdout);
    assert!(
        stdout.contains("reaches no target"),
        "env is not prod there: {stdout}"
    );
    let first = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/alertmanager/01-firing-group-of-2.json");
    let first = first.to_str().unwrap();
    let routed = herald_cli(&["route", "--config", path, "--source", "alertmanager", first]);
    let stdout = String::from_utf8_lossy(&routed.stdout);
    assert!(stdout.contains("-> oncall mentioning @lin"), "{stdout}");

    let rendered = herald_cli(&[
        "render",
        "--config",
        path,
        "--target",
        "oncall",
        "--source",
        "alertmanager",
        fixture,
    ]);
    let body: Value = serde_json::from_slice(&rendered.stdout).unwrap();
    let text = body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("Firing: 3 alerts") && text.contains("+2 more"),
        "{text}"
    );

    write("mention = [\"nobody\"]");
    let refused = herald_cli(&["check-config", "--config", path]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("routes[0].mention") && stderr.contains("\"nobody\""),
        "{stderr}"
    );
}

/// A group of `count` firing alerts, each with a long summary naming it ("alert-07").
fn large_group(count: usize) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&am_fixture("01-firing-group-of-2.json")).unwrap();
    let template = body["alerts"][0].clone();
    let alerts: Vec<Value> = (0..count)
        .map(|at| {
            let mut alert = template.clone();
            alert["labels"]["instance"] = format!("10.0.{at}.1:8080").into();
            alert["annotations"]["summary"] = format!(
                "alert-{at:02} 5xx ratio above budget on a long-named service {}",
                "x".repeat(60)
            )
            .into();
            alert["fingerprint"] = format!("{at:016x}").into();
            alert
        })
        .collect();
    body["alerts"] = alerts.into();
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test]
async fn a_group_too_large_for_the_robot_is_sent_in_whole_parts() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    let wecom =
        common::downstream::FakeDownstream::start(200, r#"{"errcode":0,"errmsg":"ok"}"#).await;
    // The second part fails once: only it is sent again.
    wecom.script([
        (200, r#"{"errcode":0,"errmsg":"ok"}"#),
        (502, "bad gateway"),
    ]);
    let herald = start(
        &robot,
        &format!(
            "[[targets]]\nname = \"wx\"\nkind = \"wecom\"\nurl = \"{}\"\nretry = [\"200ms\"]\n",
            wecom.url("/cgi-bin/webhook/send?key=k")
        ),
    );
    let (status, answer) = post(&herald, bearer(), &large_group(30)).await;
    assert_eq!(status, 202, "{answer}");
    herald.wait_until_drained(Duration::from_secs(20)).await;

    let contents: Vec<String> = wecom
        .received()
        .iter()
        .map(|request| {
            request.json()["markdown"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let parts = contents.len() - 1;
    assert!(
        parts >= 2,
        "25 long alerts do not fit 4,096 bytes: {contents:?}"
    );
    assert_eq!(
        contents[1], contents[2],
        "the failed part is sent again, unchanged"
    );
    let sent: Vec<&String> = std::iter::once(&contents[0])
        .chain(&contents[2..])
        .collect();
    for (at, content) in sent.iter().enumerate() {
        assert!(
            content.len() <= 4096,
            "part {at} has {} bytes",
            content.len()
        );
        assert!(!content.contains("cut to fit"), "{content}");
        assert!(
            content.contains(&format!("({}/{parts})", at + 1)),
            "{content}"
        );
        assert!(content.contains("Firing: 30 alerts"), "{content}");
    }
    // Every listed alert exactly once, in order, and the five not listed counted in the last part.
    let all = sent
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let mut last = 0;
    for at in 0..25 {
        let name = format!("alert-{at:02} ");
        assert_eq!(all.matches(&name).count(), 1, "{name} in {all}");
        let found = all.find(&name).unwrap();
        assert!(found > last, "{name} out of order");
        last = found;
    }
    assert!(!all.contains("alert-25 "), "{all}");
    assert!(sent[parts - 1].contains("+5 more") && !sent[0].contains("more"));

    // DingTalk (20,000 bytes) takes the whole group in one message.
    let received = robot.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    let message = text(&received[0]);
    assert!(
        message.contains("alert-24 ") && !message.contains("(1/"),
        "{message}"
    );
}
