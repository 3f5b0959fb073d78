//! Golden tests of the default templates: every Sentry fixture rendered by every target kind,
//! compared with `tests/golden/`. Run with `UPDATE_GOLDEN=1` to rewrite the golden files after an
//! intended change, then read the diff.

mod common;

use chrono::{DateTime, Utc};
use common::{fixture, fixtures_dir, resource_of};
use herald::alert::Source;
use herald::config::Config;
use herald::render::MessageView;
use herald::sentry::{parse_integration_payload, parse_legacy_payload};
use herald::targets::{build_all, Delivery};
use serde_json::Value;
use std::path::{Path, PathBuf};

const CONFIG: &str = r#"
[sentry]
client_secrets = ["s"]

[templates]
timezone = "Asia/Shanghai"

[[targets]]
name = "robot"
kind = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=golden"

[[targets]]
name = "stdout"
kind = "console"

[[targets]]
name = "lark"
kind = "feishu"
url = "https://open.feishu.cn/open-apis/bot/v2/hook/golden"

[[targets]]
name = "wx"
kind = "wecom"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=golden"

[[targets]]
name = "hook"
kind = "webhook"
url = "https://hooks.example.com/sentry"

[[targets]]
name = "issues"
kind = "github"
repo = "acme/backend"
token = "ghp_golden"
"#;

/// Things Sentry events carry that must never reach a chat group: request headers and data, the
/// user's IP address, cookies, frame variables.
const NEVER_SHOWN: &[&str] = &[
    "Mozilla/5.0",
    "162.218.85.90",
    "ip_address",
    "cookies",
    "User-Agent",
    "\"vars\"",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The `.json` files of `dir`, by name.
fn json_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

fn views() -> Vec<(String, MessageView)> {
    let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    json_files(&fixtures_dir())
        .into_iter()
        .map(|name| {
            let body = fixture(&name);
            let alert = if name.starts_with("legacy") {
                parse_legacy_payload(&body)
            } else if name.contains("data-only") {
                let data: Value = serde_json::from_slice(&body).unwrap();
                let envelope = serde_json::json!({"action": "critical", "data": data});
                parse_integration_payload("metric_alert", &serde_json::to_vec(&envelope).unwrap())
            } else {
                parse_integration_payload(resource_of(&name), &body)
            }
            .unwrap();
            (
                name.trim_end_matches(".json").to_string(),
                MessageView::new(&alert, 1, 2, now),
            )
        })
        .chain(group_views(now))
        .collect()
}

/// The Alertmanager captures and the Grafana body, as `alertmanager-…` and `grafana-…`.
fn group_views(now: DateTime<Utc>) -> Vec<(String, MessageView)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alertmanager");
    json_files(&dir)
        .into_iter()
        .map(|name| {
            let body = std::fs::read(dir.join(&name)).unwrap();
            let (source, shown) = if name.starts_with("grafana") {
                (Source::Grafana, name.clone())
            } else {
                (Source::Alertmanager, format!("alertmanager-{name}"))
            };
            let alert = herald::alertmanager::parse(source, &body, &Default::default()).unwrap();
            (
                shown.trim_end_matches(".json").to_string(),
                MessageView::new(&alert, 1, 2, now),
            )
        })
        .collect()
}

fn check_golden(path: &Path, rendered: &str, mismatches: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, rendered).unwrap();
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == rendered => {}
        Ok(expected) => mismatches.push(format!(
            "{}:\n--- expected\n{expected}\n--- rendered\n{rendered}",
            path.display()
        )),
        Err(_) => mismatches.push(format!(
            "{} is missing (run with UPDATE_GOLDEN=1)",
            path.display()
        )),
    }
}

#[test]
fn default_templates_match_their_golden_files() {
    let config = Config::parse(Path::new("golden.toml"), CONFIG, |_| None).unwrap();
    let targets = build_all(
        &config.targets,
        config.templates.timezone(),
        std::sync::Arc::new(herald::store::MemoryLinks::default()),
    )
    .unwrap();
    let target = |name: &str| targets.iter().find(|t| t.name == name).unwrap().clone();
    let (robot, stdout) = (target("robot"), target("stdout"));
    let (lark, wx, hook, issues) = (
        target("lark"),
        target("wx"),
        target("hook"),
        target("issues"),
    );
    let mut mismatches = Vec::new();

    for (name, view) in views() {
        let nobody = herald::route::Mentions::default();
        let delivery = Delivery {
            view: &view,
            mentions: &nobody,
            idempotency_key: "herald-1-2",
            raw: None,
            parts_sent: 0,
        };

        let body: Value =
            serde_json::from_str(&robot.render(&delivery).map(one_message).unwrap()).unwrap();
        assert_eq!(body["msgtype"], "markdown", "{name}");
        assert_eq!(body["msgUuid"], "herald-1-2", "{name}");
        assert!(
            !body["markdown"]["title"].as_str().unwrap().is_empty(),
            "{name}"
        );
        let markdown = body["markdown"]["text"].as_str().unwrap().to_string();
        // DingTalk's markdown subset: no code blocks, no tables.
        assert!(!markdown.contains("```"), "{name}: a code fence");
        assert!(
            !markdown.lines().any(|l| l.trim_start().starts_with('|')),
            "{name}: a table"
        );
        if let Some(link) = &view.link {
            assert!(markdown.contains(link.as_str()), "{name}: the link is kept");
        }
        check_golden(
            &golden_dir().join("dingtalk").join(format!("{name}.md")),
            &markdown,
            &mut mismatches,
        );

        let card: Value =
            serde_json::from_str(&lark.render(&delivery).map(one_message).unwrap()).unwrap();
        assert_eq!(card["msg_type"], "interactive", "{name}");
        let card_markdown = card["card"]["elements"][0]["content"]
            .as_str()
            .unwrap()
            .to_string();
        check_golden(
            &golden_dir().join("feishu").join(format!("{name}.md")),
            &card_markdown,
            &mut mismatches,
        );

        let wecom: Value =
            serde_json::from_str(&wx.render(&delivery).map(one_message).unwrap()).unwrap();
        let wecom_markdown = wecom["markdown"]["content"].as_str().unwrap().to_string();
        assert!(wecom_markdown.len() <= 4096, "{name}");
        check_golden(
            &golden_dir().join("wecom").join(format!("{name}.md")),
            &wecom_markdown,
            &mut mismatches,
        );

        // The webhook's default body is herald's documented JSON, never the raw payload unasked.
        let json: Value =
            serde_json::from_str(&hook.render(&delivery).map(one_message).unwrap()).unwrap();
        assert_eq!(json["type"], "herald.alert", "{name}");
        assert_eq!(
            json["alert"]["title"],
            Value::String(view.title.clone()),
            "{name}"
        );
        assert!(json.get("raw").is_none(), "{name}");

        let created: Value =
            serde_json::from_str(&issues.render(&delivery).map(one_message).unwrap()).unwrap();
        let issue_body = created["body"].as_str().unwrap().to_string();
        assert!(issue_body.chars().count() <= 65_536, "{name}");
        check_golden(
            &golden_dir().join("github").join(format!("{name}.md")),
            &issue_body,
            &mut mismatches,
        );

        let text = stdout.render(&delivery).map(one_message).unwrap();
        check_golden(
            &golden_dir().join("console").join(format!("{name}.txt")),
            &text,
            &mut mismatches,
        );

        for rendered in [
            &markdown,
            &text,
            &card_markdown,
            &wecom_markdown,
            &issue_body,
        ] {
            for secret in NEVER_SHOWN {
                assert!(
                    !rendered.contains(secret),
                    "{name}: {secret:?} must not be shown"
                );
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} golden files differ:\n\n{}",
        mismatches.len(),
        mismatches.join("\n\n")
    );
}

#[test]
fn resolved_messages_use_the_short_form() {
    let views = views();
    let view = |name: &str| &views.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(view("issue-resolved").resolved);
    assert!(view("metric_alert-resolved").resolved);
    assert!(!view("issue-created").resolved);
    assert!(!view("metric_alert-critical").resolved);
}

/// Every sample fits its target whole: one request body.
fn one_message(mut bodies: Vec<String>) -> String {
    assert_eq!(bodies.len(), 1, "sent in parts: {bodies:?}");
    bodies.remove(0)
}
