//! The console in a real browser: Debian's Chromium driven by playwright-core
//! (tests/console/browser.cjs, installed by `./test` into target/console-node) through sign-in,
//! a wrong token, the overview, pause and resume, deliveries, a dead letter replayed by a click
//! and received by a fake DingTalk robot, the playground, a cross-site POST and sign-out. The
//! run leaves a screenshot of each page in target/console-screenshots;
//! `HERALD_UPDATE_SCREENSHOTS=1` copies them to docs/console for the README.

mod common;

use common::console::{self, ADMIN};
use common::dingtalk::FakeDingTalk;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Chromium and the playwright-core modules, from `./test` (or the environment).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var_os("HERALD_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let modules = std::env::var_os("HERALD_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/console-node/node_modules"));
    if chromium.exists() && modules.join("playwright-core").exists() {
        return Some((chromium, modules));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "no Chromium or playwright-core: run the tests with ./test, which installs them"
    );
    eprintln!("SKIPPED: no Chromium or playwright-core (./test installs them)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_console_in_chromium() {
    let Some((chromium, modules)) = browser() else {
        return;
    };
    let robot = FakeDingTalk::start(None).await;
    let herald = console::start(&format!("admin_token = \"{ADMIN}\"\n"), &robot.url());
    let created = console::one_delivered_one_dead(&herald, &robot).await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shots = root.join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let payload = herald.dir.path().join("payload.json");
    std::fs::write(&payload, &created).unwrap();
    let ran = tokio::process::Command::new("node")
        .arg(root.join("tests/console/browser.cjs"))
        .env("NODE_PATH", &modules)
        .env("HERALD_URL", herald.url(""))
        .env("ADMIN_TOKEN", ADMIN)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOTS", &shots)
        .env("PAYLOAD", &payload)
        .output()
        .await
        .expect("node runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(ran.status.success(), "the browser run failed:\n{said}");
    assert!(said.contains("ok: a cross-site POST is refused"), "{said}");

    // The click replayed the dead letter: the robot gets the same message again.
    let received = robot.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(
        received[2].body["markdown"]["text"],
        received[1].body["markdown"]["text"]
    );
    let logs = herald.logs();
    assert!(
        logs.contains("dead letter replayed by an operator"),
        "{logs}"
    );
    // Paused and resumed once each by the clicks; the cross-site form paused nothing.
    assert_eq!(
        logs.matches("target paused by an operator").count(),
        1,
        "{logs}"
    );
    for name in [
        "sign-in",
        "overview",
        "deliveries",
        "dead-letters",
        "playground",
    ] {
        let file = shots.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
            "{name}.png"
        );
        if std::env::var("HERALD_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
            let docs = root.join("docs/console");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::copy(&file, docs.join(format!("{name}.png"))).unwrap();
        }
    }
}
