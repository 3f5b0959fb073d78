//! `herald serve`: open the store, start the workers, answer until SIGINT/SIGTERM, then stop
//! accepting, let deliveries in flight finish (up to `server.shutdown_grace`), flush and exit.
//! SIGHUP reloads the config file: targets, routes, templates, secrets. A config that does not load
//! is refused with an error in the log, and the running one is kept. A store that can write no
//! more (a full disk) is watched for: herald refuses callbacks until the data folder takes writes
//! again, then stops and asks to be run anew ([`Stopped::Restart`]).

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{Mutex, Notify};

use crate::config::Config;
use crate::http::{self, AppState, ConnectionLimits, Reloadable};
use crate::metrics::Metrics;
use crate::queue::{TargetQueue, Workers};
use crate::store::{Store, Wakers};

/// How [`serve`] ended.
#[derive(Debug)]
pub enum Stopped {
    /// A signal asked herald to stop; everything accepted is on disk.
    Done,
    /// The store could write no more and the data folder takes writes again: herald must be run
    /// anew, listening on `listen`, to open the store from what is on disk.
    Restart { listen: SocketAddr },
}

/// Set by a herald that restarts itself: the address it listened on, so that the new process
/// listens on the same one even when `server.listen` asked for any free port.
pub const RESTART_LISTEN_VAR: &str = "HERALD_RESTART_LISTEN";

pub async fn serve(config_path: PathBuf, config: Config) -> anyhow::Result<Stopped> {
    let Signals {
        hangup,
        terminate,
        interrupt,
    } = Signals::register().context("cannot listen for signals")?;
    let opening = config.clone();
    let store = tokio::task::spawn_blocking(move || opening.open_store())
        .await
        .context("the store's opening task failed")?
        .with_context(|| format!("cannot open the store ({})", config.store_location()))?;
    match store.latest_time() {
        Ok(Some(latest)) => crate::clock::resume_from(latest),
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "cannot read the clock saved in the store"),
    }
    tracing::info!(
        store = %store.location(),
        alerts = store.alert_count(),
        queued_jobs = store.queued_job_count(),
        "store opened"
    );

    report_queued_jobs(&store, &config);
    let targets = target_queues(&config, &store).context("the config's templates do not load")?;
    let metrics = Arc::new(Metrics::new());
    let config = Arc::new(config);
    let (workers, wakers) = start_workers(&config, &store, targets, &metrics);
    let workers = Arc::new(Mutex::new(workers));
    let sweeper = tokio::spawn(sweep_periodically(store.clone(), config.clone()));
    let state = Arc::new(AppState::new(
        store.clone(),
        metrics.clone(),
        Reloadable::new(config.clone(), store.clone(), wakers),
    ));

    let max_connections = connections_within_file_limit(config.server.max_connections);
    let listen = std::env::var(RESTART_LISTEN_VAR)
        .ok()
        .and_then(|address| address.parse().ok())
        .unwrap_or(config.server.listen);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    tracing::info!(
        targets = config.targets.len(),
        routes = config.routes.len(),
        "herald listening on http://{address}"
    );

    let reloader = tokio::spawn(reload_on_sighup(
        hangup,
        config_path,
        state.clone(),
        workers.clone(),
    ));
    let restart = Arc::new(Notify::new());
    let watchdog = tokio::spawn(watch_store(
        state.clone(),
        config.server.data_dir.clone(),
        restart.clone(),
    ));
    let shutdown_state = state.clone();
    let restarting = restart.clone();
    let limits = ConnectionLimits {
        max_connections,
        header_timeout: config.server.header_timeout,
        shutdown_grace: config.server.shutdown_grace,
    };
    http::serve(listener, http::router(state.clone()), limits, async move {
        tokio::select! {
            () = shutdown_signal(terminate, interrupt) => {}
            () = restarting.notified() => {}
        }
        shutdown_state.shutting_down.store(true, Ordering::Relaxed);
        tracing::info!("shutting down: no new connections, finishing the requests in flight");
    })
    .await;

    reloader.abort();
    sweeper.abort();
    watchdog.abort();
    let grace = state.reloadable.load().config.server.shutdown_grace;
    let running = std::mem::replace(&mut *workers.lock().await, Workers::idle());
    running.stop(grace).await;
    if state.store_failed.load(Ordering::SeqCst) {
        // Nothing more can be written; what was answered 2xx was flushed before the answer.
        drop(store);
        tracing::warn!(listen = %address, "restarting to open the store anew");
        return Ok(Stopped::Restart { listen: address });
    }
    if let Err(error) = store.save_latest_time(crate::clock::now()) {
        tracing::warn!(%error, "cannot save the clock in the store");
    }
    store
        .commit()
        .await
        .context("the final flush of the store failed")?;
    tracing::info!("stopped; everything accepted is on disk");
    Ok(Stopped::Done)
}

/// Descriptors herald keeps for itself beyond the connections it serves: the store's files, the
/// downstreams' connections, the log.
const RESERVED_FILES: u64 = 256;

/// Raises the soft limit of open files to the hard one (systemd starts a service at 1,024 with
/// far more allowed), and returns how many connections herald can serve without taking the
/// descriptors its store and deliveries need: `max_connections`, or fewer, with a warning. At the
/// limit, a delivery to a healthy downstream would fail as "could not connect" and be blamed on it.
fn connections_within_file_limit(max_connections: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write the struct they are given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return max_connections;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let room = usize::try_from(limit.rlim_cur.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    if room >= max_connections {
        return max_connections;
    }
    let serving = room.max(1);
    tracing::warn!(
        open_files = limit.rlim_cur,
        max_connections,
        "the open-files limit ({}) leaves room for {serving} connections, not server.max_connections = {max_connections}; herald serves at most {serving} (raise the limit, e.g. LimitNOFILE)",
        limit.rlim_cur
    );
    serving
}

/// Every second a commit (nothing to flush costs nothing), and every ten the clock saved. Once the store says it can write no
/// more until it is opened again, herald refuses callbacks (503, `/readyz` not ready) and sends
/// nothing; when the data folder takes a test write again, `restart` is notified.
async fn watch_store(state: Arc<AppState>, data_dir: PathBuf, restart: Arc<Notify>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    for tick in 0u64.. {
        ticks.tick().await;
        if tick % 10 == 0 {
            // A restart after the wall clock stepped back goes on from here (`crate::clock`).
            let _ = state.store.save_latest_time(crate::clock::now());
        }
        let _ = state.store.commit().await;
        if state.store.needs_reopening() {
            break;
        }
    }
    state.store_failed.store(true, Ordering::SeqCst);
    tracing::error!(
        store = %state.store.location(),
        "THE STORE CANNOT WRITE (is the disk full, or was the data folder removed or replaced?): \
         every callback is answered 503 and nothing is sent; herald restarts itself once its \
         data folder takes writes again"
    );
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let probe = data_dir.join(".herald-write-probe");
        let written = tokio::task::spawn_blocking(move || write_probe(&probe)).await;
        if matches!(written, Ok(Ok(()))) {
            break;
        }
    }
    tracing::warn!(data_dir = %data_dir.display(), "the data folder takes writes again");
    restart.notify_one();
}

/// Writes, syncs and removes a file of a few megabytes: room for the store to open and go on.
fn write_probe(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let written = (|| {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        let mut file = std::fs::File::create(path)?;
        file.write_all(&vec![0u8; 4 << 20])?;
        file.sync_all()
    })();
    let removed = std::fs::remove_file(path);
    written.and(removed)
}

/// On each SIGHUP: load the config again; if it loads (templates included), restart the workers
/// on it and swap it in. Queued jobs are in the store and are picked up by the new workers.
async fn reload_on_sighup(
    mut hangups: Signal,
    config_path: PathBuf,
    state: Arc<AppState>,
    workers: Arc<Mutex<Workers>>,
) {
    while hangups.recv().await.is_some() {
        reload(&config_path, &state, &workers).await;
    }
}

async fn reload(config_path: &std::path::Path, state: &AppState, workers: &Mutex<Workers>) {
    let loaded = Config::load(config_path)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            target_queues(&config, &state.store)
                .map(|targets| (config, targets))
                .map_err(|e| e.to_string())
        });
    let (config, targets) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!(%error, "SIGHUP: the new config is refused; herald keeps running on the old one");
            return;
        }
    };
    let old = state.reloadable.load_full();
    for (key, changed) in [
        (
            "server.listen",
            config.server.listen != old.config.server.listen,
        ),
        (
            "server.data_dir",
            config.server.data_dir != old.config.server.data_dir,
        ),
    ] {
        if changed {
            tracing::warn!(
                key,
                "SIGHUP: {key} changed; that takes a restart, the old value stays in force"
            );
        }
    }
    let config = Arc::new(config);
    let mut running = workers.lock().await;
    std::mem::replace(&mut *running, Workers::idle())
        .stop(old.config.server.shutdown_grace)
        .await;
    let (started, wakers) = start_workers(&config, &state.store, targets, &state.metrics);
    *running = started;
    state.reloadable.store(Arc::new(Reloadable::new(
        config.clone(),
        state.store.clone(),
        wakers,
    )));
    tracing::info!(
        targets = config.targets.len(),
        routes = config.routes.len(),
        "SIGHUP: config reloaded"
    );
    // A target removed or renamed leaves its queue behind: say so now, not at the next start.
    report_queued_jobs(&state.store, &config);
}

/// Starts a worker per target, and the wakers through which the intake reaches them.
fn start_workers(
    config: &Config,
    store: &Store,
    targets: Vec<TargetQueue>,
    metrics: &Arc<Metrics>,
) -> (Workers, Wakers) {
    let wakers = Wakers::new(config.targets.iter().map(|t| t.name.as_str()));
    let workers = Workers::start(store.clone(), targets, &wakers, metrics.clone());
    (workers, wakers)
}

/// Every configured target, built (templates compiled), with its retry schedule.
fn target_queues(
    config: &Config,
    store: &Store,
) -> Result<Vec<TargetQueue>, crate::render::TemplateError> {
    let targets =
        crate::targets::build_all(&config.targets, config.templates.timezone(), store.links())?;
    Ok(TargetQueue::pair(&config.targets, targets))
}

/// Sweeps expired dedupe and fold records and old alerts every `store.sweep_every`, and reports
/// what the store takes on disk, so the data folder does not grow without bound.
async fn sweep_periodically(store: Store, config: Arc<Config>) {
    let mut ticks = tokio::time::interval(config.store.sweep_every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let sweeping = store.clone();
        let (dedupe, store_config) = (config.dedupe.clone(), config.store.clone());
        let swept = tokio::task::spawn_blocking(move || {
            let report = sweeping.sweep(
                crate::clock::now(),
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
                issues = report.issues,
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

/// The signals herald acts on. They are registered before herald says it is listening: a signal
/// that arrived between start and registration would otherwise get its default action, and for
/// SIGHUP and SIGTERM that is to kill the process on the spot.
struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }
}

async fn shutdown_signal(mut terminate: Signal, mut interrupt: Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
