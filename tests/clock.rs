//! A wall clock stepped back under a running herald, for real: herald runs with a small preloaded
//! library (tests/support/shifted_clock.c, built here with the C compiler `./test` installs) that
//! shifts CLOCK_REALTIME by what the test writes in a file, while the monotonic clock runs on.
//! Retries and a restart must not wait out the step.

mod common;

use common::downstream::FakeDownstream;
use common::{fixture, Herald};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Builds the shifting library into `dir`.
fn shifted_clock_library(dir: &Path) -> PathBuf {
    let library = dir.join("shifted_clock.so");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/shifted_clock.c");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .expect("a C compiler (./test installs gcc)");
    assert!(built.success(), "cannot build {}", source.display());
    library
}

/// herald with its wall clock shifted by the seconds written in `shift`.
fn launch(dir: Arc<tempfile::TempDir>, config: &str, library: &Path, shift: &Path) -> Herald {
    Herald::launch(
        dir,
        config,
        &[
            ("LD_PRELOAD", library.to_str().unwrap()),
            ("HERALD_TEST_CLOCK_SHIFT_FILE", shift.to_str().unwrap()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepped_back_an_hour_delays_no_retry_even_across_a_restart() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let library = shifted_clock_library(dir.path());
    let shift = dir.path().join("clock-shift");
    std::fs::write(&shift, "0\n").unwrap();
    let hook = FakeDownstream::start(200, "ok").await;
    hook.script([(503, "down"), (503, "down")]);
    let config = format!(
        "{}\n[[targets]]\nname = \"audit\"\nkind = \"webhook\"\nurl = \"{}\"\nretry = [\"2s\", \"2s\", \"2s\"]\n",
        common::server_config(&dir.path().join("data")),
        hook.url("/hook")
    );
    let mut herald = launch(dir.clone(), &config, &library, &shift);
    let response = herald
        .post_sentry("issue", &fixture("issue-created.json"))
        .await;
    assert_eq!(response.status(), 202);
    hook.wait_for(1, Duration::from_secs(10)).await;

    // The wall clock steps back an hour: the retry due in two seconds still comes.
    std::fs::write(&shift, "-3600\n").unwrap();
    hook.wait_for(2, Duration::from_secs(15)).await;

    // herald restarts while the clock is still an hour back: the next retry is not an hour off.
    herald.terminate();
    let herald = launch(dir.clone(), &config, &library, &shift);
    hook.wait_for(3, Duration::from_secs(15)).await;
    let ready = herald.wait_until_drained(Duration::from_secs(10)).await;
    assert_eq!(ready["dead_letters"], 0);
}
