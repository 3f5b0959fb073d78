//! herald behind a real Prometheus Alertmanager (Debian's `prometheus-alertmanager`, which the
//! README's test command installs when it is missing), both on loopback: alerts posted to
//! Alertmanager's API reach a fake DingTalk robot through herald, once each, grouped as
//! Alertmanager grouped them. Bearer and basic auth, repeat_interval resends, a partial and a
//! full resolve, `send_resolved: false` and `max_alerts` truncation.

mod common;

use common::dingtalk::FakeDingTalk;
use common::Herald;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "live-am-token-42";

struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> String {
    for name in ["prometheus-alertmanager", "alertmanager"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name.to_string();
        }
    }
    panic!(
        "Prometheus Alertmanager is not installed: the README's test command (`./test`) installs \
         Debian's prometheus-alertmanager"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_alertmanager(hook: &str) -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let bearer = format!("{{ authorization: {{ type: Bearer, credentials: {TOKEN} }} }}");
    let config = format!(
        r#"
route:
  receiver: bearer
  group_by: ['alertname']
  group_wait: 2s
  group_interval: 2s
  repeat_interval: 4s
  routes:
    - matchers: ['case="basic"']
      receiver: basic
    - matchers: ['case="noresolved"']
      receiver: noresolved
    - matchers: ['case="many"']
      receiver: many
receivers:
  - name: bearer
    webhook_configs:
      - url: {hook}
        http_config: {bearer}
  - name: basic
    webhook_configs:
      - url: {hook}
        http_config: {{ basic_auth: {{ username: alertmanager, password: {TOKEN} }} }}
  - name: noresolved
    webhook_configs:
      - url: {hook}
        send_resolved: false
        http_config: {bearer}
  - name: many
    webhook_configs:
      - url: {hook}
        max_alerts: 1
        http_config: {bearer}
"#
    );
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config).unwrap();
    let port = free_port();
    let child = Command::new(binary())
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertmanager starts");
    let alertmanager = Alertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let client = reqwest::Client::new();
    let ready = format!("{}/-/ready", alertmanager.url);
    for _ in 0..200 {
        if client
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return alertmanager;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("alertmanager did not become ready");
}

/// When every alert of the test started: now, so that Alertmanager waits `group_wait` for a
/// group's alerts (an alert that started before that is flushed at once, alone).
fn started() -> &'static str {
    static STARTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STARTED.get_or_init(|| chrono::Utc::now().to_rfc3339())
}

fn alert(name: &str, case: &str, instance: &str, resolved: bool) -> Value {
    let now = chrono::Utc::now();
    let mut alert = json!({
        "labels": {"alertname": name, "case": case, "instance": instance, "severity": "critical", "service": "api"},
        "annotations": {"summary": format!("{name} on {instance}")},
        "startsAt": started(),
        "generatorURL": "http://prometheus.example:9090/graph",
    });
    if resolved {
        alert["endsAt"] = json!((now - chrono::Duration::seconds(1)).to_rfc3339());
    }
    alert
}

async fn post_alerts(alertmanager: &Alertmanager, alerts: Vec<Value>) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", alertmanager.url))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

async fn notifications_sent(alertmanager: &Alertmanager) -> f64 {
    let metrics = reqwest::get(format!("{}/metrics", alertmanager.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("alertmanager_notifications_total{integration=\"webhook\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until Alertmanager has sent `more` notifications beyond what it had sent so far.
async fn wait_for_notifications(alertmanager: &Alertmanager, more: u32) {
    let before = notifications_sent(alertmanager).await;
    common::eventually_async(
        Duration::from_secs(20),
        || format!("Alertmanager sent fewer than {more} notifications"),
        || async {
            (notifications_sent(alertmanager).await >= before + f64::from(more)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn alertmanager_groups_reach_the_robot_once_each() {
    let robot = FakeDingTalk::start(None).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{}"

[alertmanager]
tokens = ["{TOKEN}"]
installation = "live"

[dedupe]
redelivery_window = "1s"

[[targets]]
name = "oncall"
kind = "dingtalk"
url = "{}"
timeout = "2s"
"#,
        dir.path().join("data").display(),
        robot.url()
    );
    let herald = Herald::start_with(dir, &config);
    let alertmanager = start_alertmanager(&herald.url("/hooks/alertmanager")).await;

    post_alerts(
        &alertmanager,
        vec![
            alert("HighErrorRate", "default", "10.0.0.1:8080", false),
            alert("HighErrorRate", "default", "10.0.0.2:8080", false),
            alert("AuthCheck", "basic", "auth-1", false),
            alert("NoResolved", "noresolved", "nr-1", false),
            alert("Many", "many", "m1", false),
            alert("Many", "many", "m2", false),
            alert("Many", "many", "m3", false),
        ],
    )
    .await;
    robot.wait_for(4, Duration::from_secs(20)).await;
    let first = robot.texts();
    let find = |name: &str| {
        first
            .iter()
            .find(|t| t.contains(name))
            .unwrap_or_else(|| panic!("no message about {name}: {first:#?}"))
            .clone()
    };
    let high = find("HighErrorRate on");
    assert!(high.contains("Firing: 2 alerts"), "{high}");
    assert!(high.contains("10.0.0.1:8080") && high.contains("10.0.0.2:8080"));
    assert!(
        find("AuthCheck").contains("Firing: 1 alert"),
        "basic auth got through"
    );
    let many = find("Many on");
    assert!(
        many.contains("+2 more"),
        "max_alerts truncation shown: {many}"
    );
    assert!(many.contains("Firing: 3 alerts"), "{many}");

    // repeat_interval passes: Alertmanager posts every group again, herald tells nobody.
    wait_for_notifications(&alertmanager, 4).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;
    assert_eq!(robot.received().len(), 4, "{:#?}", robot.texts());

    // One HighErrorRate resolved, and NoResolved (whose receiver does not send resolves).
    post_alerts(
        &alertmanager,
        vec![
            alert("HighErrorRate", "default", "10.0.0.2:8080", true),
            alert("NoResolved", "noresolved", "nr-1", true),
        ],
    )
    .await;
    robot.wait_for(5, Duration::from_secs(20)).await;
    let partial = robot.texts()[4].clone();
    assert!(partial.contains("Firing: 1 alert, 1 resolved"), "{partial}");
    assert!(partial.contains("×"), "the repeats were counted: {partial}");

    // The last HighErrorRate resolved: "Resolved", naming only it.
    post_alerts(
        &alertmanager,
        vec![alert("HighErrorRate", "default", "10.0.0.1:8080", true)],
    )
    .await;
    robot.wait_for(6, Duration::from_secs(20)).await;
    let resolved = robot.texts()[5].clone();
    assert!(resolved.contains("✅ Resolved"), "{resolved}");
    assert!(
        resolved.contains("10.0.0.1:8080") && !resolved.contains("10.0.0.2:8080"),
        "{resolved}"
    );

    // Another repeat interval: still nothing new to say.
    wait_for_notifications(&alertmanager, 2).await;
    herald.wait_until_drained(Duration::from_secs(5)).await;
    let all = robot.texts();
    assert_eq!(all.len(), 6, "{all:#?}");
    assert!(
        !all.iter()
            .any(|t| t.contains("NoResolved") && t.contains("✅")),
        "send_resolved = false is honoured"
    );
    assert!(
        !herald.logs().contains("callback refused"),
        "every notification was accepted:\n{}",
        herald.logs()
    );
}
