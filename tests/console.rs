//! The web console over plain HTTP, black box: off without an admin token, sign-in and its
//! cookie, every page behind it, no secret on any page, deliveries with their attempts and the
//! robot's answer, a dead letter replayed, the playground, and every cross-site or token-less
//! POST refused. (tests/console_browser.rs drives the same pages in Chromium.)

mod common;

use common::console::{self, client, form_token, get, post, sign_in, ADMIN};
use common::dingtalk::FakeDingTalk;
use common::Herald;
use std::time::Duration;
const ROBOT_TOKEN: &str = "robot-access-token-secret";

fn start(robot: &FakeDingTalk, admin: bool) -> Herald {
    let server = if admin {
        format!("admin_token = \"{ADMIN}\"\n")
    } else {
        String::new()
    };
    console::start(
        &server,
        &robot.url().replace("test-access-token", ROBOT_TOKEN),
    )
}

#[tokio::test]
async fn the_console_is_off_without_an_admin_token() {
    let robot = FakeDingTalk::start(None).await;
    let herald = start(&robot, false);
    for path in ["/ui/", "/ui/overview", "/ui/sign-in", "/ui/deliveries"] {
        let (status, _) = get(&herald, "", path).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(sign_in(&herald, ADMIN).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_pages_replay_and_the_refusals() {
    let robot = FakeDingTalk::start(None).await;
    let herald = start(&robot, true);

    // Without a session every page sends to the sign-in form; a wrong token says so, nothing else.
    for path in [
        "/ui/",
        "/ui/overview",
        "/ui/deliveries",
        "/ui/dead-letters",
        "/ui/playground",
    ] {
        let answer = client().get(herald.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 303, "{path}");
        assert_eq!(answer.headers()["location"], "/ui/sign-in");
    }
    let wrong = sign_in(&herald, "not-the-token").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let page = wrong.text().await.unwrap();
    assert!(
        page.contains("Wrong admin token") && !page.contains("oncall"),
        "{page}"
    );

    // The cookie: HttpOnly, SameSite=Strict, for /ui; Secure behind an HTTPS proxy.
    let answer = sign_in(&herald, ADMIN).await;
    let set = answer.headers()["set-cookie"].to_str().unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age="] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"));
    let behind_tls = client()
        .post(herald.url("/ui/sign-in"))
        .header("X-Forwarded-Proto", "https")
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert!(behind_tls.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    let cookie = console::session(&herald, ADMIN).await;

    let created = console::one_delivered_one_dead(&herald, &robot).await;

    let (status, overview) = get(&herald, &cookie, "/ui/overview").await;
    assert_eq!(status, 200);
    for text in [
        "Overview",
        "Deliveries",
        "Dead letters",
        "Playground",
        "oncall",
        "dingtalk",
        "Pause oncall",
        "Callbacks in the last hour",
    ] {
        assert!(overview.contains(text), "{text} in the overview");
    }
    let (_, deliveries) = get(&herald, &cookie, "/ui/deliveries").await;
    assert!(
        deliveries.contains("delivered") && deliveries.contains("a dead letter"),
        "{deliveries}"
    );
    assert!(
        deliveries.contains("errcode 310000") || deliveries.contains("310000"),
        "the robot's answer: {deliveries}"
    );
    assert!(
        deliveries.contains(" ms</td>"),
        "attempt latency: {deliveries}"
    );
    let (_, only_dead) = get(&herald, &cookie, "/ui/deliveries?outcome=dead").await;
    assert_eq!(only_dead.matches("<article").count(), 1, "{only_dead}");
    let (_, dead) = get(&herald, &cookie, "/ui/dead-letters").await;
    assert!(
        dead.contains("310000") && dead.contains("Replay all of oncall"),
        "{dead}"
    );

    // No page shows the robot's URL or token, nor the admin token.
    for path in [
        "/ui/overview",
        "/ui/deliveries",
        "/ui/dead-letters",
        "/ui/playground",
    ] {
        let (_, page) = get(&herald, &cookie, path).await;
        for secret in [ROBOT_TOKEN, ADMIN, common::SECRET] {
            assert!(!page.contains(secret), "{secret} on {path}");
        }
    }

    // POSTs need the page's form token and herald's own origin.
    let token = form_token(&dead);
    let dead_id = {
        let at = dead.find("aria-label=\"Dead letter ").unwrap() + 24;
        let rest = &dead[at..];
        let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
        assert!(!id.is_empty(), "{dead}");
        id
    };
    let replay = format!("/ui/dead-letters/{dead_id}/replay");
    for (what, form, headers) in [
        ("no token", vec![], vec![]),
        (
            "a wrong token",
            vec![("form_token", "0".repeat(32))],
            vec![],
        ),
        (
            "another site's origin",
            vec![("form_token", token.clone())],
            vec![("Origin", "https://evil.example")],
        ),
        (
            "a cross-site fetch",
            vec![("form_token", token.clone())],
            vec![("Sec-Fetch-Site", "cross-site")],
        ),
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, page) = post(&herald, &cookie, &replay, &form, &headers).await;
        assert_eq!(status, 403, "{what}: {page}");
    }
    assert_eq!(robot.received().len(), 2, "nothing was replayed");
    let own_origin = format!("http://{}", herald.address);
    let (status, _) = post(
        &herald,
        &cookie,
        &replay,
        &[("form_token", &token)],
        &[("Origin", &own_origin)],
    )
    .await;
    assert_eq!(status, 303);
    let replayed = robot.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(
        replayed[2].body["markdown"]["text"],
        replayed[1].body["markdown"]["text"]
    );

    // Pause and resume.
    let (status, _) = post(
        &herald,
        &cookie,
        "/ui/targets/oncall/pause",
        &[("form_token", &token)],
        &[],
    )
    .await;
    assert_eq!(status, 303);
    let (_, overview) = get(&herald, &cookie, "/ui/overview").await;
    assert!(overview.contains("paused by an operator") && overview.contains("Resume oncall"));
    let (status, _) = post(
        &herald,
        &cookie,
        "/ui/targets/oncall/resume",
        &[("form_token", &token)],
        &[],
    )
    .await;
    assert_eq!(status, 303);

    // The playground renders a pasted payload, escaping what it shows.
    let mut payload: serde_json::Value = serde_json::from_slice(&created).unwrap();
    payload["data"]["issue"]["title"] = "<script>alert(1)</script> TypeError in checkout".into();
    let payload = payload.to_string();
    let (status, rendered) = post(
        &herald,
        &cookie,
        "/ui/playground",
        &[
            ("form_token", &token),
            ("payload", &payload),
            ("source", "sentry"),
            ("resource", "issue"),
            ("target", "oncall"),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        rendered.contains("TypeError in checkout")
            && rendered.contains("bytes of the request body"),
        "{rendered}"
    );
    assert!(
        !rendered.contains("<script>alert(1)"),
        "escaped: {rendered}"
    );
    assert!(rendered.contains("The routes send it to"));
    let (_, broken) = post(
        &herald,
        &cookie,
        "/ui/playground",
        &[
            ("form_token", &token),
            ("payload", "{not json"),
            ("source", "sentry"),
            ("resource", "issue"),
            ("target", "oncall"),
        ],
        &[],
    )
    .await;
    assert!(
        broken.contains("herald cannot read this payload"),
        "{broken}"
    );

    // Signing out ends the session, here and now.
    let (status, _) = post(
        &herald,
        &cookie,
        "/ui/sign-out",
        &[("form_token", &token)],
        &[],
    )
    .await;
    assert_eq!(status, 303);
    let (status, _) = get(&herald, &cookie, "/ui/overview").await;
    assert_eq!(status, 303);
}
