//! Nothing answered 2xx is lost: callbacks accepted before a SIGKILL are all there after a restart.

mod common;

use common::dingtalk::{FakeDingTalk, Reply};
use common::{issue_created, Herald};
use herald::store::Store;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepted_callbacks_survive_sigkill() {
    // A robot that never answers: every job stays queued, one of them in flight.
    let robot = FakeDingTalk::start(None).await;
    robot.script((0..10).map(|_| Reply::Hang(Duration::from_secs(120))));
    let mut herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"robot\"\nkind = \"dingtalk\"\nurl = \"{}\"\ntimeout = \"120s\"\n",
        robot.url()
    ));
    // 200 callbacks, 32 at a time, so flushes are shared between concurrent requests.
    let mut accepted = HashSet::new();
    for batch in (0..200).collect::<Vec<_>>().chunks(32) {
        let posts = batch.iter().map(|&n| {
            let herald = &herald;
            async move {
                let response = herald
                    .post_sentry("issue", &issue_created(5_000_000 + n))
                    .await;
                assert_eq!(response.status(), 202);
                let receipt: Value = response.json().await.unwrap();
                receipt["issue_id"].as_str().unwrap().to_string()
            }
        });
        for issue in futures::future::join_all(posts).await {
            accepted.insert(issue);
        }
    }
    assert_eq!(accepted.len(), 200);

    herald.kill();
    let restarted = herald.restart();
    let ready = restarted.readiness().await;
    assert_eq!(ready["alerts"], 200, "{ready}");
    assert_eq!(ready["queued_jobs"], 200, "{ready}");
    restarted
        .wait_for_log("queued_jobs=200", Duration::from_secs(10))
        .await;
    drop(restarted);

    // Every accepted issue is there, each with its job.
    let store = Store::open(&herald.data_dir()).unwrap();
    let stored: HashSet<String> = store
        .alerts()
        .map(|a| a.unwrap().alert.issue_id.unwrap())
        .collect();
    assert_eq!(stored, accepted);
    let jobs: Vec<_> = store.queued_jobs().map(|j| j.unwrap()).collect();
    assert_eq!(jobs.len(), 200);
    assert!(jobs
        .iter()
        .all(|j| j.target == "robot" && j.attempts.is_empty()));
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let mut herald = Herald::start();
    assert_eq!(
        herald
            .post_sentry("issue", &issue_created(5_000_001))
            .await
            .status(),
        202
    );
    let status = herald.terminate();
    assert!(status.success(), "{status:?}");
    herald
        .wait_for_log("everything accepted is on disk", Duration::from_secs(10))
        .await;
}
