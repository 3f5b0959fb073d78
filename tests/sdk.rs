//! Sentry SDKs posting straight to herald, black box: the envelopes sentry-python really sent
//! (tests/fixtures/sentry-sdk), decompressed, scrubbed, grouped into issues and told to a fake
//! DingTalk robot, and every refusal with its status.

mod common;

use common::dingtalk::FakeDingTalk;
use common::Herald;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "0123456789abcdef0123456789abcdef";
const OTHER_KEY: &str = "fedcba9876543210fedcba9876543210";

fn sdk_fixture(name: &str) -> Vec<u8> {
    common::fixture_in("sentry-sdk", name)
}

fn start(robot: &FakeDingTalk) -> Herald {
    start_with(robot, "")
}

/// herald with two SDK projects; `sdk` goes into the `[sdk]` table.
fn start_with(robot: &FakeDingTalk, sdk: &str) -> Herald {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"

[dedupe]
window = "2s"

[sdk]
{sdk}

[[sdk.projects]]
id = 42
name = "shop"
public_keys = ["{KEY}"]

[[sdk.projects]]
id = 7
name = "billing"
public_keys = ["{OTHER_KEY}"]

[[targets]]
name = "oncall"
kind = "dingtalk"
url = "{url}"
"#,
        data = dir.path().join("data").display(),
        url = robot.url(),
    );
    Herald::start_with(dir, &config)
}

async fn post(
    herald: &Herald,
    path: &str,
    key: Option<&str>,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = herald
        .client()
        .post(herald.url(path))
        .header("Content-Type", "application/x-sentry-envelope")
        .body(body);
    if let Some(key) = key {
        request = request.header(
            "X-Sentry-Auth",
            format!(
                "Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.python/2.75.0"
            ),
        );
    }
    if let Some(encoding) = encoding {
        request = request.header("Content-Encoding", encoding);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// An envelope with its event id replaced (a new event of the same issue).
fn with_event_id(envelope: &[u8], id: &str) -> Vec<u8> {
    let text = String::from_utf8(envelope.to_vec()).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    let mut header: Value = serde_json::from_str(header).unwrap();
    header["event_id"] = id.into();
    format!("{header}\n{rest}").into_bytes()
}

fn all_bytes_under(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(all_bytes_under(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    bytes
}

const PLANTED: &[&str] = &[
    "4111111111111111",
    "tok_live_secret",
    "alice@example.com",
    "token=abc",
    "card_number",
    "hunter2",
    "s3cr3t",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_events_are_scrubbed_grouped_and_told_once() {
    let robot = FakeDingTalk::start(None).await;
    let herald = start(&robot);

    // Brotli as sentry-python sends it; 200 with the event id, and what herald does not want.
    let (status, headers, answer) = post(
        &herald,
        "/api/42/envelope/",
        Some(KEY),
        Some("br"),
        sdk_fixture("001-raw-br.raw"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["id"], "ce5e2ab1a5ca4a9f9e0f66f207c3ae34");
    assert!(headers["x-sentry-rate-limits"]
        .to_str()
        .unwrap()
        .contains("transaction"));
    assert_eq!(headers["access-control-allow-origin"], "*");
    // The same issue again, gzip this time: 200, counted, not told again.
    let (status, _, answer) = post(
        &herald,
        "/api/42/envelope",
        Some(KEY),
        Some("gzip"),
        sdk_fixture("002-raw-gzip.raw"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // An unhandled error in a Flask route, with everything sentry-python leaks by default.
    let flask = sdk_fixture("003-default-flask.envelope");
    let (status, _, answer) =
        post(&herald, "/api/42/envelope/", Some(KEY), None, flask.clone()).await;
    assert_eq!(status, 200, "{answer}");
    // Another event of the same issue: counted, not told again now.
    let (status, _, _) = post(
        &herald,
        "/api/42/envelope/",
        Some(KEY),
        None,
        with_event_id(&flask, "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"),
    )
    .await;
    assert_eq!(status, 200);
    // A logged error (a new issue) and the Flask error again with PII (a repeat).
    for name in ["006-default-logging.envelope", "009-pii-flask.envelope"] {
        let (status, _, answer) = post(
            &herald,
            "/api/42/envelope/",
            Some(KEY),
            None,
            sdk_fixture(name),
        )
        .await;
        assert_eq!(status, 200, "{name}: {answer}");
    }
    // Sessions and transactions only: accepted, dropped, nothing said.
    for name in ["004-default-flask.envelope", "014-tracing-flask.envelope"] {
        let (status, _, answer) = post(
            &herald,
            "/api/42/envelope/",
            Some(KEY),
            None,
            sdk_fixture(name),
        )
        .await;
        assert_eq!((status, answer), (200, serde_json::json!({})), "{name}");
    }
    // Three issues: the script's error, the Flask route's (the PII-laden request is the same one
    // again) and the logged message; at the end of each fold window, a message counts the rest.
    herald.wait_until_drained(Duration::from_secs(15)).await;
    let texts = robot.texts();
    let new_issues: Vec<&String> = texts.iter().filter(|t| t.contains("New issue")).collect();
    assert_eq!(new_issues.len(), 3, "{texts:#?}");
    assert!(new_issues
        .iter()
        .any(|t| t.contains("ZeroDivisionError") && t.contains("checkout")));
    assert!(new_issues
        .iter()
        .any(|t| t.contains("Charge failed for order")));
    assert!(
        texts.iter().all(|t| t.contains("shop")),
        "the project's name: {texts:#?}"
    );
    let counts = texts
        .iter()
        .filter(|t| t.contains("more in the last"))
        .count();
    assert_eq!((texts.len(), counts), (5, 2), "{texts:#?}");
    for received in robot.received() {
        for planted in PLANTED {
            assert!(!received.body.to_string().contains(planted), "{planted}");
        }
    }
    let stored = all_bytes_under(&herald.data_dir());
    for planted in PLANTED {
        assert!(
            !stored
                .windows(planted.len())
                .any(|w| w == planted.as_bytes()),
            "{planted} is in the data folder"
        );
    }
}

#[tokio::test]
async fn every_refusal_says_why() {
    let robot = FakeDingTalk::start(None).await;
    let herald = start(&robot);
    let envelope = sdk_fixture("001-default-message.envelope");
    // (what, path, key, Content-Encoding, body, status)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Vec<u8>,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            "no key",
            "/api/42/envelope/",
            None,
            None,
            envelope.clone(),
            401,
        ),
        (
            "another project's key",
            "/api/42/envelope/",
            Some(OTHER_KEY),
            None,
            envelope.clone(),
            403,
        ),
        (
            "an unknown project",
            "/api/99/envelope/",
            Some(KEY),
            None,
            envelope.clone(),
            404,
        ),
        (
            "not an envelope",
            "/api/42/envelope/",
            Some(KEY),
            None,
            b"garbage".to_vec(),
            400,
        ),
        (
            "broken gzip",
            "/api/42/envelope/",
            Some(KEY),
            Some("gzip"),
            b"garbage".to_vec(),
            400,
        ),
        (
            "an unknown encoding",
            "/api/42/envelope/",
            Some(KEY),
            Some("lzma"),
            envelope.clone(),
            400,
        ),
    ];
    for (what, path, key, encoding, body, status) in cases {
        let (got, headers, answer) = post(&herald, path, key, encoding, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {answer}"
        );
        assert_eq!(headers["access-control-allow-origin"], "*", "{what}");
    }
    // The key in the query string (browsers) and in the envelope's dsn header both count.
    let (status, _, _) = post(
        &herald,
        &format!("/api/42/envelope/?sentry_version=7&sentry_key={KEY}"),
        None,
        None,
        sdk_fixture("implicit-length-tags-pairs.envelope"),
    )
    .await;
    assert_eq!(status, 200);
    let with_dsn = String::from_utf8(sdk_fixture("naive-timestamp.envelope"))
        .unwrap()
        .replacen('{', &format!("{{\"dsn\":\"http://{KEY}@127.0.0.1/42\","), 1);
    let (status, _, answer) = post(
        &herald,
        "/api/42/envelope/",
        None,
        None,
        with_dsn.into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _, _) = post(
        &herald,
        "/api/42/envelope/",
        Some(KEY),
        None,
        sdk_fixture("unknown-item-type.envelope"),
    )
    .await;
    assert_eq!(status, 200);
    // A small body that inflates past the limit: 413, and nothing inflated.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut bomb, &vec![b' '; 64 << 20]).unwrap();
    let (status, _, _) = post(
        &herald,
        "/api/42/envelope/",
        Some(KEY),
        Some("gzip"),
        bomb.finish().unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    // A preflight.
    let preflight = herald
        .client()
        .request(reqwest::Method::OPTIONS, herald.url("/api/42/envelope/"))
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert!(preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-sentry-auth"));
}

#[tokio::test]
async fn a_storm_from_one_project_is_answered_429_and_the_others_go_on() {
    let robot = FakeDingTalk::start(None).await;
    let herald = start_with(&robot, "events_per_minute = 3");
    let message = sdk_fixture("001-default-message.envelope");
    for n in 0..3 {
        let (status, _, answer) = post(
            &herald,
            "/api/42/envelope/",
            Some(KEY),
            None,
            with_event_id(&message, &format!("{n:032x}")),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, headers, answer) = post(
        &herald,
        "/api/42/envelope/",
        Some(KEY),
        None,
        with_event_id(&message, &format!("{:032x}", 99)),
    )
    .await;
    assert_eq!(status, 429, "{answer}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(
        headers["x-sentry-rate-limits"].to_str().unwrap(),
        format!("{wait}:error;default:project:herald_overload")
    );
    // Another project's SDK is not held back by the storm.
    let billing = String::from_utf8(message).unwrap();
    let (status, _, _) = post(
        &herald,
        "/api/7/envelope/",
        Some(OTHER_KEY),
        None,
        billing.into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
}
