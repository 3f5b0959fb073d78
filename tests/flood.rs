//! Routing, dedupe and flood control, black box: the right people hear about it once, and no
//! robot is ever throttled.

mod common;

use common::dingtalk::{FakeDingTalk, Received};
use common::{fixture, Herald};
use serde_json::Value;
use std::time::{Duration, Instant};

fn robot_target(robot: &FakeDingTalk) -> String {
    format!(
        "[[targets]]\nname = \"oncall\"\nkind = \"dingtalk\"\nurl = \"{}\"\n",
        robot.url()
    )
}

fn text(received: &Received) -> String {
    received.body["markdown"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// An issue alert (`event_alert.triggered`) for `issue`, from event number `event`.
fn event_alert(issue: u64, event: u64) -> Vec<u8> {
    let mut payload: Value =
        serde_json::from_slice(&fixture("event_alert-triggered.json")).unwrap();
    let event_data = &mut payload["data"]["event"];
    event_data["issue_id"] = Value::String(issue.to_string());
    event_data["event_id"] = Value::String(format!("{event:032x}"));
    event_data["title"] = Value::String(format!("TimeoutError: upstream {issue}"));
    event_data["web_url"] = Value::String(format!(
        "https://sentry.io/organizations/acme/issues/{issue}/events/{event:032x}/"
    ));
    serde_json::to_vec(&payload).unwrap()
}

fn issue_created(issue: u64, level: &str) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture("issue-created.json")).unwrap();
    let data = &mut payload["data"]["issue"];
    data["id"] = Value::String(issue.to_string());
    data["level"] = Value::String(level.into());
    data["title"] = Value::String(format!("ValueError: burst issue {issue}"));
    data["web_url"] = Value::String(format!(
        "https://sentry.io/organizations/acme/issues/{issue}/"
    ));
    serde_json::to_vec(&payload).unwrap()
}

fn issue_resolved(issue: u64) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture("issue-resolved.json")).unwrap();
    payload["data"]["issue"]["id"] = Value::String(issue.to_string());
    payload["installation"]["uuid"] = Value::String("a8e5d37a-696c-4c54-adb5-b3f28d64c7de".into());
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test]
async fn an_identical_callback_is_answered_duplicate_and_sent_once() {
    let robot = FakeDingTalk::start(None).await;
    let herald = Herald::start_with_targets(&robot_target(&robot));
    let body = issue_created(11, "error");
    let first: Value = herald
        .post_sentry("issue", &body)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = herald
        .post_sentry("issue", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["status"], "duplicate");
    assert_eq!(second["alert_id"], first["alert_id"]);
    assert_eq!(second["targets"], serde_json::json!([]));
    herald.wait_until_drained(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(robot.received().len(), 1);
    assert_eq!(herald.readiness().await["alerts"], 1);
}

#[tokio::test]
async fn fifty_alerts_of_one_issue_become_one_message_and_a_count() {
    let robot = FakeDingTalk::start(None).await;
    let herald = Herald::start_with_targets(&format!(
        "[dedupe]\nwindow = \"3s\"\n{}",
        robot_target(&robot)
    ));
    for event in 0..50 {
        let receipt: Value = herald
            .post_sentry("event_alert", &event_alert(777, event))
            .await
            .json()
            .await
            .unwrap();
        let expected = if event == 0 { "targets" } else { "folded" };
        assert_eq!(
            receipt[expected],
            serde_json::json!(["oncall"]),
            "event {event}"
        );
    }
    let first = robot.wait_for(1, Duration::from_secs(5)).await;
    assert!(text(&first[0]).contains("TimeoutError: upstream 777"));
    // At the end of the window, one message carries the count (generous: CI machines are busy).
    let received = common::eventually(
        Duration::from_secs(40),
        || format!("no summary; herald's log:\n{}", herald.logs()),
        || Some(robot.received()).filter(|received| received.len() >= 2),
    )
    .await;
    let summary = text(&received[1]);
    assert!(summary.contains("×49 more in the last"), "{summary}");
    assert!(summary.contains("TimeoutError: upstream 777"), "{summary}");
    herald.wait_until_drained(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        robot.received().len(),
        2,
        "one message and one count, nothing else"
    );
}

#[tokio::test]
async fn a_resolve_passes_through_and_carries_the_count() {
    let robot = FakeDingTalk::start(None).await;
    let herald = Herald::start_with_targets(&format!(
        "[dedupe]\nwindow = \"1h\"\n{}",
        robot_target(&robot)
    ));
    for event in 0..10 {
        herald
            .post_sentry("event_alert", &event_alert(888, event))
            .await;
    }
    robot.wait_for(1, Duration::from_secs(5)).await;
    let receipt: Value = herald
        .post_sentry("issue", &issue_resolved(888))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        receipt["targets"],
        serde_json::json!(["oncall"]),
        "state changes are never folded"
    );
    let received = robot.wait_for(2, Duration::from_secs(10)).await;
    let resolved = text(&received[1]);
    assert!(resolved.contains("Resolved"), "{resolved}");
    assert!(resolved.contains("×9 more in the last"), "{resolved}");
    // The same resolve again (Sentry retrying) is a duplicate; a new alert after it is sent.
    let again: Value = herald
        .post_sentry("issue", &issue_resolved(888))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(robot.received().len(), 2);
    assert_eq!(
        herald.readiness().await["queued_jobs"],
        1,
        "only the window's (now empty) summary waits"
    );
}

#[tokio::test]
async fn a_burst_of_200_new_issues_reaches_the_group_in_digests_without_throttling() {
    let robot = FakeDingTalk::start(None).await;
    robot.enforce_limit(20, Duration::from_secs(600));
    let herald = Herald::start_with_targets(&robot_target(&robot));
    let started = Instant::now();
    let levels = ["fatal", "error", "warning", "error"];
    for issue in 0..200u64 {
        let body = issue_created(50_000 + issue, levels[issue as usize % levels.len()]);
        assert_eq!(herald.post_sentry("issue", &body).await.status(), 202);
    }
    herald.wait_until_drained(Duration::from_secs(75)).await;
    let elapsed = started.elapsed();
    let received = robot.received();
    assert_eq!(
        robot.throttled_answers(),
        0,
        "the robot was never throttled"
    );
    assert!(received.len() <= 20, "{} messages", received.len());
    let all_text: String = received.iter().map(text).collect();
    for issue in 0..200u64 {
        assert!(
            all_text.contains(&format!("burst issue {}", 50_000 + issue)),
            "issue {issue} was conveyed"
        );
    }
    assert!(elapsed < Duration::from_secs(70), "took {elapsed:?}");
    // A digest says how many of each level, most severe first, with a link per issue.
    let digest = received
        .iter()
        .map(text)
        .find(|t| t.contains("Sentry alerts"))
        .expect("a digest");
    let fatal = digest.find("🔥").unwrap();
    let warning = digest.find("🟠").unwrap();
    assert!(fatal < warning, "{digest}");
    assert!(
        digest.contains("](https://sentry.io/organizations/acme/issues/"),
        "{digest}"
    );
}

#[tokio::test]
async fn routes_choose_targets_and_mentions() {
    let payments = FakeDingTalk::start(None).await;
    let everyone = FakeDingTalk::start(None).await;
    let herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"payments\"\nkind = \"dingtalk\"\nurl = \"{}\"\n\
         [[targets]]\nname = \"everyone\"\nkind = \"dingtalk\"\nurl = \"{}\"\n\
         [[routes]]\ntargets = [\"payments\"]\nmatch = {{ project = [\"payments\"] }}\nmention_user_ids = [\"payments-owner\"]\ncontinue = true\n\
         [[routes]]\ntargets = [\"everyone\"]\nmatch = {{ min_level = \"error\" }}\nmention_all = [\"fatal\"]\n",
        payments.url(),
        everyone.url()
    ));
    let mut payment_issue: Value = serde_json::from_slice(&issue_created(1, "fatal")).unwrap();
    payment_issue["data"]["issue"]["project"]["slug"] = Value::String("payments".into());
    let receipt: Value = herald
        .post_sentry("issue", &serde_json::to_vec(&payment_issue).unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        receipt["targets"],
        serde_json::json!(["payments", "everyone"])
    );
    let receipt: Value = herald
        .post_sentry("issue", &issue_created(2, "warning"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["targets"], serde_json::json!([]));

    let to_payments = payments.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        to_payments[0].body["at"]["atUserIds"],
        serde_json::json!(["payments-owner"])
    );
    assert!(text(&to_payments[0]).contains("@payments-owner"));
    let to_everyone = everyone.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(to_everyone[0].body["at"]["isAtAll"], true);
    assert_eq!(
        to_everyone[0].body["at"]["atUserIds"],
        serde_json::json!([])
    );
}
