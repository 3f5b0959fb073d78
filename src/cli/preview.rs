//! The subcommands that show what herald would do, without a running herald: `render`, `route`
//! and `send-test`.

use std::path::Path;
use std::process::ExitCode;

use super::{find_target, load, read_alert, refuse_config, runtime};
use crate::config::Config;
use crate::render::MessageView;
use crate::route::Mentions;
use crate::targets::{Delivery, Outcome};

/// `herald render`: prints exactly what `target` would send for the payload.
pub fn render(
    config: &Path,
    target: &str,
    resource: Option<&str>,
    source: &str,
    payload: &Path,
) -> ExitCode {
    let (config, targets) = match load(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let Some(target) = find_target(&targets, target) else {
        return ExitCode::FAILURE;
    };
    let view = match read_alert(&config, payload, resource, source) {
        Ok(alert) => MessageView::new(&alert, 0, 0, chrono::Utc::now()),
        Err(message) => {
            eprintln!("herald: {message}");
            return ExitCode::FAILURE;
        }
    };
    let rendered = target.render(&Delivery {
        view: &view,
        mentions: &Mentions::default(),
        idempotency_key: "herald-render",
        raw: None,
        parts_sent: 0,
    });
    match rendered {
        Ok(bodies) => {
            // A message sent in parts: one body a line, in the order they are sent.
            for body in bodies {
                println!("{body}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("herald: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `herald route`: which targets the payload would reach, and whom each would @-mention.
pub fn route(config: &Path, resource: Option<&str>, source: &str, payload: &Path) -> ExitCode {
    let config = match Config::load(config) {
        Ok(config) => config,
        Err(error) => return refuse_config(&error.to_string()),
    };
    let alert = match read_alert(&config, payload, resource, source) {
        Ok(alert) => alert,
        Err(message) => {
            eprintln!("herald: {message}");
            return ExitCode::FAILURE;
        }
    };
    let router = config.router();
    let routed = router.route(&alert);
    println!(
        "{} ({}, level {})",
        alert.title,
        alert.event_name(),
        alert.level.map_or("none", |l| l.as_str())
    );
    if routed.is_empty() {
        println!("  reaches no target");
    }
    for routed in routed {
        let people = routed.mentions.describe();
        let mentions = if people.is_empty() {
            String::new()
        } else {
            format!(" mentioning {people}")
        };
        println!("  -> {}{mentions}", routed.target);
    }
    ExitCode::SUCCESS
}

/// `herald send-test`: delivers one sample message to `target` now and prints the answer.
pub fn send_test(config: &Path, target: &str) -> ExitCode {
    let (_, targets) = match load(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let Some(target) = find_target(&targets, target) else {
        return ExitCode::FAILURE;
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let view = MessageView::sample();
    let key = format!("herald-test-{}", chrono::Utc::now().timestamp_millis());
    let outcome = runtime.block_on(target.deliver(&Delivery {
        view: &view,
        mentions: &Mentions::default(),
        idempotency_key: &key,
        raw: None,
        parts_sent: 0,
    }));
    match outcome {
        Outcome::Delivered { answer } | Outcome::Continue { answer, .. } => {
            println!("delivered to {}: {answer}", target.name);
            ExitCode::SUCCESS
        }
        Outcome::Gone { answer } => {
            println!(
                "NOT delivered to {}: the endpoint is gone (HTTP 410): {answer}",
                target.name
            );
            ExitCode::FAILURE
        }
        Outcome::Retry { answer, reason, .. } | Outcome::Permanent { answer, reason } => {
            println!(
                "NOT delivered to {} ({}): {answer}",
                target.name,
                reason.as_str()
            );
            ExitCode::FAILURE
        }
    }
}
