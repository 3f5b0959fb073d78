//! `herald dead-letters`: straight on the store when herald is stopped (the store is then free),
//! through the admin API when it runs (the store is locked by the running herald).

use crate::render::printable;
use serde_json::Value;
use std::process::ExitCode;

use super::{local_url, refuse_config, runtime, DeadLetterAction};
use crate::config::Config;
use crate::store::{Store, StoreError};

pub(super) fn run(action: DeadLetterAction) -> ExitCode {
    let (path, url) = match &action {
        DeadLetterAction::List { config, url, .. }
        | DeadLetterAction::Replay { config, url, .. } => (config.clone(), url.clone()),
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => return refuse_config(&error.to_string()),
    };
    match Store::open(&config.server.data_dir) {
        Ok(store) => offline(&store, action),
        Err(store_error) => match &config.server.admin_token {
            Some(_) => online(&config, url.unwrap_or_else(|| local_url(&config)), action),
            None => {
                eprintln!("herald: cannot open the store ({store_error}); if herald is running, set server.admin_token to reach it through the admin API");
                ExitCode::FAILURE
            }
        },
    }
}

fn offline(store: &Store, action: DeadLetterAction) -> ExitCode {
    let result = match action {
        DeadLetterAction::List { target, .. } => store
            .dead_letters_with_alerts(target.as_deref())
            .map(|listed| {
                for (dead, alert) in listed {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        dead.job.id,
                        dead.job.target,
                        dead.died_at.to_rfc3339(),
                        dead.reason.as_str(),
                        printable(&dead.last_answer),
                        printable(&alert.map(|a| a.title).unwrap_or_default())
                    );
                }
            }),
        DeadLetterAction::Replay { id, target, .. } => store
            .replay_dead_letters(
                &|job| Some(job.id) == id || target.as_ref() == Some(&job.target),
                crate::clock::now(),
            )
            .map(|replayed| {
                println!(
                    "replayed {} dead letters; herald delivers them when it runs",
                    replayed.len()
                )
            }),
    };
    let flushed = result.and_then(|()| flush(store));
    match flushed {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald: {error}");
            ExitCode::FAILURE
        }
    }
}

fn flush(store: &Store) -> Result<(), StoreError> {
    match runtime() {
        Some(runtime) => runtime.block_on(store.commit()),
        None => Ok(()),
    }
}

fn online(config: &Config, base: String, action: DeadLetterAction) -> ExitCode {
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let token = config
        .server
        .admin_token
        .as_ref()
        .map(|t| t.expose().to_string())
        .unwrap_or_default();
    let base = base.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let request = match &action {
        DeadLetterAction::List { target, .. } => {
            let query: Vec<(&str, &str)> = target.iter().map(|t| ("target", t.as_str())).collect();
            client.get(format!("{base}/api/dead-letters")).query(&query)
        }
        DeadLetterAction::Replay { id: Some(id), .. } => {
            client.post(format!("{base}/api/dead-letters/{id}/replay"))
        }
        DeadLetterAction::Replay { target, .. } => client
            .post(format!("{base}/api/dead-letters/replay"))
            .query(&[("target", target.clone().unwrap_or_default())]),
    };
    let answer = runtime.block_on(async {
        let response = request.bearer_auth(token).send().await?;
        let status = response.status();
        Ok::<_, reqwest::Error>((
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        ))
    });
    match answer {
        Ok((status, body)) if status.is_success() => {
            if let Some(items) = body["dead_letters"].as_array() {
                for dead in items {
                    let field =
                        |k: &str| printable(dead[k].as_str().unwrap_or_default()).into_owned();
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        field("id"),
                        field("target"),
                        field("died_at"),
                        field("reason"),
                        field("last_answer"),
                        field("title")
                    );
                }
            } else {
                let count = body["replayed"].as_array().map_or(0, Vec::len);
                println!("replayed {count} dead letters");
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!(
                "herald: the admin API answered {status}: {}",
                body["error"].as_str().unwrap_or_default()
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!(
                "herald: cannot reach herald's admin API at {base}: {}",
                if error.is_connect() {
                    "connection refused"
                } else {
                    "request failed"
                }
            );
            ExitCode::FAILURE
        }
    }
}
