//! The `console` target: prints each message to stdout. It needs no downstream, so
//! `config.example.toml` uses it and the quick start shows a real alert without any account.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {}
