//! Accepting one verified callback: dedupe, route, fold, store, commit, and only then say yes.
//!
//! - An identical callback (Sentry's retry, a double click) is recognised by its dedupe key
//!   (REFERENCE.md §1, scoped by installation) and answered "duplicate": nothing is sent again.
//! - Repeated alerts of one Sentry issue for one target within the fold window are folded: the
//!   first is sent, the rest are counted, and the count goes out with the next message about that
//!   issue, or in a summary at the end of the window. State changes (resolved, assigned, …) are
//!   never folded; they carry the count instead.
//! - An Alertmanager or Grafana notification tells a group's alerts: each alert's firing episode,
//!   and its resolve, is said once (an episode claim each). A notification that says nothing new
//!   (Alertmanager's repeat_interval resend, a second receiver) is counted, not sent; the count
//!   goes out with the group's next message. An identical notification within
//!   `dedupe.redelivery_window` (an HA twin, a retry) is a duplicate.
//! - Everything decided here is written to the store and flushed before the caller answers 2xx.

use chrono::{DateTime, Utc};
use std::time::Duration;

use crate::alert::{Alert, Source};
use crate::config::Config;
use crate::job::{AlertId, DeliveryJob, Folded};
use crate::route::{Routed, Router};
use crate::sdk::issue::{SdkIssue, Sighting};
use crate::store::{ClaimOutcome, FoldRecord, PendingClaim, Routing, Store, StoreError, Wakers};

/// What became of an accepted callback.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// The stored alert; for a duplicate, the alert it duplicates.
    pub alert_id: AlertId,
    pub duplicate: bool,
    /// Targets a message was queued for.
    pub queued: Vec<String>,
    /// Targets for which this alert was folded into the count of an earlier one.
    pub folded: Vec<String>,
}

impl Receipt {
    /// A callback that queued and folded nothing (a duplicate, or a quiet SDK event).
    fn nothing(alert_id: AlertId, duplicate: bool) -> Receipt {
        Receipt {
            alert_id,
            duplicate,
            queued: vec![],
            folded: vec![],
        }
    }
}

pub struct Intake {
    store: Store,
    router: Router,
    fold_window: Duration,
    remember: Duration,
    redelivery_window: Duration,
    /// How long a group's alert is remembered as told (`store.retention`).
    episode_memory: Duration,
    /// Where herald shows an SDK issue: `server.public_url` and `/ui/issues/` (the console's
    /// page of the issue), then its id.
    issue_pages: Option<String>,
    wakers: Wakers,
}

/// What [`Intake::accept`] finishes once its callback is committed: the dedupe claims settled
/// and the workers of its targets woken.
///
/// The caller may go away while it waits for the commit (hyper drops a request's future when its
/// client hangs up). Dropped unfinished, this waits for a commit in a task of its own and
/// finishes then, so that what is stored is whole: its claims hold (the client's retry is a
/// duplicate, not a second message) and its jobs are announced (a worker otherwise sleeps until
/// its next poll). A task per callback cost 10–25 % of the intake's rate (measured); one only
/// when a client hangs up costs nothing.
struct Committing {
    store: Store,
    claims: Option<(PendingClaim, Vec<PendingClaim>)>,
    wakers: Wakers,
    woken: Vec<String>,
}

impl Committing {
    /// The commit succeeded.
    fn settle(mut self) {
        if let Some(claims) = self.claims.take() {
            settle(claims, &self.wakers, &self.woken);
        }
    }

    /// The commit failed: the claims are released (a retry must be new), nobody is woken.
    fn release(mut self) {
        self.claims = None;
    }
}

impl Drop for Committing {
    fn drop(&mut self) {
        let Some(claims) = self.claims.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, wakers) = (self.store.clone(), self.wakers.clone());
        let woken = std::mem::take(&mut self.woken);
        // A commit that begins after the caller's writes covers them; should it fail, the
        // claims are dropped, which releases them.
        runtime.spawn(async move {
            if store.commit().await.is_ok() {
                settle(claims, &wakers, &woken);
            }
        });
    }
}

fn settle((claim, episodes): (PendingClaim, Vec<PendingClaim>), wakers: &Wakers, woken: &[String]) {
    claim.settle();
    for episode in episodes {
        episode.settle();
    }
    wakers.wake(&woken.iter().map(String::as_str).collect::<Vec<_>>());
}

/// How an alert relates to earlier alerts of its issue.
enum FoldKind {
    /// Another occurrence of the issue (an alert rule firing, an error event): may be folded.
    Repeat(String),
    /// A change of the issue's state: always sent, and reports what was folded.
    StateChange(String),
    /// A group's notification that tells nothing new: counted only.
    QuietRepeat(String),
    /// Not about one issue (metric alerts, installations, …), or folding is off.
    Unrelated,
}

/// What to do for one target.
enum Plan {
    Send {
        carried: Option<Folded>,
    },
    Fold {
        first_in_window: bool,
        window_end: DateTime<Utc>,
        fold_key: String,
    },
    /// Counted into the next message about its issue; nothing is queued.
    Count,
}

impl Intake {
    pub fn new(config: &Config, store: Store, wakers: Wakers) -> Intake {
        Intake {
            store,
            router: config.router(),
            fold_window: config.dedupe.window,
            remember: config.dedupe.remember,
            redelivery_window: config.dedupe.redelivery_window,
            episode_memory: config.store.retention,
            issue_pages: config
                .server
                .public_url
                .as_deref()
                .map(|url| format!("{}/ui/issues/", url.trim_end_matches('/'))),
            wakers,
        }
    }

    /// Accepts `alert`: when this returns `Ok`, everything it says is on disk. A group's alerts
    /// told before are marked so (`said_before`).
    pub async fn accept(&self, alert: &mut Alert) -> Result<Receipt, StoreError> {
        let store = &self.store;
        let now = crate::clock::now();
        let alert_id = store.next_id()?;
        let remember = if alert.group.is_some() {
            self.redelivery_window
        } else {
            self.remember
        };
        let claim = match store
            .claim_dedupe_key(&alert.dedupe_key, alert_id, now, remember)
            .await?
        {
            ClaimOutcome::New(claim) => claim,
            ClaimOutcome::Duplicate(original) => return Ok(Receipt::nothing(original, true)),
        };
        // On any error below the claims are dropped unsettled, which releases them: a retry of
        // this callback must not be taken for a duplicate of what was not stored.
        let mut episodes = Vec::new();
        for (index, key) in alert.episode_keys() {
            match store
                .claim_dedupe_key(&key, alert_id, now, self.episode_memory)
                .await?
            {
                ClaimOutcome::New(claim) => episodes.push(claim),
                ClaimOutcome::Duplicate(_) => {
                    if let Some(group) = alert.group.as_mut() {
                        group.members[index].said_before = true;
                    }
                }
            }
        }
        // An SDK event: its issue's record says what it is (new, a regression, a repeat, or
        // quiet). Counted here, before the commit: a commit that fails then leaves the count one
        // too high, never an event counted twice (its dedupe claim came first).
        let quiet = match sdk_issue_of(alert) {
            Some(issue_id) => self.sight_issue(alert, &issue_id, now)? == Sighting::Quiet,
            None => false,
        };
        // A quiet event is counted in its issue only: nothing is stored or queued.
        let receipt = if quiet {
            Receipt::nothing(alert_id, false)
        } else {
            self.record(alert, alert_id, now)?
        };
        for episode in &episodes {
            episode.write()?;
        }
        claim.write()?;
        // Folded targets too: a window's first fold queues its summary, due later, and a worker
        // that went to sleep before it existed must learn when to wake.
        let woken: Vec<String> = receipt
            .queued
            .iter()
            .chain(&receipt.folded)
            .cloned()
            .collect();
        let committing = Committing {
            store: store.clone(),
            claims: Some((claim, episodes)),
            wakers: self.wakers.clone(),
            woken,
        };
        match store.commit().await {
            Ok(()) => committing.settle(),
            Err(error) => {
                committing.release();
                return Err(error);
            }
        }
        Ok(receipt)
    }

    /// Counts an SDK event in its issue and marks the alert as what it is to the issue.
    fn sight_issue(
        &self,
        alert: &mut Alert,
        issue_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Sighting, StoreError> {
        let (issue, sighting) = self.store.update_issue(issue_id, |current| {
            let (issue, sighting) = SdkIssue::observe(current, issue_id, alert, now);
            (Some(issue.clone()), (issue, sighting))
        })?;
        crate::sdk::decide(alert, &issue, sighting);
        alert.link = self
            .issue_pages
            .as_ref()
            .map(|base| format!("{base}{issue_id}"));
        Ok(sighting)
    }

    /// The writes of [`Intake::accept`] after the dedupe claim: folds, the alert, its jobs.
    fn record(
        &self,
        alert: &Alert,
        alert_id: AlertId,
        now: DateTime<Utc>,
    ) -> Result<Receipt, StoreError> {
        let store = &self.store;
        let routed = self.router.route(alert);
        let fold_kind = self.fold_kind(alert);
        let mut plans: Vec<(Routed<'_>, Plan)> = Vec::with_capacity(routed.len());
        for target in routed {
            let plan = match &fold_kind {
                FoldKind::Repeat(key) => store.update_fold(target.target, key, |record| {
                    self.fold_repeat(record, now, key)
                })?,
                FoldKind::StateChange(key) => store.update_fold(target.target, key, take_count)?,
                FoldKind::QuietRepeat(key) => {
                    store.update_fold(target.target, key, |record| count_repeat(record, now))?
                }
                FoldKind::Unrelated => Plan::Send { carried: None },
            };
            plans.push((target, plan));
        }

        // An alert is stored when a message will show it (sent now, or the summary at the end of
        // its fold window), or when nothing was routed at all (it is kept as a record). Other
        // folded repeats are only counted: a flood of them costs a counter, not an alert each.
        let shown = |plan: &Plan| match plan {
            Plan::Send { .. } => true,
            Plan::Fold {
                first_in_window, ..
            } => *first_in_window,
            Plan::Count => false,
        };
        if plans.is_empty() || plans.iter().any(|(_, plan)| shown(plan)) {
            let mut routing = Routing::default();
            for (routed, plan) in &plans {
                match plan {
                    Plan::Send { .. } => &mut routing.queued,
                    Plan::Fold { .. } | Plan::Count => &mut routing.folded,
                }
                .push(routed.target.to_string());
            }
            store.insert_alert(alert_id, now, alert, &routing)?;
        }
        let issue_key = alert.issue_key();
        let mut receipt = Receipt::nothing(alert_id, false);
        for (routed, plan) in plans {
            match plan {
                Plan::Send { carried } => {
                    let mut job = DeliveryJob::new(store.next_id()?, alert_id, routed.target, now);
                    job.mentions = routed.mentions;
                    job.folded = carried;
                    job.issue_key = issue_key.clone();
                    store.insert_job(&job)?;
                    receipt.queued.push(routed.target.to_string());
                }
                Plan::Fold {
                    first_in_window,
                    window_end,
                    fold_key,
                } => {
                    if first_in_window {
                        // Reports the window's count at its end, unless a later message does first.
                        let mut job =
                            DeliveryJob::new(store.next_id()?, alert_id, routed.target, window_end);
                        job.mentions = routed.mentions;
                        job.summary_of = Some(fold_key);
                        job.issue_key = issue_key.clone();
                        store.insert_job(&job)?;
                    }
                    receipt.folded.push(routed.target.to_string());
                }
                Plan::Count => receipt.folded.push(routed.target.to_string()),
            }
        }
        Ok(receipt)
    }

    fn fold_kind(&self, alert: &Alert) -> FoldKind {
        if let (Some(group), Some(key)) = (&alert.group, alert.issue_key()) {
            return if group.members.iter().all(|member| member.said_before) {
                FoldKind::QuietRepeat(key)
            } else {
                FoldKind::StateChange(key)
            };
        }
        let Some(key) = alert.issue_key().filter(|_| !self.fold_window.is_zero()) else {
            return FoldKind::Unrelated;
        };
        if alert.source == Source::SentrySdk {
            // Every event of an issue, its first included: the first of a window is told, the
            // rest counted into the next message. A regression or a resolve is a change of state.
            let said = (alert.resource.as_str(), alert.action.as_str());
            return if said == crate::sdk::NEW_ISSUE || said == crate::sdk::REPEAT {
                FoldKind::Repeat(key)
            } else {
                FoldKind::StateChange(key)
            };
        }
        match alert.resource.as_str() {
            "event_alert" | "error" | "activity_alert" => FoldKind::Repeat(key),
            "issue" => FoldKind::StateChange(key),
            _ => FoldKind::Unrelated,
        }
    }

    /// Inside the window: count it. Otherwise: send it, with the previous window's count if any,
    /// and start a new window.
    fn fold_repeat(
        &self,
        record: Option<FoldRecord>,
        now: DateTime<Utc>,
        fold_key: &str,
    ) -> (Option<FoldRecord>, Plan) {
        let window = chrono::Duration::from_std(self.fold_window).unwrap_or_default();
        match record {
            Some(mut record) if now < record.window_start + window => {
                record.folded += 1;
                let plan = Plan::Fold {
                    first_in_window: record.folded == 1,
                    window_end: record.window_start + window,
                    fold_key: fold_key.to_string(),
                };
                (Some(record), plan)
            }
            previous => {
                let carried = previous.filter(|r| r.folded > 0).map(|r| Folded {
                    count: r.folded,
                    since: r.window_start,
                });
                let record = FoldRecord {
                    window_start: now,
                    folded: 0,
                };
                (Some(record), Plan::Send { carried })
            }
        }
    }
}

/// The SDK issue an event is about: only an event as the SDK intake reads it (every one a "New
/// issue" until its issue's record says otherwise); not the message a resolve sends.
fn sdk_issue_of(alert: &Alert) -> Option<String> {
    let event = alert.source == Source::SentrySdk
        && (alert.resource.as_str(), alert.action.as_str()) == crate::sdk::NEW_ISSUE;
    event
        .then(|| crate::sdk::issue::issue_id_of(alert))
        .flatten()
}

/// A repeat that tells nothing new is counted, since the first of them.
fn count_repeat(record: Option<FoldRecord>, now: DateTime<Utc>) -> (Option<FoldRecord>, Plan) {
    let mut record = record.unwrap_or(FoldRecord {
        window_start: now,
        folded: 0,
    });
    if record.folded == 0 {
        record.window_start = now;
    }
    record.folded += 1;
    (Some(record), Plan::Count)
}

/// A state change takes the count folded so far, to report it.
fn take_count(record: Option<FoldRecord>) -> (Option<FoldRecord>, Plan) {
    match record {
        Some(mut record) if record.folded > 0 => {
            let carried = Folded {
                count: record.folded,
                since: record.window_start,
            };
            record.folded = 0;
            (
                Some(record),
                Plan::Send {
                    carried: Some(carried),
                },
            )
        }
        other => (other, Plan::Send { carried: None }),
    }
}

/// A payload read as the alert herald would make of it, without storing anything (`herald
/// render`, the console's playground). For Sentry, `resource` is the `Sentry-Hook-Resource`
/// (`legacy`: the legacy plugin's payload); Alertmanager's and Grafana's bodies are read with the
/// config's settings for them; an SDK envelope (or an event's JSON) as an event of the first
/// `[[sdk.projects]]` (or a project called "default"), as its issue's first.
pub fn read_payload(
    config: &Config,
    source: Source,
    resource: &str,
    body: &[u8],
) -> Result<Alert, String> {
    match source {
        Source::Alertmanager | Source::Grafana => {
            let settings = match source {
                Source::Grafana => &config.grafana,
                _ => &config.alertmanager,
            };
            crate::alertmanager::parse(source, body, &settings.clone().unwrap_or_default())
                .map_err(|e| e.to_string())
        }
        Source::SentrySdk => {
            let (project, id) = config
                .sdk
                .projects
                .first()
                .map_or(("default", 0), |p| (p.name.as_str(), p.id));
            let (event_id, payload) = match crate::sdk::envelope::parse(body) {
                Ok((header, items)) if items.iter().any(|item| item.kind == "event") => {
                    let item = items.into_iter().find(|item| item.kind == "event");
                    (
                        header.event_id,
                        item.map(|item| item.payload).unwrap_or(body),
                    )
                }
                _ => (None, body),
            };
            let event = crate::sdk::event::read_event(payload, project, id, event_id.as_deref())
                .map_err(|e| e.to_string())?;
            crate::sdk::alert_of(&event).map_err(|e| e.to_string())
        }
        Source::SentryLegacyPlugin => {
            crate::sentry::parse_legacy_payload(body).map_err(|e| e.to_string())
        }
        Source::Sentry if resource == "legacy" => {
            crate::sentry::parse_legacy_payload(body).map_err(|e| e.to_string())
        }
        Source::Sentry => {
            crate::sentry::parse_integration_payload(resource, body).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Wakers;

    const CONFIG: &str =
        "[sentry]\nclient_secrets = [\"s\"]\n\n[[targets]]\nname = \"out\"\nkind = \"console\"\n";

    fn callback() -> Alert {
        let body = std::fs::read("tests/fixtures/sentry/issue-created.json").unwrap();
        crate::sentry::parse_integration_payload("issue", &body).unwrap()
    }

    /// A client that hangs up while its callback is committed (hyper drops its request's future)
    /// leaves a callback that is stored whole: its dedupe claim holds (Sentry's retry of it is a
    /// duplicate, not a second message) and its target's worker hears of its job.
    #[tokio::test]
    async fn a_callback_whose_client_hangs_up_mid_commit_is_kept_whole() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(std::path::Path::new("herald.toml"), CONFIG, |_| None).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let wakers = Wakers::new(["out"]);
        let intake = Intake::new(&config, store.clone(), wakers.clone());
        let commits_before = store.commit_totals().0;

        let mut alert = callback();
        let mut accepting = Box::pin(intake.accept(&mut alert));
        while store.commit_totals().0 == commits_before {
            assert!(futures::poll!(&mut accepting).is_pending());
            tokio::task::yield_now().await;
        }
        drop(accepting);

        // Told once the work left behind is done (bounded, so that a regression fails, not hangs).
        let told = wakers.get("out");
        let told = tokio::time::timeout(std::time::Duration::from_secs(10), told.notified());
        assert!(told.await.is_ok(), "the worker was not told of the job");
        let receipt = intake.accept(&mut callback()).await.unwrap();
        assert!(receipt.duplicate, "{receipt:?}");
        assert_eq!(store.queued_job_count(), 1);
    }
}
