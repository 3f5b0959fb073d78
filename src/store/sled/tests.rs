//! The sled backend's own tests: migrations, reopening, group commit, sweeps, claims.

use super::*;
use crate::sentry::parse_integration_payload;
use crate::store::Store;

fn sample_alert(issue: u32) -> Alert {
    let body =
        format!(r#"{{"action":"created","data":{{"issue":{{"id":"{issue}","title":"boom"}}}}}}"#);
    parse_integration_payload("issue", body.as_bytes()).unwrap()
}

/// Claims `key` for `alert_id` and, when it is new, writes and settles the claim.
async fn claim(store: &Store, key: &str, alert_id: AlertId, at: DateTime<Utc>) -> Option<AlertId> {
    let hour = std::time::Duration::from_secs(3600);
    match store
        .claim_dedupe_key(key, alert_id, at, hour)
        .await
        .unwrap()
    {
        ClaimOutcome::Duplicate(first) => Some(first),
        ClaimOutcome::New(claim) => {
            claim.write().unwrap();
            store.commit().await.unwrap();
            claim.settle();
            None
        }
    }
}

/// Claims `key`, which must be new, and leaves the claim pending.
async fn new_claim(store: &Store, key: &str, alert_id: AlertId) -> PendingClaim {
    let hour = std::time::Duration::from_secs(3600);
    match store
        .claim_dedupe_key(key, alert_id, Utc::now(), hour)
        .await
        .unwrap()
    {
        ClaimOutcome::New(claim) => claim,
        ClaimOutcome::Duplicate(first) => panic!("{key} is already claimed by {first}"),
    }
}

/// The backend in a new folder, and the same behind the seam (the folder lasts as long as the
/// first of the three).
fn open_store() -> (tempfile::TempDir, Arc<SledStore>, Store) {
    let dir = tempfile::tempdir().unwrap();
    let sled_store = Arc::new(SledStore::open(dir.path()).unwrap());
    let store = Store::new(sled_store.clone());
    (dir, sled_store, store)
}

/// Stores `alert` with a job for each of `targets`, durably, as the intake does.
async fn accept(store: &Store, alert: &Alert, targets: &[&str]) -> Result<AlertId, StoreError> {
    let id = store.next_id()?;
    store.insert_alert(id, Utc::now(), alert, &Default::default())?;
    for target in targets {
        store.insert_job(&DeliveryJob::new(store.next_id()?, id, target, Utc::now()))?;
    }
    store.commit().await?;
    Ok(id)
}

/// The header an alert received at `received_at` is stored with (no routing, no decisions).
fn header_of(alert: &Alert, received_at: DateTime<Utc>) -> AlertHeader {
    AlertHeader {
        received_at,
        source: alert.source,
        resource: alert.resource.clone(),
        decisions: None,
        routing: Default::default(),
        sdk: None,
    }
}

/// An empty store that says it has schema `schema`, to be filled as that schema did.
fn store_of_schema(path: &Path, schema: u32) -> sled::Db {
    let db = open_db(path).unwrap();
    db.open_tree("meta")
        .unwrap()
        .insert(SCHEMA_KEY, &schema.to_be_bytes())
        .unwrap();
    db
}

fn has_tree(db: &sled::Db, name: &str) -> bool {
    db.tree_names()
        .iter()
        .any(|tree| tree.as_ref() == name.as_bytes())
}

#[test]
fn a_schema_1_store_is_migrated_and_its_alerts_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let alert = sample_alert(7);
    let received_at = Utc::now();
    {
        // Schema 1: the normalized alert as JSON, the payload in its own tree.
        let db = store_of_schema(&path, 1);
        let old = StoredAlert {
            id: 41,
            received_at,
            alert: alert.clone(),
            routing: Default::default(),
        };
        let key = 41u64.to_be_bytes();
        db.open_tree("alerts")
            .unwrap()
            .insert(key, serde_json::to_vec(&old).unwrap())
            .unwrap();
        db.open_tree("payloads")
            .unwrap()
            .insert(key, alert.raw.get().as_bytes())
            .unwrap();
        // An earlier migration was interrupted after rewriting this one.
        let header = header_of(&alert, received_at);
        db.open_tree("alerts")
            .unwrap()
            .insert(
                42u64.to_be_bytes(),
                alert_record::encode(&header, alert.raw.get()).unwrap(),
            )
            .unwrap();
        db.flush().unwrap();
    }
    let sled_store = SledStore::open(&path).unwrap();
    let db = sled_store.db.clone();
    let store = Store::new(Arc::new(sled_store));
    let read = store.alert(41).unwrap().unwrap();
    assert_eq!(read.received_at, received_at);
    assert_eq!(read.alert.raw.get(), alert.raw.get());
    assert_eq!(read.alert.issue_id.as_deref(), Some("7"));
    assert_eq!(read.alert.dedupe_key, alert.dedupe_key);
    assert_eq!(
        store.alert(42).unwrap().unwrap().alert.raw.get(),
        alert.raw.get()
    );
    assert!(!has_tree(&db, "payloads"));
    let schema = db.open_tree("meta").unwrap().get(SCHEMA_KEY).unwrap();
    assert_eq!(schema.as_deref(), Some(&SCHEMA_VERSION.to_be_bytes()[..]));
}

#[tokio::test]
async fn a_schema_3_store_moves_its_alerts_and_deliveries_to_the_spool_and_keeps_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let alert = sample_alert(3);
    let received_at = Utc::now() - chrono::Duration::minutes(5);
    let header = header_of(&alert, received_at);
    let delivered = DeliveryJob::new(8, 30, "ops", received_at);
    let queued = DeliveryJob::new(9, 31, "ops", received_at);
    {
        // Schema 3: alerts, deliveries and queued jobs in sled.
        let db = store_of_schema(&path, 3);
        let alerts = db.open_tree("alerts").unwrap();
        for id in [30u64, 31] {
            let record = alert_record::encode(&header, alert.raw.get()).unwrap();
            alerts.insert(id.to_be_bytes(), record).unwrap();
        }
        let mut delivery_key = 30u64.to_be_bytes().to_vec();
        delivery_key.extend_from_slice(&8u64.to_be_bytes());
        db.open_tree("deliveries")
            .unwrap()
            .insert(delivery_key, serde_json::to_vec(&delivered).unwrap())
            .unwrap();
        db.open_tree("jobs")
            .unwrap()
            .insert(job_key(&queued), serde_json::to_vec(&queued).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    for reopened in [false, true] {
        let sled_store = SledStore::open(&path).unwrap();
        let db = sled_store.db.clone();
        let store = Store::new(Arc::new(sled_store));
        assert_eq!(store.alert_count(), 2, "reopened: {reopened}");
        let read = store.alert(30).unwrap().unwrap();
        assert_eq!(
            (read.received_at, read.alert.raw.get()),
            (received_at, alert.raw.get())
        );
        assert_eq!(
            store.deliveries_of(30).unwrap(),
            std::slice::from_ref(&delivered)
        );
        let none = HashSet::new();
        let due = store.due_jobs("ops", Utc::now(), &none, 5).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1, queued);
        assert!(!has_tree(&db, "alerts") && !has_tree(&db, "deliveries"));
    }
}

#[tokio::test]
async fn a_schema_2_store_keeps_its_dedupe_claims() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let now = Utc::now();
    {
        // Schema 2: claims by hash, with the alert id and when.
        let db = store_of_schema(&path, 2);
        let mut value = 9u64.to_be_bytes().to_vec();
        value.extend_from_slice(&(now.timestamp_millis() as u64).to_be_bytes());
        db.open_tree("dedupe")
            .unwrap()
            .insert(dedupe_hash("seen"), value)
            .unwrap();
        db.flush().unwrap();
    }
    let sled_store = SledStore::open(&path).unwrap();
    let db = sled_store.db.clone();
    let store = Store::new(Arc::new(sled_store));
    assert_eq!(claim(&store, "seen", 10, now).await, Some(9));
    assert_eq!(claim(&store, "unseen", 11, now).await, None);
    assert!(!has_tree(&db, "dedupe"));
}

#[tokio::test]
async fn accepted_alerts_and_jobs_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let first = {
        let store = Store::open(&path).unwrap();
        accept(&store, &sample_alert(1), &["a", "b"]).await.unwrap()
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.alert_count(), 1);
    assert_eq!(store.queued_job_count(), 2);
    let stored = store.alert(first).unwrap().unwrap();
    assert_eq!(stored.alert.issue_id.as_deref(), Some("1"));
    assert_eq!(
        stored.alert.raw.get(),
        r#"{"action":"created","data":{"issue":{"id":"1","title":"boom"}}}"#
    );
    let targets: Vec<String> = store.queued_jobs().map(|j| j.unwrap().target).collect();
    assert_eq!(targets, ["a", "b"]);
    // Ids keep growing after a restart.
    let second = accept(&store, &sample_alert(2), &["a"]).await.unwrap();
    assert!(second > first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_all_complete_and_share_flushes() {
    let (_dir, sled_store, store) = open_store();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { accept(&store, &sample_alert(i), &["t"]).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap().unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 64);
    assert_eq!(store.queued_job_count(), 64);
    // 64 concurrent commits were answered by fewer flushes: they were grouped.
    let (flushes, _) = sled_store.commit_totals();
    assert!(
        (1..64).contains(&flushes),
        "{flushes} flushes for 64 commits"
    );
}

/// Callers that share a commit whose write fails all fail. The write dropped every record they
/// buffered; the callers after the one that ran the commit must not find nothing left to sync
/// and take that for done, nor may a later commit vouch for anything once one has failed.
#[tokio::test]
async fn callers_sharing_a_failed_commit_all_fail() {
    let (_dir, sled_store, store) = open_store();
    accept(&store, &sample_alert(0), &["t"]).await.unwrap();

    sled_store.spool.fail_writes();
    let alerts: Vec<Alert> = (1..=8).map(sample_alert).collect();
    let together = alerts.iter().map(|alert| accept(&store, alert, &["t"]));
    let outcomes = futures::future::join_all(together).await;
    let succeeded = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(succeeded, 0, "{outcomes:?}");
    assert!(store.needs_reopening());
    assert!(accept(&store, &sample_alert(9), &["t"]).await.is_err());
}

/// A caller that goes away while its commit syncs (hyper drops a request's future when its client
/// hangs up) leaves the commit to go on without it: the callers who share it learn how it ended,
/// and are not told their writes are durable because the next turn found nothing left to sync.
#[tokio::test]
async fn a_commit_goes_on_when_its_caller_goes_away() {
    let (_dir, sled_store, store) = open_store();
    accept(&store, &sample_alert(0), &["t"]).await.unwrap();

    sled_store.spool.fail_syncs();
    for issue in [1, 2] {
        let id = store.next_id().unwrap();
        store
            .insert_alert(id, Utc::now(), &sample_alert(issue), &Default::default())
            .unwrap();
    }
    let mut first = Box::pin(store.commit());
    let mut second = Box::pin(store.commit());
    assert!(futures::poll!(&mut first).is_pending());
    assert!(futures::poll!(&mut second).is_pending());
    // The first caller's commit takes both writes to its sync; then its caller is gone.
    while !sled_store.spool.nothing_buffered() {
        assert!(futures::poll!(&mut first).is_pending());
        tokio::task::yield_now().await;
    }
    drop(first);
    assert!(
        second.await.is_err(),
        "told durable, though the sync failed"
    );
    assert!(store.needs_reopening());
}

#[tokio::test]
async fn sweep_removes_what_can_no_longer_matter() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = Utc::now();
    let hour = std::time::Duration::from_secs(3600);
    let old = now - chrono::Duration::hours(2);
    // The spool removes whole segments. An old alert no job refers to, and an old dedupe claim:
    // the sweep seals their segment and, nothing in it being needed, removes it.
    store
        .insert_alert(1, old, &sample_alert(1), &Default::default())
        .unwrap();
    assert_eq!(claim(&store, "old", 1, old).await, None);
    let report = store.sweep(now, hour, hour, hour).unwrap();
    assert_eq!((report.dedupe_records, report.alerts), (1, 1));
    assert!(store.alert(1).unwrap().is_none());
    // An old alert with a queued job, a fresh alert, a fresh claim: their segment stays.
    for (id, received_at) in [(2, old), (3, now)] {
        store
            .insert_alert(
                id,
                received_at,
                &sample_alert(id as u32),
                &Default::default(),
            )
            .unwrap();
    }
    store
        .insert_job(&DeliveryJob::new(10, 2, "t", now))
        .unwrap();
    assert_eq!(claim(&store, "fresh", 3, now).await, None);
    assert_eq!(claim(&store, "fresh", 4, now).await, Some(3));
    // A finished fold window, and one still counting.
    let record = |start, folded| FoldRecord {
        window_start: start,
        folded,
    };
    store
        .update_fold("t", "done", |_| (Some(record(old, 0)), ()))
        .unwrap();
    store
        .update_fold("t", "counting", |_| (Some(record(old, 3)), ()))
        .unwrap();

    let report = store.sweep(now, hour, hour, hour).unwrap();
    assert_eq!(
        report,
        SweepReport {
            dedupe_records: 0,
            fold_records: 1,
            alerts: 0,
            issues: 0
        }
    );
    assert!(
        store.alert(2).unwrap().is_some(),
        "a queued job still needs it"
    );
    assert!(store.alert(3).unwrap().is_some(), "within retention");
    assert_eq!(store.alert_count(), 2);
    // Once the job is done and the retention is over, the segment goes.
    let none = HashSet::new();
    let (key, job) = store.due_jobs("t", now, &none, 1).unwrap().remove(0);
    store.finish_job(&key, &job).unwrap();
    let later = now + chrono::Duration::hours(2);
    let report = store.sweep(later, hour, hour, hour).unwrap();
    assert_eq!((report.dedupe_records, report.alerts), (1, 2));
    assert_eq!(store.alert_count(), 0);
    // The old key can be claimed afresh; the fresh one too, once forgotten.
    assert_eq!(claim(&store, "old", 5, now).await, None);
    assert_eq!(claim(&store, "fresh", 6, later).await, None);
    let counting = store
        .update_fold("t", "counting", |r| (r.clone(), r.map(|r| r.folded)))
        .unwrap();
    assert_eq!(counting, Some(3));
}

#[tokio::test]
async fn a_claim_dropped_unsettled_is_released_and_a_waiting_duplicate_takes_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = new_claim(&store, "k", 1).await;
    first.write().unwrap();
    // A duplicate arriving while the first is not on disk waits for it.
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { claim(&store, "k", 2, Utc::now()).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "answered before the first was on disk"
    );
    drop(first); // the first callback failed
    assert_eq!(waiting.await.unwrap(), None, "the retry takes the key");
    let now = Utc::now();
    assert_eq!(claim(&store, "k", 3, now).await, Some(2));
    // Reopened: only the settled claim is remembered.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(claim(&store, "k", 4, now).await, Some(2));
}

#[tokio::test]
async fn a_settled_claim_answers_the_duplicate_waiting_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = new_claim(&store, "k", 1).await;
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { claim(&store, "k", 2, Utc::now()).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    first.write().unwrap();
    store.commit().await.unwrap();
    first.settle();
    assert_eq!(waiting.await.unwrap(), Some(1));
}

#[tokio::test]
async fn per_target_counts_follow_every_change_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let counts = |store: &Store| {
        (
            store.queued_jobs_per_target().unwrap(),
            store.dead_letters_per_target().unwrap(),
            store.queued_job_count(),
            store.dead_letter_count(),
        )
    };
    let map = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    {
        let store = Store::open(dir.path()).unwrap();
        accept(&store, &sample_alert(1), &["a", "a", "b"])
            .await
            .unwrap();
        accept(&store, &sample_alert(2), &["a", "b"]).await.unwrap();
        let none = HashSet::new();
        let (key, done) = store.due_jobs("a", Utc::now(), &none, 1).unwrap().remove(0);
        store.finish_job(&key, &done).unwrap();
        store.finish_job(&key, &done).unwrap(); // already gone: counted once
        assert_eq!(
            store.deliveries_of(done.alert_id).unwrap(),
            std::slice::from_ref(&done)
        );
        let (key, job) = store.due_jobs("b", Utc::now(), &none, 1).unwrap().remove(0);
        let dead = DeadLetter {
            job,
            died_at: Utc::now(),
            reason: crate::job::FailureReason::AuthError,
            last_answer: "no".into(),
        };
        store.bury_job(&key, &dead).unwrap();
        assert_eq!(
            counts(&store),
            (map(&[("a", 2), ("b", 1)]), map(&[("b", 1)]), 3, 1)
        );
        let replayed = store.replay_dead_letters(&|_| true, Utc::now()).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(counts(&store), (map(&[("a", 2), ("b", 2)]), map(&[]), 4, 0));
        store.commit().await.unwrap();
    }
    // Counted again from the keys on open: the same.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(counts(&store), (map(&[("a", 2), ("b", 2)]), map(&[]), 4, 0));
}

#[tokio::test]
async fn only_jobs_attempted_before_are_read_back_for_issue_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    accept(&store, &sample_alert(1), &["t", "t", "t"])
        .await
        .unwrap();
    let none = HashSet::new();
    let (key, mut job) = store.due_jobs("t", Utc::now(), &none, 1).unwrap().remove(0);
    job.attempts.push(crate::job::Attempt {
        at: Utc::now(),
        result: crate::job::AttemptResult::Failed,
        reason: Some(crate::job::FailureReason::ServerError),
        answer: "HTTP 503: \"attempts\":[]".into(), // an answer that quotes the marker
        latency_ms: 3,
    });
    store.reschedule_job(&key, &job).unwrap();
    let retried: Vec<DeliveryJob> = store.retried_jobs_of("t").map(|j| j.unwrap()).collect();
    assert_eq!(retried, [job]);
    assert_eq!(store.retried_jobs_of("other").count(), 0);
}

#[tokio::test]
async fn a_claim_kept_longer_survives_sweeps_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let week = std::time::Duration::from_secs(7 * 24 * 3600);
    let now = Utc::now();
    let two_hours_ago = now - chrono::Duration::hours(2);
    {
        let store = Store::open(dir.path()).unwrap();
        // An episode of a group, told two hours ago and kept for a week; a callback's claim.
        match store
            .claim_dedupe_key("episode", 1, two_hours_ago, week)
            .await
            .unwrap()
        {
            ClaimOutcome::New(claim) => {
                claim.write().unwrap();
                store.commit().await.unwrap();
                claim.settle();
            }
            ClaimOutcome::Duplicate(_) => panic!("new"),
        }
        assert_eq!(claim(&store, "callback", 2, two_hours_ago).await, None);
        let report = store.sweep(now, hour, hour, week).unwrap();
        assert_eq!(
            report.dedupe_records, 1,
            "only the callback's claim is forgotten"
        );
        let again = store
            .claim_dedupe_key("episode", 3, now, week)
            .await
            .unwrap();
        assert!(matches!(again, ClaimOutcome::Duplicate(1)));
        store.commit().await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    store.sweep(now, hour, hour, week).unwrap();
    let again = store
        .claim_dedupe_key("episode", 4, now, week)
        .await
        .unwrap();
    assert!(
        matches!(again, ClaimOutcome::Duplicate(1)),
        "kept on disk too"
    );
    let later = now + chrono::Duration::days(8);
    store.sweep(later, hour, hour, week).unwrap();
    let forgotten = store
        .claim_dedupe_key("episode", 5, later, week)
        .await
        .unwrap();
    assert!(
        matches!(forgotten, ClaimOutcome::New(_)),
        "forgotten after its week"
    );
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_waits_for_a_stalled_original_only_so_long() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // The original is claimed and never reaches the disk (its commit hangs).
    let _stalled = new_claim(&store, "hung", 1).await;
    let started = tokio::time::Instant::now();
    let hour = std::time::Duration::from_secs(3600);
    let waited = store.claim_dedupe_key("hung", 2, Utc::now(), hour).await;
    assert!(waited.is_err(), "a duplicate must not wait forever");
    assert_eq!(started.elapsed(), claims::PENDING_WAIT);
}

#[tokio::test]
async fn sdk_issues_are_updated_in_place_survive_a_reopen_and_are_forgotten_when_unseen() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let mut event = sample_alert(1);
    event.source = crate::alert::Source::SentrySdk;
    event.installation = Some("sdk/7".into());
    event.issue_id = Some("h1:00000000000000aa".into());
    {
        let store = Store::open(dir.path()).unwrap();
        for (id, seen) in [
            ("7-h1-00000000000000aa", now - chrono::Duration::hours(3)),
            ("7-h1-00000000000000bb", now),
        ] {
            for _ in 0..2 {
                store
                    .update_issue(id, |current| {
                        let (issue, sighting) = SdkIssue::observe(current, id, &event, seen);
                        (Some(issue), sighting)
                    })
                    .unwrap();
            }
        }
        // `None` from the update keeps the issue as it is.
        store
            .update_issue("7-h1-00000000000000bb", |_| (None, ()))
            .unwrap();
        store.commit().await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let counts: Vec<(String, u64)> = store
        .issues()
        .map(|issue| issue.map(|i| (i.id, i.count)).unwrap())
        .collect();
    assert_eq!(
        counts,
        [
            ("7-h1-00000000000000aa".to_string(), 2),
            ("7-h1-00000000000000bb".to_string(), 2)
        ]
    );
    let hour = std::time::Duration::from_secs(3600);
    let report = store.sweep(now, hour, hour, hour).unwrap();
    assert_eq!(report.issues, 1);
    assert!(store.issue("7-h1-00000000000000aa").unwrap().is_none());
    assert!(store.issue("7-h1-00000000000000bb").unwrap().is_some());
}
