//! herald's command line. Parsing arguments and choosing a subcommand is all that happens here.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use herald::config::Config;

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
    },
    /// Validate the config and print it with every secret masked; exit 1 if it is not usable.
    CheckConfig {
        #[arg(long, short, env = "HERALD_CONFIG", default_value = "herald.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let _log_writer = init_logging();
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(error) => return refuse_config(&error),
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("herald: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(herald::server::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { config: path } => match Config::load(&path) {
            Ok(config) => {
                print!("{}", herald::config::describe(&path, &config));
                ExitCode::SUCCESS
            }
            Err(error) => refuse_config(&error),
        },
    }
}

fn refuse_config(error: &herald::config::ConfigError) -> ExitCode {
    eprintln!("herald: config error: {error}");
    ExitCode::FAILURE
}

/// Logs go to stderr (stdout belongs to the console target), filtered by `RUST_LOG`.
///
/// A background thread does the writing, so a request never waits on the terminal or a log
/// collector's pipe. It is not lossy: when its buffer is full, callers wait rather than drop lines.
/// The returned guard flushes what is buffered when `main` returns.
fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    guard
}
