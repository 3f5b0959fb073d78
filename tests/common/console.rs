//! What the console's tests share: herald with an admin token and one DingTalk target, and the
//! two alerts every page then has to show (one delivered, one a dead letter).

use std::sync::Arc;
use std::time::Duration;

use super::dingtalk::{FakeDingTalk, Reply};
use super::{fixture, server_config, Herald};

pub const ADMIN: &str = "console-admin-token-0123";

/// herald with `server_section` lines in `[server]` (the admin token, or nothing) and one
/// DingTalk target, `oncall`, at `robot_url`, that never retries.
pub fn start(server_section: &str, robot_url: &str) -> Herald {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "{}\n[[targets]]\nname = \"oncall\"\nkind = \"dingtalk\"\nurl = \"{robot_url}\"\nretry = []\n",
        server_config(&dir.path().join("data"))
            .replacen("[server]\n", &format!("[server]\n{server_section}"), 1),
    );
    Herald::start_with(dir, &config)
}

/// An issue.created the robot takes, then an event alert it refuses for good (a dead letter);
/// the robot takes what comes after. Returns the first payload.
pub async fn one_delivered_one_dead(herald: &Herald, robot: &FakeDingTalk) -> Vec<u8> {
    robot.script([Reply::Errcode(0), Reply::Errcode(310000), Reply::Errcode(0)]);
    let created = fixture("issue-created.json");
    assert_eq!(herald.post_sentry("issue", &created).await.status(), 202);
    robot.wait_for(1, Duration::from_secs(10)).await;
    let alert = fixture("event_alert-triggered.json");
    assert_eq!(
        herald.post_sentry("event_alert", &alert).await.status(),
        202
    );
    robot.wait_for(2, Duration::from_secs(10)).await;
    herald.wait_until_drained(Duration::from_secs(10)).await;
    created
}
