//! Where herald's logs go, and in which format.

use std::io::IsTerminal;

use super::LogFormat;

/// Logs go to stderr (stdout belongs to the console target), filtered by `RUST_LOG`.
///
/// A background thread does the writing, so a request never waits on the terminal or a log
/// collector's pipe. It is not lossy: when its buffer is full, callers wait rather than drop lines.
/// It writes what has queued up in one go and flushes whenever the queue is empty, so under load a
/// burst of lines costs one write, and no line waits for the next.
/// The returned guard flushes what is buffered when `main` returns.
pub(super) fn init(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
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
