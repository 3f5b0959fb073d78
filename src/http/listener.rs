//! herald's accept loop around hyper. axum's `serve` gives hyper no timer and takes every
//! connection offered, so a client that sends half a request, or nothing, holds its connection
//! and file descriptor forever; enough of them and neither Sentry nor the downstreams' answers
//! get a socket. Here every connection has a deadline for its headers (which is also how long an
//! idle keep-alive connection is kept), at most `max_connections` are served at once (the rest
//! wait in the kernel's backlog), and shutdown waits for requests in flight for a bounded time.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The most a connection's read buffer grows to (hyper's minimum is 8 KiB).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// What one connection may hold of herald.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// For a request's headers to arrive, and for an idle keep-alive connection to send its next
    /// request.
    pub header_timeout: Duration,
    /// After `shutdown`, how long requests in flight may take before their connections are cut.
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets requests
/// in flight finish (at most `limits.shutdown_grace`) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // hyper's read buffer grows to ~400 KiB on a connection that sends fast; a thousand of
        // them would hold 400 MiB. 64 KiB reads a callback's body in a few reads all the same.
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors, most often: wait for some to be closed.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A connection's end (a client gone, a timeout) is not herald's error.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?limits.shutdown_grace,
            "requests still in flight after the shutdown grace; their connections are closed"
        );
    }
}
