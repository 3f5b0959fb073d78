//! Prometheus metrics, named after Alertmanager's so existing dashboards translate:
//! `herald_notifications_total` is `alertmanager_notifications_total`, and so on.
//!
//! Labels carry target names, kinds, Sentry resources and actions, outcome and failure reasons —
//! never a URL, a token or anything from a payload beyond the resource and action names, and those
//! only for callbacks that passed the signature check (a forger cannot grow the label set).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::job::FailureReason;
use crate::store::{Store, StoreError};

/// Why the metrics could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot encode the metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    resource: String,
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetKindLabels {
    target: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailedLabels {
    target: String,
    kind: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

type LatencyFamily = Family<TargetLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    /// Callbacks by source and outcome over the last hour, for the console.
    pub recent_intake: RecentIntake,
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    notifications: Family<TargetKindLabels, Counter>,
    failed: Family<FailedLabels, Counter>,
    latency: LatencyFamily,
    queue_depth: Family<TargetLabels, Gauge>,
    dead_letters: Family<TargetLabels, Gauge>,
    deduplicated: Counter,
    folded: Counter,
    store_size: Gauge,
    commits: Counter,
    commit_seconds: Counter<f64, AtomicU64>,
}

fn latency_histogram() -> Histogram {
    // 5 ms … ~20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let webhooks = Family::<WebhookLabels, Counter>::default();
        let notifications = Family::<TargetKindLabels, Counter>::default();
        let failed = Family::<FailedLabels, Counter>::default();
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        let queue_depth = Family::<TargetLabels, Gauge>::default();
        let dead_letters = Family::<TargetLabels, Gauge>::default();
        let deduplicated = Counter::default();
        let folded = Counter::default();
        let store_size = Gauge::default();
        let commits = Counter::default();
        let commit_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "herald_webhooks_received",
            "Sentry callbacks received, by resource, action and outcome",
            webhooks.clone(),
        );
        registry.register(
            "herald_notifications",
            "Delivery attempts, by target",
            notifications.clone(),
        );
        registry.register(
            "herald_notifications_failed",
            "Failed delivery attempts, by target and reason",
            failed.clone(),
        );
        registry.register(
            "herald_notification_latency_seconds",
            "Time a delivery attempt took",
            latency.clone(),
        );
        registry.register(
            "herald_queue_depth",
            "Jobs queued, by target",
            queue_depth.clone(),
        );
        registry.register(
            "herald_dead_letters",
            "Dead letters kept, by target",
            dead_letters.clone(),
        );
        registry.register(
            "herald_deduplicated",
            "Callbacks answered as duplicates",
            deduplicated.clone(),
        );
        registry.register(
            "herald_folded",
            "Alerts folded into the count of an earlier one, per target",
            folded.clone(),
        );
        registry.register(
            "herald_store_size_bytes",
            "Bytes the store takes on disk",
            store_size.clone(),
        );
        registry.register(
            "herald_store_commits",
            "Group commits: each makes a batch of writes durable at once",
            commits.clone(),
        );
        registry.register(
            "herald_store_commit_seconds",
            "Time the group commits took, in all (divided by the commits: how long the disk or the database makes a batch wait)",
            commit_seconds.clone(),
        );
        Metrics {
            recent_intake: RecentIntake::default(),
            registry,
            webhooks,
            notifications,
            failed,
            latency,
            queue_depth,
            dead_letters,
            deduplicated,
            folded,
            store_size,
            commits,
            commit_seconds,
        }
    }

    /// One callback and what became of it.
    pub fn webhook(&self, resource: &str, action: &str, outcome: &str) {
        let labels = WebhookLabels {
            resource: resource.into(),
            action: action.into(),
            outcome: outcome.into(),
        };
        self.webhooks.get_or_create(&labels).inc();
    }

    pub fn deduplicated(&self) {
        self.deduplicated.inc();
    }

    pub fn folded(&self, targets: usize) {
        self.folded.inc_by(targets as u64);
    }

    /// One delivery attempt (for each job in it), and its failure reason if it failed.
    pub fn attempt(
        &self,
        target: &str,
        kind: &str,
        latency: Duration,
        failure: Option<FailureReason>,
    ) {
        let labels = TargetKindLabels {
            target: target.into(),
            kind: kind.into(),
        };
        self.notifications.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&TargetLabels {
                target: target.into(),
            })
            .observe(latency.as_secs_f64());
        if let Some(reason) = failure {
            let labels = FailedLabels {
                target: target.into(),
                kind: kind.into(),
                reason: reason.as_str().into(),
            };
            self.failed.get_or_create(&labels).inc();
        }
    }

    /// The text exposition format, with the store's gauges read now. `targets` are the configured
    /// target names (their gauges are present even at zero).
    pub fn render(&self, store: &Store, targets: &[String]) -> Result<String, RenderError> {
        let queued = store.queued_jobs_per_target()?;
        let dead = store.dead_letters_per_target()?;
        for target in targets.iter().chain(queued.keys()).chain(dead.keys()) {
            let labels = TargetLabels {
                target: target.clone(),
            };
            self.queue_depth
                .get_or_create(&labels)
                .set(queued.get(target).copied().unwrap_or(0) as i64);
            self.dead_letters
                .get_or_create(&labels)
                .set(dead.get(target).copied().unwrap_or(0) as i64);
        }
        self.store_size.set(store.size_on_disk()? as i64);
        // The store keeps these totals; the counters show them as they are now.
        let (commits, took) = store.commit_totals();
        self.commits.inner().store(commits, Ordering::Relaxed);
        self.commit_seconds
            .inner()
            .store(took.as_secs_f64().to_bits(), Ordering::Relaxed);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Callbacks counted by source and outcome in one-minute buckets, for the last hour: what the
/// console's overview shows (Prometheus has the totals). Kept by each process for itself.
/// Per minute (Unix minutes), the counts by source and outcome.
type Minutes = std::collections::VecDeque<(i64, Vec<(String, &'static str, u64)>)>;

#[derive(Default)]
pub struct RecentIntake {
    minutes: std::sync::Mutex<Minutes>,
}

impl RecentIntake {
    const MINUTES: i64 = 60;

    pub fn count(&self, source: &str, outcome: &'static str) {
        let minute = chrono::Utc::now().timestamp() / 60;
        let mut minutes = self.lock();
        if minutes.back().is_none_or(|(at, _)| *at != minute) {
            minutes.push_back((minute, Vec::new()));
        }
        while minutes
            .front()
            .is_some_and(|(at, _)| *at <= minute - Self::MINUTES)
        {
            minutes.pop_front();
        }
        let (_, counts) = minutes.back_mut().expect("pushed above");
        match counts
            .iter_mut()
            .find(|(s, o, _)| s == source && *o == outcome)
        {
            Some((_, _, n)) => *n += 1,
            None => counts.push((source.to_string(), outcome, 1)),
        }
    }

    /// (source, outcome) → callbacks in the last hour.
    pub fn last_hour(&self) -> std::collections::BTreeMap<(String, &'static str), u64> {
        let since = chrono::Utc::now().timestamp() / 60 - Self::MINUTES;
        let mut totals = std::collections::BTreeMap::new();
        for (at, counts) in self.lock().iter() {
            if *at > since {
                for (source, outcome, n) in counts {
                    *totals.entry((source.clone(), *outcome)).or_insert(0) += n;
                }
            }
        }
        totals
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Minutes> {
        // Plain counts; nothing that can panic runs under the lock.
        self.minutes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
