//! The queue's retry policy, as pure functions of an attempt's outcome: what the job's history
//! records ([`RecordedAttempt`]), what becomes of the job ([`next_step`]), and the line it is logged as.

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::RetrySchedule;
use crate::job::{AttemptResult, DeliveryJob, FailureReason};
use crate::render::printable;
use crate::targets::Outcome;

/// How long a target is left alone when it asks to be sent less and does not say for how long.
const DEFAULT_PAUSE: Duration = Duration::from_secs(600);

pub(super) fn pause_length(asked: Option<Duration>) -> Duration {
    asked.unwrap_or(DEFAULT_PAUSE)
}

pub(super) fn to_chrono(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or_default()
}

/// An attempt as a job's history records it.
pub(super) struct RecordedAttempt {
    pub result: AttemptResult,
    pub reason: Option<FailureReason>,
    pub answer: String,
}

impl RecordedAttempt {
    pub(super) fn of(outcome: &Outcome) -> RecordedAttempt {
        let (result, reason, answer) = match outcome {
            Outcome::Delivered { answer } => (AttemptResult::Delivered, None, answer),
            Outcome::Continue { answer, .. } => (AttemptResult::Continued, None, answer),
            Outcome::Retry {
                pause_target: true,
                reason,
                answer,
                ..
            } => (AttemptResult::Throttled, Some(*reason), answer),
            Outcome::Retry { reason, answer, .. } => (AttemptResult::Failed, Some(*reason), answer),
            Outcome::Permanent { reason, answer } => {
                (AttemptResult::Refused, Some(*reason), answer)
            }
            // Not the message's fault: it waits, queued, for the target's new settings.
            Outcome::Gone { answer } => (
                AttemptResult::Throttled,
                Some(FailureReason::ClientError),
                answer,
            ),
        };
        RecordedAttempt {
            result,
            reason,
            // Kept in the job, logged and listed: one line, whatever the downstream said.
            answer: printable(answer).into_owned(),
        }
    }
}

/// What becomes of a job after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum NextStep {
    /// Delivered: removed from the queue.
    Done,
    /// Due again at `at`; `retry_in` is the wait when the attempt failed.
    Again {
        at: DateTime<Utc>,
        retry_in: Option<Duration>,
    },
    /// A dead letter; `gave_up` when the schedule ran out (rather than a refusal).
    Bury {
        reason: FailureReason,
        gave_up: bool,
    },
}

/// Decides a job's next step from its attempt's outcome alone: the queue's whole retry policy.
pub(super) fn next_step(
    outcome: &Outcome,
    job: &DeliveryJob,
    schedule: &RetrySchedule,
    now: DateTime<Utc>,
) -> NextStep {
    match outcome {
        Outcome::Delivered { .. } => NextStep::Done,
        Outcome::Continue { after, .. } => NextStep::Again {
            at: now + to_chrono(*after),
            retry_in: None,
        },
        // Stays queued; the worker sends nothing to the target until its settings change.
        Outcome::Gone { .. } => NextStep::Again {
            at: now,
            retry_in: None,
        },
        Outcome::Permanent { reason, .. } => NextStep::Bury {
            reason: *reason,
            gave_up: false,
        },
        Outcome::Retry {
            after,
            pause_target,
            reason,
            ..
        } => {
            let wait = if *pause_target {
                Some(pause_length(*after))
            } else {
                schedule
                    .delay_after(job.counted_failures())
                    .map(|scheduled| after.unwrap_or(scheduled))
            };
            match wait {
                Some(wait) => NextStep::Again {
                    at: now + to_chrono(wait),
                    retry_in: Some(wait),
                },
                None => NextStep::Bury {
                    reason: *reason,
                    gave_up: true,
                },
            }
        }
    }
}

/// One line per job and attempt, at the level its step deserves.
pub(super) fn log_attempt(
    name: &str,
    job: &DeliveryJob,
    issue_id: &str,
    step: &NextStep,
    recorded: &RecordedAttempt,
    digest: bool,
    latency_ms: u64,
) {
    let attempt = job.attempts.len();
    let answer = recorded.answer.as_str();
    let issue_id = printable(issue_id);
    let reason = recorded.reason.map_or("", FailureReason::as_str);
    match step {
        NextStep::Done => {
            tracing::info!(target_name = name, issue_id = %issue_id, job_id = job.id, attempt, latency_ms, digest, outcome = "delivered", %answer, "delivery")
        }
        NextStep::Again { retry_in: None, .. } if recorded.result == AttemptResult::Continued => {
            tracing::info!(target_name = name, issue_id = %issue_id, job_id = job.id, attempt, latency_ms, digest, outcome = "continue", %answer, "delivery")
        }
        NextStep::Again { retry_in: None, .. } => {}
        NextStep::Again {
            retry_in: Some(wait),
            ..
        } => {
            tracing::warn!(target_name = name, issue_id = %issue_id, job_id = job.id, attempt, latency_ms, digest, outcome = "retry", reason, retry_in = ?wait, %answer, "delivery")
        }
        NextStep::Bury { gave_up: false, .. } => {
            tracing::error!(target_name = name, issue_id = %issue_id, job_id = job.id, attempt, latency_ms, digest, outcome = "dead_letter", reason, %answer,
                "DELIVERY REFUSED by target {name}: the message is kept as a dead letter; check the target's settings")
        }
        NextStep::Bury { gave_up: true, .. } => {
            tracing::error!(target_name = name, issue_id = %issue_id, job_id = job.id, attempt, latency_ms, digest, outcome = "dead_letter", reason, %answer,
                "DELIVERY GAVE UP for target {name} after {attempt} attempts: the message is kept as a dead letter")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_with_failures(failures: usize) -> DeliveryJob {
        let mut job = DeliveryJob::new(1, 1, "t", Utc::now());
        for _ in 0..failures {
            job.attempts.push(crate::job::Attempt {
                at: Utc::now(),
                result: AttemptResult::Failed,
                reason: Some(FailureReason::ServerError),
                answer: String::new(),
                latency_ms: 1,
            });
        }
        job
    }

    #[test]
    fn each_outcome_has_its_step() {
        let now = Utc::now();
        let schedule = RetrySchedule::new(vec![Duration::from_secs(10)]);
        let first = job_with_failures(1);
        let step = |outcome: Outcome, job: &DeliveryJob| next_step(&outcome, job, &schedule, now);
        assert_eq!(
            step(
                Outcome::Delivered {
                    answer: "ok".into()
                },
                &first
            ),
            NextStep::Done
        );
        match step(Outcome::retry(FailureReason::ServerError, "503"), &first) {
            NextStep::Again {
                at,
                retry_in: Some(wait),
            } => {
                assert!((8..=12).contains(&wait.as_secs()), "{wait:?}");
                assert_eq!(at, now + to_chrono(wait));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            step(
                Outcome::retry(FailureReason::ServerError, "503"),
                &job_with_failures(2)
            ),
            NextStep::Bury {
                reason: FailureReason::ServerError,
                gave_up: true
            },
            "the schedule ran out"
        );
        assert_eq!(
            step(Outcome::permanent(FailureReason::AuthError, "no"), &first),
            NextStep::Bury {
                reason: FailureReason::AuthError,
                gave_up: false
            }
        );
        assert_eq!(
            step(
                Outcome::slow_down(None, FailureReason::RateLimited, "slow"),
                &job_with_failures(5)
            ),
            NextStep::Again {
                at: now + to_chrono(DEFAULT_PAUSE),
                retry_in: Some(DEFAULT_PAUSE)
            },
            "a throttled target waits out its pause whatever the schedule"
        );
        assert_eq!(
            step(
                Outcome::Continue {
                    after: Duration::from_secs(1),
                    answer: "half".into()
                },
                &first
            ),
            NextStep::Again {
                at: now + chrono::Duration::seconds(1),
                retry_in: None
            }
        );
        assert_eq!(
            step(
                Outcome::Gone {
                    answer: "410".into()
                },
                &first
            ),
            NextStep::Again {
                at: now,
                retry_in: None
            }
        );
    }

    #[test]
    fn a_continued_attempt_is_no_failure() {
        let recorded = RecordedAttempt::of(&Outcome::Continue {
            after: Duration::from_secs(1),
            answer: "reopened".into(),
        });
        assert_eq!(recorded.result, AttemptResult::Continued);
        let mut job = job_with_failures(0);
        job.attempts.push(crate::job::Attempt {
            at: Utc::now(),
            result: recorded.result,
            reason: recorded.reason,
            answer: recorded.answer,
            latency_ms: 1,
        });
        assert_eq!(job.counted_failures(), 0);
    }
}
