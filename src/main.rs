//! herald's command line. Parsing arguments and choosing a subcommand is all that happens here;
//! each subcommand is a call into the library.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

// Linked for its `malloc`, which replaces glibc's for the whole process (see Cargo.toml).
#[cfg(target_os = "linux")]
use tikv_jemalloc_sys as _;

use herald::alert::Alert;
use herald::config::Config;
use herald::render::MessageView;
use herald::route::{Mentions, Router};
use herald::store::MemoryLinks;
use herald::targets::{Delivery, Outcome, Target};

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "A durable bridge from Sentry webhooks to the places your team reads"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bridge.
    Serve {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        /// `human` (the default) or `json`, one object a line, for log collectors.
        #[arg(long, env = "HERALD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Validate the config (templates included) and print it with every secret masked; exit 1 if
    /// it is not usable.
    CheckConfig {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
    },
    /// Print exactly what a target would send for a Sentry payload.
    Render {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        /// The target's name.
        #[arg(long)]
        target: String,
        /// The Sentry resource of the payload (`issue`, `event_alert`, `metric_alert`, …, or
        /// `legacy` for the legacy plugin). By default, the file name up to its first `-`.
        #[arg(long)]
        resource: Option<String>,
        /// A JSON file holding a Sentry webhook payload.
        payload: PathBuf,
    },
    /// Show which targets a Sentry payload would reach, and whom each would @-mention.
    Route {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        /// The Sentry resource of the payload (see `render`).
        #[arg(long)]
        resource: Option<String>,
        /// A JSON file holding a Sentry webhook payload.
        payload: PathBuf,
    },
    /// Inspect or replay dead letters: on the data folder when herald is stopped, or through the
    /// admin API (server.admin_token) when it runs.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Exit 0 if herald answers on /healthz (for container health checks).
    Healthcheck {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
    },
    /// Send one test message to a target now and print the downstream's answer.
    SendTest {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        /// The target's name.
        #[arg(long)]
        target: String,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// List dead letters (all, or one target's).
    List {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        #[arg(long)]
        target: Option<String>,
        /// herald's address when it runs (default: `server.listen`).
        #[arg(long)]
        url: Option<String>,
    },
    /// Put dead letters back in the queue: one by id, or all of a target.
    Replay {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        #[arg(long, conflicts_with = "target", required_unless_present = "target")]
        id: Option<u64>,
        #[arg(long)]
        target: Option<String>,
        /// herald's address when it runs (default: `server.listen`).
        #[arg(long)]
        url: Option<String>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve {
            config: path,
            log_format,
        } => {
            let _log_writer = init_logging(log_format);
            let (config, _) = match load(&path) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let Some(runtime) = runtime() else {
                return ExitCode::FAILURE;
            };
            match runtime.block_on(herald::server::serve(path, config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { config: path } => match load(&path) {
            Ok((config, _)) => {
                print!("{}", herald::config::describe(&path, &config));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Render {
            config,
            target,
            resource,
            payload,
        } => {
            let (_, targets) = match load(&config) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let Some(target) = find_target(&targets, &target) else {
                return ExitCode::FAILURE;
            };
            let view = match read_payload(&payload, resource.as_deref()) {
                Ok(view) => view,
                Err(message) => {
                    eprintln!("herald: {message}");
                    return ExitCode::FAILURE;
                }
            };
            let key = "herald-render";
            match target.render(&Delivery {
                view: &view,
                mentions: &Mentions::default(),
                idempotency_key: key,
                raw: None,
            }) {
                Ok(body) => {
                    println!("{body}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("herald: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Route {
            config,
            resource,
            payload,
        } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(error) => return refuse_config(&error.to_string()),
            };
            let alert = match read_alert(&payload, resource.as_deref()) {
                Ok(alert) => alert,
                Err(message) => {
                    eprintln!("herald: {message}");
                    return ExitCode::FAILURE;
                }
            };
            let router = Router::new(&config.routes, config.target_names());
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
                let mut people: Vec<String> = routed
                    .mentions
                    .mobiles
                    .iter()
                    .chain(&routed.mentions.user_ids)
                    .map(|p| format!("@{p}"))
                    .collect();
                if routed.mentions.all {
                    people.push("@all".into());
                }
                let mentions = if people.is_empty() {
                    String::new()
                } else {
                    format!(" mentioning {}", people.join(" "))
                };
                println!("  -> {}{mentions}", routed.target);
            }
            ExitCode::SUCCESS
        }
        Command::DeadLetters { action } => dead_letters::run(action),
        Command::Healthcheck { config } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(error) => return refuse_config(&error.to_string()),
            };
            let Some(runtime) = runtime() else {
                return ExitCode::FAILURE;
            };
            let url = format!("{}/healthz", dead_letters::local_url(&config));
            let healthy = runtime.block_on(async {
                reqwest::Client::new()
                    .get(&url)
                    .timeout(std::time::Duration::from_secs(3))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            });
            if healthy {
                ExitCode::SUCCESS
            } else {
                eprintln!("herald: {url} did not answer 200");
                ExitCode::FAILURE
            }
        }
        Command::SendTest { config, target } => {
            let (_, targets) = match load(&config) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let Some(target) = find_target(&targets, &target) else {
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
    }
}

/// The config and its targets (templates compiled), or the exit code after saying what is wrong.
fn load(path: &Path) -> Result<(Config, Vec<Arc<Target>>), ExitCode> {
    let config = Config::load(path).map_err(|error| refuse_config(&error.to_string()))?;
    let targets = herald::targets::build_all(
        &config.targets,
        config.templates.timezone(),
        Arc::new(MemoryLinks::default()),
    )
    .map_err(|error| refuse_config(&error.to_string()))?;
    Ok((config, targets))
}

fn refuse_config(message: &str) -> ExitCode {
    eprintln!("herald: config error: {message}");
    ExitCode::FAILURE
}

fn find_target<'t>(targets: &'t [Arc<Target>], name: &str) -> Option<&'t Target> {
    let found = targets.iter().find(|t| t.name == name).map(Arc::as_ref);
    if found.is_none() {
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        eprintln!(
            "herald: no target is named {name:?} (configured: {})",
            names.join(", ")
        );
    }
    found
}

fn read_payload(path: &Path, resource: Option<&str>) -> Result<MessageView, String> {
    let alert = read_alert(path, resource)?;
    Ok(MessageView::new(&alert, 0, 0, chrono::Utc::now()))
}

fn read_alert(path: &Path, resource: Option<&str>) -> Result<Alert, String> {
    let body = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let resource = resource.map(str::to_string).unwrap_or_else(|| {
        file_name
            .split(['-', '.'])
            .next()
            .unwrap_or("issue")
            .to_string()
    });
    if resource == "legacy" {
        herald::sentry::parse_legacy_payload(&body)
    } else {
        herald::sentry::parse_integration_payload(&resource, &body)
    }
    .map_err(|e| format!("{}: {e}", path.display()))
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("herald: cannot start the async runtime: {error}");
            None
        }
    }
}

/// Logs go to stderr (stdout belongs to the console target), filtered by `RUST_LOG`.
///
/// A background thread does the writing, so a request never waits on the terminal or a log
/// collector's pipe. It is not lossy: when its buffer is full, callers wait rather than drop lines.
/// It writes what has queued up in one go and flushes whenever the queue is empty, so under load a
/// burst of lines costs one write, and no line waits for the next.
/// The returned guard flushes what is buffered when `main` returns.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Human => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    guard
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// `herald dead-letters`: straight on the store when herald is stopped (the store is then free),
/// through the admin API when it runs (the store is locked by the running herald).
mod dead_letters {
    use super::*;
    use herald::store::Store;
    use serde_json::Value;

    pub fn run(action: DeadLetterAction) -> ExitCode {
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
            DeadLetterAction::List { target, .. } => store.dead_letters().try_for_each(|dead| {
                let dead = dead?;
                if target.as_ref().is_none_or(|t| *t == dead.job.target) {
                    let title = store
                        .alert(dead.job.alert_id)?
                        .map(|s| s.alert.title)
                        .unwrap_or_default();
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        dead.job.id,
                        dead.job.target,
                        dead.died_at.to_rfc3339(),
                        dead.reason.as_str(),
                        dead.last_answer,
                        title
                    );
                }
                Ok(())
            }),
            DeadLetterAction::Replay { id, target, .. } => store
                .replay_dead_letters(
                    &|job| Some(job.id) == id || target.as_ref() == Some(&job.target),
                    chrono::Utc::now(),
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

    fn flush(store: &Store) -> Result<(), herald::store::StoreError> {
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
                let query: Vec<(&str, &str)> =
                    target.iter().map(|t| ("target", t.as_str())).collect();
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
                        let field = |k: &str| dead[k].as_str().unwrap_or_default().to_string();
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

    /// herald's own address, as a local client reaches it (a wildcard listen means loopback).
    pub fn local_url(config: &Config) -> String {
        let mut address = config.server.listen;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
        }
        format!("http://{address}")
    }
}
