//! Property tests of the config loader: whatever the file says, herald answers with an error that
//! names something, never a panic.

use herald::config::Config;
use proptest::prelude::*;
use std::path::Path;

const VALID: &str = r#"
[server]
listen = "127.0.0.1:8080"
data_dir = "./data"
body_limit = "1MiB"

[sentry]
client_secrets = ["${SECRET:-s}"]

[dedupe]
window = "10m"

[[targets]]
name = "oncall"
kind = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=x"
mention_all = ["fatal"]
retry = ["5s", "1m"]

[[targets]]
name = "issues"
kind = "github"
repo = "acme/backend"
token = "t"

[[routes]]
targets = ["oncall"]
match = { min_level = "error", tags = { region = ["eu"] } }
"#;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(Path::new("fuzz.toml"), text, |name| {
        (name == "SET").then(|| "value".to_string())
    })
    .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        if let Err(message) = parse(&text) {
            prop_assert!(message.starts_with("fuzz.toml"), "{message}");
        }
    }

    /// The valid config with a slice cut out, a fragment inserted, or a value replaced.
    #[test]
    fn mutated_configs_never_panic(
        cut_at in any::<prop::sample::Index>(),
        cut_len in 0usize..40,
        insert in prop_oneof![
            Just(String::new()),
            Just("${".to_string()),
            Just("${UNSET}".to_string()),
            Just("${SET:-x}".to_string()),
            Just("\"\n[[targets]]\n".to_string()),
            Just("= = =".to_string()),
            Just("kind = \"pager\"\n".to_string()),
            Just("[[routes]]\ntargets = [\"ghost\"]\n".to_string()),
            "[a-z_]{1,8} = \"[a-z0-9]{0,6}\"\n",
            "[0-9]{1,30}",
        ],
    ) {
        let mut text = VALID.to_string();
        let mut at = cut_at.index(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + cut_len).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.replace_range(at..end, &insert);
        if let Err(message) = parse(&text) {
            prop_assert!(message.starts_with("fuzz.toml"), "{message}");
            prop_assert_eq!(message.lines().count(), 1, "one sentence: {}", message);
        }
    }
}

#[test]
fn the_valid_config_parses() {
    let config = parse(VALID).unwrap();
    assert_eq!(config.targets.len(), 2);
}
