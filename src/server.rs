//! `herald serve`: open the store, bind, answer until SIGINT/SIGTERM, then drain and flush.

use anyhow::Context;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::queue::{Queue, Wakers};
use crate::store::Store;
use crate::targets::Configured;

/// How long in-flight deliveries may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub async fn serve(config: Config, targets: Vec<Configured>) -> anyhow::Result<()> {
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

    report_queued_jobs(&store, &config);
    let wakers = Wakers::new(config.targets.iter().map(|t| t.name.as_str()));
    let queue = Queue::start(store.clone(), targets, &wakers);

    let sweeper = tokio::spawn(sweep_periodically(store.clone(), config.clone()));
    let state = Arc::new(AppState::new(&config, store.clone(), wakers));
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

    sweeper.abort();
    queue.stop(SHUTDOWN_GRACE).await;
    store
        .commit()
        .await
        .context("the final flush of the store failed")?;
    tracing::info!("stopped; everything accepted is on disk");
    Ok(())
}

/// Sweeps expired dedupe and fold records and old alerts every `store.sweep_every`, and reports
/// what the store takes on disk, so the data folder does not grow without bound.
async fn sweep_periodically(store: Store, config: Config) {
    let mut ticks = tokio::time::interval(config.store.sweep_every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let sweeping = store.clone();
        let (dedupe, store_config) = (config.dedupe.clone(), config.store.clone());
        let swept = tokio::task::spawn_blocking(move || {
            let report = sweeping.sweep(
                chrono::Utc::now(),
                dedupe.remember,
                dedupe.window,
                store_config.retention,
            )?;
            Ok::<_, crate::store::StoreError>((report, sweeping.size_on_disk()?))
        })
        .await;
        match swept {
            Ok(Ok((report, size))) => tracing::info!(
                dedupe_records = report.dedupe_records,
                fold_records = report.fold_records,
                alerts = report.alerts,
                store_size_bytes = size,
                "swept the store"
            ),
            Ok(Err(error)) => {
                tracing::error!(%error, "the store sweep failed; it runs again later")
            }
            Err(error) => tracing::error!(%error, "the store sweep task failed"),
        }
    }
}

/// Says how many jobs are resumed, and warns about jobs for targets no longer configured.
fn report_queued_jobs(store: &Store, config: &Config) {
    let per_target = match store.queued_jobs_per_target() {
        Ok(counts) => counts,
        Err(error) => {
            tracing::error!(%error, "cannot count the queued jobs");
            return;
        }
    };
    let resumed: u64 = per_target
        .iter()
        .filter(|(name, _)| config.target(name).is_some())
        .map(|(_, count)| count)
        .sum();
    tracing::info!(jobs = resumed, "resumed {resumed} queued jobs");
    for (name, count) in per_target
        .iter()
        .filter(|(name, _)| config.target(name).is_none())
    {
        tracing::warn!(target_name = %name, jobs = count, "{count} jobs are queued for target {name:?}, which is not configured; they wait until it is configured again");
    }
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
