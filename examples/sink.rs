//! A fast local downstream for the benchmarks: answers every POST like a DingTalk robot that
//! accepted the message (`{"errcode":0}`), counts them, and reports the count on `GET /count`.
//!
//!   cargo run --release --example sink -- 127.0.0.1:9999

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let received = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/robot/send", post(accept))
        .route("/count", get(count))
        .with_state(received);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .expect("the sink's address is free");
    eprintln!("sink listening on {address}");
    axum::serve(listener, app).await.expect("the sink runs");
}

async fn accept(State(received): State<Arc<AtomicU64>>, _body: axum::body::Bytes) -> &'static str {
    received.fetch_add(1, Ordering::Relaxed);
    r#"{"errcode":0,"errmsg":"ok"}"#
}

async fn count(State(received): State<Arc<AtomicU64>>) -> String {
    received.load(Ordering::Relaxed).to_string()
}
