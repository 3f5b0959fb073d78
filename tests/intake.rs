//! The Sentry intake, black box: every fixture is signed, posted and stored as the right Alert;
//! every bad input gets its status and leaves the store as it was.

mod common;

use common::{fixture, fixtures_dir, resource_of, sign, Herald, LEGACY_TOKEN, SECRET};
use herald::alert::Level;
use herald::store::Store;
use serde_json::Value;
use std::time::Duration;

/// What one fixture must normalize to: (file, issue id, level, title, link).
type Expected = (
    &'static str,
    Option<&'static str>,
    Option<Level>,
    &'static str,
    Option<&'static str>,
);

const EXPECTED: &[Expected] = &[
    ("activity_alert-triggered.json", Some("43"), Some(Level::Warning), "TypeError: you aren't my type", Some("https://sentry.io/organizations/acme/issues/43/")),
    ("comment-created.json", Some("100"), None, "New comment by colleen on issue 100", None),
    ("comment-deleted.ipe-mock.json", Some("123"), None, "Comment deleted by name on issue 123", None),
    ("comment-updated.ipe-mock.json", Some("123"), None, "Comment edited by name on issue 123", None),
    ("error-created.json", Some("1170820242"), Some(Level::Error), "ReferenceError: blooopy is not defined", Some("https://sentry.io/organizations/test-org/issues/1170820242/events/bb78c1407cea4519aa397afc059c793d/")),
    ("event_alert-triggered.json", Some("1117540176"), Some(Level::Error), "ReferenceError: heck is not defined", Some("https://sentry.io/organizations/test-org/issues/1117540176/events/e4874d664c3540c1a32eab185f12c5ab/")),
    ("event_alert-triggered.with-alert-rule-action.ipe-mock.json", Some("123"), None, "Error #1: This is a test error!", Some("https://sentry.io/organizations/lxyz/issues/123/events/def456/")),
    ("event_alert-triggered.zulip-2020.json", Some("1635244907"), Some(Level::Error), "Exception: Custom exception!", Some("https://sentry.io/organizations/hypro999-personal-organization/issues/1635244907/events/599349254a1447a99774b5310711c1a8/")),
    ("installation-created.json", None, None, "Sentry integration created for test-org", None),
    ("installation-deleted.ipe-mock.json", None, None, "Sentry integration deleted for example", None),
    ("issue-assigned-team.json", Some("1638821441"), Some(Level::Error), "Exception: program has entered an invalid state.", None),
    ("issue-assigned.json", Some("1638844654"), Some(Level::Info), "A test message event from golang.", None),
    ("issue-created.docs-2019.json", Some("1170820242"), Some(Level::Error), "ReferenceError: blooopy is not defined", None),
    ("issue-created.json", Some("1234567890"), Some(Level::Fatal), "Error generated with event_id: 495d375a-1df6-45c0-9890-34dae8e1b6a4(Priority: HIGH)", Some("https://example-org.sentry.io/issues/1234567890/")),
    ("issue-created.zulip-2020.json", Some("1635244907"), Some(Level::Error), "Exception: Custom exception!", None),
    ("issue-ignored.json", Some("1638821441"), Some(Level::Error), "Exception: program has entered an invalid state.", None),
    ("issue-resolved.json", Some("1638821441"), Some(Level::Error), "Exception: program has entered an invalid state.", None),
    ("legacy-webhook.json", Some("4311163364"), Some(Level::Error), "ZeroDivisionError: division by zero", Some("https://nitk-46.sentry.io/issues/4311163364/?referrer=webhooks_plugin")),
    ("metric_alert-critical.data-only.sentry-test.json", None, Some(Level::Error), "Critical: My Metric Alert", Some("https://sentry.io/organizations/my-org/alerts/rules/details/7/")),
    ("metric_alert-critical.json", None, Some(Level::Error), "metric alert", None),
    ("metric_alert-critical.with-alert-rule-action.ipe-mock.json", None, Some(Level::Error), "metric alert", None),
    ("metric_alert-resolved.json", None, Some(Level::Info), "Resolved: Too many errors", Some("https://sentry.io/organizations/baz/alerts/1/")),
    ("metric_alert-warning.json", None, Some(Level::Warning), "metric alert", None),
    ("preprod_artifact-build_distribution_completed.json", None, None, "MyApp 1.0: build distribution completed", None),
    ("preprod_artifact-size_analysis_completed.json", None, None, "MyApp 1.0: size analysis completed", None),
    ("seer-coding_completed.json", Some("1170820242"), None, "Seer coding completed for issue 1170820242", None),
    ("seer-pr_created.json", Some("1170820242"), None, "Seer pr created for issue 1170820242", None),
    ("seer-root_cause_completed.json", Some("1170820242"), None, "Seer root cause completed for issue 1170820242", None),
    ("seer-root_cause_started.json", Some("1170820242"), None, "Seer root cause started for issue 1170820242", None),
    ("seer-solution_completed.json", Some("1170820242"), None, "Seer solution completed for issue 1170820242", None),
];

/// Two mocks describe one incident (id 789) going critical: by REFERENCE.md's dedupe key
/// (incident id + action, per installation) the second is the same thing said twice.
const DUPLICATE_OF_AN_EARLIER_FIXTURE: &str =
    "metric_alert-critical.with-alert-rule-action.ipe-mock.json";

/// The body to send for a fixture. The data-only metric alert fixture lacks Sentry's envelope,
/// so it is wrapped in one as Sentry would send it.
fn body_for(name: &str) -> Vec<u8> {
    let bytes = fixture(name);
    if name.contains("data-only") {
        let data: Value = serde_json::from_slice(&bytes).unwrap();
        let envelope = serde_json::json!({
            "action": "critical",
            "installation": {"uuid": "c0ffee00-0000-4000-8000-000000000000"},
            "data": data,
            "actor": {"type": "application", "id": "sentry", "name": "Sentry"},
        });
        return serde_json::to_vec(&envelope).unwrap();
    }
    bytes
}

#[tokio::test]
async fn every_fixture_is_accepted_and_stored_as_the_right_alert() {
    // The table covers every fixture on disk, so a new fixture cannot go untested.
    let mut on_disk: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    assert_eq!(on_disk, listed);

    let mut herald = Herald::start();
    let mut stored_ids = Vec::new();
    for (name, issue_id, level, title, link) in EXPECTED {
        let body = body_for(name);
        let response = if name.starts_with("legacy") {
            herald
                .client()
                .post(herald.url(&format!("/hooks/sentry/legacy/{LEGACY_TOKEN}")))
                .body(body)
                .send()
                .await
                .unwrap()
        } else {
            herald.post_sentry(resource_of(name), &body).await
        };
        assert_eq!(response.status(), 202, "{name}");
        let receipt: Value = response.json().await.unwrap();
        let duplicate = *name == DUPLICATE_OF_AN_EARLIER_FIXTURE;
        assert_eq!(receipt["duplicate"], duplicate, "{name}");
        assert_eq!(receipt["issue_id"].as_str(), *issue_id, "{name}");
        assert_eq!(
            receipt["level"].as_str(),
            level.map(|l| l.as_str()),
            "{name}"
        );
        assert_eq!(receipt["title"].as_str(), Some(*title), "{name}");
        assert_eq!(receipt["link"].as_str(), *link, "{name}");
        let routed = ["issue", "event_alert", "metric_alert", "error"].contains(&resource_of(name))
            || name.starts_with("legacy");
        let expected_targets: &[&str] = if routed && !duplicate {
            &["stdout"]
        } else {
            &[]
        };
        assert_eq!(
            receipt["targets"],
            serde_json::json!(expected_targets),
            "{name}"
        );
        stored_ids.push(
            receipt["alert_id"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }

    // What the receipt said is what is on disk, raw payload included.
    assert!(herald.terminate().success());
    // The last line herald writes: once it is read, so is every line before it.
    herald
        .wait_for_log("everything accepted is on disk", Duration::from_secs(10))
        .await;
    let store = Store::open(&herald.data_dir()).unwrap();
    assert_eq!(store.alert_count(), EXPECTED.len() as u64 - 1);
    for ((name, issue_id, level, title, link), id) in EXPECTED.iter().zip(stored_ids) {
        let stored = store
            .alert(id)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} is stored"));
        assert_eq!(stored.alert.issue_id.as_deref(), *issue_id, "{name}");
        assert_eq!(stored.alert.level, *level, "{name}");
        assert_eq!(stored.alert.title, *title, "{name}");
        assert_eq!(stored.alert.link.as_deref(), *link, "{name}");
        // Verbatim, but for the whitespace around the JSON value, which is not part of it.
        let original = if *name == DUPLICATE_OF_AN_EARLIER_FIXTURE {
            "metric_alert-critical.json"
        } else {
            name
        };
        let sent = String::from_utf8(body_for(original)).unwrap();
        assert!(
            stored.alert.raw.get() == sent.trim(),
            "{name}: the raw payload differs"
        );
    }
    // issue ×7, event_alert ×3, error ×1, metric_alert ×4 (one is a duplicate), legacy ×1: one job
    // each for "stdout",
    // each delivered (or, had herald stopped first, still queued).
    let delivered = herald
        .logs()
        .lines()
        .filter(|l| l.contains("target_name=\"stdout\"") && l.contains("outcome=\"delivered\""))
        .count();
    assert_eq!(
        delivered as u64 + store.queued_job_count(),
        16,
        "{}",
        herald.logs()
    );
    assert_eq!(store.dead_letter_count(), 0);
}

#[tokio::test]
async fn normalized_fields_beyond_the_basics() {
    let mut herald = Herald::start();
    let mut ids = std::collections::HashMap::new();
    for name in [
        "event_alert-triggered.json",
        "metric_alert-resolved.json",
        "issue-assigned.json",
        "issue-created.json",
        "issue-resolved.json",
        "comment-created.json",
        "event_alert-triggered.with-alert-rule-action.ipe-mock.json",
    ] {
        let receipt: Value = herald
            .post_sentry(resource_of(name), &body_for(name))
            .await
            .json()
            .await
            .unwrap();
        ids.insert(
            name,
            receipt["alert_id"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    assert!(herald.terminate().success());
    let store = Store::open(&herald.data_dir()).unwrap();
    let alert = |name: &str| store.alert(ids[name]).unwrap().unwrap().alert;

    let event = alert("event_alert-triggered.json");
    assert_eq!(
        event.installation.as_deref(),
        Some("a8e5d37a-696c-4c54-adb5-b3f28d64c7de")
    );
    assert_eq!(event.project.as_deref(), Some("front-end"));
    assert_eq!(
        event.event_id.as_deref(),
        Some("e4874d664c3540c1a32eab185f12c5ab")
    );
    assert_eq!(
        event.triggered_rule.as_deref(),
        Some("Very Important Alert Rule!")
    );
    assert_eq!(event.culprit.as_deref(), Some("?(<anonymous>)"));
    assert_eq!(
        event
            .tags
            .iter()
            .find(|(k, _)| k == "browser")
            .map(|(_, v)| v.as_str()),
        Some("Chrome 75.0.3770")
    );
    assert_eq!(
        event.last_seen.unwrap().to_rfc3339(),
        "2019-08-19T21:06:17.677+00:00"
    );
    assert!(event.frames.is_empty(), "no frame of this event is in_app");

    let with_env = alert("event_alert-triggered.with-alert-rule-action.ipe-mock.json");
    assert_eq!(with_env.environment.as_deref(), Some("production"));
    assert_eq!(with_env.triggered_rule.as_deref(), Some("issue alert"));

    let metric = alert("metric_alert-resolved.json");
    let incident = metric.metric_alert.unwrap();
    assert_eq!(incident.incident_id.as_deref(), Some("4"));
    assert_eq!(incident.rule_name.as_deref(), Some("Too many errors"));
    assert_eq!(incident.status, herald::alert::MetricStatus::Resolved);
    assert_eq!(
        incident.description_text.as_deref(),
        Some("1000 events in the last 10 minutes\nFilter: level:error")
    );
    assert_eq!(metric.project.as_deref(), Some("bar"));

    let assigned = alert("issue-assigned.json").assignee.unwrap();
    assert_eq!(
        (assigned.kind.as_str(), assigned.name.as_deref()),
        ("user", Some("Hemanth V. Alluri"))
    );

    let created = alert("issue-created.json");
    assert_eq!(created.short_id.as_deref(), Some("PYTHON-Y"));
    assert_eq!(created.project.as_deref(), Some("python"));
    assert_eq!(
        (created.event_count, created.user_count),
        (Some(3), Some(3))
    );
    assert_eq!(
        created.first_seen.unwrap().to_rfc3339(),
        "2025-11-10T20:56:00.679+00:00"
    );
    assert_eq!(
        created.culprit.as_deref(),
        Some("test-transaction-0-41e49cd3-7252-441f-8d27-63a9ad697b0a")
    );

    assert_eq!(
        alert("issue-resolved.json").resolution_type.as_deref(),
        Some("now")
    );
    let comment = alert("comment-created.json").comment.unwrap();
    assert_eq!(comment.text.as_deref(), Some("adding a comment"));
    assert_eq!(comment.id.as_deref(), Some("1234"));
}

#[tokio::test]
async fn reference_signature_vector_is_accepted_and_empty_body_reaches_the_json_check() {
    // REFERENCE.md §1: this exact body, signed with `test-client-secret`, has this signature.
    let body = r#"{"action":"created","installation":{"uuid":"eac5a0ae-60ec-418f-9318-46dc5e7e52ec"},"data":{"comment_id":1234,"issue_id":100,"project_slug":"sentry","timestamp":"2022-03-02T21:51:44.118160Z","comment":"adding a comment \u00e9"},"actor":{"type":"user","id":1,"name":"colleen"}}"#;
    let vector_signature = "7b43f45edbad4f5a5c3da52621542199875b69c99d26c0084f9f65409ee19112";
    let herald = start_with_secret("test-client-secret");
    let response = post_raw(
        &herald,
        Some("comment"),
        Some(vector_signature),
        body.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(response.status(), 202);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["issue_id"], "100");

    // The empty-body vector verifies, so herald goes on to the JSON check and answers 400.
    let empty_signature = "cff7ccd625537ce1a726fd29f7fc4beca8a15c96b6c9ee9b9461e149f57d4e88";
    let response = post_raw(&herald, Some("comment"), Some(empty_signature), Vec::new()).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("not valid JSON"),
        "{error}"
    );

    // Sentry's ASCII escapes re-encoded as UTF-8 are different bytes: the signature no longer holds.
    let re_encoded = body.replace(r"\u00e9", "é");
    let response = post_raw(
        &herald,
        Some("comment"),
        Some(vector_signature),
        re_encoded.into_bytes(),
    )
    .await;
    assert_eq!(response.status(), 401);
    assert_eq!(herald.readiness().await["alerts"], 1);
}

fn start_with_secret(secret: &str) -> Herald {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config = common::base_config(&dir.path().join("data")).replace(SECRET, secret);
    Herald::start_with(dir, &config)
}

async fn post_raw(
    herald: &Herald,
    resource: Option<&str>,
    signature: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = herald.client().post(herald.url("/hooks/sentry")).body(body);
    if let Some(resource) = resource {
        request = request.header("Sentry-Hook-Resource", resource);
    }
    if let Some(signature) = signature {
        request = request.header("Sentry-Hook-Signature", signature);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn bad_inputs_get_their_status_and_store_nothing() {
    let herald = Herald::start();
    let good = fixture("issue-created.json");
    let signature = sign(SECRET, &good);
    let oversized = {
        let mut body = br#"{"action":"created","data":{"padding":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', 70 * 1024));
        body.extend_from_slice(b"\"}}");
        body
    };
    let malformed = br#"{"action":"created","data":{"issue":"#.to_vec();
    let not_object = b"[1,2,3]".to_vec();

    // (what, resource header, signature header, body, status, words of the error)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<String>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "no signature",
            Some("issue"),
            None,
            good.clone(),
            401,
            "missing Sentry-Hook-Signature",
        ),
        (
            "wrong signature",
            Some("issue"),
            Some(sign("wrong-secret", &good)),
            good.clone(),
            401,
            "does not match",
        ),
        (
            "garbage signature",
            Some("issue"),
            Some("sha256=zzz".into()),
            good.clone(),
            401,
            "does not match",
        ),
        (
            "signature of another body",
            Some("issue"),
            Some(signature.clone()),
            fixture("issue-resolved.json"),
            401,
            "does not match",
        ),
        (
            "no resource",
            None,
            Some(signature.clone()),
            good.clone(),
            400,
            "missing Sentry-Hook-Resource",
        ),
        (
            "odd resource",
            Some("issue/../x"),
            Some(signature.clone()),
            good.clone(),
            400,
            "not a resource name",
        ),
        (
            "malformed JSON",
            Some("issue"),
            Some(sign(SECRET, &malformed)),
            malformed.clone(),
            400,
            "not valid JSON: EOF while parsing",
        ),
        (
            "not an object",
            Some("issue"),
            Some(sign(SECRET, &not_object)),
            not_object.clone(),
            400,
            "not an object",
        ),
        (
            "too large",
            Some("issue"),
            Some(sign(SECRET, &oversized)),
            oversized.clone(),
            413,
            "larger than the limit of 65536 bytes",
        ),
    ];
    for (what, resource, signature, body, status, message) in cases {
        let response = post_raw(&herald, resource, signature.as_deref(), body).await;
        assert_eq!(response.status(), status, "{what}");
        let error: Value = response.json().await.unwrap();
        let text = error["error"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{what}: {text}");
    }

    // A chunked body (no Content-Length) over the limit is refused while it is read.
    assert_eq!(post_chunked(&herald, &oversized, 8 * 1024).await.0, 413);

    // Legacy plugin: unknown token, and malformed JSON behind a good one.
    let response = herald
        .client()
        .post(herald.url("/hooks/sentry/legacy/not-the-token-at-all"))
        .body(fixture("legacy-webhook.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = herald
        .client()
        .post(herald.url(&format!("/hooks/sentry/legacy/{LEGACY_TOKEN}")))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let ready = herald.readiness().await;
    assert_eq!(ready["alerts"], 0, "{ready}");
    assert_eq!(ready["queued_jobs"], 0, "{ready}");
    // And the good callback still goes through afterwards.
    assert_eq!(herald.post_sentry("issue", &good).await.status(), 202);
    assert_eq!(herald.readiness().await["alerts"], 1);
}

#[tokio::test]
async fn a_callback_that_arrives_in_many_pieces_is_stored_whole() {
    let mut herald = Herald::start();
    let body = fixture("issue-created.json");
    // 100-byte chunks, each written on its own after a pause: herald reads the body in pieces.
    let (status, answer) = post_chunked(&herald, &body, 100).await;
    assert_eq!(status, 202, "{answer}");
    let receipt: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let alert_id: u64 = receipt["alert_id"].as_str().unwrap().parse().unwrap();
    assert!(herald.terminate().success());
    herald
        .wait_for_log("everything accepted is on disk", Duration::from_secs(10))
        .await;
    let store = Store::open(&herald.data_dir()).unwrap();
    assert_eq!(store.alert_count(), 1);
    let stored = store
        .alert(alert_id)
        .unwrap()
        .expect("the callback is stored");
    let sent = String::from_utf8(body).unwrap();
    assert_eq!(stored.alert.raw.get(), sent.trim());
}

/// Sends `body` with `Transfer-Encoding: chunked` over a plain socket, `chunk` bytes at a time
/// with a pause between chunks, and returns the status and the whole answer.
async fn post_chunked(herald: &Herald, body: &[u8], chunk: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(herald.address)
        .await
        .unwrap();
    let head = format!(
        "POST /hooks/sentry HTTP/1.1\r\nHost: {}\r\nSentry-Hook-Resource: issue\r\n\
         Sentry-Hook-Signature: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        herald.address,
        sign(SECRET, body)
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(chunk) {
        let frame = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
        if socket.write_all(&frame).await.is_err() {
            break; // herald may answer and close before the whole body is sent
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn unknown_resources_and_actions_are_accepted_and_recorded() {
    let herald = Herald::start();
    let body = br#"{"action":"exploded","installation":{"uuid":"u-1"},"data":{"thing":{"id":7}}}"#;
    let response = herald.post_sentry("brand_new_resource", body).await;
    assert_eq!(response.status(), 202);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["recognized"], false);
    assert_eq!(receipt["title"], "brand_new_resource.exploded");
    assert_eq!(receipt["targets"], serde_json::json!([]));

    let body =
        br#"{"action":"teleported","data":{"issue":{"id":"9","title":"t","level":"error"}}}"#;
    let receipt: Value = herald
        .post_sentry("issue", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["recognized"], false);
    assert_eq!(receipt["issue_id"], "9");
    assert_eq!(herald.readiness().await["alerts"], 2);
    herald
        .wait_for_log(
            "resource=brand_new_resource action=exploded",
            Duration::from_secs(10),
        )
        .await;
}

/// Refusals that come before the body is read (a path herald does not serve, a method a path
/// does not take, an intake that is off, an SDK project herald does not know): the client still
/// reads them while it sends a large body, rather than a reset. 12 MiB is more than the two
/// sockets' buffers hold, so that a server that closes without draining is caught; five tries
/// each, as a first one often gets through either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refused_before_its_body_is_read_still_reads_the_answer() {
    let herald = Herald::start();
    let refusals = [
        ("/hooks/nonexistent", 404, "nothing at this path"),
        ("/healthz", 405, "does not take this method"),
        ("/hooks/alertmanager", 404, "intake is off"),
        ("/hooks/grafana", 404, "intake is off"),
        ("/api/999/envelope/", 404, "no project \\\"999\\\""),
    ];
    for (path, expected, reason) in refusals {
        for answer in common::post_blocking_tries(herald.address, path, 12 << 20, 5).await {
            match answer {
                Ok((status, text)) => {
                    assert_eq!(status, expected, "{path}: {text}");
                    assert!(text.contains(reason), "{path}: {text}");
                }
                Err(error) => panic!("{path}: the {expected} did not reach the client: {error}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_too_much_reads_the_413() {
    let herald = Herald::start();
    let answers = common::post_blocking_tries(herald.address, "/hooks/sentry", 2 << 20, 10).await;
    for (attempt, answer) in answers.iter().enumerate() {
        match answer {
            Ok((status, text)) => {
                assert_eq!(*status, 413, "attempt {attempt}: {text}");
                assert!(
                    text.contains("larger than the limit"),
                    "attempt {attempt}: {text}"
                );
            }
            Err(error) => panic!("attempt {attempt}: the 413 did not reach the client: {error}"),
        }
    }
}
