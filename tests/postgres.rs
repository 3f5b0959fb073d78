//! Several herald replicas on one PostgreSQL, black box, against a throwaway cluster: the same
//! callback to two replicas is accepted once, every alert is told once whichever replica took it,
//! a SIGKILLed replica's target is taken over and its message sent, the database going away is a
//! 503 (and herald comes back with it), and a database of a newer herald is refused.

mod common;

use common::dingtalk::{FakeDingTalk, Reply};
use common::postgres::PgCluster;
use common::{fixture, Herald};
use futures::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A replica on `url` with one DingTalk target.
fn replica(url: &str, robot: &FakeDingTalk, extra: &str) -> Herald {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "{}\n[store]\nurl = \"{url}\"\nlease = \"5s\"\n{extra}\n[[targets]]\nname = \"oncall\"\nkind = \"dingtalk\"\nurl = \"{}\"\ntimeout = \"30s\"\nretry = [\"1s\", \"1s\", \"1s\"]\n",
        common::server_config(&dir.path().join("data")),
        robot.url(),
    );
    Herald::start_with(dir, &config)
}

/// issue.created for Sentry issue `id`.
fn created(id: u64) -> Vec<u8> {
    let mut payload: Value = serde_json::from_slice(&fixture("issue-created.json")).unwrap();
    payload["data"]["issue"]["id"] = id.to_string().into();
    payload["data"]["issue"]["title"] = format!("KeyError: order {id}").into();
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_dedupe_and_tell_each_alert_once() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_two");
    let robot = FakeDingTalk::start(None).await;
    let a = replica(&url, &robot, "");
    let b = replica(&url, &robot, "");

    // The same callback to both replicas at once: one accepts it, the other says duplicate.
    for id in 0..5 {
        let body = created(1000 + id);
        let (first, second) =
            tokio::join!(a.post_sentry("issue", &body), b.post_sentry("issue", &body));
        assert_eq!(
            (first.status().as_u16(), second.status().as_u16()),
            (202, 202)
        );
        let first: Value = first.json().await.unwrap();
        let second: Value = second.json().await.unwrap();
        let statuses = [
            first["status"].as_str().unwrap(),
            second["status"].as_str().unwrap(),
        ];
        assert!(
            statuses.contains(&"accepted") && statuses.contains(&"duplicate"),
            "{first} {second}"
        );
        assert_eq!(first["alert_id"], second["alert_id"]);
    }
    // Distinct callbacks, alternating replicas: each told once.
    for id in 0..10 {
        let replica = if id % 2 == 0 { &a } else { &b };
        assert_eq!(
            replica
                .post_sentry("issue", &created(2000 + id))
                .await
                .status(),
            202
        );
    }
    let received = robot.wait_for(15, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let texts = robot.texts();
    assert_eq!(texts.len(), 15, "{texts:#?}");
    for id in (1000..1005).chain(2000..2010) {
        let told = texts
            .iter()
            .filter(|t| t.contains(&format!("order {id}")))
            .count();
        assert_eq!(told, 1, "order {id}: {texts:#?}");
    }
    assert_eq!(received.len(), 15);
    // Both replicas see the whole cluster, and each committed its own callbacks' writes.
    for replica in [&a, &b] {
        let ready = replica.wait_until_drained(Duration::from_secs(10)).await;
        assert_eq!(ready["alerts"], 15, "{ready}");
        assert!(replica.metric("herald_store_commits_total").await >= 5.0);
        assert!(replica.metric("herald_store_commit_seconds_total").await > 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_s_target_is_taken_over_and_its_message_sent() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_takeover");
    let robot = FakeDingTalk::start(None).await;
    // The first request hangs (the replica sending it is killed meanwhile); the rest succeed.
    robot.script([Reply::Hang(Duration::from_secs(60))]);
    let mut a = replica(&url, &robot, "");
    assert_eq!(a.post_sentry("issue", &created(7)).await.status(), 202);
    robot.wait_for(1, Duration::from_secs(10)).await;
    a.kill();
    let b = replica(&url, &robot, "");
    // b takes the target once a's lease (5 s) is over, and sends the message again.
    let received = robot.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        received[0].body["markdown"]["text"],
        received[1].body["markdown"]["text"]
    );
    b.wait_until_drained(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_its_database_herald_answers_503_and_comes_back_with_it() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_outage");
    let robot = FakeDingTalk::start(None).await;
    let herald = replica(&url, &robot, "connect_timeout = \"1s\"\n");
    let first = herald.post_sentry("issue", &created(1)).await;
    assert_eq!(
        first.status(),
        202,
        "{}\n{}",
        first.text().await.unwrap(),
        herald.logs()
    );
    cluster.stop_server();
    let refused = herald.post_sentry("issue", &created(2)).await;
    assert_eq!(refused.status(), 503);
    let reason: Value = refused.json().await.unwrap();
    assert!(
        reason["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{reason}"
    );
    cluster.start_server();
    let mut accepted = false;
    for _ in 0..100 {
        if herald.post_sentry("issue", &created(3)).await.status() == 202 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(accepted, "{}", herald.logs());
    robot.wait_for(2, Duration::from_secs(20)).await;
}

#[test]
fn a_database_of_a_newer_herald_is_refused() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_newer");
    cluster.sql(
        "herald_newer",
        "CREATE TABLE herald_meta (key text PRIMARY KEY, value text NOT NULL); \
         INSERT INTO herald_meta VALUES ('schema', '99')",
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("herald.toml");
    std::fs::write(
        &config_path,
        format!(
            "{}\n[store]\nurl = \"{url}\"\n[[targets]]\nname = \"stdout\"\nkind = \"console\"\n",
            common::server_config(&dir.path().join("data"))
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("newer herald") && said.contains("schema 99"),
        "{said}"
    );
    assert!(
        !said.contains("unused-password"),
        "the password is never printed: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_robot_s_rate_limit_holds_for_the_cluster() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_rate");
    let robot = FakeDingTalk::start(None).await;
    // DingTalk's rule: more than 20 a minute and the robot is throttled.
    robot.enforce_limit(20, Duration::from_secs(600));
    let a = replica(&url, &robot, "");
    let b = replica(&url, &robot, "");
    for id in 0..26 {
        let replica = if id % 2 == 0 { &a } else { &b };
        assert_eq!(
            replica
                .post_sentry("issue", &created(3000 + id))
                .await
                .status(),
            202
        );
    }
    a.wait_until_drained(Duration::from_secs(30)).await;
    // Every alert told (one at a time, the rest merged into digests as the limit allows), never
    // more than the robot takes, and by one replica only: the target is worked by one at a time.
    let texts = robot.texts().join("\n");
    for id in 3000..3026 {
        assert!(
            texts.contains(&format!("order {id}")),
            "order {id}: {texts}"
        );
    }
    assert!(robot.received().len() <= 20);
    assert_eq!(robot.throttled_answers(), 0);
    let sent_by = |replica: &Herald| {
        replica.logs().matches(" delivery ").count() + replica.logs().matches("delivery\n").count()
    };
    let (by_a, by_b) = (sent_by(&a), sent_by(&b));
    assert!(
        by_a == 0 || by_b == 0,
        "both replicas sent: {by_a} and {by_b}"
    );
    assert!(by_a + by_b > 0, "{}", a.logs());
}

#[test]
fn check_config_names_a_bad_store_url_and_never_prints_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let check = |store: &str| {
        let path = dir.path().join("herald.toml");
        std::fs::write(
            &path,
            format!(
                "{}\n[store]\n{store}\n[[targets]]\nname = \"stdout\"\nkind = \"console\"\n",
                common::server_config(&dir.path().join("data"))
            ),
        )
        .unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (ok, said) = check("url = \"mysql://root:hunter2@db/herald\"");
    assert!(
        !ok && said.contains("store.url") && !said.contains("hunter2"),
        "{said}"
    );
    let (ok, said) = check("url = \"postgres://herald:hunter2@db/herald?sslmode=require\"");
    assert!(
        !ok && said.contains("store.url") && said.contains("TLS") && !said.contains("hunter2"),
        "{said}"
    );
    let (ok, said) = check("url = \"postgres://herald:hunter2@db/herald\"\nlease = \"1s\"");
    assert!(!ok && said.contains("store.lease"), "{said}");
    let (ok, said) = check("url = \"postgres://herald:hunter2@db/herald\"");
    assert!(ok, "{said}");
    assert!(
        said.contains("url = \"***\"") && !said.contains("hunter2"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_callbacks_at_once_are_each_stored_once() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_load");
    let robot = FakeDingTalk::start(None).await;
    let a = replica(&url, &robot, "");
    let b = replica(&url, &robot, "");
    // 300 callbacks, 48 at a time, half of them sent to both replicas.
    let sends = (0..300u64).map(|n| {
        let (a, b) = (&a, &b);
        async move {
            let body = created(50_000 + n);
            let first = a.post_sentry("issue", &body).await.status().as_u16();
            let second = if n % 2 == 0 {
                b.post_sentry("issue", &body).await.status().as_u16()
            } else {
                202
            };
            (first, second)
        }
    });
    let answers: Vec<(u16, u16)> = tokio::time::timeout(
        Duration::from_secs(60),
        futures::stream::iter(sends).buffer_unordered(48).collect(),
    )
    .await
    .expect("herald answers a load of callbacks (a deadlock once hung it)");
    assert!(answers.iter().all(|a| *a == (202, 202)), "{answers:?}");
    let ready = a.readiness().await;
    assert_eq!(ready["alerts"], 300, "{ready}");
}

/// Replicas with a GitHub target (no folding: every alert reaches it) on one database.
fn github_replica(url: &str, github: &common::github::FakeGithub) -> Herald {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = format!(
        "{}\n[dedupe]\nwindow = \"0s\"\n[store]\nurl = \"{url}\"\nlease = \"5s\"\n\
         [[targets]]\nname = \"issues\"\nkind = \"github\"\nrepo = \"acme/backend\"\ntoken = \"{}\"\n\
         api_url = \"{}\"\ntimeout = \"2s\"\nretry = [\"500ms\", \"500ms\", \"500ms\", \"500ms\"]\n",
        common::server_config(&dir.path().join("data")),
        common::github::TOKEN,
        github.api_url()
    );
    Herald::start_with(dir, &config)
}

/// An event alert of Sentry issue 1 (event `n`), from the installation `created` comes from.
fn event_alert(n: u64) -> Vec<u8> {
    let mut payload: Value =
        serde_json::from_slice(&fixture("event_alert-triggered.json")).unwrap();
    let created: Value = serde_json::from_slice(&fixture("issue-created.json")).unwrap();
    payload["installation"] = created["installation"].clone();
    payload["data"]["event"]["issue_id"] = "1".into();
    payload["data"]["event"]["event_id"] = format!("{n:032x}").into();
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_github_issue_when_its_alerts_reach_two_replicas_at_once_and_one_dies_mid_create() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_github");
    let github = common::github::FakeGithub::start().await;
    // The first create is made, then its answer never comes back: the replica sending it is
    // killed before it can record the link.
    github.on_create(common::github::OnCreate::CreateThenHang(
        Duration::from_secs(60),
    ));
    let mut a = github_replica(&url, &github);
    let mut b = github_replica(&url, &github);
    let created = created(1);
    let alerts: Vec<Vec<u8>> = (0..4).map(event_alert).collect();
    let mut posts = vec![
        a.post_sentry("issue", &created),
        b.post_sentry("issue", &created),
    ];
    for (n, alert) in alerts.iter().enumerate() {
        posts.push(if n % 2 == 0 {
            a.post_sentry("event_alert", alert)
        } else {
            b.post_sentry("event_alert", alert)
        });
    }
    for answer in futures::future::join_all(posts).await {
        assert_eq!(answer.status(), 202);
    }
    github
        .wait_until("the first create", Duration::from_secs(15), |issues| {
            !issues.is_empty()
        })
        .await;
    // Whichever replica holds the target (its lease names its process) is killed mid-create;
    // the other takes over.
    let owner = cluster.sql(
        "herald_github",
        "SELECT owner FROM herald_target_lease WHERE name = 'issues'",
    );
    let survivor = if owner.contains(&format!("-{}-", a.pid())) {
        a.kill();
        &b
    } else {
        assert!(owner.contains(&format!("-{}-", b.pid())), "{owner}");
        b.kill();
        &a
    };
    survivor.wait_until_drained(Duration::from_secs(40)).await;
    let issues = github.issues();
    assert_eq!(
        issues.len(),
        1,
        "one GitHub issue for one Sentry issue: {issues:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_of_schema_1_is_migrated_and_its_counts_kept_from_then_on() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_schema_1");
    // What herald of schema 1 left: three alerts, two jobs of a target since removed from the
    // config, one dead letter.
    cluster.sql(
        "herald_schema_1",
        &format!(
            "{}\nINSERT INTO herald_meta VALUES ('schema', '1');\n\
             INSERT INTO herald_alert SELECT g, now(), '\\x00' FROM generate_series(900000001, 900000003) g;\n\
             INSERT INTO herald_job SELECT g, 'retired', 900000001, now(), false, '{{}}' FROM generate_series(900000001, 900000002) g;\n\
             INSERT INTO herald_dead_letter VALUES (900000009, 'retired', 900000001, '{{}}');",
            include_str!("../src/store/postgres/schema.sql")
        ),
    );
    let robot = FakeDingTalk::start(None).await;
    let herald = replica(&url, &robot, "");
    let counts = |ready: &Value| {
        (
            ready["alerts"].as_u64(),
            ready["queued_jobs"].as_u64(),
            ready["dead_letters"].as_u64(),
        )
    };
    assert_eq!(
        counts(&herald.readiness().await),
        (Some(3), Some(2), Some(1))
    );
    let answer = herald.post_sentry("issue", &created(4242)).await;
    assert_eq!(answer.status(), 202);
    robot.wait_for(1, Duration::from_secs(20)).await;
    // The new alert counted; its job, once delivered, no longer.
    let ready = herald
        .wait_for_readiness(Duration::from_secs(10), "counts not (4, 2, 1)", |ready| {
            counts(ready) == (Some(4), Some(2), Some(1))
        })
        .await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        cluster
            .sql(
                "herald_schema_1",
                "SELECT value FROM herald_meta WHERE key = 'schema'"
            )
            .trim(),
        "2"
    );
}

/// Callbacks to two replicas from several clients while the database stops for two seconds and
/// comes back: each is answered 2xx or 503 (nothing else), every one answered 2xx is delivered,
/// both replicas say the outage once and take callbacks again by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_under_load_lose_nothing_when_the_database_stops_and_starts() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_outage_load");
    let sink = common::downstream::FakeDownstream::start(200, "ok").await;
    let replicas: Vec<Arc<Herald>> = (0..2)
        .map(|_| {
            let dir = Arc::new(tempfile::tempdir().unwrap());
            let config = format!(
                "{}\n[store]\nurl = \"{url}\"\nlease = \"5s\"\nconnect_timeout = \"1s\"\n\
                 [[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"{}\"\nretry = [\"1s\"]\n",
                common::server_config(&dir.path().join("data")),
                sink.url("/hook"),
            );
            Arc::new(Herald::start_with(dir, &config))
        })
        .collect();
    let next_id = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (replicas, next_id, stop) = (replicas.clone(), next_id.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let id = next_id.fetch_add(1, Ordering::SeqCst);
                    let herald = &replicas[(id % 2) as usize];
                    let status = herald.post_sentry("issue", &created(id)).await.status();
                    answers.push((id, status.as_u16()));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.stop_server();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restarted_after = next_id.load(Ordering::SeqCst);
    cluster.start_server();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    let accepted: Vec<u64> = answers
        .iter()
        .filter(|(_, status)| *status == 202)
        .map(|(id, _)| *id)
        .collect();
    let refused = answers.iter().filter(|(_, status)| *status == 503).count();
    assert!(
        answers
            .iter()
            .all(|(_, status)| [202, 503].contains(status)),
        "{answers:?}"
    );
    assert!(refused > 0, "the outage was seen: {answers:?}");
    for side in 0..2 {
        assert!(
            accepted
                .iter()
                .any(|id| *id > restarted_after && id % 2 == side),
            "replica {side} takes callbacks again: {answers:?}"
        );
        let logs = replicas[side as usize].logs();
        assert_eq!(
            logs.matches("callbacks are answered 503").count(),
            1,
            "said once: {logs}"
        );
    }
    // Every callback answered 2xx reaches the sink (at least once).
    let missing = || -> Vec<u64> {
        let bodies: Vec<String> = sink
            .received()
            .iter()
            .map(|request| String::from_utf8_lossy(&request.body).into_owned())
            .collect();
        accepted
            .iter()
            .copied()
            .filter(|id| {
                let title = format!("KeyError: order {id}\"");
                !bodies.iter().any(|body| body.contains(&title))
            })
            .collect()
    };
    common::eventually(
        Duration::from_secs(60),
        || {
            let missing = missing();
            format!(
                "{} of {} accepted callbacks not delivered: {missing:?}",
                missing.len(),
                accepted.len()
            )
        },
        || missing().is_empty().then_some(()),
    )
    .await;
}

/// Fifty alerts of one Sentry issue, sent ten at a time to two replicas: one message, then one
/// count at the end of the fold window, whichever replica took each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_repeats_split_over_two_replicas_are_one_message_and_a_count() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = cluster.database("herald_fold");
    let robot = FakeDingTalk::start(None).await;
    let window = "[dedupe]\nwindow = \"3s\"\n";
    let a = replica(&url, &robot, window);
    let b = replica(&url, &robot, window);
    let receipts: Vec<Value> = futures::stream::iter(0..50u64)
        .map(|n| {
            let herald = if n % 2 == 0 { &a } else { &b };
            async move {
                let answer = herald.post_sentry("event_alert", &event_alert(n)).await;
                assert_eq!(answer.status(), 202);
                answer.json::<Value>().await.unwrap()
            }
        })
        .buffer_unordered(10)
        .collect()
        .await;
    let sent = receipts
        .iter()
        .filter(|r| r["targets"] == serde_json::json!(["oncall"]))
        .count();
    let folded = receipts
        .iter()
        .filter(|r| r["folded"] == serde_json::json!(["oncall"]))
        .count();
    assert_eq!((sent, folded), (1, 49), "sent now, folded");
    robot.wait_for(2, Duration::from_secs(40)).await;
    let summary = robot
        .texts()
        .into_iter()
        .find(|text| text.contains("more in the last"))
        .unwrap_or_default();
    assert!(
        summary.contains("×49 more in the last"),
        "{:?}",
        robot.texts()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(robot.received().len(), 2, "{:?}", robot.texts());
}

/// herald's store in a new database of `cluster`, opened in this process.
fn store_in(cluster: &PgCluster, database: &str) -> herald::store::Store {
    use herald::store::postgres::{PgSettings, PgStore};
    let settings = PgSettings {
        url: herald::secret::Secret::new(cluster.database(database)),
        pool_size: 4,
        connect_timeout: Duration::from_secs(10),
        lease: Duration::from_secs(5),
    };
    herald::store::Store::new(Arc::new(PgStore::open(&settings).unwrap()))
}

/// A transaction of its own that holds `table` of `database` locked against writes until it ends:
/// a store's statement on that table waits at the database for as long as a test needs it to,
/// however fast or slow the machine.
async fn lock_table(cluster: &PgCluster, database: &str, table: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&cluster.url(database), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("BEGIN; LOCK TABLE {table} IN EXCLUSIVE MODE"))
        .await
        .unwrap();
    client
}

/// Ends the transaction `lock_table` began, and with it the lock.
async fn unlock_table(holder: tokio_postgres::Client) {
    holder.batch_execute("COMMIT").await.unwrap();
}

/// A caller that goes away while its group commit is at the database (hyper drops a request's
/// future when its client hangs up) leaves the commit to go on: the writes it took along, other
/// callers' included, reach the database, and those callers are told so only once they have.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_commit_goes_on_when_its_caller_goes_away() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let database = "herald_cancelled_commit";
    let store = store_in(&cluster, database);
    let alert = |id: u64| herald::sentry::parse_integration_payload("issue", &created(id)).unwrap();
    let mut ids = Vec::new();
    for issue in [1, 2] {
        let id = store.next_id().unwrap();
        store
            .insert_alert(id, chrono::Utc::now(), &alert(issue), &Default::default())
            .unwrap();
        ids.push(id);
    }
    // The commit waits at the database until the lock is let go, whatever the machine's pace.
    let holder = lock_table(&cluster, database, "herald_alert").await;
    let mut first = Box::pin(store.commit());
    let mut second = Box::pin(store.commit());
    // The first caller's commit takes both writes to the database; then its caller is gone.
    assert!(futures::poll!(&mut first).is_pending());
    assert!(futures::poll!(&mut second).is_pending());
    drop(first);
    unlock_table(holder).await;
    second.await.unwrap();
    for id in ids {
        assert!(
            store.alert(id).unwrap().is_some(),
            "alert {id} was committed for its caller but is not in the database"
        );
    }
}

/// A caller that goes away while its batch of dedupe claims is at the database leaves the batch
/// to go on: the other callers in it hear whether their claims were taken, instead of an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_claims_goes_on_when_its_caller_goes_away() {
    use herald::store::ClaimOutcome;
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let database = "herald_cancelled_claims";
    let store = store_in(&cluster, database);
    let now = chrono::Utc::now();
    let hour = Duration::from_secs(3600);
    // Each batch waits at the database while the claims table is locked, so that what is
    // pending below is pending however fast the database answers.
    let holder = lock_table(&cluster, database, "herald_claim").await;
    // One batch at the database while two more claims wait their turn: they go together next.
    let mut running = Box::pin(store.claim_dedupe_key("running", 1, now, hour));
    let mut leaving = Box::pin(store.claim_dedupe_key("leaving", 2, now, hour));
    let mut staying = Box::pin(store.claim_dedupe_key("staying", 3, now, hour));
    assert!(futures::poll!(&mut running).is_pending());
    assert!(futures::poll!(&mut leaving).is_pending());
    assert!(futures::poll!(&mut staying).is_pending());
    unlock_table(holder).await;
    assert!(matches!(running.await.unwrap(), ClaimOutcome::New(_)));
    // The next batch, both claims, is run by the first in line, which then goes away.
    let holder = lock_table(&cluster, database, "herald_claim").await;
    assert!(futures::poll!(&mut leaving).is_pending());
    drop(leaving);
    unlock_table(holder).await;
    match staying.await {
        Ok(ClaimOutcome::New(_)) => {}
        Ok(ClaimOutcome::Duplicate(first)) => panic!("a fresh key taken for {first}"),
        Err(error) => panic!("the claim was lost with the caller that ran its batch: {error}"),
    }
}
