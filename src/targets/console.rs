//! The `console` target: prints each message to stdout. It needs no downstream, so
//! `config.example.toml` uses it and the quick start shows a real alert without any account.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::Duration;

use super::{BuildContext, KindSettings, Limits, Message, Outcome, RateLimit, TargetKind};
use crate::job::FailureReason;
use crate::store::BoxFuture;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {}

impl KindSettings for ConsoleSettings {
    fn identity(&self) -> &str {
        ""
    }

    fn build(&self, _name: &str, _timeout: Duration, _: &BuildContext) -> Box<dyn TargetKind> {
        Box::new(ConsoleTarget)
    }
}

pub struct ConsoleTarget;

impl TargetKind for ConsoleTarget {
    fn limits(&self) -> Limits {
        Limits::one_at_a_time(RateLimit::NONE)
    }

    fn request_body(&self, message: &Message<'_>) -> String {
        message.text.clone()
    }

    fn send<'a>(&'a self, message: &'a Message<'a>) -> BoxFuture<'a, Outcome> {
        let mut stdout = std::io::stdout().lock();
        let written = writeln!(stdout, "{}", message.text.trim_end()).and_then(|_| stdout.flush());
        let outcome = match written {
            Ok(()) => Outcome::Delivered {
                answer: "written to stdout".into(),
            },
            Err(error) => Outcome::retry(
                FailureReason::Other,
                format!("cannot write to stdout: {error}"),
            ),
        };
        Box::pin(std::future::ready(outcome))
    }
}
