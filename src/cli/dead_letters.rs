//! `herald dead-letters`: straight on the store when herald is stopped, through the admin API
//! when it runs (see `admin_client`).

use crate::render::printable;
use reqwest::Method;
use std::process::ExitCode;

use super::admin_client::{finish, reach, AdminClient, Reach};
use super::{refuse_config, DeadLetterAction};
use crate::config::Config;
use crate::store::Store;

pub(super) fn run(action: DeadLetterAction) -> ExitCode {
    let (path, url) = match &action {
        DeadLetterAction::List { config, url, .. }
        | DeadLetterAction::Replay { config, url, .. } => (config.clone(), url.clone()),
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => return refuse_config(&error.to_string()),
    };
    match reach(&config, url) {
        Ok(Reach::Store(store)) => offline(&store, action),
        Ok(Reach::Api(client)) => online(&client, action),
        Err(code) => code,
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
    finish(store, result)
}

fn online(client: &AdminClient, action: DeadLetterAction) -> ExitCode {
    let answer = match &action {
        DeadLetterAction::List { target, .. } => {
            let query: Vec<(&str, &str)> = target.iter().map(|t| ("target", t.as_str())).collect();
            client.call(Method::GET, "/api/dead-letters", &query, None)
        }
        DeadLetterAction::Replay { id: Some(id), .. } => client.call(
            Method::POST,
            &format!("/api/dead-letters/{id}/replay"),
            &[],
            None,
        ),
        DeadLetterAction::Replay { target, .. } => client.call(
            Method::POST,
            "/api/dead-letters/replay",
            &[("target", target.as_deref().unwrap_or_default())],
            None,
        ),
    };
    let body = match answer {
        Ok(body) => body,
        Err(code) => return code,
    };
    if let Some(items) = body["dead_letters"].as_array() {
        for dead in items {
            let field = |k: &str| printable(dead[k].as_str().unwrap_or_default()).into_owned();
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
