//! The `console` target: prints each message to stdout. It needs no downstream, so
//! `config.example.toml` uses it and the quick start shows a real alert without any account.

use serde::{Deserialize, Serialize};
use std::io::Write;

use super::{FailureReason, Outcome};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {}

pub struct ConsoleTarget;

impl ConsoleTarget {
    pub fn deliver(&self, text: &str) -> Outcome {
        let mut stdout = std::io::stdout().lock();
        let written = writeln!(stdout, "{}", text.trim_end()).and_then(|_| stdout.flush());
        match written {
            Ok(()) => Outcome::Delivered {
                answer: "written to stdout".into(),
            },
            Err(error) => Outcome::retry(
                FailureReason::Other,
                format!("cannot write to stdout: {error}"),
            ),
        }
    }
}
