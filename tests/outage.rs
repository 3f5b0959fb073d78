//! A long downstream outage, compressed: the downstream answers 503, then hangs past the timeout,
//! then refuses connections; afterwards everything is delivered, each issue's messages in order.

mod common;

use common::downstream::FakeDownstream;
use common::{fixture, server_config, Herald};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn callback(resource: &str, action: &str, issue: u64, event: u64) -> Vec<u8> {
    let name = match (resource, action) {
        ("event_alert", _) => "event_alert-triggered.json",
        (_, "resolved") => "issue-resolved.json",
        _ => "issue-created.json",
    };
    let mut payload: Value = serde_json::from_slice(&fixture(name)).unwrap();
    payload["installation"]["uuid"] = Value::String("outage".into());
    if resource == "event_alert" {
        payload["data"]["event"]["issue_id"] = Value::String(issue.to_string());
        payload["data"]["event"]["event_id"] = Value::String(format!("{event:032x}"));
    } else {
        payload["data"]["issue"]["id"] = Value::String(issue.to_string());
    }
    serde_json::to_vec(&payload).unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_503s_hangs_and_refusals_everything_arrives_in_order() {
    let sink = FakeDownstream::start(503, "maintenance").await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // A compressed schedule: many quick retries instead of hours.
    let schedule = vec!["\"150ms\""; 60].join(", ");
    // The third phase refuses connections: the target points at the sink through a port nothing
    // listens on until a SIGHUP puts the sink's own address back.
    let config = |url: String| {
        format!(
            "{}\n[[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"{url}\"\ntimeout = \"300ms\"\nretry = [{schedule}]\n",
            server_config(&dir.path().join("data"))
        )
    };
    let herald = Herald::start_with(dir.clone(), &config(sink.url("/hook")));

    // 10 issues, each created, alerted, resolved: 30 messages.
    for issue in 1..=10u64 {
        for (resource, action) in [
            ("issue", "created"),
            ("event_alert", "triggered"),
            ("issue", "resolved"),
        ] {
            let response = herald
                .post_sentry(resource, &callback(resource, action, issue, issue))
                .await;
            assert_eq!(response.status(), 202);
        }
    }
    let mut rss = vec![rss_kib(herald.pid())];
    tokio::time::sleep(Duration::from_millis(1500)).await; // phase 1: 503
    rss.push(rss_kib(herald.pid()));
    sink.hang(Some(Duration::from_secs(2))); // phase 2: hangs past the timeout
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rss.push(rss_kib(herald.pid()));
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &herald.config_path,
        config(format!("http://127.0.0.1:{closed_port}/hook")),
    )
    .unwrap();
    herald.signal("HUP"); // phase 3: connection refused
    herald
        .wait_for_log("SIGHUP: config reloaded", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rss.push(rss_kib(herald.pid()));
    assert_eq!(
        herald.readiness().await["queued_jobs"],
        30,
        "nothing delivered, nothing lost"
    );

    // Recovery.
    sink.hang(None);
    sink.answer(200, "ok");
    std::fs::write(&herald.config_path, config(sink.url("/hook"))).unwrap();
    herald.signal("HUP");
    let ready = herald.wait_until_drained(Duration::from_secs(30)).await;
    assert_eq!(ready["dead_letters"], 0);
    rss.push(rss_kib(herald.pid()));

    // Every message arrived; each issue's in the order accepted.
    let mut by_issue: HashMap<String, Vec<String>> = HashMap::new();
    for request in sink.received() {
        let body = request.json();
        if let Some(issue) = body["alert"]["issue_id"].as_str() {
            let event = body["alert"]["event"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let events = by_issue.entry(issue.to_string()).or_default();
            if events.last() != Some(&event) {
                events.push(event);
            }
        }
    }
    assert_eq!(by_issue.len(), 10);
    for (issue, events) in &by_issue {
        // Attempts repeat during the outage; the order of first appearances is what matters.
        let mut first_seen: Vec<&String> = Vec::new();
        for event in events {
            if !first_seen.contains(&event) {
                first_seen.push(event);
            }
        }
        assert_eq!(
            first_seen,
            ["issue.created", "event_alert.triggered", "issue.resolved"],
            "issue {issue}: {events:?}"
        );
    }
    eprintln!("RSS (KiB) through the outage: {rss:?}");
    assert!(
        rss.iter().all(|kib| *kib < 200 * 1024),
        "memory stays bounded: {rss:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_downstream_is_probed_not_sent_every_alert() {
    let sink = FakeDownstream::start(503, "maintenance").await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let schedule = vec!["\"1s\""; 30].join(", ");
    let config = format!(
        "{}\n[[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"{}\"\nretry = [{schedule}]\n",
        server_config(&dir.path().join("data")),
        sink.url("/hook")
    );
    let herald = Herald::start_with(dir.clone(), &config);
    for issue in 1..=40u64 {
        let response = herald
            .post_sentry("issue", &callback("issue", "created", issue, issue))
            .await;
        assert_eq!(response.status(), 202);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let attempts_while_down = sink.received().len();
    // One probe at a time, a second or more apart: a handful, not one (or more) per alert.
    assert!(
        (1..=6).contains(&attempts_while_down),
        "{attempts_while_down} requests to a downstream answering 503"
    );

    sink.answer(200, "ok");
    let ready = herald.wait_until_drained(Duration::from_secs(30)).await;
    assert_eq!(ready["dead_letters"], 0);
    let mut delivered: Vec<String> = sink
        .received()
        .iter()
        .skip(attempts_while_down)
        .filter_map(|request| {
            request.json()["alert"]["issue_id"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    delivered.sort();
    delivered.dedup();
    assert_eq!(
        delivered.len(),
        40,
        "every alert arrived once the downstream was back"
    );
}
