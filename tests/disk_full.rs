//! A full disk, for real: herald's data folder on a small tmpfs that the test fills. Needs root
//! to mount it (CI runs the suite as root); elsewhere the test says so and is skipped, except under
//! CI=true, where a skip would hide a failure.

mod common;

use common::downstream::FakeDownstream;
use common::{fixture, issue_created, Herald};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// A tmpfs of `size`, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let path = dir.join("disk");
        std::fs::create_dir_all(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|status| status.success());
        if mounted {
            return Some(Tmpfs { path });
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs: this test needs root"
        );
        eprintln!("SKIPPED: cannot mount a tmpfs (this test needs root)");
        None
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// What each test runs on: a temporary folder, a 24 MiB tmpfs in it, and a downstream that
/// answers 503 for now; `None` where no tmpfs can be mounted (the test is skipped). Dropped in
/// reverse order, the tmpfs is unmounted before its folder goes.
async fn small_disk_and_a_down_hook() -> Option<(Arc<tempfile::TempDir>, Tmpfs, FakeDownstream)> {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let disk = Tmpfs::mount(dir.path(), "24m")?;
    let hook = FakeDownstream::start(503, "down").await;
    Some((dir, disk, hook))
}

/// herald with its data folder on `disk` and one webhook target posting to `hook`, retried as
/// `retry` (a TOML list of durations) says.
fn herald_on(
    dir: &Arc<tempfile::TempDir>,
    disk: &Tmpfs,
    hook: &FakeDownstream,
    retry: &str,
) -> Herald {
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = "{data}"

[sentry]
client_secrets = ["{secret}"]

[[targets]]
name = "audit"
kind = "webhook"
url = "{url}"
retry = {retry}
"#,
        data = disk.path.join("data").display(),
        secret = common::SECRET,
        url = hook.url("/hook"),
    );
    Herald::start_with(dir.clone(), &config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_never_makes_herald_send_a_message_again_and_again() {
    let Some((dir, disk, hook)) = small_disk_and_a_down_hook().await else {
        return;
    };
    let herald = herald_on(
        &dir,
        &disk,
        &hook,
        r#"["1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s"]"#,
    );
    let response = herald
        .post_sentry("issue", &fixture("issue-created.json"))
        .await;
    assert_eq!(response.status(), 202);
    hook.wait_for(1, Duration::from_secs(10)).await;

    // The disk fills up. Callbacks are stored while the zeros herald wrote ahead in its segment
    // last (up to 1 MiB); then one cannot be stored (and the store has failed a write). Then
    // the downstream comes back.
    let filler = disk.fill();
    let mut queued = 1;
    let refused = loop {
        let response = herald
            .post_sentry("issue", &issue_created(8_000_000 + queued))
            .await;
        if response.status() != 202 || queued > 2_000 {
            break response.status();
        }
        queued += 1;
    };
    assert_eq!(refused, 503, "nothing is accepted that cannot be stored");
    hook.answer(200, "ok");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let sent = hook.received().len();
    assert!(
        sent <= 2 * queued as usize,
        "{queued} messages went out {sent} times while the disk was full"
    );
    let ready = herald
        .client()
        .get(herald.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "store_failed");
    // A client still sending a large body hears the 503 too, rather than a reset.
    let answers = common::post_blocking_tries(herald.address, "/hooks/sentry", 12 << 20, 5).await;
    for answer in answers {
        let (status, text) = answer.expect("the 503 reaches a client still sending");
        assert_eq!(status, 503, "{text}");
        assert!(text.contains("cannot store"), "{text}");
    }

    // Room again: herald restarts in place (same pid, same address), opens its store anew, and
    // the queued message goes out once more, at most.
    std::fs::remove_file(filler).unwrap();
    herald.wait_for_restart_in_place().await;
    let ready = herald.wait_until_drained(Duration::from_secs(30)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["dead_letters"], 0);
    let total = hook.received().len();
    assert!(total <= sent + queued as usize, "sent {total} times in all");
    let response = herald
        .post_sentry("issue", &fixture("issue-resolved.json"))
        .await;
    assert_eq!(response.status(), 202, "callbacks are stored again");
    hook.wait_for(total + 1, Duration::from_secs(10)).await;
}

/// Callbacks that arrive together when the disk fills: each is answered 202 or 503, and every one
/// answered 202 is there once herald has opened its store again. (The store's own test,
/// `callers_sharing_a_failed_commit_all_fail`, makes one commit's write fail under eight callers
/// for certain; here the disk decides which write fails first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callbacks_arriving_as_the_disk_fills_are_refused_or_kept() {
    let Some((dir, disk, hook)) = small_disk_and_a_down_hook().await else {
        return;
    };
    let mut herald = herald_on(&dir, &disk, &hook, r#"["1h"]"#);
    let first = herald.post_sentry("issue", &issue_created(7_000_000)).await;
    assert_eq!(first.status(), 202);

    // 32 connections open, so that the callbacks below arrive at once.
    let warm = (0..32).map(|_| herald.client().get(herald.url("/healthz")).send());
    for answer in futures::future::join_all(warm).await {
        assert_eq!(answer.unwrap().status(), 200);
    }
    // Batches of 32 at once until one is refused: the zeros herald wrote ahead in its segment
    // (up to 1 MiB) take callbacks after the disk is full, and the batch that uses them up
    // shares the commit that fails.
    let filler = disk.fill();
    let mut accepted: Vec<u64> = Vec::new();
    for batch in 0..200 {
        let posts = (1..=32).map(|i| {
            let herald = &herald;
            let n = batch * 32 + i;
            async move {
                let response = herald
                    .post_sentry("issue", &issue_created(7_000_000 + n))
                    .await;
                (n, response.status().as_u16())
            }
        });
        let answers = futures::future::join_all(posts).await;
        assert!(
            answers
                .iter()
                .all(|(_, status)| [202, 503].contains(status)),
            "{answers:?}"
        );
        accepted.extend(
            answers
                .iter()
                .filter(|(_, status)| *status == 202)
                .map(|(n, _)| *n),
        );
        if answers.iter().any(|(_, status)| *status == 503) {
            break;
        }
    }

    std::fs::remove_file(filler).unwrap();
    herald.wait_for_restart_in_place().await;
    herald.terminate();
    let store = herald::store::Store::open(&disk.path.join("data")).unwrap();
    let stored: Vec<String> = store
        .alerts()
        .map(|a| a.unwrap().alert.issue_id.unwrap())
        .collect();
    for n in accepted {
        let issue = (7_000_000 + n).to_string();
        assert!(
            stored.contains(&issue),
            "callback {n} was answered 202 but is not stored (stored: {stored:?})"
        );
    }
}
