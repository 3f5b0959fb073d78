//! [`Outcome`]: how one attempt went, the whole of what a target tells the queue.

use std::time::Duration;

use crate::job::FailureReason;

/// How one attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The downstream accepted the message.
    Delivered { answer: String },
    /// Worth trying again: after `after` if the downstream said when, else on the queue's schedule.
    /// `pause_target` asks the queue to send nothing to this target until then (a throttled robot).
    Retry {
        after: Option<Duration>,
        pause_target: bool,
        reason: FailureReason,
        answer: String,
    },
    /// Trying again cannot help (bad credentials, a refused keyword, a malformed message).
    Permanent {
        reason: FailureReason,
        answer: String,
    },
    /// The endpoint is gone for good (HTTP 410): stop sending to this target until its settings
    /// change. The message itself waits, queued.
    Gone { answer: String },
    /// Part of the work is done and the rest must wait (GitHub wants writes a second apart): the
    /// job is due again after `after`, and this attempt does not count as a failure.
    Continue { after: Duration, answer: String },
}

impl Outcome {
    /// Try again on the queue's schedule.
    pub fn retry(reason: FailureReason, answer: impl Into<String>) -> Outcome {
        Outcome::retry_after(None, reason, answer)
    }

    /// Try again after `after` if the downstream said when, else on the queue's schedule.
    pub fn retry_after(
        after: Option<Duration>,
        reason: FailureReason,
        answer: impl Into<String>,
    ) -> Outcome {
        Outcome::Retry {
            after,
            pause_target: false,
            reason,
            answer: answer.into(),
        }
    }

    /// The downstream asked to be sent less: send nothing to this target for `after` (or the
    /// queue's default pause), then try again.
    pub fn slow_down(
        after: Option<Duration>,
        reason: FailureReason,
        answer: impl Into<String>,
    ) -> Outcome {
        Outcome::Retry {
            after,
            pause_target: true,
            reason,
            answer: answer.into(),
        }
    }

    pub fn permanent(reason: FailureReason, answer: impl Into<String>) -> Outcome {
        Outcome::Permanent {
            reason,
            answer: answer.into(),
        }
    }
}
