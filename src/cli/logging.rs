//! Where herald's logs go, and in which format.

use std::io::IsTerminal;

use super::log_writer::{batched_stderr, FlushGuard};
use super::LogFormat;

/// Logs go to stderr (stdout belongs to the console target), filtered by `RUST_LOG`.
///
/// A background thread does the writing, a batch of lines at a time, so a request never waits on
/// the terminal or a log collector's pipe (see [`super::log_writer`]). The returned guard writes
/// what is pending when `main` returns.
pub(super) fn init(format: LogFormat) -> FlushGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = batched_stderr();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Human => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    guard
}
