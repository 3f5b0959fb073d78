//! Crash loop: a steady stream of callbacks while herald is SIGKILLed at random moments and
//! restarted; at the end, every callback herald answered 2xx has reached the downstream.
//! CI runs a short form (5 kills); `HERALD_CRASH_LOOPS=20 cargo test --test crash_loop` runs more.

mod common;

use common::downstream::FakeDownstream;
use common::{fixture, server_config, Herald};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn issue(n: u64) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture("issue-created.json")).unwrap();
    payload["data"]["issue"]["id"] = Value::String(n.to_string());
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_answered_2xx_is_lost_across_sigkills() {
    let loops: usize = std::env::var("HERALD_CRASH_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let sink = FakeDownstream::start(200, "ok").await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "{}\n[[targets]]\nname = \"sink\"\nkind = \"webhook\"\nurl = \"{}\"\nretry = [\"100ms\", \"200ms\", \"500ms\", \"1s\", \"1s\", \"1s\"]\n",
        server_config(&dir.path().join("data")),
        sink.url("/sentry")
    );
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let next_issue = Arc::new(AtomicU64::new(1));

    for round in 0..loops {
        let mut herald = Herald::start_with(dir.clone(), &config);
        let running = Arc::new(AtomicBool::new(true));
        let posters: Vec<_> = (0..4)
            .map(|_| {
                let (accepted, next_issue, running) =
                    (accepted.clone(), next_issue.clone(), running.clone());
                let url = herald.url("/hooks/sentry");
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    while running.load(Ordering::Relaxed) {
                        let n = next_issue.fetch_add(1, Ordering::Relaxed);
                        let body = issue(n);
                        let response = client
                            .post(&url)
                            .header("Sentry-Hook-Resource", "issue")
                            .header("Sentry-Hook-Signature", common::sign(common::SECRET, &body))
                            .body(body)
                            .send()
                            .await;
                        if response.is_ok_and(|r| r.status().as_u16() == 202) {
                            accepted.lock().unwrap().insert(n.to_string());
                        }
                    }
                })
            })
            .collect();
        let pause = 150 + fastrand::u64(0..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        herald.kill();
        running.store(false, Ordering::Relaxed);
        for poster in posters {
            let _ = poster.await;
        }
        eprintln!(
            "round {round}: killed after {pause} ms; {} accepted so far",
            accepted.lock().unwrap().len()
        );
    }

    let herald = Herald::start_with(dir.clone(), &config);
    herald.wait_until_drained(Duration::from_secs(60)).await;
    let accepted = accepted.lock().unwrap().clone();
    let mut received: HashMap<String, usize> = HashMap::new();
    for request in sink.received() {
        if let Some(issue) = request.json()["alert"]["issue_id"].as_str() {
            *received.entry(issue.to_string()).or_default() += 1;
        }
    }
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|issue| !received.contains_key(*issue))
        .collect();
    let duplicates: usize = received.values().map(|count| count - 1).sum();
    eprintln!(
        "{} callbacks answered 2xx over {loops} SIGKILLs; {} reached the sink; {} lost; {duplicates} sent twice (at-least-once)",
        accepted.len(),
        received.len(),
        lost.len()
    );
    assert!(
        accepted.len() > 10 * loops,
        "the stream kept flowing: {}",
        accepted.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(herald.readiness().await["dead_letters"], 0);
}
