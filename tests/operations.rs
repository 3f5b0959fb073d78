//! Operations, black box: metrics, the admin API, dead-letter replay, graceful shutdown, config
//! reload on SIGHUP, JSON logs, and no secret anywhere an operator looks.

mod common;

use common::dingtalk::{FakeDingTalk, Reply};
use common::{fixture, server_config, Herald, SECRET};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const ADMIN_TOKEN: &str = "admin-token-4f9c2e71";

fn issue(n: u64) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture("issue-created.json")).unwrap();
    payload["data"]["issue"]["id"] = Value::String(n.to_string());
    payload["data"]["issue"]["title"] = Value::String(format!("OperationalError: case {n}"));
    serde_json::to_vec(&payload).unwrap()
}

fn robot(name: &str, robot: &FakeDingTalk, extra: &str) -> String {
    format!(
        "[[targets]]\nname = \"{name}\"\nkind = \"dingtalk\"\nurl = \"{}\"\n{extra}\n",
        robot.url()
    )
}

/// herald with the admin API on (its token set) and `rest` for targets and routes.
fn start_with_admin(rest: &str) -> Herald {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let server = server_config(&dir.path().join("data")).replace(
        "[server]\n",
        &format!("[server]\nadmin_token = \"{ADMIN_TOKEN}\"\n"),
    );
    Herald::start_with(dir, &format!("{server}\n{rest}"))
}

async fn admin(herald: &Herald, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = herald
        .client()
        .request(method.parse().unwrap(), herald.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn metrics_move_with_callbacks_deliveries_and_failures() {
    let oncall = FakeDingTalk::start(None).await;
    oncall.script([Reply::Http(500)]);
    let herald = Herald::start_with_targets(&robot("oncall", &oncall, "retry = [\"100ms\"]"));
    let body = issue(1);
    assert_eq!(herald.post_sentry("issue", &body).await.status(), 202);
    assert_eq!(
        herald.post_sentry("issue", &body).await.status(),
        202,
        "a duplicate"
    );
    let forged = herald
        .post_sentry_signed_with("not-the-secret", &body)
        .await;
    assert_eq!(forged.status(), 401);
    oncall.wait_for(2, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;

    let text = herald.metrics().await;
    for line in [
        "herald_webhooks_received_total{resource=\"issue\",action=\"created\",outcome=\"accepted\"} 1",
        "herald_webhooks_received_total{resource=\"issue\",action=\"created\",outcome=\"duplicate\"} 1",
        "herald_webhooks_received_total{resource=\"unknown\",action=\"unknown\",outcome=\"unauthorized\"} 1",
        "herald_notifications_total{target=\"oncall\",kind=\"dingtalk\"} 2",
        "herald_notifications_failed_total{target=\"oncall\",kind=\"dingtalk\",reason=\"server_error\"} 1",
        "herald_notification_latency_seconds_count{target=\"oncall\"} 2",
        "herald_queue_depth{target=\"oncall\"} 0",
        "herald_dead_letters{target=\"oncall\"} 0",
        "herald_deduplicated_total 1",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    assert!(text.contains("herald_store_size_bytes "), "{text}");
    // The callback's writes were made durable by a group commit, which took some time.
    assert!(herald.metric("herald_store_commits_total").await >= 1.0);
    assert!(herald.metric("herald_store_commit_seconds_total").await > 0.0);
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_is_off_without_one() {
    let off = Herald::start();
    assert_eq!(
        admin(&off, "GET", "/api/targets", Some(ADMIN_TOKEN))
            .await
            .0,
        404
    );

    let herald = start_with_admin("[[targets]]\nname = \"stdout\"\nkind = \"console\"\n");
    assert_eq!(admin(&herald, "GET", "/api/targets", None).await.0, 401);
    assert_eq!(
        admin(&herald, "GET", "/api/targets", Some("admin-token-4f9c2e7"))
            .await
            .0,
        401
    );
    assert_eq!(
        admin(
            &herald,
            "POST",
            "/api/dead-letters/replay?target=stdout",
            Some("wrong")
        )
        .await
        .0,
        401
    );
    let (status, body) = admin(&herald, "GET", "/api/targets", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["targets"][0]["name"], "stdout");
    assert_eq!(body["targets"][0]["kind"], "console");
    // The scheme is case-insensitive.
    let lower = herald
        .client()
        .get(herald.url("/api/targets"))
        .header("Authorization", format!("bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);
}

#[tokio::test]
async fn a_dead_letter_is_listed_and_delivered_after_replay() {
    let oncall = FakeDingTalk::start(None).await;
    oncall.script([Reply::Errcode(310000)]);
    let herald = start_with_admin(&robot("oncall", &oncall, ""));
    herald.post_sentry("issue", &issue(7)).await;
    oncall.wait_for(1, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;

    let (status, body) = admin(&herald, "GET", "/api/dead-letters", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    let dead = &body["dead_letters"][0];
    assert_eq!(dead["target"], "oncall");
    assert_eq!(dead["title"], "OperationalError: case 7");
    assert_eq!(dead["issue_id"], "7");
    assert_eq!(
        dead["last_answer"], "errcode 310000: scripted error 310000",
        "errcode and message as DingTalk said them"
    );
    let (_, targets) = admin(&herald, "GET", "/api/targets", Some(ADMIN_TOKEN)).await;
    assert_eq!(targets["targets"][0]["dead_letters"], 1);
    assert!(targets["targets"][0]["last_error"]["answer"]
        .as_str()
        .unwrap()
        .contains("310000"));

    // The CLI reaches the running herald through the admin API.
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "dead-letters",
            "list",
            "--config",
            &herald.config_path.display().to_string(),
            "--url",
            &herald.url(""),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && stdout.contains("oncall") && stdout.contains("errcode 310000"),
        "{stdout}"
    );

    // The robot works again: replaying delivers it.
    let id = dead["id"].as_str().unwrap();
    let (status, replayed) = admin(
        &herald,
        "POST",
        &format!("/api/dead-letters/{id}/replay"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{replayed}");
    let received = oncall.wait_for(2, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(received[1].answered_errcode, Some(0));
    assert_eq!(
        admin(&herald, "GET", "/api/dead-letters", Some(ADMIN_TOKEN))
            .await
            .1["dead_letters"],
        serde_json::json!([])
    );
    assert_eq!(
        admin(
            &herald,
            "POST",
            "/api/dead-letters/999999/replay",
            Some(ADMIN_TOKEN)
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn dead_letters_can_be_replayed_on_the_data_folder_while_herald_is_stopped() {
    let oncall = FakeDingTalk::start(None).await;
    oncall.script([Reply::Errcode(300001)]);
    let mut herald = Herald::start_with_targets(&robot("oncall", &oncall, ""));
    herald.post_sentry("issue", &issue(8)).await;
    oncall.wait_for(1, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;
    assert!(herald.terminate().success());

    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .args(["--config", &herald.config_path.display().to_string()])
            .output()
            .unwrap()
    };
    let listed = cli(&["dead-letters", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("errcode 300001"));
    let replayed = cli(&["dead-letters", "replay", "--target", "oncall"]);
    assert!(
        String::from_utf8_lossy(&replayed.stdout).contains("replayed 1 dead letters"),
        "{replayed:?}"
    );

    let restarted = herald.restart();
    oncall.wait_for(2, Duration::from_secs(10)).await;
    let ready = restarted.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(ready["dead_letters"], 0);
}

#[tokio::test]
async fn a_paused_target_sends_nothing_until_resumed() {
    let oncall = FakeDingTalk::start(None).await;
    let herald = start_with_admin(&robot("oncall", &oncall, ""));
    assert_eq!(
        admin(
            &herald,
            "POST",
            "/api/targets/oncall/pause",
            Some(ADMIN_TOKEN)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        admin(
            &herald,
            "POST",
            "/api/targets/nobody/pause",
            Some(ADMIN_TOKEN)
        )
        .await
        .0,
        404
    );
    herald.post_sentry("issue", &issue(9)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(oncall.received().is_empty());
    assert_eq!(
        admin(&herald, "GET", "/api/targets", Some(ADMIN_TOKEN))
            .await
            .1["targets"][0]["paused_by_operator"],
        true
    );
    assert_eq!(
        admin(
            &herald,
            "POST",
            "/api/targets/oncall/resume",
            Some(ADMIN_TOKEN)
        )
        .await
        .0,
        200
    );
    oncall.wait_for(1, Duration::from_secs(5)).await;
}

// Multi-threaded: the fake robot must keep answering while this test blocks waiting for herald.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_send_finishes_it_and_exits_0() {
    let oncall = FakeDingTalk::start(None).await;
    oncall.script([Reply::Hang(Duration::from_millis(1500))]);
    let mut herald = Herald::start_with_targets(&robot("oncall", &oncall, "timeout = \"10s\""));
    herald.post_sentry("issue", &issue(10)).await;
    oncall.wait_for(1, Duration::from_secs(10)).await;
    let status = herald.terminate();
    assert!(status.success(), "{status:?}");
    let logs = herald.logs();
    assert!(
        logs.contains("outcome=\"delivered\"") || logs.contains("outcome=delivered"),
        "{logs}"
    );
    let store = herald::store::Store::open(&herald.data_dir()).unwrap();
    assert_eq!(
        store.queued_job_count(),
        0,
        "the slow send finished before herald exited"
    );
}

#[tokio::test]
async fn sighup_starts_a_new_target_and_keeps_the_old_config_when_the_new_one_is_broken() {
    let first = FakeDingTalk::start(None).await;
    let second = FakeDingTalk::start(None).await;
    let herald = Herald::start_with_targets(&robot("first", &first, ""));
    let original = std::fs::read_to_string(&herald.config_path).unwrap();

    std::fs::write(
        &herald.config_path,
        format!("{original}\n{}", robot("second", &second, "")),
    )
    .unwrap();
    herald.signal("HUP");
    herald
        .wait_for_log("SIGHUP: config reloaded", Duration::from_secs(10))
        .await;
    herald.post_sentry("issue", &issue(11)).await;
    first.wait_for(1, Duration::from_secs(10)).await;
    second.wait_for(1, Duration::from_secs(10)).await;

    std::fs::write(
        &herald.config_path,
        format!("{original}\n[[targets]]\nname = \"broken\"\nkind = \"pager\"\n"),
    )
    .unwrap();
    herald.signal("HUP");
    herald
        .wait_for_log("the new config is refused", Duration::from_secs(10))
        .await;
    assert!(
        herald.logs().contains("targets[2].kind") || herald.logs().contains("pager"),
        "{}",
        herald.logs()
    );
    herald.post_sentry("issue", &issue(12)).await;
    first.wait_for(2, Duration::from_secs(10)).await;
    second.wait_for(2, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn json_logs_and_no_secret_in_logs_metrics_or_check_config() {
    const ROBOT_SECRET: &str = "SECrobot-signing-secret-77";
    const ACCESS_TOKEN: &str = "robot-access-token-55";
    const HOOK_TOKEN: &str = "hook-bearer-token-33";
    const LEGACY: &str = "legacy-token-0123456789";
    let oncall = FakeDingTalk::start(Some(ROBOT_SECRET)).await;
    oncall.script([Reply::Http(500), Reply::Errcode(310000)]);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "{}\n[[targets]]\nname = \"oncall\"\nkind = \"dingtalk\"\nurl = \"{}\"\nsecret = \"{ROBOT_SECRET}\"\nretry = [\"100ms\"]\n\
         [[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/{ACCESS_TOKEN}\"\nheaders = {{ Authorization = \"Bearer {HOOK_TOKEN}\" }}\nretry = []\n",
        server_config(&dir.path().join("data")).replace("[server]\n", &format!("[server]\nadmin_token = \"{ADMIN_TOKEN}\"\n")),
        oncall.url().replace("test-access-token", ACCESS_TOKEN),
    );
    let herald = Herald::launch(dir, &config, &[("HERALD_LOG_FORMAT", "json")]);
    herald.post_sentry("issue", &issue(13)).await;
    herald
        .client()
        .post(herald.url(&format!("/hooks/sentry/legacy/{LEGACY}x")))
        .body("{}")
        .send()
        .await
        .unwrap();
    herald
        .client()
        .post(herald.url("/hooks/sentry"))
        .header("Sentry-Hook-Resource", "issue")
        .header("Sentry-Hook-Signature", "0".repeat(64))
        .body("{}")
        .send()
        .await
        .unwrap();
    admin(&herald, "GET", "/api/targets", Some("guess")).await;
    oncall.wait_for(2, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(10)).await;

    // Every attempt is logged: the robot's failed first attempt, then its second.
    herald
        .wait_for_log("\"attempt\":2", Duration::from_secs(10))
        .await;
    let logs = herald.logs();
    for line in logs.lines() {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            parsed["fields"].is_object() || parsed["message"].is_string(),
            "{line}"
        );
    }
    assert!(
        logs.contains("\"outcome\":\"retry\"") && logs.contains("\"attempt\":2"),
        "every attempt is logged: {logs}"
    );
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "check-config",
            "--config",
            &herald.config_path.display().to_string(),
        ])
        .output()
        .unwrap();
    let everything = format!(
        "{logs}\n{}\n{}",
        herald.metrics().await,
        String::from_utf8_lossy(&check.stdout)
    );
    for secret in [
        SECRET,
        ROBOT_SECRET,
        ACCESS_TOKEN,
        HOOK_TOKEN,
        LEGACY,
        ADMIN_TOKEN,
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}

#[tokio::test]
async fn a_metrics_token_closes_metrics_and_the_counts_of_readyz() {
    const METRICS_TOKEN: &str = "metrics-token-5d1e";
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "{}\n[[targets]]\nname = \"stdout\"\nkind = \"console\"\n",
        server_config(&dir.path().join("data")).replace(
            "[server]\n",
            &format!("[server]\nmetrics_token = \"{METRICS_TOKEN}\"\n")
        )
    );
    let herald = Herald::start_with(dir, &config);
    let get = |path: &'static str, token: Option<&'static str>| {
        let mut request = herald.client().get(herald.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap() }
    };
    assert_eq!(get("/metrics", None).await.status(), 401);
    assert_eq!(get("/metrics", Some("wrong")).await.status(), 401);
    let scraped = get("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("herald_queue_depth"));

    // A probe still learns whether herald is ready, and nothing else.
    let probe = get("/readyz", None).await;
    assert_eq!(probe.status(), 200);
    assert_eq!(
        probe.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ready"})
    );
    let full: Value = get("/readyz", Some(METRICS_TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(full["queued_jobs"], 0);
    assert!(!herald.logs().contains(METRICS_TOKEN));
}

#[tokio::test]
async fn a_target_renamed_by_sighup_leaves_its_queue_in_sight() {
    // The downstream refuses connections: the job stays queued under the target's name.
    let herald = start_with_admin(
        "[[targets]]\nname = \"oncall\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\nretry = [\"1h\"]\n",
    );
    herald.post_sentry("issue", &issue(21)).await;
    let original = std::fs::read_to_string(&herald.config_path).unwrap();
    std::fs::write(
        &herald.config_path,
        original.replace("\"oncall\"", "\"pager\""),
    )
    .unwrap();
    herald.signal("HUP");
    herald
        .wait_for_log(
            "1 jobs are queued for target \"oncall\", which is not configured",
            Duration::from_secs(10),
        )
        .await;
    let (status, body) = admin(&herald, "GET", "/api/targets", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    let targets = body["targets"].as_array().unwrap();
    let stranded = targets
        .iter()
        .find(|t| t["name"] == "oncall")
        .expect("listed");
    assert_eq!(stranded["configured"], false);
    assert_eq!(stranded["queue_depth"], 1);
    let pager = targets.iter().find(|t| t["name"] == "pager").unwrap();
    assert_eq!(pager["configured"], true);
    assert_eq!(pager["queue_depth"], 0);
}
