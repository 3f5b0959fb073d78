//! The command line as users meet it: `check-config` and `serve` on good and bad configs.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn herald(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .args(args)
        .env_remove("SENTRY_CLIENT_SECRET")
        .env_remove("HERALD_CONFIG");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn example_config() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config.example.toml")
        .display()
        .to_string()
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const GOOD: &str = "[sentry]\nclient_secrets = [\"${HERALD_TEST_SECRET}\"]\n\n[[targets]]\nname = \"stdout\"\nkind = \"console\"\n";

#[test]
fn example_config_checks_without_any_environment() {
    let output = herald(&["check-config", "--config", &example_config()], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(stdout.contains("kind = \"console\""), "{stdout}");
    assert!(!stdout.contains("quickstart-secret"), "{stdout}");
}

#[test]
fn check_config_masks_secrets_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!("[server]\nadmin_token = \"admin-token-value\"\n{GOOD}"),
    );
    let output = herald(
        &["check-config", "--config", &path],
        &[("HERALD_TEST_SECRET", "very-secret-value")],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{all}");
    assert!(
        !all.contains("very-secret-value") && !all.contains("admin-token-value"),
        "{all}"
    );
    assert!(all.contains("client_secrets = [\"***\"]"), "{all}");
}

#[test]
fn bad_configs_exit_1_with_one_sentence_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = GOOD.replace("${HERALD_TEST_SECRET}", "literal-secret");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "missing variable",
            GOOD,
            &["sentry.client_secrets[0]", "HERALD_TEST_SECRET", "not set"],
        ),
        ("syntax", "[sentry]\nclient_secrets = [\"a\"\n", &["line 2"]),
        (
            "unknown key",
            &format!("{good}colour = \"red\"\n"),
            &["targets[0].colour", "not a known key"],
        ),
        (
            "unknown kind",
            &good.replace("\"console\"", "\"pager\""),
            &["targets[0].kind", "\"pager\"", "not a known target kind"],
        ),
        (
            "duplicate target",
            &format!("{good}\n[[targets]]\nname = \"stdout\"\nkind = \"console\"\n"),
            &["targets[1].name", "\"stdout\"", "unique"],
        ),
        (
            "an SDK key that is not 32 hex digits",
            &format!("{good}\n[[sdk.projects]]\nid = 7\nname = \"b\"\npublic_keys = [\"short\"]\n"),
            &["sdk.projects[0].public_keys[0]", "32 hex digits"],
        ),
        (
            "two SDK projects with one id",
            &format!(
                "{good}\n[[sdk.projects]]\nid = 7\nname = \"a\"\npublic_keys = [\"{k}\"]\n\
                 [[sdk.projects]]\nid = 7\nname = \"b\"\npublic_keys = [\"{k}\"]\n",
                k = "0123456789abcdef0123456789abcdef"
            ),
            &["sdk.projects[1].id", "earlier project"],
        ),
        (
            "unknown route target",
            &format!("{good}\n[[routes]]\ntargets = [\"oncall\"]\n"),
            &["routes[0].targets", "\"oncall\""],
        ),
    ];
    for (what, text, expected) in cases {
        let path = write_config(&dir, text);
        for command in ["check-config", "serve"] {
            let output = herald(&[command, "--config", &path], &[]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{what} / {command}: {stderr}"
            );
            for needle in *expected {
                assert!(
                    stderr.contains(needle),
                    "{what} / {command}: {needle:?} not in {stderr}"
                );
            }
            assert_eq!(
                stderr.trim().lines().count(),
                1,
                "{what} / {command}: one sentence: {stderr}"
            );
        }
    }
    let output = herald(&["check-config", "--config", "/no/such/herald.toml"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/herald.toml"));
}

#[test]
fn a_secret_written_in_the_wrong_shape_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    const SECRET: &str = "s3cr3t-never-printed";
    let cases = [
        (
            "a string where a list goes",
            format!("[sentry]\nclient_secrets = \"{SECRET}\"\n"),
            "sentry.client_secrets",
        ),
        (
            "a token as a number",
            "[sentry]\nclient_secrets = [\"a\"]\nlegacy_tokens = [31415926535]\n".to_string(),
            "sentry.legacy_tokens[0]",
        ),
        (
            "a robot secret as a table",
            format!(
                "[sentry]\nclient_secrets = [\"a\"]\n[[targets]]\nname = \"r\"\nkind = \"dingtalk\"\n\
                 url = \"https://oapi.dingtalk.com/robot/send?access_token=x\"\nsecret = {{ v = \"{SECRET}\" }}\n"
            ),
            "targets[0].secret",
        ),
        (
            "credentials in GitHub's api_url",
            format!(
                "[sentry]\nclient_secrets = [\"a\"]\n[[targets]]\nname = \"gh\"\nkind = \"github\"\n\
                 repo = \"o/r\"\ntoken = \"t\"\napi_url = \"https://user:{SECRET}@ghe.example/api/v3\"\n"
            ),
            "targets[0].api_url",
        ),
        (
            "an empty admin token",
            "[server]\nadmin_token = \"${HERALD_TEST_ADMIN:-}\"\n[sentry]\nclient_secrets = [\"a\"]\n"
                .to_string(),
            "server.admin_token",
        ),
        (
            "an admin token with a trailing space",
            "[server]\nadmin_token = \"admin-token \"\n[sentry]\nclient_secrets = [\"a\"]\n"
                .to_string(),
            "server.admin_token",
        ),
    ];
    for (what, text, key) in cases {
        let path = write_config(&dir, &text);
        for command in ["check-config", "serve"] {
            let output = herald(&[command, "--config", &path], &[]);
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(output.status.code(), Some(1), "{what} / {command}: {said}");
            assert!(said.contains(key), "{what} / {command}: {said}");
            for secret in [SECRET, "31415926535"] {
                assert!(!said.contains(secret), "{what} / {command}: {said}");
            }
        }
    }
}

/// The README's quick start: `herald serve --config config.example.toml` starts with no variable set.
#[test]
fn example_config_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--config", &example_config()])
        .env_remove("SENTRY_CLIENT_SECRET")
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_DATA_DIR", dir.path().join("data"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let listening = line.contains("herald listening on http://127.0.0.1:");
        seen.push(line);
        if listening || Instant::now() > deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("herald listening on")),
        "{}",
        seen.join("\n")
    );
    assert!(dir.path().join("data").exists());
}

#[test]
fn render_prints_the_exact_request_body() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!(
            "{}\n[[targets]]\nname = \"robot\"\nkind = \"dingtalk\"\nurl = \"https://oapi.dingtalk.com/robot/send?access_token=abc\"\nmention_mobiles = [\"13800000000\"]\n",
            GOOD.replace("${HERALD_TEST_SECRET}", "s")
        ),
    );
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sentry/issue-created.json");
    let output = herald(
        &[
            "render",
            "--config",
            &path,
            "--target",
            "robot",
            &fixture.display().to_string(),
        ],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["at"]["atMobiles"][0], "13800000000");
    assert!(body["markdown"]["text"]
        .as_str()
        .unwrap()
        .contains("https://example-org.sentry.io/issues/1234567890/"));

    let output = herald(
        &[
            "render",
            "--config",
            &path,
            "--target",
            "stdout",
            &fixture.display().to_string(),
        ],
        &[],
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("New issue: Error generated"));

    let output = herald(
        &[
            "render",
            "--config",
            &path,
            "--target",
            "nobody",
            &fixture.display().to_string(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no target is named \"nobody\""));
}

#[test]
fn a_broken_template_is_a_config_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("broken.md.hbs");
    std::fs::write(
        &template,
        "#### {{title}}\n\n{{#if link}}\n[open]({{link}})\n",
    )
    .unwrap();
    let path = write_config(
        &dir,
        &format!(
            "{}template = \"{}\"\n",
            GOOD.replace("${HERALD_TEST_SECRET}", "s"),
            template.display()
        ),
    );
    for command in ["check-config", "serve"] {
        let output = herald(&[command, "--config", &path], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains("broken.md.hbs") && stderr.contains("line"),
            "{command}: {stderr}"
        );
    }
    // A template that compiles but calls a helper wrongly is caught too.
    std::fs::write(&template, "{{truncate title}}\n").unwrap();
    let output = herald(&["check-config", "--config", &path], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("broken.md.hbs"));
}

#[test]
fn route_shows_which_targets_a_payload_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!(
            "{}\n[[targets]]\nname = \"backend\"\nkind = \"console\"\n\
             [[routes]]\ntargets = [\"backend\"]\nmatch = {{ project = [\"python\"] }}\nmention_user_ids = [\"owner\"]\nmention_all = [\"fatal\"]\n\
             [[routes]]\ntargets = [\"stdout\"]\n",
            GOOD.replace("${HERALD_TEST_SECRET}", "s")
        ),
    );
    let fixture = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sentry")
            .join(name)
            .display()
            .to_string()
    };
    let output = herald(
        &["route", "--config", &path, &fixture("issue-created.json")],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("-> backend mentioning @owner @all"),
        "{stdout}"
    );
    assert!(!stdout.contains("-> stdout"), "{stdout}");
    let output = herald(
        &["route", "--config", &path, &fixture("issue-resolved.json")],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("-> stdout") && !stdout.contains("backend"),
        "{stdout}"
    );
    let output = herald(
        &["route", "--config", &path, &fixture("comment-created.json")],
        &[],
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("reaches no target"));

    let output = herald(&["check-config", "--config", &path], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("# route 0: resource in [issue, event_alert, metric_alert, error, alert], project in [python] -> backend mentioning @owner @all at fatal"), "{stdout}");
}
