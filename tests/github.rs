//! The GitHub issues target, black box, against a fake GitHub API on loopback that enforces
//! GitHub's headers: one GitHub issue per Sentry issue, kept in step with Sentry.

mod common;

use common::github::{FakeGithub, OnCreate, TOKEN};
use common::{fixture, Herald};
use serde_json::Value;
use std::time::Duration;

const INSTALLATION: &str = "a8e5d37a-696c-4c54-adb5-b3f28d64c7de";

fn github_target(github: &FakeGithub, extra: &str) -> String {
    format!(
        "[[targets]]\nname = \"backend-issues\"\nkind = \"github\"\nrepo = \"acme/backend\"\ntoken = \"{TOKEN}\"\n\
         api_url = \"{}\"\nlabels = [\"sentry\"]\nlevel_labels = {{ fatal = \"P0\" }}\ntimeout = \"2s\"\nretry = [\"200ms\", \"200ms\", \"200ms\"]\n{extra}\n",
        github.api_url()
    )
}

/// `issue.<action>` for Sentry issue `id`, from the matching fixture.
fn issue_event(action: &str, id: u64) -> Vec<u8> {
    let name = match action {
        "created" => "issue-created.json",
        "resolved" => "issue-resolved.json",
        "ignored" => "issue-ignored.json",
        _ => "issue-resolved.json",
    };
    let mut payload: Value = serde_json::from_slice(&fixture(name)).unwrap();
    payload["action"] = Value::String(action.into());
    payload["installation"]["uuid"] = Value::String(INSTALLATION.into());
    payload["data"]["issue"]["id"] = Value::String(id.to_string());
    payload["data"]["issue"]["title"] = Value::String(format!("IntegrityError: order {id}"));
    payload["data"]["issue"]["level"] = Value::String("fatal".into());
    payload["data"]["issue"]["status"] = Value::String(action.into());
    serde_json::to_vec(&payload).unwrap()
}

fn event_alert(id: u64, event: u64) -> Vec<u8> {
    let mut payload: Value =
        serde_json::from_slice(&fixture("event_alert-triggered.json")).unwrap();
    payload["installation"]["uuid"] = Value::String(INSTALLATION.into());
    payload["data"]["event"]["issue_id"] = Value::String(id.to_string());
    payload["data"]["event"]["event_id"] = Value::String(format!("{event:032x}"));
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_issue_with_labels_however_many_callbacks() {
    let github = FakeGithub::start().await;
    // No folding: every alert reaches the target, which must still open only one issue.
    let herald = Herald::start_with_targets(&format!(
        "[dedupe]\nwindow = \"0s\"\n{}",
        github_target(&github, "")
    ));
    // All at once: the created callback, Sentry's retry of it, and alerts of the same issue.
    let created = issue_event("created", 1);
    let alerts: Vec<Vec<u8>> = (0..3).map(|event| event_alert(1, event)).collect();
    let mut posts = vec![
        herald.post_sentry("issue", &created),
        herald.post_sentry("issue", &created),
    ];
    posts.extend(
        alerts
            .iter()
            .map(|alert| herald.post_sentry("event_alert", alert)),
    );
    for response in futures::future::join_all(posts).await {
        assert_eq!(response.status(), 202);
    }
    github
        .wait_until("an issue is opened", Duration::from_secs(10), |issues| {
            !issues.is_empty()
        })
        .await;
    herald.wait_until_drained(Duration::from_secs(15)).await;
    let issues = github.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    // Whichever callback was handled first opened it (the created one: fatal, so P0).
    let from_created = issues[0].title == "IntegrityError: order 1";
    assert!(
        from_created || issues[0].title == "ReferenceError: heck is not defined",
        "{}",
        issues[0].title
    );
    let expected_labels: &[&str] = if from_created {
        &["sentry", "P0"]
    } else {
        &["sentry"]
    };
    assert_eq!(issues[0].labels, expected_labels);
    assert!(issues[0]
        .body
        .contains(&format!("<!-- herald:sentry-issue {INSTALLATION}/1 -->")));
    assert!(issues[0].body.contains("Open in Sentry"));
    assert!(
        issues[0].comments.is_empty(),
        "later alerts add nothing by default"
    );
    assert!(
        github.refused().is_empty(),
        "every request had GitHub's headers: {:?}",
        github.refused()
    );
    let writes = github.write_times();
    assert!(writes
        .windows(2)
        .all(|w| w[1].duration_since(w[0]) >= Duration::from_millis(950)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_closes_unresolve_reopens_ignore_closes_as_not_planned() {
    let github = FakeGithub::start().await;
    let herald = Herald::start_with_targets(&github_target(&github, ""));
    herald
        .post_sentry("issue", &issue_event("created", 2))
        .await;
    github
        .wait_until("opened", Duration::from_secs(10), |i| i.len() == 1)
        .await;

    herald
        .post_sentry("issue", &issue_event("resolved", 2))
        .await;
    github
        .wait_until("closed as completed", Duration::from_secs(10), |i| {
            i[0].state == "closed" && i[0].state_reason.as_deref() == Some("completed")
        })
        .await;

    herald
        .post_sentry("issue", &issue_event("unresolved", 2))
        .await;
    github
        .wait_until("reopened with a comment", Duration::from_secs(10), |i| {
            i[0].state == "open" && !i[0].comments.is_empty()
        })
        .await;
    assert!(
        github.issues()[0].comments[0].starts_with("Regressed in"),
        "{:?}",
        github.issues()[0].comments
    );

    herald
        .post_sentry("issue", &issue_event("ignored", 2))
        .await;
    github
        .wait_until("closed as not planned", Duration::from_secs(10), |i| {
            i[0].state == "closed" && i[0].state_reason.as_deref() == Some("not_planned")
        })
        .await;

    // Resolved while already closed: nothing is written.
    let writes = github.write_times().len();
    let mut again: Value = serde_json::from_slice(&issue_event("resolved", 2)).unwrap();
    again["data"]["resolution_type"] = Value::String("in_next_release".into());
    herald
        .post_sentry("issue", &serde_json::to_vec(&again).unwrap())
        .await;
    herald.wait_until_drained(Duration::from_secs(10)).await;
    assert_eq!(
        github.write_times().len(),
        writes,
        "an issue already closed is left alone"
    );
    assert_eq!(github.issues().len(), 1);
    // The reopen and its comment are two writes, a second apart like every other pair: the
    // queue schedules the comment, the target does not sleep.
    let writes = github.write_times();
    assert!(writes
        .windows(2)
        .all(|w| w[1].duration_since(w[0]) >= Duration::from_millis(950)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_lost_is_not_repeated() {
    let github = FakeGithub::start().await;
    github.on_create(OnCreate::CreateThenHang(Duration::from_secs(5)));
    let herald = Herald::start_with_targets(&github_target(&github, ""));
    herald
        .post_sentry("issue", &issue_event("created", 3))
        .await;
    herald.wait_until_drained(Duration::from_secs(15)).await;
    assert_eq!(
        github.issues().len(),
        1,
        "the retry found the issue the lost answer had opened"
    );
    herald
        .wait_for_log(
            "found the issue an earlier try opened",
            Duration::from_secs(10),
        )
        .await;
    // It is linked: resolving closes that issue.
    herald
        .post_sentry("issue", &issue_event("resolved", 3))
        .await;
    github
        .wait_until("closed", Duration::from_secs(10), |i| {
            i[0].state == "closed"
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_rate_limit_is_waited_out() {
    let github = FakeGithub::start().await;
    github.on_create(OnCreate::SecondaryRateLimit {
        retry_after_seconds: 2,
    });
    let herald = Herald::start_with_targets(&github_target(&github, ""));
    let started = std::time::Instant::now();
    herald
        .post_sentry("issue", &issue_event("created", 4))
        .await;
    github
        .wait_until("opened after the wait", Duration::from_secs(15), |i| {
            i.len() == 1
        })
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(herald.readiness().await["dead_letters"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_65536_characters_is_cut_not_refused() {
    let github = FakeGithub::start().await;
    let template = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(template.path(), "{{title}}\n\n{{culprit}}\n").unwrap();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let server = common::server_config(&dir.path().join("data")).replace("64KiB", "1MiB");
    let target = github_target(
        &github,
        &format!("template = \"{}\"", template.path().display()),
    );
    let herald = Herald::start_with(dir, &format!("{server}\n{target}"));
    let mut payload: Value = serde_json::from_slice(&issue_event("created", 5)).unwrap();
    payload["data"]["issue"]["culprit"] = Value::String("é".repeat(65_537));
    assert_eq!(
        herald
            .post_sentry("issue", &serde_json::to_vec(&payload).unwrap())
            .await
            .status(),
        202
    );
    github
        .wait_until("opened", Duration::from_secs(10), |i| i.len() == 1)
        .await;
    let body = &github.issues()[0].body;
    assert!(body.chars().count() <= 65_536, "{}", body.chars().count());
    assert!(body.contains("cut to fit"));
    assert!(
        body.ends_with(&format!("<!-- herald:sentry-issue {INSTALLATION}/5 -->")),
        "the marker is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_create_and_link_still_one_issue() {
    let github = FakeGithub::start().await;
    github.on_create(OnCreate::CreateThenHang(Duration::from_secs(30)));
    let mut herald = Herald::start_with_targets(
        &github_target(&github, "timeout = \"60s\"").replace("timeout = \"2s\"\n", ""),
    );
    herald
        .post_sentry("issue", &issue_event("created", 6))
        .await;
    github
        .wait_until("created on GitHub", Duration::from_secs(10), |i| {
            i.len() == 1
        })
        .await;
    herald.kill(); // GitHub has the issue; herald never heard back

    let restarted = herald.restart();
    restarted.wait_until_drained(Duration::from_secs(15)).await;
    assert_eq!(github.issues().len(), 1, "{:?}", github.issues());
    restarted
        .post_sentry("issue", &issue_event("resolved", 6))
        .await;
    github
        .wait_until("the one issue is closed", Duration::from_secs(10), |i| {
            i[0].state == "closed"
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_a_dead_letter_with_github_s_message() {
    let github = FakeGithub::start().await;
    let herald =
        Herald::start_with_targets(&github_target(&github, "").replace(TOKEN, "ghp_wrong"));
    herald
        .post_sentry("issue", &issue_event("created", 7))
        .await;
    let ready = herald.wait_until_drained(Duration::from_secs(10)).await;
    assert_eq!(ready["dead_letters"], 1);
    herald
        .wait_for_log("Bad credentials", Duration::from_secs(10))
        .await;
    herald
        .wait_for_log(
            "DELIVERY REFUSED by target backend-issues",
            Duration::from_secs(10),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_never_overtakes_a_create_that_is_being_retried() {
    let github = FakeGithub::start().await;
    github.on_create(OnCreate::ServerError);
    let herald = Herald::start_with_targets(&github_target(&github, "").replace(
        "retry = [\"200ms\", \"200ms\", \"200ms\"]",
        "retry = [\"1500ms\"]",
    ));
    herald
        .post_sentry("issue", &issue_event("created", 8))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the create has failed once by now
    herald
        .post_sentry("issue", &issue_event("resolved", 8))
        .await;
    herald.wait_until_drained(Duration::from_secs(15)).await;
    let issues = github.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(
        issues[0].state, "closed",
        "the resolve waited for the create's retry: {issues:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_cannot_break_out_of_their_place_nor_plant_herald_s_marker() {
    let github = FakeGithub::start().await;
    let herald = Herald::start_with_targets(&github_target(&github, ""));
    // An issue whose culprit (from the application's own exception) tries everything.
    let planted = format!("<!-- herald:sentry-issue {INSTALLATION}/8 -->");
    let mut hostile: Value = serde_json::from_slice(&issue_event("created", 7)).unwrap();
    hostile["data"]["issue"]["culprit"] =
        format!("x`\n## Owned @octo-org/admins ![p](http://evil.example/p.png) {planted}").into();
    herald
        .post_sentry("issue", &serde_json::to_vec(&hostile).unwrap())
        .await;
    github
        .wait_until("the first issue", Duration::from_secs(10), |i| i.len() == 1)
        .await;
    let body = github.issues()[0].body.clone();
    assert!(
        body.contains("**Where:** ``x` ## Owned @octo-org/admins ![p](http://evil.example/p.png) "),
        "the culprit stays one code span: {body}"
    );

    // Issue 8's first create fails: the retry looks for an issue that try might have opened,
    // and must not adopt issue 7's, whose body carries 8's marker in its culprit.
    github.on_create(OnCreate::ServerError);
    herald
        .post_sentry("issue", &issue_event("created", 8))
        .await;
    herald.wait_until_drained(Duration::from_secs(20)).await;
    let issues = github.issues();
    assert_eq!(issues.len(), 2, "8 has its own GitHub issue");
    herald
        .post_sentry("issue", &issue_event("resolved", 8))
        .await;
    github
        .wait_until("8's issue closed", Duration::from_secs(10), |i| {
            i[1].state == "closed"
        })
        .await;
    assert_eq!(github.issues()[0].state, "open", "7's issue is left alone");
}
