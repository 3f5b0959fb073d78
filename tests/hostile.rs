//! Hostile and unlucky clients, black box: herald on loopback with small limits, and raw sockets
//! that send half a request, nothing at all, or a body that never ends.

mod common;

use common::{fixture, Herald, SECRET};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn start(server: &str) -> Herald {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
body_limit = "64KiB"
{server}

[sentry]
client_secrets = ["{SECRET}"]

[[targets]]
name = "stdout"
kind = "console"
"#,
        data = dir.path().join("data").display(),
    );
    Herald::start_with(dir, &config)
}

/// Reads until herald closes the connection (or `within` passes); returns what it said.
async fn answer_of(socket: &mut TcpStream, within: Duration) -> Option<String> {
    let mut answer = Vec::new();
    match tokio::time::timeout(within, socket.read_to_end(&mut answer)).await {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

/// The head of a signed Sentry callback whose body is `length` bytes.
fn sentry_head(herald: &Herald, length: usize, signature: &str) -> String {
    format!(
        "POST /hooks/sentry HTTP/1.1\r\nHost: {}\r\nSentry-Hook-Resource: issue\r\n\
         Sentry-Hook-Signature: {signature}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n",
        herald.address
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_sent_requests_are_cut_off_and_cannot_crowd_out_a_callback() {
    let herald = start("header_timeout = \"1s\"\nmax_connections = 20");
    // Twice as many connections as herald serves: some send nothing, some half a head.
    let mut held = Vec::new();
    for at in 0..40 {
        let mut socket = TcpStream::connect(herald.address).await.unwrap();
        if at % 2 == 0 {
            socket
                .write_all(b"POST /hooks/sentry HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        held.push(socket);
    }
    // A signed callback behind them is answered once herald has cut them off.
    let started = Instant::now();
    let response = herald
        .post_sentry("issue", &fixture("issue-created.json"))
        .await;
    assert_eq!(response.status(), 202);
    // Every one of them was closed by herald, not kept.
    for (at, socket) in held.iter_mut().enumerate() {
        let answer = answer_of(socket, Duration::from_secs(10)).await;
        assert!(
            answer.is_some(),
            "connection {at} is still open after {:?}",
            started.elapsed()
        );
    }
    // An idle keep-alive connection is closed too, after its request.
    let mut socket = TcpStream::connect(herald.address).await.unwrap();
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = answer_of(&mut socket, Duration::from_secs(10)).await;
    let answer = answer.expect("an idle connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_408_and_holds_nothing() {
    let herald = start("body_timeout = \"1s\"\nbody_memory = \"128KiB\"");
    let body = fixture("issue-created.json");
    // Two bodies of 64 KiB, each sent but for its last byte: they hold all of body_memory.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut socket = TcpStream::connect(herald.address).await.unwrap();
        let head = sentry_head(&herald, 64 * 1024, "00");
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(&vec![b' '; 64 * 1024 - 1]).await.unwrap();
        stalled.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile a callback finds no memory to read into: 503 and Retry-After, at once.
    let response = herald.post_sentry("issue", &body).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let error: serde_json::Value = response.json().await.unwrap();
    assert!(error["error"]
        .as_str()
        .unwrap()
        .contains("too many callbacks at once"));

    // The stalled ones are answered 408 when their time is up, and their memory is back.
    for socket in &mut stalled {
        let answer = answer_of(socket, Duration::from_secs(10)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("did not arrive within"), "{answer}");
    }
    let response = herald.post_sentry("issue", &body).await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        herald.readiness().await["alerts"],
        1,
        "nothing of the refused ones is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_without_credentials_is_refused_before_its_body_is_held() {
    let herald = start("body_memory = \"64KiB\"");
    let body = fixture("issue-created.json");
    // Unsigned: answered 401 once sent, and it reserved none of body_memory on the way.
    let mut socket = TcpStream::connect(herald.address).await.unwrap();
    let head = format!(
        "POST /hooks/sentry HTTP/1.1\r\nHost: x\r\nSentry-Hook-Resource: issue\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        64 * 1024
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&vec![b' '; 32 * 1024]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = herald.post_sentry("issue", &body).await;
    assert_eq!(response.status(), 202, "the unsigned body holds no memory");
    socket.write_all(&vec![b' '; 32 * 1024]).await.unwrap();
    let answer = answer_of(&mut socket, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // A wrong signature is checked once the body is read: 401 too.
    let response = herald
        .post_sentry_signed_with("not-the-secret", &body)
        .await;
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_even_while_a_client_holds_half_a_request() {
    let mut herald = start("body_timeout = \"10m\"\nshutdown_grace = \"1s\"");
    let mut socket = TcpStream::connect(herald.address).await.unwrap();
    let head = sentry_head(&herald, 1000, "00");
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(b"{\"action\":").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = tokio::task::spawn_blocking(move || herald.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    // herald is gone: its end of the connection is closed.
    assert!(answer_of(&mut socket, Duration::from_secs(5))
        .await
        .is_some());
}

/// herald's resident memory, from /proc.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_answering_without_end_is_read_only_in_part() {
    // 200, then a body of a gigabyte, as fast as herald reads it.
    let endless = axum::Router::new().fallback(|| async {
        let chunk = axum::body::Bytes::from(vec![b'x'; 1 << 20]);
        let stream =
            futures::stream::iter((0..1024).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        axum::body::Body::from_stream(stream)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, endless).await.unwrap() });
    let herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"http://{address}/hook\"\n"
    ));
    let response = herald
        .post_sentry("issue", &fixture("issue-created.json"))
        .await;
    assert_eq!(response.status(), 202);
    let ready = herald.wait_until_drained(Duration::from_secs(20)).await;
    assert_eq!(
        ready["dead_letters"], 0,
        "a 200 is delivered, whatever follows it"
    );
    let rss = rss_mib(herald.pid());
    assert!(rss < 200, "herald holds {rss} MiB after a 1 GiB answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_payload_or_a_downstream_says_cannot_forge_log_lines_or_leak_a_credential() {
    const API_KEY: &str = "api-key-0123456789";
    const FORGED: &str = "2026-12-01T00:00:00Z  INFO herald: forged";
    // A downstream that refuses with its answer full of control characters and the key it got.
    let echo = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let key = headers["x-api-key"].to_str().unwrap().to_string();
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!("bad key {key}\n{FORGED}\u{1b}[2J"),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, echo).await.unwrap() });
    let mut herald = Herald::start_with_targets(&format!(
        "[[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"http://{address}/hook\"\n\
         headers = {{ X-Api-Key = \"{API_KEY}\" }}\n"
    ));
    // A Sentry payload whose action and title try the same.
    let mut payload: serde_json::Value =
        serde_json::from_slice(&fixture("issue-created.json")).unwrap();
    payload["action"] = format!("created\n{FORGED}").into();
    payload["data"]["issue"]["title"] = format!("KeyError\u{1b}[31m\n{FORGED}").into();
    let response = herald
        .post_sentry("issue", &serde_json::to_vec(&payload).unwrap())
        .await;
    assert_eq!(response.status(), 202);
    herald
        .wait_for_log("DELIVERY REFUSED", Duration::from_secs(10))
        .await;
    let logs = herald.logs();
    assert!(!logs.contains(API_KEY), "{logs}");
    assert!(!logs.contains('\u{1b}'), "{logs}");
    assert!(
        logs.lines().all(|line| !line.starts_with(FORGED)),
        "a forged line: {logs}"
    );
    assert!(logs.contains("bad key ***"), "{logs}");

    // The dead letter, listed on the terminal: one line, nothing that moves the cursor.
    herald.terminate();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["dead-letters", "list", "--config"])
        .arg(herald.data_dir().parent().unwrap().join("herald.toml"))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{listed}");
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        !listed.contains('\u{1b}') && !listed.contains(API_KEY),
        "{listed}"
    );
    assert!(listed.contains("KeyError"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_removed_under_herald_is_never_answered_2xx() {
    let herald = start("");
    let created = fixture("issue-created.json");
    assert_eq!(herald.post_sentry("issue", &created).await.status(), 202);
    std::fs::remove_dir_all(herald.data_dir()).unwrap();
    // Whatever is posted now would be written into files that are gone: never 2xx.
    let resolved = fixture("issue-resolved.json");
    let response = herald.post_sentry("issue", &resolved).await;
    assert_eq!(response.status(), 503);
    herald.wait_for_restart_in_place().await;
    // A new store in a new folder: it takes callbacks again, and knows nothing of the old one.
    assert_eq!(herald.post_sentry("issue", &resolved).await.status(), 202);
    assert_eq!(herald.readiness().await["alerts"], 1);
    assert!(herald.data_dir().is_dir());
}

#[tokio::test]
async fn ids_beyond_u64_huge_numbers_and_lone_surrogates_are_read_not_refused() {
    let herald = start("");
    let template = String::from_utf8(fixture("issue-created.json")).unwrap();
    let with_id = |id: &str| {
        let mut payload: serde_json::Value = serde_json::from_str(&template).unwrap();
        payload["data"]["issue"]["id"] = serde_json::Value::Null;
        payload["data"]["issue"]["title"] = "TITLE".into();
        serde_json::to_string(&payload)
            .unwrap()
            .replacen("\"id\":null", &format!("\"id\":{id}"), 1)
    };
    // Two issues whose numeric ids differ only beyond u64: two issues, not one and a duplicate.
    let first = with_id("100000000000000000001");
    let second = with_id("100000000000000000002");
    let mut issue_ids = Vec::new();
    for body in [&first, &second] {
        let response = herald.post_sentry("issue", body.as_bytes()).await;
        assert_eq!(response.status(), 202);
        let receipt: serde_json::Value = response.json().await.unwrap();
        assert_eq!(receipt["status"], "accepted", "{receipt}");
        issue_ids.push(receipt["issue_id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        issue_ids,
        ["100000000000000000001", "100000000000000000002"]
    );

    // A value beyond f64 and a lone surrogate (as Python's json.dumps writes a broken string).
    let odd = with_id("\"77\"")
        .replacen("{", "{\"huge\":1e400,\"digits\":1", 1)
        .replace("\"digits\":1", &format!("\"digits\":{},", "9".repeat(309)))
        .replacen("\"TITLE\"", "\"broken \\ud800 text\"", 1);
    let response = herald.post_sentry("issue", odd.as_bytes()).await;
    let status = response.status();
    let receipt: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{receipt}");
    assert!(
        receipt["title"]
            .as_str()
            .unwrap()
            .starts_with("broken \u{FFFD} text"),
        "{receipt}"
    );
}

#[test]
fn connections_are_kept_within_the_open_files_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[sentry]\nclient_secrets = [\"{SECRET}\"]\n\
             [[targets]]\nname = \"stdout\"\nkind = \"console\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // A hard limit of 400 open files: herald cannot serve its default 1,024 connections.
    let mut child = std::process::Command::new("prlimit")
        .arg("--nofile=400:400")
        .arg(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux)");
    let stderr = child.stderr.take().unwrap();
    let mut said = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains("herald listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(said.contains("leaves room for 144 connections"), "{said}");
}
