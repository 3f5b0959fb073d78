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

/// A client that does not follow redirects (the console answers 303s).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn sign_in(herald: &Herald, token: &str) -> reqwest::Response {
    client()
        .post(herald.url("/ui/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// The session cookie (`name=value`) of a successful sign-in with `token`.
pub async fn session(herald: &Herald, token: &str) -> String {
    let answer = sign_in(herald, token).await;
    assert_eq!(answer.status(), 303);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_string();
    cookie.split(';').next().unwrap().to_string()
}

/// GET `path` with the session: status and page.
pub async fn get(herald: &Herald, cookie: &str, path: &str) -> (u16, String) {
    let answer = client()
        .get(herald.url(path))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// POST `form` to `path` with the session and `headers`: status and page.
pub async fn post(
    herald: &Herald,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut request = client()
        .post(herald.url(path))
        .header("Cookie", cookie)
        .form(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

/// The form token in a page.
pub fn form_token(page: &str) -> String {
    let at = page
        .find("name=\"form_token\" value=\"")
        .expect("a form token")
        + 25;
    page[at..at + 32].to_string()
}
