//! What the commands that change herald's data (`dead-letters`, `issues`) share: working on the
//! store when herald is stopped (the store is then free), else through the admin API of the
//! herald that holds it.

use serde_json::Value;
use std::process::ExitCode;

use super::{local_url, runtime};
use crate::config::Config;
use crate::store::{Store, StoreError};

/// Where a command does its work.
pub(super) enum Reach {
    Store(Store),
    Api(AdminClient),
}

/// Opens the store, or, when a running herald holds it, reaches that herald's admin API
/// (at `url`, else `server.listen`).
pub(super) fn reach(config: &Config, url: Option<String>) -> Result<Reach, ExitCode> {
    match config.open_store() {
        Ok(store) => Ok(Reach::Store(store)),
        Err(store_error) => match &config.server.admin_token {
            Some(token) => Ok(Reach::Api(AdminClient {
                base: url
                    .unwrap_or_else(|| local_url(config))
                    .trim_end_matches('/')
                    .to_string(),
                token: token.expose().to_string(),
            })),
            None => {
                eprintln!("herald: cannot open the store ({store_error}); if herald is running, set server.admin_token to reach it through the admin API");
                Err(ExitCode::FAILURE)
            }
        },
    }
}

/// Makes what was written to the store durable, and says what failed.
pub(super) fn finish(store: &Store, result: Result<(), StoreError>) -> ExitCode {
    let flushed = result.and_then(|()| match runtime() {
        Some(runtime) => runtime.block_on(store.commit()),
        None => Ok(()),
    });
    match flushed {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A running herald's admin API.
pub(super) struct AdminClient {
    base: String,
    token: String,
}

impl AdminClient {
    /// Sends one request to `path` (with `query`, and `body` as JSON when given) and hands back
    /// the answer's JSON, or says on stderr why there is none.
    pub(super) fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, ExitCode> {
        let runtime = runtime().ok_or(ExitCode::FAILURE)?;
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = runtime.block_on(async {
            let response = request.send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            ))
        });
        match answer {
            Ok((status, body)) if status.is_success() => Ok(body),
            Ok((status, body)) => {
                eprintln!(
                    "herald: the admin API answered {status}: {}",
                    body["error"].as_str().unwrap_or_default()
                );
                Err(ExitCode::FAILURE)
            }
            Err(error) => {
                eprintln!(
                    "herald: cannot reach herald's admin API at {}: {}",
                    self.base,
                    if error.is_connect() {
                        "connection refused"
                    } else {
                        "request failed"
                    }
                );
                Err(ExitCode::FAILURE)
            }
        }
    }
}
