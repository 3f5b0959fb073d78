//! Targets: the places herald delivers to, one file per kind.
//!
//! A target knows its wire format and how to read its downstream's answers; it does not know about
//! retries, schedules or dead letters, which the queue owns. This module holds the per-kind settings
//! as they appear in `[[targets]]` tables.

pub mod console;

use serde::Serialize;

/// The kind-specific part of a `[[targets]]` table.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TargetSettings {
    Console(console::ConsoleSettings),
}

impl TargetSettings {
    pub const KINDS: [&'static str; 1] = ["console"];

    /// Reads the keys of `table` that belong to `kind` (the shared keys are already taken out).
    /// Errors carry the key path relative to the target and a message.
    pub fn from_table(kind: &str, table: toml::Table) -> Result<Self, (String, String)> {
        let value = toml::Value::Table(table);
        match kind {
            "console" => crate::config::typed(value, "").map(TargetSettings::Console),
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
            TargetSettings::Console(_) => "console",
        }
    }
}
