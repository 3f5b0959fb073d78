//! A fast local downstream for the benchmarks: answers every POST like a DingTalk robot that
//! accepted the message (`{"errcode":0}`), counts them, and for herald's webhook bodies notes
//! when each issue's first message arrived (Unix microseconds), for end-to-end latency.
//!
//!   cargo run --release --example sink -- 127.0.0.1:9999
//!   GET /count    how many messages arrived
//!   GET /arrivals {"<issue id>": <unix µs>, …}

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct Sink {
    received: AtomicU64,
    arrivals: Mutex<HashMap<String, u64>>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let sink = Arc::new(Sink::default());
    let app = Router::new()
        .route("/robot/send", post(accept))
        .route("/hook", post(accept))
        .route("/count", get(count))
        .route("/arrivals", get(arrivals))
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .expect("the sink's address is free");
    eprintln!("sink listening on {address}");
    axum::serve(listener, app).await.expect("the sink runs");
}

async fn accept(State(sink): State<Arc<Sink>>, body: axum::body::Bytes) -> &'static str {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64;
    sink.received.fetch_add(1, Ordering::Relaxed);
    if let Ok(message) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(issue) = message["alert"]["issue_id"].as_str() {
            sink.arrivals
                .lock()
                .unwrap()
                .entry(issue.to_string())
                .or_insert(now);
        }
    }
    r#"{"errcode":0,"errmsg":"ok"}"#
}

async fn count(State(sink): State<Arc<Sink>>) -> String {
    sink.received.load(Ordering::Relaxed).to_string()
}

async fn arrivals(State(sink): State<Arc<Sink>>) -> Json<HashMap<String, u64>> {
    Json(sink.arrivals.lock().unwrap().clone())
}
