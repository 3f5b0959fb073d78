//! A generic fake downstream on 127.0.0.1: records every request (headers and body) and answers
//! from a script of (HTTP status, body) pairs; once the script is used up, `default` answers.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<(u16, String)>,
    default: (u16, String),
    /// Hold every answer this long (a downstream that hangs).
    hang: Option<Duration>,
    received: Vec<Request>,
}

#[derive(Clone)]
pub struct FakeDownstream {
    script: Arc<Mutex<Script>>,
    pub address: SocketAddr,
}

impl FakeDownstream {
    /// A downstream answering `default_status` with `default_body` unless scripted otherwise.
    pub async fn start(default_status: u16, default_body: &str) -> FakeDownstream {
        let script = Arc::new(Mutex::new(Script {
            default: (default_status, default_body.into()),
            ..Script::default()
        }));
        let app = Router::new().fallback(receive).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeDownstream { script, address }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn script(&self, replies: impl IntoIterator<Item = (u16, &'static str)>) {
        self.script
            .lock()
            .unwrap()
            .replies
            .extend(replies.into_iter().map(|(s, b)| (s, b.to_string())));
    }

    /// From now on, answer `status` with `body` (once the script is used up).
    pub fn answer(&self, status: u16, body: &str) {
        self.script.lock().unwrap().default = (status, body.to_string());
    }

    /// From now on, hold every answer this long (`None`: answer at once).
    pub fn hang(&self, hang: Option<Duration>) {
        self.script.lock().unwrap().hang = hang;
    }

    pub fn received(&self) -> Vec<Request> {
        self.script.lock().unwrap().received.clone()
    }

    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Request> {
        super::eventually(
            timeout,
            || format!("got {} of {count} requests", self.received().len()),
            || Some(self.received()).filter(|received| received.len() >= count),
        )
        .await
    }
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (status, answer, hang) = {
        let mut script = script.lock().unwrap();
        script.received.push(Request {
            at: Instant::now(),
            headers,
            body,
        });
        let (status, answer) = script
            .replies
            .pop_front()
            .unwrap_or_else(|| script.default.clone());
        (status, answer, script.hang)
    };
    if let Some(hang) = hang {
        tokio::time::sleep(hang).await;
    }
    (StatusCode::from_u16(status).unwrap(), answer).into_response()
}
