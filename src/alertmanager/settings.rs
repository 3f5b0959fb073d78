//! `[alertmanager]` and `[grafana]`: who may post, and how labels become herald's fields.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::alert::Level;
use crate::secret::Secret;

/// One label-speaking intake's settings. `hmac_*` are Grafana's only (Alertmanager cannot sign).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelIntakeConfig {
    /// Accepted as `Authorization: Bearer <token>` or as the password of basic auth.
    #[serde(default)]
    pub tokens: Vec<Secret>,
    /// Names this sender in messages and dedupe keys; default: its `externalURL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation: Option<String>,
    /// Labels read for the severity, first present wins.
    #[serde(default = "LabelIntakeConfig::default_severity_labels")]
    pub severity_labels: Vec<String>,
    /// Severity words beyond (or instead of) the built-in ones: `{ p5 = "info" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub levels: BTreeMap<String, Level>,
    /// The level of an alert without a severity herald knows.
    #[serde(default = "LabelIntakeConfig::default_level")]
    pub default_level: Level,
    /// Labels read for the project, first present wins.
    #[serde(default = "LabelIntakeConfig::default_project_labels")]
    pub project_labels: Vec<String>,
    /// Labels read for the environment, first present wins.
    #[serde(default = "LabelIntakeConfig::default_environment_labels")]
    pub environment_labels: Vec<String>,
    /// Grafana: the secret of its `hmacConfig`; a body without a valid signature is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<Secret>,
    /// Grafana: the header its `hmacConfig.timestampHeader` names; the timestamp is signed with
    /// the body and refused when more than five minutes off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_timestamp_header: Option<String>,
}

impl LabelIntakeConfig {
    fn default_severity_labels() -> Vec<String> {
        vec!["severity".into(), "level".into(), "priority".into()]
    }
    fn default_level() -> Level {
        Level::Warning
    }
    fn default_project_labels() -> Vec<String> {
        ["service", "app", "job", "namespace"]
            .map(String::from)
            .to_vec()
    }
    fn default_environment_labels() -> Vec<String> {
        ["env", "environment", "cluster"].map(String::from).to_vec()
    }

    /// The level `labels` say, through the configured words, then the built-in ones.
    pub fn level_of(&self, labels: &BTreeMap<String, String>) -> Level {
        self.severity_labels
            .iter()
            .find_map(|name| labels.get(name))
            .and_then(|word| {
                let word = word.trim().to_ascii_lowercase();
                self.levels
                    .iter()
                    .find(|(known, _)| known.eq_ignore_ascii_case(&word))
                    .map(|(_, level)| *level)
                    .or_else(|| level_of_severity(&word))
            })
            .unwrap_or(self.default_level)
    }

    /// The first of `names` that `labels` has.
    pub fn first_label(names: &[String], labels: &BTreeMap<String, String>) -> Option<String> {
        names
            .iter()
            .find_map(|name| labels.get(name))
            .filter(|value| !value.is_empty())
            .cloned()
    }
}

impl Default for LabelIntakeConfig {
    fn default() -> Self {
        LabelIntakeConfig {
            tokens: Vec::new(),
            installation: None,
            severity_labels: Self::default_severity_labels(),
            levels: BTreeMap::new(),
            default_level: Self::default_level(),
            project_labels: Self::default_project_labels(),
            environment_labels: Self::default_environment_labels(),
            hmac_secret: None,
            hmac_timestamp_header: None,
        }
    }
}

/// The severity words monitoring setups use, as herald's levels: Sentry's own (`Level::parse`)
/// and the ones Prometheus rules and paging tools add. Numbers are left out on purpose: teams
/// disagree on whether 1 or 4 is the worst.
pub fn level_of_severity(word: &str) -> Option<Level> {
    Level::parse(word).or(match word {
        "crit" | "page" | "p1" | "emergency" | "disaster" => Some(Level::Fatal),
        "err" | "major" | "high" | "p2" => Some(Level::Error),
        "minor" | "medium" | "ticket" | "p3" => Some(Level::Warning),
        "notice" | "low" | "p4" | "none" => Some(Level::Info),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn severity_words_become_levels() {
        let settings = LabelIntakeConfig::default();
        assert_eq!(
            settings.level_of(&labels(&[("severity", "page")])),
            Level::Fatal
        );
        assert_eq!(
            settings.level_of(&labels(&[("severity", "Warning")])),
            Level::Warning
        );
        assert_eq!(
            settings.level_of(&labels(&[("priority", "P2")])),
            Level::Error
        );
        assert_eq!(
            settings.level_of(&labels(&[("severity", "3")])),
            Level::Warning
        );
        assert_eq!(settings.level_of(&labels(&[])), Level::Warning);
        let mut custom = LabelIntakeConfig::default();
        custom.levels.insert("sev1".into(), Level::Fatal);
        custom.levels.insert("warning".into(), Level::Info);
        assert_eq!(
            custom.level_of(&labels(&[("severity", "SEV1")])),
            Level::Fatal
        );
        assert_eq!(
            custom.level_of(&labels(&[("severity", "warning")])),
            Level::Info
        );
    }
}
