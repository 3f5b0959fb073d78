//! The harness every black-box test uses: the real `herald` binary, started on an ephemeral
//! loopback port with its own temporary data folder, and helpers to sign and send callbacks.
#![allow(dead_code)]

pub mod console;
pub mod dingtalk;
pub mod downstream;
pub mod github;
pub mod postgres;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub const SECRET: &str = "integration-test-secret";
pub const LEGACY_TOKEN: &str = "legacy-token-0123456789";

/// POSTs `body` to `path` the way a plain blocking client does (Python's urllib, curl): the whole
/// body is written before the answer is read, as a Sentry callback with a signature that matches
/// nothing. Returns the status and the answer's body, or how the client failed to read them (a
/// server that closes while the client still sends makes it a reset).
pub fn post_blocking(
    address: SocketAddr,
    path: &str,
    body: &[u8],
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nSentry-Hook-Resource: issue\r\n\
         Sentry-Hook-Signature: 00\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket
        .write_all(head.as_bytes())
        .and_then(|()| socket.write_all(body))
        .map_err(|e| format!("writing: {e}"))?;
    let mut answer = Vec::new();
    socket
        .read_to_end(&mut answer)
        .map_err(|e| format!("reading: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {answer:?}"))?;
    let text = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((status, text))
}

/// [`post_blocking`] of `size` bytes to `path`, `tries` times one after the other, off the
/// runtime.
pub async fn post_blocking_tries(
    address: SocketAddr,
    path: &'static str,
    size: usize,
    tries: usize,
) -> Vec<Result<(u16, String), String>> {
    tokio::task::spawn_blocking(move || {
        let body = vec![b' '; size];
        (0..tries)
            .map(|_| post_blocking(address, path, &body))
            .collect()
    })
    .await
    .unwrap()
}

/// Polls `check` every 20 ms until it gives a value; panics after `timeout` with `what()`.
pub async fn eventually<T>(
    timeout: Duration,
    what: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    eventually_async(timeout, what, || std::future::ready(check())).await
}

/// [`eventually`] for a check that must await (an HTTP call, a database query).
pub async fn eventually_async<T, F>(
    timeout: Duration,
    what: impl Fn() -> String,
    mut check: impl FnMut() -> F,
) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} (after {timeout:?})",
            what()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A signature computed here, independently of herald's own code.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sentry")
}

pub fn fixture(name: &str) -> Vec<u8> {
    fixture_in("sentry", name)
}

/// The issue-created fixture about Sentry issue `issue` instead: a distinct callback per number.
pub fn issue_created(issue: u64) -> Vec<u8> {
    let mut payload: serde_json::Value =
        serde_json::from_slice(&fixture("issue-created.json")).unwrap();
    payload["data"]["issue"]["id"] = serde_json::Value::String(issue.to_string());
    serde_json::to_vec(&payload).unwrap()
}

/// A file of `tests/fixtures/<folder>/`.
pub fn fixture_in(folder: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The config every test starts from: one console target, the test secret and legacy token.
pub fn base_config(data_dir: &Path) -> String {
    format!(
        "{}\n[[targets]]\nname = \"stdout\"\nkind = \"console\"\n",
        server_config(data_dir)
    )
}

/// The `[server]` and `[sentry]` sections every test uses, without targets.
pub fn server_config(data_dir: &Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{}"
body_limit = "64KiB"

[sentry]
client_secrets = ["another-secret-in-rotation", "{SECRET}"]
legacy_tokens = ["{LEGACY_TOKEN}"]
"#,
        data_dir.display()
    )
}

pub struct Herald {
    child: Child,
    pub address: SocketAddr,
    pub dir: Arc<tempfile::TempDir>,
    pub config_path: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

impl Herald {
    /// Starts herald on the base config in a fresh temporary folder.
    pub fn start() -> Herald {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let config = base_config(&dir.path().join("data"));
        Herald::start_with(dir, &config)
    }

    /// Starts herald with `config` (written into `dir`).
    pub fn start_with(dir: Arc<tempfile::TempDir>, config: &str) -> Herald {
        Herald::launch(dir, config, &[])
    }

    /// Starts herald with `config` (written into `dir`) and extra environment variables.
    pub fn launch(dir: Arc<tempfile::TempDir>, config: &str, env: &[(&str, &str)]) -> Herald {
        let config_path = dir.path().join("herald.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("herald starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("herald listening on http://").nth(1) {
                    let address: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                        .collect();
                    let _ = address_tx.send(address);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let address = match address_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(address) => address.parse().expect("a socket address in the log"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "herald did not start; its log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Herald {
            child,
            address,
            dir,
            config_path,
            logs,
            client: reqwest::Client::new(),
        }
    }

    /// Starts herald with the standard `[server]`/`[sentry]` sections and `rest` (targets, routes).
    pub fn start_with_targets(rest: &str) -> Herald {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let config = format!("{}\n{rest}", server_config(&dir.path().join("data")));
        Herald::start_with(dir, &config)
    }

    /// Waits until `/readyz` shows `queued_jobs == 0` (or panics after `timeout`).
    pub async fn wait_until_drained(&self, timeout: Duration) -> serde_json::Value {
        self.wait_for_readiness(timeout, "jobs still queued", |ready| {
            ready["queued_jobs"] == 0
        })
        .await
    }

    /// Waits until `/readyz` answers what `wanted` accepts, and returns that answer; after
    /// `timeout`, panics with `what` and the last answer.
    pub async fn wait_for_readiness(
        &self,
        timeout: Duration,
        what: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let last = Mutex::new(serde_json::Value::Null);
        eventually_async(
            timeout,
            || format!("{what}: {}", last.lock().unwrap()),
            || async {
                let ready = self.readiness().await;
                let found = wanted(&ready);
                *last.lock().unwrap() = ready.clone();
                found.then_some(ready)
            },
        )
        .await
    }

    /// Starts herald again on the same folder and config.
    pub fn restart(&self) -> Herald {
        let config = std::fs::read_to_string(&self.config_path).unwrap();
        Herald::start_with(self.dir.clone(), &config)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`"HUP"`, `"TERM"`, …) to herald.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the log has a line containing `text` (or panics after `timeout`).
    pub async fn wait_for_log(&self, text: &str, timeout: Duration) {
        eventually(
            timeout,
            || format!("no {text:?} in the log:\n{}", self.logs()),
            || self.logs().contains(text).then_some(()),
        )
        .await
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("herald did not stop within 10 s of SIGTERM");
    }

    /// Waits until herald has restarted itself in place (a store that could not write, a data
    /// folder removed) and listens again on the same address.
    pub async fn wait_for_restart_in_place(&self) {
        self.wait_for_log("restarting to open the store anew", Duration::from_secs(20))
            .await;
        eventually(
            Duration::from_secs(20),
            || format!("herald did not listen again:\n{}", self.logs()),
            || (self.logs().matches("herald listening on").count() >= 2).then_some(()),
        )
        .await;
    }

    /// Posts `body` to `/hooks/sentry` signed with `secret` (not the test secret: a forgery).
    pub async fn post_sentry_signed_with(&self, secret: &str, body: &[u8]) -> reqwest::Response {
        self.client
            .post(self.url("/hooks/sentry"))
            .header("Sentry-Hook-Resource", "issue")
            .header("Sentry-Hook-Signature", sign(secret, body))
            .body(body.to_vec())
            .send()
            .await
            .expect("herald answers")
    }

    /// Posts `body` to `/hooks/sentry`, signed with the test secret, with `resource` in its header.
    pub async fn post_sentry(&self, resource: &str, body: &[u8]) -> reqwest::Response {
        self.client
            .post(self.url("/hooks/sentry"))
            .header("Content-Type", "application/json")
            .header("Sentry-Hook-Resource", resource)
            .header("Sentry-Hook-Timestamp", "1700000000")
            .header("Sentry-Hook-Signature", sign(SECRET, body))
            .body(body.to_vec())
            .send()
            .await
            .expect("herald answers")
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `/metrics` as herald renders it.
    pub async fn metrics(&self) -> String {
        let answer = self.client.get(self.url("/metrics")).send().await;
        answer.expect("herald answers").text().await.unwrap()
    }

    /// The value of the unlabelled metric `name` in `/metrics` (panics if it is missing).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
    }

    pub async fn readiness(&self) -> serde_json::Value {
        self.client
            .get(self.url("/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The resource a fixture file is for: its name up to the first `-`.
pub fn resource_of(fixture_name: &str) -> &str {
    fixture_name.split('-').next().unwrap()
}
