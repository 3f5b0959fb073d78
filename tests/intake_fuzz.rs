//! Property tests of the intake: whatever bytes arrive, herald neither panics nor answers 5xx.
//! The HTTP cases run the real router in-process against a real store in a temporary folder.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{fixture, fixtures_dir, sign, LEGACY_TOKEN, SECRET};
use herald::config::Config;
use herald::http::{router, AppState, Reloadable};
use herald::sentry::{parse_integration_payload, parse_legacy_payload};
use herald::store::Store;
use proptest::prelude::*;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

const RESOURCES: &[&str] = &[
    "issue",
    "event_alert",
    "error",
    "metric_alert",
    "comment",
    "installation",
    "activity_alert",
    "seer",
    "preprod_artifact",
    "brand_new",
];

struct Intake {
    _dir: tempfile::TempDir,
    state: Arc<AppState>,
    runtime: tokio::runtime::Runtime,
}

impl Intake {
    fn new() -> Intake {
        // Under target/, since the per-thread intake lives until the process exits.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let text = common::base_config(&dir.path().join("data"));
        let config = Config::parse(std::path::Path::new("fuzz.toml"), &text, |_| None).unwrap();
        let store = Store::open(&config.server.data_dir).unwrap();
        let live = Reloadable::new(
            Arc::new(config),
            store.clone(),
            herald::store::Wakers::default(),
        );
        let state = Arc::new(AppState::new(
            store,
            Arc::new(herald::metrics::Metrics::new()),
            live,
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Intake {
            _dir: dir,
            state,
            runtime,
        }
    }

    fn post(
        &self,
        path: &str,
        resource: Option<&str>,
        signature: Option<String>,
        body: Vec<u8>,
    ) -> StatusCode {
        let mut request = Request::post(path);
        if let Some(resource) = resource {
            request = request.header("Sentry-Hook-Resource", resource);
        }
        if let Some(signature) = signature {
            request = request.header("Sentry-Hook-Signature", signature);
        }
        let request = request.body(Body::from(body)).unwrap();
        let app = router(self.state.clone());
        self.runtime
            .block_on(async { app.oneshot(request).await.unwrap().status() })
    }

    fn post_signed(&self, resource: &str, body: Vec<u8>) -> StatusCode {
        let signature = sign(SECRET, &body);
        self.post("/hooks/sentry", Some(resource), Some(signature), body)
    }
}

fn fixture_bodies() -> Vec<Vec<u8>> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names.iter().map(|n| fixture(n)).collect()
}

/// Any JSON value, a few levels deep, with the types Sentry's fields could plausibly be confused with.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        "(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|\\+00:00)?".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("issue".to_string()),
                    Just("event".to_string()),
                    Just("error".to_string()),
                    Just("title".to_string()),
                    Just("level".to_string()),
                    Just("tags".to_string()),
                    Just("count".to_string()),
                    Just("userCount".to_string()),
                    Just("firstSeen".to_string()),
                    Just("project".to_string()),
                    Just("metric_alert".to_string()),
                    Just("alert_rule".to_string()),
                    Just("exception".to_string()),
                    Just("values".to_string()),
                    Just("stacktrace".to_string()),
                    Just("frames".to_string()),
                    Just("assignee".to_string()),
                    Just("web_url".to_string()),
                    Just("issue_url".to_string()),
                    Just("timestamp".to_string()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, .. ProptestConfig::default() })]

    /// The parsers alone: arbitrary bytes under every resource never panic.
    #[test]
    fn parsers_never_panic_on_bytes(resource in prop::sample::select(RESOURCES), body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_integration_payload(resource, &body);
        let _ = parse_legacy_payload(&body);
    }

    /// Any JSON object under any resource is accepted by the parser (quirks are not errors).
    #[test]
    fn parsers_accept_any_json_object(resource in prop::sample::select(RESOURCES), data in any_json(), action in "[a-z_]{0,10}") {
        let body = serde_json::to_vec(&serde_json::json!({"action": action, "data": data})).unwrap();
        let alert = parse_integration_payload(resource, &body).unwrap();
        prop_assert!(!alert.title.is_empty());
        prop_assert!(!alert.dedupe_key.is_empty());
        let legacy = serde_json::to_vec(&serde_json::json!({"id": data.clone(), "event": data})).unwrap();
        prop_assert!(parse_legacy_payload(&legacy).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, .. ProptestConfig::default() })]

    /// Through the router: signed arbitrary bytes get 202, 400 or 413, never a 5xx.
    #[test]
    fn signed_garbage_is_a_client_error_or_accepted(resource in prop::sample::select(RESOURCES), body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let intake = intake();
        let status = intake.post_signed(resource, body);
        prop_assert!(matches!(status.as_u16(), 202 | 400 | 413), "{status}");
    }

    /// Fixtures with bytes flipped or cut: 202 when still a JSON object, 400 otherwise.
    #[test]
    fn mutated_fixtures_never_fail_the_server(
        index in 0usize..30,
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        resource in prop::sample::select(RESOURCES),
    ) {
        let bodies = fixture_bodies();
        let mut body = bodies[index % bodies.len()].clone();
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        body.truncate(cut.index(body.len() + 1).max(1));
        let is_object = serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.is_object());
        let status = intake().post_signed(resource, body);
        prop_assert_eq!(status.as_u16(), if is_object { 202 } else { 400 });
    }

    /// Unsigned or wrongly signed: always 401, whatever the body.
    #[test]
    fn unsigned_is_always_401(body in prop::collection::vec(any::<u8>(), 0..512), signature in prop::option::of("[0-9a-f]{0,64}")) {
        let status = intake().post("/hooks/sentry", Some("issue"), signature, body);
        prop_assert_eq!(status.as_u16(), 401);
    }

    /// The legacy hook: bytes behind a good token are 202 or 400; a bad token is 401.
    #[test]
    fn legacy_hook_never_fails_the_server(body in prop::collection::vec(any::<u8>(), 0..1024), token in "[a-zA-Z0-9-]{1,30}") {
        let intake = intake();
        let status = intake.post(&format!("/hooks/sentry/legacy/{LEGACY_TOKEN}"), None, None, body.clone());
        prop_assert!(matches!(status.as_u16(), 202 | 400), "{status}");
        if token != LEGACY_TOKEN {
            let status = intake.post(&format!("/hooks/sentry/legacy/{token}"), None, None, body);
            prop_assert_eq!(status.as_u16(), 401);
        }
    }
}

/// One intake (store, runtime) per test thread, shared by that test's cases.
fn intake() -> &'static Intake {
    thread_local! {
        static INTAKE: &'static Intake = Box::leak(Box::new(Intake::new()));
    }
    INTAKE.with(|intake| *intake)
}
