//! `[sdk]`: the projects whose SDKs post to herald, each with its DSN id and public keys.

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
}

impl SdkConfig {
    fn default_envelope_limit() -> u64 {
        20 * 1024 * 1024
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
