//! herald's own issues for SDK events, black box: counted and listed, resolved (now, in the next
//! release), regressing only on a newer release, muted, reopened — through the admin API, the CLI
//! and a GitHub issue closed by a person — each change told to a fake DingTalk robot as it should
//! be, and nothing else told.

mod common;

use common::console;
use common::dingtalk::FakeDingTalk;
use common::github::{FakeGithub, TOKEN};
use common::Herald;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const ADMIN: &str = "admin-token-for-tests";
const HOOK_SECRET: &str = "github-webhook-secret";

fn start(robot: &FakeDingTalk, extra: &str) -> Herald {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
admin_token = "{ADMIN}"
public_url = "https://herald.example.com"

[dedupe]
window = "1s"

[[sdk.projects]]
id = 42
name = "shop"
public_keys = ["{KEY}"]

[[targets]]
name = "oncall"
kind = "dingtalk"
url = "{url}"
{extra}
"#,
        data = dir.path().join("data").display(),
        url = robot.url(),
    );
    Herald::start_with(dir, &config)
}

/// An event of the checkout bug (one issue whatever its id, line or value) from `release`.
fn checkout_error(event_id: &str, release: &str) -> Vec<u8> {
    let event = json!({
        "event_id": event_id,
        "level": "error",
        "platform": "python",
        "release": release,
        "environment": "production",
        "server_name": "web-1",
        "exception": {"values": [{
            "type": "KeyError",
            "value": format!("'sku-{event_id}'"),
            "module": null,
            "stacktrace": {"frames": [
                {"function": "dispatch", "module": "flask.app", "in_app": false, "lineno": 880},
                {"function": "checkout", "module": "shop.cart", "in_app": true,
                 "lineno": event_id.len() as u64 + 10}
            ]}
        }]}
    });
    let header = json!({"event_id": event_id, "sent_at": "2026-12-01T10:00:00Z"});
    let item = json!({"type": "event", "content_type": "application/json"});
    format!("{header}\n{item}\n{event}\n").into_bytes()
}

async fn send(herald: &Herald, envelope: Vec<u8>) {
    let response = herald
        .client()
        .post(herald.url("/api/42/envelope/"))
        .header(
            "X-Sentry-Auth",
            format!("Sentry sentry_key={KEY}, sentry_version=7"),
        )
        .body(envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn admin(herald: &Herald, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = herald
        .client()
        .request(method.parse().unwrap(), herald.url(path))
        .bearer_auth(ADMIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn the_issue(herald: &Herald) -> Value {
    let (status, listed) = admin(herald, "GET", "/api/issues?project=shop", None).await;
    assert_eq!(status, 200, "{listed}");
    let issues = listed["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "one bug, one issue: {listed}");
    issues[0].clone()
}

/// Waits until the robot got `count` messages, then a little more to see that no more come.
async fn told(robot: &FakeDingTalk, herald: &Herald, count: usize) -> Vec<String> {
    robot.wait_for(count, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(10)).await;
    let texts = robot.texts();
    assert_eq!(texts.len(), count, "{texts:#?}");
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_is_counted_resolved_regresses_on_a_newer_release_and_is_muted() {
    let robot = FakeDingTalk::start(None).await;
    let herald = start(&robot, "");

    send(&herald, checkout_error("a1", "shop@1.0.0")).await;
    send(&herald, checkout_error("a1", "shop@1.0.0")).await; // the same event again
    let texts = told(&robot, &herald, 1).await;
    assert!(
        texts[0].contains("New issue") && texts[0].contains("KeyError"),
        "{texts:#?}"
    );
    let issue = the_issue(&herald).await;
    let id = issue["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("42-h1-"), "{issue}");
    assert_eq!(
        issue["count"], 1,
        "a duplicate event id is not counted: {issue}"
    );
    assert_eq!(issue["status"], "open");
    assert_eq!(issue["grouping"], "h1");
    assert!(
        texts[0].contains(&format!("https://herald.example.com/ui/issues/{id}")),
        "{texts:#?}"
    );

    // Another event (another id, value and line): the same issue, counted.
    send(&herald, checkout_error("b22", "shop@1.0.0")).await;
    let texts = told(&robot, &herald, 2).await;
    assert!(
        texts[1].contains("1 more"),
        "the window's count: {texts:#?}"
    );
    let issue = the_issue(&herald).await;
    assert_eq!(
        (issue["count"].as_u64(), issue["releases"].clone()),
        (Some(2), json!(["shop@1.0.0"]))
    );

    // Resolved in the next release: told once; an event of the same release says nothing.
    let (status, resolved) = admin(
        &herald,
        "POST",
        &format!("/api/issues/{id}/resolve"),
        Some(json!({"in_next_release": true})),
    )
    .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "resolved_in_next_release");
    assert_eq!(resolved["resolved_after"], "shop@1.0.0");
    assert_eq!(resolved["told"], json!(["oncall"]));
    let texts = told(&robot, &herald, 3).await;
    assert!(texts[2].contains("Resolved"), "{texts:#?}");
    send(&herald, checkout_error("c333", "shop@1.0.0")).await;
    let texts = told(&robot, &herald, 3).await;
    assert_eq!(texts.len(), 3);
    let issue = the_issue(&herald).await;
    assert_eq!(
        (issue["status"].as_str(), issue["count"].as_u64()),
        (Some("resolved_in_next_release"), Some(3))
    );

    // A newer release: a regression, told, and the issue is open again.
    send(&herald, checkout_error("d4444", "shop@1.1.0")).await;
    let texts = told(&robot, &herald, 4).await;
    assert!(texts[3].contains("Regression"), "{texts:#?}");
    let issue = the_issue(&herald).await;
    assert_eq!(
        (issue["status"].as_str(), issue["regressions"].as_u64()),
        (Some("open"), Some(1))
    );

    // Muted for an hour: counted, nothing said; listed as muted; reopened.
    let (status, muted) = admin(
        &herald,
        "POST",
        &format!("/api/issues/{id}/mute"),
        Some(json!({"for": "1h"})),
    )
    .await;
    assert_eq!(
        (status, muted["status"].as_str()),
        (200, Some("muted")),
        "{muted}"
    );
    assert!(muted["muted_until"].is_string());
    send(&herald, checkout_error("e55555", "shop@1.1.0")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let texts = told(&robot, &herald, 4).await;
    assert_eq!(texts.len(), 4);
    let (_, listed) = admin(&herald, "GET", "/api/issues?status=muted", None).await;
    assert_eq!(listed["issues"][0]["count"], 5, "{listed}");
    let (status, reopened) =
        admin(&herald, "POST", &format!("/api/issues/{id}/reopen"), None).await;
    assert_eq!((status, reopened["status"].as_str()), (200, Some("open")));
    let (_, listed) = admin(&herald, "GET", "/api/issues?status=muted", None).await;
    assert_eq!(listed["issues"], json!([]));

    // The CLI reaches the running herald through the admin API.
    let line = issues_cli(&herald, &["list"]);
    assert!(
        line.starts_with(&format!("{id}\topen\t5\t")) && line.contains("KeyError"),
        "{line}"
    );
    let answer = issues_cli(&herald, &["resolve", &id, "--release", "shop@2.0.0"]);
    assert!(answer.contains("resolved_in_release"), "{answer}");
    told(&robot, &herald, 5).await;

    // What the admin API refuses, and says why.
    for (method, path, body, expected) in [
        (
            "POST",
            "/api/issues/42-h1-0000000000000000/resolve",
            None,
            404,
        ),
        (
            "POST",
            &format!("/api/issues/{id}/resolve") as &str,
            Some(json!({"release": "1", "in_next_release": true})),
            400,
        ),
        (
            "POST",
            &format!("/api/issues/{id}/mute"),
            Some(json!({"for": "soon"})),
            400,
        ),
        (
            "POST",
            &format!("/api/issues/{id}/mute"),
            Some(json!({"forever": true})),
            400,
        ),
        ("GET", "/api/issues?status=closed", None, 400),
    ] {
        let (status, answer) = admin(&herald, method, path, body).await;
        assert_eq!(status, expected, "{path}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    let anonymous = herald
        .client()
        .get(herald.url("/api/issues"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// `herald issues ARGS` against the running herald; its stdout.
fn issues_cli(herald: &Herald, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("issues")
        .args(args)
        .arg("--config")
        .arg(&herald.config_path)
        .args(["--url", &herald.url("")])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A webhook body as GitHub signs it with the repository's secret.
fn github_signed(body: &Value) -> (String, Vec<u8>) {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = format!("sha256={}", common::sign(HOOK_SECRET, &bytes));
    (signature, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_its_github_issue_resolves_an_issue_and_a_regression_reopens_it() {
    let robot = FakeDingTalk::start(None).await;
    let github = FakeGithub::start().await;
    let herald = start(
        &robot,
        &format!(
            "\n[[targets]]\nname = \"issues\"\nkind = \"github\"\nrepo = \"acme/shop\"\ntoken = \"{TOKEN}\"\n\
             api_url = \"{}\"\nwebhook_secret = \"{HOOK_SECRET}\"\nretry = [\"200ms\"]\n",
            github.api_url()
        ),
    );
    send(&herald, checkout_error("a1", "shop@1.0.0")).await;
    github
        .wait_until("the issue is opened", Duration::from_secs(10), |issues| {
            issues.len() == 1
        })
        .await;
    let id = the_issue(&herald).await["id"].as_str().unwrap().to_string();

    let hook = |event: &str, body: Value, signature: Option<String>| {
        let (good, bytes) = github_signed(&body);
        herald
            .client()
            .post(herald.url("/hooks/github"))
            .header("X-GitHub-Event", event)
            .header("X-Hub-Signature-256", signature.unwrap_or(good))
            .body(bytes)
            .send()
    };
    // A person closes it on GitHub: herald's issue is resolved and the group told.
    let closed = github.close(1, "completed");
    let payload = json!({
        "action": "closed",
        "issue": {"number": 1, "body": closed.body, "state": "closed", "state_reason": "completed"},
        "repository": {"full_name": "acme/shop"}
    });
    let wrong = hook(
        "issues",
        payload.clone(),
        Some(format!("sha256={}", "0".repeat(64))),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        the_issue(&herald).await["status"],
        "open",
        "a forged hook changes nothing"
    );
    let answer = hook("issues", payload, None).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["status"], "resolved", "{answer}");
    let texts = told(&robot, &herald, 2).await;
    assert!(texts[1].contains("Resolved"), "{texts:#?}");
    assert_eq!(github.issues()[0].state, "closed");

    // Other events and other repositories are acknowledged and change nothing.
    let ping = hook("ping", json!({"zen": "Keep it logically awesome."}), None)
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    let elsewhere = json!({"action": "reopened", "issue": {"number": 1, "body": github.issues()[0].body},
                           "repository": {"full_name": "acme/other"}});
    let answer: Value = hook("issues", elsewhere, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["ignored"].is_string(), "{answer}");
    assert_eq!(the_issue(&herald).await["status"], "resolved");

    // The bug comes back: a regression, told, and the GitHub issue reopened.
    send(&herald, checkout_error("b2", "shop@1.0.1")).await;
    github
        .wait_until("the issue is reopened", Duration::from_secs(10), |issues| {
            issues[0].state == "open"
        })
        .await;
    let texts = told(&robot, &herald, 3).await;
    assert!(texts[2].contains("Regression"), "{texts:#?}");
    assert_eq!(github.issues().len(), 1, "never a second GitHub issue");
    assert_eq!(the_issue(&herald).await["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_an_issue_and_resolves_it() {
    let robot = FakeDingTalk::start(None).await;
    let herald = start(&robot, "");
    send(&herald, checkout_error("a1", "shop@1.0.0")).await;
    let texts = told(&robot, &herald, 1).await;
    let id = the_issue(&herald).await["id"].as_str().unwrap().to_string();
    // The message links to the issue's console page.
    assert!(
        texts[0].contains(&format!("https://herald.example.com/ui/issues/{id}")),
        "{texts:#?}"
    );
    let cookie = console::session(&herald, ADMIN).await;
    let (status, list) = console::get(&herald, &cookie, "/ui/issues").await;
    assert_eq!(status, 200);
    assert!(
        list.contains(&format!("/ui/issues/{id}")) && list.contains("KeyError"),
        "{list}"
    );
    let (status, page) = console::get(&herald, &cookie, &format!("/ui/issues/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("shop@1.0.0") && page.contains("Resolve in the next release"),
        "{page}"
    );
    let token = console::form_token(&page);
    let (status, _) = console::post(
        &herald,
        &cookie,
        &format!("/ui/issues/{id}/resolve"),
        &[("form_token", &token), ("how", "next_release")],
        &[],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        the_issue(&herald).await["status"],
        "resolved_in_next_release"
    );
    let texts = told(&robot, &herald, 2).await;
    assert!(texts[1].contains("Resolved"), "{texts:#?}");
    // Without the form token, nothing changes.
    let (status, _) = console::post(
        &herald,
        &cookie,
        &format!("/ui/issues/{id}/reopen"),
        &[],
        &[],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        the_issue(&herald).await["status"],
        "resolved_in_next_release"
    );
    let (status, _) = console::get(&herald, &cookie, "/ui/issues/42-h1-0000000000000000").await;
    assert_eq!(status, 404);
}
