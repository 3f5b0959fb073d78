//! A fake DingTalk robot on 127.0.0.1: checks signatures the way DingTalk does, answers from a
//! script (errcodes, HTTP errors, hangs), optionally enforces DingTalk's 20-a-minute limit, and
//! records everything it received.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the robot answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Errcode(i64),
    Http(u16),
    /// Holds the request open this long, then answers success.
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub query: HashMap<String, String>,
    pub body: Value,
    pub body_bytes: usize,
    /// `None` when the robot has no secret; otherwise whether `sign` matched.
    pub signature_ok: Option<bool>,
    pub answered_errcode: Option<i64>,
}

#[derive(Default)]
struct Robot {
    secret: Option<String>,
    script: VecDeque<Reply>,
    received: Vec<Received>,
    /// Enforce DingTalk's rule: over `limit` in a minute, throttle (130101) for `throttle`.
    limit: Option<(usize, Duration)>,
    throttled_until: Option<Instant>,
    throttled_answers: usize,
}

#[derive(Clone)]
pub struct FakeDingTalk {
    robot: Arc<Mutex<Robot>>,
    pub address: SocketAddr,
}

impl FakeDingTalk {
    pub async fn start(secret: Option<&str>) -> FakeDingTalk {
        let robot = Arc::new(Mutex::new(Robot {
            secret: secret.map(String::from),
            ..Robot::default()
        }));
        let app = Router::new()
            .route("/robot/send", post(receive))
            .with_state(robot.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeDingTalk { robot, address }
    }

    pub fn url(&self) -> String {
        format!(
            "http://{}/robot/send?access_token=test-access-token",
            self.address
        )
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.robot.lock().unwrap().script.extend(replies);
    }

    pub fn enforce_limit(&self, per_minute: usize, throttle: Duration) {
        self.robot.lock().unwrap().limit = Some((per_minute, throttle));
    }

    pub fn received(&self) -> Vec<Received> {
        self.robot.lock().unwrap().received.clone()
    }

    /// The markdown text of every message received, in order.
    pub fn texts(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| {
                r.body["markdown"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    pub fn throttled_answers(&self) -> usize {
        self.robot.lock().unwrap().throttled_answers
    }

    /// Waits until at least `count` requests arrived (or panics after `timeout`).
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        super::eventually(
            timeout,
            || {
                format!(
                    "the robot got {} of {count} requests",
                    self.received().len()
                )
            },
            || Some(self.received()).filter(|received| received.len() >= count),
        )
        .await
    }
}

/// DingTalk's check: HMAC-SHA256 keyed with the secret over `timestamp + "\n" + secret`, base64,
/// compared with `sign` after the URL decoding of the query string (once).
pub fn expected_sign(secret: &str, timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn receive(
    State(robot): State<Arc<Mutex<Robot>>>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let now = Instant::now();
    let (reply, signature_ok) = {
        let mut robot = robot.lock().unwrap();
        let signature_ok = robot.secret.as_ref().map(|secret| {
            let fresh = query
                .get("timestamp")
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|t| (chrono::Utc::now().timestamp_millis() - t).abs() < 3_600_000);
            let signed = match (query.get("timestamp"), query.get("sign")) {
                (Some(timestamp), Some(sign)) => *sign == expected_sign(secret, timestamp),
                _ => false,
            };
            fresh && signed
        });
        let mut reply = robot.script.pop_front().unwrap_or(Reply::Errcode(0));
        if signature_ok == Some(false) {
            reply = Reply::Errcode(310000);
        }
        if let Some((limit, throttle)) = robot.limit {
            let in_last_minute = robot
                .received
                .iter()
                .filter(|r| now.duration_since(r.at) < Duration::from_secs(60))
                .count();
            if robot.throttled_until.is_some_and(|until| until > now) {
                reply = Reply::Errcode(130101);
            } else if in_last_minute >= limit {
                robot.throttled_until = Some(now + throttle);
                reply = Reply::Errcode(130101);
            }
            if matches!(reply, Reply::Errcode(130101)) {
                robot.throttled_answers += 1;
            }
        }
        let answered_errcode = match reply {
            Reply::Errcode(code) => Some(code),
            Reply::Hang(_) => Some(0),
            Reply::Http(_) => None,
        };
        robot.received.push(Received {
            at: now,
            query: query.clone(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            body_bytes: body.len(),
            signature_ok,
            answered_errcode,
        });
        (reply, signature_ok)
    };
    let _ = signature_ok;
    match reply {
        Reply::Errcode(0) => Json(json!({"errcode": 0, "errmsg": "ok"})).into_response(),
        Reply::Errcode(code) => {
            Json(json!({"errcode": code, "errmsg": format!("scripted error {code}")}))
                .into_response()
        }
        Reply::Http(status) => {
            (StatusCode::from_u16(status).unwrap(), "scripted HTTP error").into_response()
        }
        Reply::Hang(duration) => {
            tokio::time::sleep(duration).await;
            Json(json!({"errcode": 0, "errmsg": "ok"})).into_response()
        }
    }
}
