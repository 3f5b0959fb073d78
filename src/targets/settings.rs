//! A `[[targets]]` table read: the keys every kind shares ([`TargetConfig`]) and the kind's own
//! ([`TargetSettings`]), each read strictly, so an unknown key is named rather than ignored.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{console, dingtalk, feishu, github, webhook, wecom, TargetKind};
use crate::de::{duration, join_key, optional_durations, typed};
use crate::store::LinkStore;

/// One `[[targets]]` entry: the settings every kind shares, and the kind's own.
#[derive(Debug, Clone, Serialize)]
pub struct TargetConfig {
    pub name: String,
    /// Per-request timeout.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// The backoff schedule, overriding the default one.
    #[serde(with = "optional_durations", skip_serializing_if = "Option::is_none")]
    pub retry: Option<Vec<Duration>>,
    /// A template file overriding the kind's default template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<PathBuf>,
    #[serde(flatten)]
    pub settings: TargetSettings,
}

/// The keys every target kind takes; the rest of a `[[targets]]` table belongs to its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonTargetKeys {
    name: String,
    kind: String,
    #[serde(default = "default_target_timeout", with = "duration")]
    timeout: Duration,
    #[serde(default, with = "optional_durations")]
    retry: Option<Vec<Duration>>,
    #[serde(default)]
    template: Option<PathBuf>,
}

const COMMON_TARGET_KEYS: [&str; 5] = ["name", "kind", "timeout", "retry", "template"];

fn default_target_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Splits a `[[targets]]` table into the shared keys and the kind's own, each deserialised strictly.
pub fn target_config(index: usize, entry: toml::Value) -> Result<TargetConfig, (String, String)> {
    let prefix = format!("targets[{index}]");
    let toml::Value::Table(mut table) = entry else {
        return Err((prefix, "must be a table".into()));
    };
    let mut common = toml::Table::new();
    for key in COMMON_TARGET_KEYS {
        if let Some(value) = table.remove(key) {
            common.insert(key.to_string(), value);
        }
    }
    let common: CommonTargetKeys = typed(toml::Value::Table(common), &prefix)?;
    let settings = TargetSettings::from_table(&common.kind, table)
        .map_err(|(key, message)| (join_key(&prefix, &key), message))?;
    Ok(TargetConfig {
        name: common.name,
        timeout: common.timeout,
        retry: common.retry,
        template: common.template,
        settings,
    })
}

/// What building a kind may use: the shared HTTP client, and where GitHub keeps its links.
pub struct BuildContext {
    pub client: reqwest::Client,
    pub links: Arc<dyn LinkStore>,
}

/// A kind's settings: the checks serde cannot make, and the target they build.
pub trait KindSettings: Send + Sync {
    /// Errors carry the key (relative to the target) and one sentence.
    fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }

    /// What names the downstream, secrets included (a URL with its token, an API token): hashed
    /// into the fingerprint, which the masked settings alone could not tell apart.
    fn identity(&self) -> &str;

    /// The target these settings describe; `name` is the target's, `timeout` per request.
    fn build(&self, name: &str, timeout: Duration, context: &BuildContext) -> Box<dyn TargetKind>;
}

/// The registry of kinds: one line each, `Variant(settings type) = "kind name"`.
macro_rules! target_kinds {
    ($($variant:ident($settings:ty) = $name:literal),* $(,)?) => {
        /// The kind-specific part of a `[[targets]]` table.
        #[derive(Debug, Clone, Serialize)]
        #[serde(tag = "kind")]
        pub enum TargetSettings {
            $(#[serde(rename = $name)] $variant($settings)),*
        }

        impl TargetSettings {
            pub const KINDS: &'static [&'static str] = &[$($name),*];

            /// Reads the keys of `table` that belong to `kind` (the shared keys are already taken
            /// out). Errors carry the key path relative to the target and a message.
            pub fn from_table(kind: &str, table: toml::Table) -> Result<Self, (String, String)> {
                let value = toml::Value::Table(table);
                match kind {
                    $($name => checked::<$settings>(value).map(TargetSettings::$variant),)*
                    other => Err((
                        "kind".into(),
                        format!(
                            "is {other:?}, which is not a known target kind (known: {})",
                            Self::KINDS.join(", ")
                        ),
                    )),
                }
            }

            pub fn kind(&self) -> &'static str {
                match self {
                    $(TargetSettings::$variant(_) => $name),*
                }
            }

            fn settings(&self) -> &dyn KindSettings {
                match self {
                    $(TargetSettings::$variant(settings) => settings),*
                }
            }
        }
    };
}

target_kinds! {
    Console(console::ConsoleSettings) = "console",
    DingTalk(dingtalk::DingTalkSettings) = "dingtalk",
    Webhook(webhook::WebhookSettings) = "webhook",
    Feishu(feishu::FeishuSettings) = "feishu",
    Wecom(wecom::WecomSettings) = "wecom",
    Github(github::GithubSettings) = "github",
}

impl TargetSettings {
    /// Identifies these settings, secrets included (hashed), so herald can tell when a target
    /// was reconfigured (a target that answered 410 Gone stays stopped until then).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let shown = serde_json::to_string(self).unwrap_or_default();
        let identity = self.settings().identity();
        let digest = sha2::Sha256::digest(format!("{identity}\n{shown}").as_bytes());
        hex::encode(&digest[..8])
    }

    pub fn build(
        &self,
        name: &str,
        timeout: Duration,
        context: &BuildContext,
    ) -> Box<dyn TargetKind> {
        self.settings().build(name, timeout, context)
    }
}

/// Reads a kind's settings strictly and checks them.
fn checked<S: KindSettings + DeserializeOwned>(value: toml::Value) -> Result<S, (String, String)> {
    let settings: S = typed(value, "")?;
    settings.validate()?;
    Ok(settings)
}
