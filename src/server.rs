//! `herald serve`: open the store, bind, answer until SIGINT/SIGTERM, then drain and flush.

use anyhow::Context;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::store::Store;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let data_dir = config.server.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await
        .context("the store's opening task failed")?
        .with_context(|| {
            format!(
                "cannot open the store in {}",
                config.server.data_dir.display()
            )
        })?;
    tracing::info!(
        store = %store.path().display(),
        alerts = store.alert_count(),
        queued_jobs = store.queued_job_count(),
        "store opened"
    );

    let state = Arc::new(AppState::new(&config, store.clone()));
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(
        targets = config.targets.len(),
        routes = config.routes.len(),
        "herald listening on http://{address}"
    );

    let shutdown_state = state.clone();
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            shutdown_state.shutting_down.store(true, Ordering::Relaxed);
            tracing::info!("shutting down: no new callbacks, finishing the ones in flight");
        })
        .await
        .context("the HTTP server failed")?;

    store
        .flush()
        .await
        .context("the final flush of the store failed")?;
    tracing::info!("stopped; everything accepted is on disk");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT stops herald");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
