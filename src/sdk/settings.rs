//! `[sdk]`: the projects whose SDKs post to herald, each with its DSN id and public keys.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::secret::Secret;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdkConfig {
    #[serde(default)]
    pub projects: Vec<SdkProject>,
    /// The most bytes of an envelope once decompressed (the body limit applies to what is sent).
    #[serde(
        default = "SdkConfig::default_envelope_limit",
        with = "crate::de::byte_size"
    )]
    pub envelope_limit: u64,
    /// The most events a project's SDKs may send a minute; beyond, 429 and the SDKs back off, so a
    /// storm in an app cannot fill herald's disk.
    #[serde(default = "SdkConfig::default_events_per_minute")]
    pub events_per_minute: u32,
}

impl Default for SdkConfig {
    fn default() -> Self {
        SdkConfig {
            projects: Vec::new(),
            envelope_limit: Self::default_envelope_limit(),
            events_per_minute: Self::default_events_per_minute(),
        }
    }
}

impl SdkConfig {
    fn default_envelope_limit() -> u64 {
        20 * 1024 * 1024
    }
    fn default_events_per_minute() -> u32 {
        600
    }

    /// The project of DSN id `id`.
    pub fn project(&self, id: u64) -> Option<&SdkProject> {
        self.projects.iter().find(|project| project.id == id)
    }

    /// The project called `name`.
    pub fn project_named(&self, name: &str) -> Option<&SdkProject> {
        self.projects.iter().find(|project| project.name == name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SdkProject {
    /// The DSN's project id: `http://KEY@HOST/7`.
    pub id: u64,
    /// The name routes and messages use.
    pub name: String,
    /// 32 hex digits each; several during a rotation.
    pub public_keys: Vec<Secret>,
}

/// Each project's events of the current minute, against `sdk.events_per_minute`.
#[derive(Default)]
pub struct ProjectQuota {
    windows: Mutex<HashMap<u64, (Instant, u32)>>,
}

impl ProjectQuota {
    const WINDOW: Duration = Duration::from_secs(60);

    /// Takes one event of `project`'s quota; `Err(wait)` when the minute's quota is spent.
    pub fn take(&self, project: u64, per_minute: u32) -> Result<(), Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (started, count) = windows.entry(project).or_insert((now, 0));
        if now.duration_since(*started) >= Self::WINDOW {
            *started = now;
            *count = 0;
        }
        if *count >= per_minute {
            return Err(Self::WINDOW.saturating_sub(now.duration_since(*started)));
        }
        *count += 1;
        Ok(())
    }
}
