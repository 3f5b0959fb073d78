//! `herald issues list|resolve|mute|reopen`: herald's SDK issues, on the store when herald is
//! stopped, through the admin API when it runs (see `admin_client`). A resolve queues its
//! "Resolved" message either way; a stopped herald sends it when it runs.

use reqwest::Method;
use serde_json::{json, Value};
use std::process::ExitCode;

use super::admin_client::{finish, reach, AdminClient, Reach};
use super::{refuse_config, runtime, IssueAction};
use crate::config::Config;
use crate::render::printable;
use crate::sdk::issue::{Resolution, Status};
use crate::store::{Store, StoreError, Wakers};
use crate::triage::{self, Change, TriageError};

pub(super) fn run(action: IssueAction) -> ExitCode {
    let (path, url) = match &action {
        IssueAction::List { config, url, .. }
        | IssueAction::Resolve { config, url, .. }
        | IssueAction::Mute { config, url, .. }
        | IssueAction::Reopen { config, url, .. } => (config.clone(), url.clone()),
    };
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => return refuse_config(&error.to_string()),
    };
    if let IssueAction::List {
        status: Some(status),
        ..
    } = &action
    {
        if !Status::NAMES.contains(&status.as_str()) {
            eprintln!(
                "herald: --status {status:?} is not one of {}",
                Status::NAMES.join(", ")
            );
            return ExitCode::FAILURE;
        }
    }
    match reach(&config, url) {
        Ok(Reach::Store(store)) => offline(&config, &store, action),
        Ok(Reach::Api(client)) => online(&client, action),
        Err(code) => code,
    }
}

/// What the command asks for, as a change of the issue; `None` for a listing.
fn change_of(action: &IssueAction) -> Result<Option<(String, Change)>, String> {
    Ok(match action {
        IssueAction::List { .. } => None,
        IssueAction::Resolve {
            id,
            release,
            in_next_release,
            ..
        } => {
            let how = match (release, in_next_release) {
                (Some(release), _) => Resolution::InRelease(release.clone()),
                (None, true) => Resolution::InNextRelease,
                (None, false) => Resolution::Now,
            };
            Some((id.clone(), Change::Resolve(how)))
        }
        IssueAction::Mute { id, duration, .. } => {
            let until = duration
                .as_deref()
                .map(triage::mute_until)
                .transpose()
                .map_err(|reason| format!("--for: {reason}"))?;
            Some((id.clone(), Change::Mute { until }))
        }
        IssueAction::Reopen { id, .. } => Some((id.clone(), Change::Reopen)),
    })
}

fn offline(config: &Config, store: &Store, action: IssueAction) -> ExitCode {
    let change = match change_of(&action) {
        Ok(change) => change,
        Err(reason) => {
            eprintln!("herald: {reason}");
            return ExitCode::FAILURE;
        }
    };
    let Some((id, change)) = change else {
        let IssueAction::List {
            project, status, ..
        } = &action
        else {
            return ExitCode::FAILURE;
        };
        let result = triage::list(store, project.as_deref(), status.as_deref()).map(|issues| {
            let now = crate::clock::now();
            for issue in issues {
                print_issue(&crate::http::issue_json(&issue, now));
            }
        });
        return finish(store, result);
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let intake = crate::intake::Intake::new(config, store.clone(), Wakers::default());
    let changed = runtime.block_on(triage::change(store, &intake, &id, change));
    match changed {
        Ok(changed) => {
            print_issue(&crate::http::issue_json(
                &changed.issue,
                crate::clock::now(),
            ));
            if let Some(receipt) = changed.told {
                println!(
                    "queued \"Resolved\" for {}; herald sends it when it runs",
                    receipt.queued.join(", ")
                );
            }
            finish(store, Ok(()))
        }
        Err(TriageError::Store(error)) => finish(store, Err::<(), StoreError>(error)),
        Err(error) => {
            eprintln!("herald: {error}");
            ExitCode::FAILURE
        }
    }
}

fn online(client: &AdminClient, action: IssueAction) -> ExitCode {
    let answer = match &action {
        IssueAction::List {
            project, status, ..
        } => {
            let mut query = vec![("limit", "1000")];
            query.extend(project.as_deref().map(|p| ("project", p)));
            query.extend(status.as_deref().map(|s| ("status", s)));
            client
                .call(Method::GET, "/api/issues", &query, None)
                .map(|body| {
                    for issue in body["issues"].as_array().into_iter().flatten() {
                        print_issue(issue);
                    }
                })
        }
        IssueAction::Resolve {
            id,
            release,
            in_next_release,
            ..
        } => {
            let body = match release {
                Some(release) => json!({ "release": release }),
                None => json!({ "in_next_release": in_next_release }),
            };
            changed(client, id, "resolve", body)
        }
        IssueAction::Mute { id, duration, .. } => {
            let body = match duration {
                Some(duration) => json!({ "for": duration }),
                None => json!({}),
            };
            changed(client, id, "mute", body)
        }
        IssueAction::Reopen { id, .. } => changed(client, id, "reopen", json!({})),
    };
    match answer {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn changed(client: &AdminClient, id: &str, verb: &str, body: Value) -> Result<(), ExitCode> {
    let path = format!("/api/issues/{}/{verb}", urlencoding(id));
    let answer = client.call(Method::POST, &path, &[], Some(body))?;
    print_issue(&answer);
    if let Some(told) = answer["told"].as_array() {
        let names: Vec<&str> = told.iter().filter_map(Value::as_str).collect();
        println!("queued \"Resolved\" for {}", names.join(", "));
    }
    Ok(())
}

/// An id as one path segment (ids are `7-h1-…`; anything else is escaped, not trusted).
fn urlencoding(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One line per issue: id, status, count, last seen, project, level, title.
fn print_issue(issue: &Value) {
    let field = |k: &str| printable(issue[k].as_str().unwrap_or_default()).into_owned();
    println!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        field("id"),
        field("status"),
        issue["count"].as_u64().unwrap_or_default(),
        field("last_seen"),
        field("project"),
        field("level"),
        field("title")
    );
}
