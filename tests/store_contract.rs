//! The store seam's contract, run once per backend (sled in a temporary folder, PostgreSQL in a
//! throwaway cluster): dedupe claims, jobs by due time, finish/reschedule/bury/replay, fold and
//! issue updates, links, target state and pauses, and the sweep.

mod common;

use chrono::{Duration as Span, Utc};
use herald::alert::Alert;
use herald::job::{DeadLetter, DeliveryJob, FailureReason};
use herald::sdk::issue::{SdkIssue, Status};
use herald::store::{ClaimOutcome, FoldRecord, LinkRecord, Routing, Store, TargetState};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

fn alert(issue: u32) -> Alert {
    let body = format!(
        r#"{{"action":"created","data":{{"issue":{{"id":"{issue}","title":"boom {issue}"}}}}}}"#
    );
    herald::sentry::parse_integration_payload("issue", body.as_bytes()).unwrap()
}

fn sdk_issue(id: &str, now: chrono::DateTime<Utc>) -> SdkIssue {
    SdkIssue {
        id: id.into(),
        project_id: 1,
        project: "shop".into(),
        group: "h1:race".into(),
        title: "KeyError".into(),
        culprit: None,
        level: None,
        environment: None,
        first_seen: now,
        last_seen: now,
        count: 0,
        releases: vec![],
        status: Status::Open,
        regressions: 0,
        resolutions: 0,
    }
}

/// Counts one more repeat in target `t`'s fold record `key`.
fn fold_one_more(store: &Store, key: &str, now: chrono::DateTime<Utc>) {
    store
        .update_fold("t", key, |record| {
            let mut record = record.unwrap_or(FoldRecord {
                window_start: now,
                folded: 0,
            });
            record.folded += 1;
            (Some(record), ())
        })
        .unwrap();
}

async fn contract(store: Store) {
    // Backends keep times to the millisecond (sled) or microsecond (PostgreSQL).
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let hour = Duration::from_secs(3600);

    // A claim: new once, then a duplicate of the first alert once written and settled; a claim
    // dropped unsettled is released.
    let first = store.next_id().unwrap();
    let second = store.next_id().unwrap();
    assert!(second > first, "ids grow");
    match store
        .claim_dedupe_key("k1", first, now, hour)
        .await
        .unwrap()
    {
        ClaimOutcome::New(claim) => {
            store
                .insert_alert(first, now, &alert(1), &Routing::default())
                .unwrap();
            claim.write().unwrap();
            store.commit().await.unwrap();
            claim.settle();
        }
        ClaimOutcome::Duplicate(_) => panic!("a fresh key is new"),
    }
    match store
        .claim_dedupe_key("k1", second, now, hour)
        .await
        .unwrap()
    {
        ClaimOutcome::Duplicate(original) => assert_eq!(original, first),
        ClaimOutcome::New(_) => panic!("k1 was claimed"),
    }
    match store
        .claim_dedupe_key("k2", second, now, hour)
        .await
        .unwrap()
    {
        ClaimOutcome::New(claim) => drop(claim),
        ClaimOutcome::Duplicate(_) => panic!("a fresh key is new"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        store
            .claim_dedupe_key("k2", second, now, hour)
            .await
            .unwrap(),
        ClaimOutcome::New(_)
    ));

    // Jobs: due in order, skipped when in flight; finished, rescheduled, buried, replayed.
    let mut jobs = Vec::new();
    for (n, due) in [(0, 0), (1, 10), (2, -10)] {
        let mut job = DeliveryJob::new(
            store.next_id().unwrap(),
            first,
            "t",
            now + Span::seconds(due),
        );
        job.issue_key = Some(format!("i{n}"));
        store.insert_job(&job).unwrap();
        jobs.push(job);
    }
    // Queued alerts and jobs may be seen only once committed (PostgreSQL writes them then).
    store.commit().await.unwrap();
    let due = store.due_jobs("t", now, &HashSet::new(), 10).unwrap();
    let ids: Vec<u64> = due.iter().map(|(_, job)| job.id).collect();
    assert_eq!(ids, [jobs[2].id, jobs[0].id], "due ones, earliest first");
    let skip: HashSet<u64> = [jobs[2].id].into();
    assert_eq!(
        store.due_jobs("t", now, &skip, 10).unwrap()[0].1.id,
        jobs[0].id
    );
    assert_eq!(
        store.next_due_time("t", &skip).unwrap(),
        Some(jobs[0].due_at)
    );
    assert_eq!(store.queued_job_count(), 3);
    let (key, done) = due[0].clone();
    store.finish_job(&key, &done).unwrap();
    assert_eq!(store.deliveries_of(first).unwrap().len(), 1);
    let (key, mut later) = due[1].clone();
    later.due_at = now + Span::seconds(30);
    let key = store.reschedule_job(&key, &later).unwrap();
    assert!(store
        .due_jobs("t", now, &HashSet::new(), 10)
        .unwrap()
        .is_empty());
    let dead = DeadLetter {
        job: later.clone(),
        died_at: now,
        reason: FailureReason::ClientError,
        last_answer: "HTTP 400".into(),
    };
    store.bury_job(&key, &dead).unwrap();
    assert_eq!(
        (store.queued_job_count(), store.dead_letter_count()),
        (1, 1)
    );
    assert_eq!(store.dead_letters_per_target().unwrap()["t"], 1);
    let replayed = store
        .replay_dead_letters(&|job| job.target == "t", now)
        .unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(
        (store.queued_job_count(), store.dead_letter_count()),
        (2, 0)
    );
    assert_eq!(store.queued_jobs_per_target().unwrap()["t"], 2);

    // Fold records and issues change atomically; `None` removes a fold record.
    for _ in 0..3 {
        fold_one_more(&store, "i/1", now);
    }
    let folded = store
        .update_fold("t", "i/1", |record| (None, record.map(|r| r.folded)))
        .unwrap();
    assert_eq!(folded, Some(3));
    assert!(store
        .update_fold("t", "i/1", |record| {
            let gone = record.is_none();
            (record, gone)
        })
        .unwrap());

    // Racing callers: of identical claims exactly one is new, distinct ones are all new; fold
    // records and issues updated from several threads at once lose no update.
    let racing: Vec<_> = (0..16)
        .map(|n| {
            let store = store.clone();
            let key = if n % 2 == 0 {
                "race".to_string()
            } else {
                format!("race-{n}")
            };
            tokio::spawn(async move {
                let id = store.next_id().unwrap();
                match store.claim_dedupe_key(&key, id, now, hour).await.unwrap() {
                    ClaimOutcome::New(claim) => {
                        claim.write().unwrap();
                        store.commit().await.unwrap();
                        claim.settle();
                        (key, true)
                    }
                    ClaimOutcome::Duplicate(_) => (key, false),
                }
            })
        })
        .collect();
    let mut new_claims = std::collections::BTreeMap::new();
    for race in racing {
        let (key, new) = race.await.unwrap();
        *new_claims.entry(key).or_insert(0) += u32::from(new);
    }
    assert_eq!(new_claims.len(), 9);
    assert!(new_claims.values().all(|&n| n == 1), "{new_claims:?}");
    let updaters: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    fold_one_more(&store, "i/race", now);
                    store
                        .update_issue("race", |issue| {
                            let mut issue = issue.unwrap_or_else(|| sdk_issue("race", now));
                            issue.count += 1;
                            (Some(issue), ())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for updater in updaters {
        updater.join().unwrap();
    }
    let folded = store
        .update_fold("t", "i/race", |record| {
            (record.clone(), record.map(|r| r.folded))
        })
        .unwrap();
    assert_eq!(folded, Some(80));
    assert_eq!(store.issue("race").unwrap().map(|i| i.count), Some(80));

    // Links, pauses and target state.
    store
        .save_link("gh", "repo/-/1", &LinkRecord::to(7))
        .await
        .unwrap();
    assert_eq!(
        store.link("gh", "repo/-/1").unwrap().and_then(|l| l.number),
        Some(7)
    );
    assert!(!store.operator_paused("t").unwrap());
    store.set_operator_pause("t", true).unwrap();
    assert!(store.operator_paused("t").unwrap());
    let state = TargetState {
        paused_until: Some(now),
        ..TargetState::default()
    };
    store.save_target_state("t", &state).unwrap();
    assert_eq!(store.target_state("t").unwrap().paused_until, Some(now));
    assert!(
        store.operator_paused("t").unwrap(),
        "kept apart from the state"
    );
    assert!(store.owns_target("t").unwrap());

    // The sweep forgets old claims and unreferenced old alerts, keeps what jobs refer to.
    let old = now - Span::hours(3);
    let stale = store.next_id().unwrap();
    store
        .insert_alert(stale, old, &alert(9), &Routing::default())
        .unwrap();
    store.commit().await.unwrap();
    let report = store.sweep(now + Span::hours(2), hour, hour, hour).unwrap();
    assert!(report.dedupe_records >= 1, "{report:?}");
    assert_eq!(
        report.alerts, 1,
        "only the unreferenced old alert: {report:?}"
    );
    assert!(store.alert(stale).unwrap().is_none());
    assert!(
        store.alert(first).unwrap().is_some(),
        "its jobs still refer to it"
    );
    let newest: Vec<u64> = store
        .alerts_newest_first(None)
        .map(|a| a.unwrap().id)
        .collect();
    assert_eq!(newest, [first]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Store::open(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_contract() {
    let Some(cluster) = common::postgres::PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_contract");
    let settings = herald::store::postgres::PgSettings {
        url: herald::secret::Secret::new(url),
        pool_size: 4,
        connect_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(30),
    };
    let store =
        tokio::task::spawn_blocking(move || herald::store::postgres::PgStore::open(&settings))
            .await
            .unwrap()
            .unwrap();
    contract(Store::new(Arc::new(store))).await;
}
