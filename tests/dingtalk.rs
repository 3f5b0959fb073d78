//! The delivery engine and the DingTalk target, black box: herald on loopback, a fake robot that
//! checks signatures the way DingTalk does and answers scripted errcodes.

mod common;

use common::dingtalk::{FakeDingTalk, Reply};
use common::{fixture, Herald};
use herald::store::Store;
use serde_json::Value;
use std::time::Duration;

const ROBOT_SECRET: &str = "SEC-test-robot-secret";

fn robot_target(robot: &FakeDingTalk, extra: &str) -> String {
    format!(
        "[[targets]]\nname = \"oncall\"\nkind = \"dingtalk\"\nurl = \"{}\"\nsecret = \"{ROBOT_SECRET}\"\ntimeout = \"2s\"\n{extra}\n",
        robot.url()
    )
}

/// The issue-created fixture (level fatal) with its own issue id and title.
fn issue(n: usize) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture("issue-created.json")).unwrap();
    payload["data"]["issue"]["id"] = Value::String(format!("{}", 9_000_000 + n));
    payload["data"]["issue"]["title"] = Value::String(format!("KeyError: order {n}"));
    payload["data"]["issue"]["web_url"] = Value::String(format!(
        "https://example-org.sentry.io/issues/{}/",
        9_000_000 + n
    ));
    serde_json::to_vec(&payload).unwrap()
}

fn markdown_text(body: &Value) -> &str {
    body["markdown"]["text"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn delivers_a_signed_markdown_message_with_mentions() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    let herald = Herald::start_with_targets(&robot_target(
        &robot,
        "keyword = \"[sentry]\"\nmention_mobiles = [\"13800000000\"]\nmention_user_ids = [\"manager7\"]\nmention_all = [\"fatal\"]",
    ));
    assert_eq!(herald.post_sentry("issue", &issue(1)).await.status(), 202);
    let received = robot.wait_for(1, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;

    let request = &received[0];
    assert_eq!(request.signature_ok, Some(true));
    assert_eq!(request.query["access_token"], "test-access-token");
    let body = &request.body;
    assert_eq!(body["msgtype"], "markdown");
    let text = markdown_text(body);
    assert!(text.contains("KeyError: order 1"), "{text}");
    assert!(
        text.contains("[Open in Sentry](https://example-org.sentry.io/issues/9000001/)"),
        "{text}"
    );
    assert!(
        text.contains("@13800000000") && text.contains("@manager7"),
        "{text}"
    );
    assert!(
        text.contains("[sentry]"),
        "the keyword is in the text: {text}"
    );
    assert!(text.contains("Project: python"), "{text}");
    assert_eq!(body["at"]["atMobiles"], serde_json::json!(["13800000000"]));
    assert_eq!(body["at"]["atUserIds"], serde_json::json!(["manager7"]));
    assert_eq!(body["at"]["isAtAll"], true, "fatal mentions everyone");
    assert!(body["markdown"]["title"]
        .as_str()
        .unwrap()
        .contains("KeyError: order 1"));
    assert!(body["msgUuid"].as_str().unwrap().starts_with("herald-"));
    assert_eq!(robot.received().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_transient_error_is_retried_with_the_same_msg_uuid_and_a_fresh_signature() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    robot.script([Reply::Errcode(-1)]);
    let herald = Herald::start_with_targets(&robot_target(&robot, "retry = [\"300ms\"]"));
    herald.post_sentry("issue", &issue(2)).await;
    let received = robot.wait_for(2, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(received[0].answered_errcode, Some(-1));
    assert_eq!(received[1].answered_errcode, Some(0));
    assert_eq!(received[0].body["msgUuid"], received[1].body["msgUuid"]);
    assert!(received.iter().all(|r| r.signature_ok == Some(true)));
    assert_ne!(
        received[0].query["timestamp"], received[1].query["timestamp"],
        "signed again for the retry"
    );
    assert!(received[1].at.duration_since(received[0].at) >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_throttled_robot_is_paused_then_delivered() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    robot.script([Reply::Errcode(130101)]);
    // No retries at all: being throttled does not use up the schedule.
    let herald = Herald::start_with_targets(&robot_target(
        &robot,
        "retry = []\nthrottle_pause = \"1500ms\"",
    ));
    herald.post_sentry("issue", &issue(3)).await;
    herald.post_sentry("issue", &issue(4)).await;
    let received = robot.wait_for(3, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(received[0].answered_errcode, Some(130101));
    // Nothing at all reached the robot during the pause, not even the other message.
    let gap = received[1].at.duration_since(received[0].at);
    assert!(gap >= Duration::from_millis(1400), "paused only {gap:?}");
    assert_eq!(received.len(), 3);
    assert_eq!(herald.readiness().await["dead_letters"], 0);
    herald
        .wait_for_log("asked herald to slow down", Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn a_refused_message_is_a_dead_letter_after_one_attempt() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    robot.script([Reply::Errcode(310000)]);
    let mut herald =
        Herald::start_with_targets(&robot_target(&robot, "retry = [\"100ms\", \"100ms\"]"));
    herald.post_sentry("issue", &issue(5)).await;
    robot.wait_for(1, Duration::from_secs(10)).await;
    let ready = herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(ready["dead_letters"], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        robot.received().len(),
        1,
        "no retry after a permanent errcode"
    );
    herald
        .wait_for_log("DELIVERY REFUSED by target oncall", Duration::from_secs(10))
        .await;

    assert!(herald.terminate().success());
    let store = Store::open(&herald.data_dir()).unwrap();
    let dead: Vec<_> = store.dead_letters().map(|d| d.unwrap()).collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].job.target, "oncall");
    assert!(
        dead[0].last_answer.starts_with("errcode 310000"),
        "{}",
        dead[0].last_answer
    );
    assert_eq!(dead[0].job.attempts.len(), 1);
    let alert = store.alert(dead[0].job.alert_id).unwrap().unwrap();
    assert_eq!(alert.alert.title, "KeyError: order 5");
}

#[tokio::test]
async fn too_long_is_resent_shorter_with_the_link() {
    let robot = FakeDingTalk::start(None).await;
    robot.script([Reply::Errcode(460101)]);
    let herald = Herald::start_with_targets(
        &robot_target(&robot, "").replace(&format!("secret = \"{ROBOT_SECRET}\"\n"), ""),
    );
    herald.post_sentry("issue", &issue(6)).await;
    let received = robot.wait_for(2, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;
    assert!(
        received[1].body_bytes <= 4_000,
        "{}",
        received[1].body_bytes
    );
    assert!(
        markdown_text(&received[1].body).contains("https://example-org.sentry.io/issues/9000006/")
    );
    assert_eq!(received[0].body["msgUuid"], received[1].body["msgUuid"]);
    assert_eq!(herald.readiness().await["dead_letters"], 0);
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    robot.script([Reply::Http(500), Reply::Hang(Duration::from_secs(3))]);
    let herald = Herald::start_with_targets(
        &robot_target(&robot, "retry = [\"100ms\", \"100ms\", \"100ms\"]")
            .replace("timeout = \"2s\"", "timeout = \"400ms\""),
    );
    herald.post_sentry("issue", &issue(7)).await;
    let received = robot.wait_for(3, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(received.len(), 3);
    assert_eq!(herald.readiness().await["dead_letters"], 0);
    let logs = herald.logs();
    assert!(
        logs.contains("reason=\"server_error\"") || logs.contains("reason=server_error"),
        "{logs}"
    );
    assert!(
        logs.contains("reason=\"timeout\"") || logs.contains("reason=timeout"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_message_in_flight_at_sigkill_is_delivered_after_restart() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    robot.script([Reply::Hang(Duration::from_secs(30))]);
    let mut herald = Herald::start_with_targets(
        &robot_target(&robot, "timeout = \"60s\"").replace("timeout = \"2s\"\n", ""),
    );
    herald.post_sentry("issue", &issue(8)).await;
    robot.wait_for(1, Duration::from_secs(10)).await;
    herald.kill();

    let restarted = herald.restart();
    let received = robot.wait_for(2, Duration::from_secs(10)).await;
    restarted.wait_until_drained(Duration::from_secs(5)).await;
    restarted
        .wait_for_log("resumed 1 queued jobs", Duration::from_secs(10))
        .await;
    assert_eq!(
        received[0].body["msgUuid"], received[1].body["msgUuid"],
        "DingTalk can tell it is the same message"
    );
    assert_eq!(received[1].signature_ok, Some(true));
}

#[tokio::test]
async fn herald_keeps_a_robot_under_twenty_messages_a_minute() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    robot.enforce_limit(20, Duration::from_secs(600));
    let herald = Herald::start_with_targets(&robot_target(&robot, ""));
    // Spread over five seconds: not a burst, but more than 20 a minute.
    for n in 0..30 {
        assert_eq!(
            herald.post_sentry("issue", &issue(100 + n)).await.status(),
            202
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    herald.wait_until_drained(Duration::from_secs(20)).await;
    let received = robot.received();
    assert!(received.len() <= 20, "{} messages", received.len());
    assert_eq!(
        robot.throttled_answers(),
        0,
        "the robot was never throttled"
    );
    let all_text: String = received
        .iter()
        .map(|r| markdown_text(&r.body).to_string())
        .collect();
    for n in 0..30 {
        assert!(
            all_text.contains(&format!("order {}", 100 + n)),
            "issue {n} was conveyed"
        );
    }
}

#[tokio::test]
async fn a_huge_event_stays_under_twenty_thousand_bytes_and_keeps_its_link() {
    let robot = FakeDingTalk::start(None).await;
    // The default template cuts every field short; a user's template may not, and the body limit
    // must hold anyway.
    let template = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(template.path(), "### {{title}}\n\n{{location}}\n").unwrap();
    let target = robot_target(
        &robot,
        &format!("template = \"{}\"", template.path().display()),
    )
    .replace(&format!("secret = \"{ROBOT_SECRET}\"\n"), "");
    let herald = Herald::start_with_targets(&target);
    let mut payload: Value = serde_json::from_slice(&issue(9)).unwrap();
    payload["data"]["issue"]["culprit"] = Value::String("错误".repeat(4_000));
    payload["data"]["issue"]["title"] = Value::String("💥\"".repeat(3_000));
    assert_eq!(
        herald
            .post_sentry("issue", &serde_json::to_vec(&payload).unwrap())
            .await
            .status(),
        202
    );
    let received = robot.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        received[0].body_bytes <= 20_000,
        "{}",
        received[0].body_bytes
    );
    assert!(
        received[0].body_bytes > 15_000,
        "cut no more than needed: {}",
        received[0].body_bytes
    );
    let text = markdown_text(&received[0].body);
    assert!(text.starts_with("### 💥\"💥"), "{}", &text[..40]);
    assert!(text.contains("cut to fit"), "the cut is said");
    assert!(
        text.ends_with("[Open in Sentry](https://example-org.sentry.io/issues/9000009/)"),
        "{}",
        &text[text.len() - 120..]
    );
}

#[tokio::test]
async fn send_test_delivers_one_message_and_prints_the_answer() {
    let robot = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    robot.script([Reply::Errcode(0), Reply::Errcode(310000)]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n{}",
            common::server_config(&dir.path().join("data")),
            robot_target(&robot, "")
        ),
    )
    .unwrap();
    let send_test = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "send-test",
                "--config",
                &config.display().to_string(),
                "--target",
                "oncall",
            ])
            .output()
    };
    let output = send_test().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("delivered to oncall: errcode 0: ok"),
        "{stdout}"
    );
    let received = robot.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].signature_ok, Some(true));
    assert!(markdown_text(&received[0].body).contains("herald test message"));

    let output = send_test().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("NOT delivered to oncall (auth_error): errcode 310000"),
        "{stdout}"
    );
}
