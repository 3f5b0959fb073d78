//! herald's command line: the arguments (parsed in `main.rs`), and one function per subcommand.
//! Each says what went wrong in one sentence on stderr and returns the exit code.

mod admin_client;
mod dead_letters;
mod issues;
mod log_writer;
mod logging;
mod preview;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::alert::{Alert, Source};
use crate::config::Config;
use crate::server::Stopped;
use crate::store::MemoryLinks;
use crate::targets::Target;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "A durable bridge from Sentry webhooks to the places your team reads"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Print exactly what a target would send for a payload.
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
        /// Who sent the payload: `sentry` (the default), `alertmanager` or `grafana`.
        #[arg(long, default_value = "sentry")]
        source: String,
        /// A JSON file holding a webhook payload.
        payload: PathBuf,
    },
    /// Show which targets a payload would reach, and whom each would @-mention.
    Route {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        /// The Sentry resource of the payload (see `render`).
        #[arg(long)]
        resource: Option<String>,
        /// Who sent the payload (see `render`).
        #[arg(long, default_value = "sentry")]
        source: String,
        /// A JSON file holding a webhook payload.
        payload: PathBuf,
    },
    /// Inspect or replay dead letters: on the data folder when herald is stopped, or through the
    /// admin API (server.admin_token) when it runs.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// List, resolve, mute or reopen the issues herald keeps for SDK events: on the data folder
    /// when herald is stopped, or through the admin API (server.admin_token) when it runs.
    Issues {
        #[command(subcommand)]
        action: IssueAction,
    },
    /// Print the DSN an SDK of `[[sdk.projects]]` PROJECT is given (`sentry_sdk.init(dsn=…)`).
    Dsn {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        /// The project's `name` (or its id).
        #[arg(long)]
        project: String,
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
pub enum IssueAction {
    /// List issues, most recently seen first: id, status, count, last seen, project, level, title.
    List {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        /// Only this project's (its name).
        #[arg(long)]
        project: Option<String>,
        /// open, resolved (any way), resolved_in_release, resolved_in_next_release or muted.
        #[arg(long)]
        status: Option<String>,
        /// herald's address when it runs (default: `server.listen`).
        #[arg(long)]
        url: Option<String>,
    },
    /// Resolve an issue: now (any later event is a regression), in a release, or in the next one.
    Resolve {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        id: String,
        /// Fixed in this release: events of older releases are not regressions.
        #[arg(long, conflicts_with = "in_next_release")]
        release: Option<String>,
        /// Fixed in the release after the newest one seen.
        #[arg(long)]
        in_next_release: bool,
        #[arg(long)]
        url: Option<String>,
    },
    /// Mute an issue: its events are counted and nothing is said, for a while or until reopened.
    Mute {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        id: String,
        /// For how long ("2h", "7d"); without it, until reopened.
        #[arg(long = "for")]
        duration: Option<String>,
        #[arg(long)]
        url: Option<String>,
    },
    /// Reopen a resolved or muted issue.
    Reopen {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
        id: String,
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum DeadLetterAction {
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

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Runs the subcommand `cli` names.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config, log_format } => serve(&config, log_format),
        Command::CheckConfig { config } => check_config(&config),
        Command::Render {
            config,
            target,
            resource,
            source,
            payload,
        } => preview::render(&config, &target, resource.as_deref(), &source, &payload),
        Command::Route {
            config,
            resource,
            source,
            payload,
        } => preview::route(&config, resource.as_deref(), &source, &payload),
        Command::SendTest { config, target } => preview::send_test(&config, &target),
        Command::DeadLetters { action } => dead_letters::run(action),
        Command::Issues { action } => issues::run(action),
        Command::Healthcheck { config } => healthcheck(&config),
        Command::Dsn { config, project } => dsn(&config, &project),
    }
}

/// `herald dsn`: `http(s)://KEY@HOST[/PATH]/ID` from `server.public_url` (else `server.listen`)
/// and the project's first public key. The key is no secret: SDKs in browsers carry it.
fn dsn(path: &Path, project: &str) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return refuse_config(&error.to_string()),
    };
    let sdk = &config.sdk;
    let Some(found) = sdk
        .project_named(project)
        .or_else(|| project.parse().ok().and_then(|id| sdk.project(id)))
    else {
        let known: Vec<&str> = sdk.projects.iter().map(|p| p.name.as_str()).collect();
        eprintln!("herald: no project {project:?} in [[sdk.projects]] (there are: {known:?})");
        return ExitCode::FAILURE;
    };
    let base = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.listen));
    let Ok(mut url) = reqwest::Url::parse(&base) else {
        eprintln!("herald: server.public_url is not a URL");
        return ExitCode::FAILURE;
    };
    let key = found.public_keys[0].expose();
    if url.set_username(key).is_err() {
        eprintln!("herald: server.public_url cannot carry a key");
        return ExitCode::FAILURE;
    }
    let prefix = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{prefix}/{}", found.id));
    println!("{url}");
    ExitCode::SUCCESS
}

fn serve(path: &Path, log_format: LogFormat) -> ExitCode {
    let log_writer = logging::init(log_format);
    let (config, _) = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(crate::server::serve(path.to_path_buf(), config)) {
        Ok(Stopped::Done) => ExitCode::SUCCESS,
        Ok(Stopped::Restart { listen }) => {
            drop(runtime);
            drop(log_writer); // what is logged so far is written before the process is replaced
            restart_in_place(listen)
        }
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs this herald anew in this process (same pid, arguments and environment, listening on
/// `listen`): a supervisor sees no exit, and the store is opened again from what is on disk.
fn restart_in_place(listen: std::net::SocketAddr) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let error = std::env::current_exe()
        .map(|exe| {
            std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env(crate::server::RESTART_LISTEN_VAR, listen.to_string())
                .exec()
        })
        .unwrap_or_else(|error| error);
    eprintln!("herald: cannot restart ({error}); start it again");
    ExitCode::FAILURE
}

fn check_config(path: &Path) -> ExitCode {
    match load(path) {
        Ok((config, _)) => {
            print!("{}", crate::config::describe(path, &config));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn healthcheck(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return refuse_config(&error.to_string()),
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let url = format!("{}/healthz", local_url(&config));
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

/// The config and its targets (templates compiled), or the exit code after saying what is wrong.
/// Links are kept in memory: a command run beside a serving herald cannot open its store.
fn load(path: &Path) -> Result<(Config, Vec<Arc<Target>>), ExitCode> {
    let config = Config::load(path).map_err(|error| refuse_config(&error.to_string()))?;
    let targets = crate::targets::build_all(
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

/// A payload file read as the alert herald would make of it (see [`crate::intake::read_payload`]).
/// For Sentry, the resource is `resource`, or the file name up to its first `-` or `.`.
fn read_alert(
    config: &Config,
    path: &Path,
    resource: Option<&str>,
    source: &str,
) -> Result<Alert, String> {
    let body = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let source = Source::parse(source).ok_or_else(|| {
        format!("--source {source:?}: sources are sentry, alertmanager, grafana and sentry_sdk")
    })?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let resource =
        resource.unwrap_or_else(|| file_name.split(['-', '.']).next().unwrap_or("issue"));
    crate::intake::read_payload(config, source, resource, &body)
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

/// herald's own address, as a local client reaches it (a wildcard listen means loopback).
fn local_url(config: &Config) -> String {
    let mut address = config.server.listen;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
    }
    format!("http://{address}")
}
