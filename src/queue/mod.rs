//! The delivery queue: durable jobs, their retry schedule, and one worker per target.
//!
//! A job is one (alert, target) pair, stored before herald answers 2xx and removed only after the
//! downstream accepted it, so delivery is at-least-once across crashes. A job names its alert by id
//! rather than embedding it: an alert bound for five targets is stored once.
//!
//! The queue owns the schedule. A target makes one attempt and says how it went
//! ([`Outcome`](crate::targets::Outcome)); the worker records the attempt, then removes the job,
//! reschedules it, or turns it into a dead letter.

mod limiter;
mod schedule;
mod worker;

pub use limiter::{RateLimit, RateLimiter, TargetState};
pub use schedule::RetrySchedule;
pub use worker::{Queue, Wakers};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::route::Mentions;
use crate::targets::FailureReason;

/// Identifies a stored alert; assigned by the store, monotonic across restarts.
pub type AlertId = u64;
/// Identifies a delivery job; assigned by the store, monotonic across restarts.
pub type JobId = u64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub id: JobId,
    pub alert_id: AlertId,
    pub target: String,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due.
    pub due_at: DateTime<Utc>,
    /// Every attempt so far, oldest first.
    pub attempts: Vec<Attempt>,
    /// Who the routes that chose this target want @-mentioned.
    #[serde(default, skip_serializing_if = "Mentions::is_empty")]
    pub mentions: Mentions,
    /// Repeats of this issue folded since the last message about it, reported with this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded: Option<Folded>,
    /// Set on the job that reports a fold window's count at its end: the fold's key. The count and
    /// the alert to show are taken from the fold record when the job is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_of: Option<String>,
    /// `installation/issue id` of the alert: jobs of one issue are delivered in order, per target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_key: Option<String>,
    /// Attempts made before an operator replayed the job from the dead letters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replayed_attempts: Vec<Attempt>,
}

/// How many repeats of an issue were folded, since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folded {
    pub count: u64,
    pub since: DateTime<Utc>,
}

impl DeliveryJob {
    /// A job for `target` to deliver `alert_id`, due at `due_at`.
    pub fn new(id: JobId, alert_id: AlertId, target: &str, due_at: DateTime<Utc>) -> DeliveryJob {
        DeliveryJob {
            id,
            alert_id,
            target: target.to_string(),
            created_at: Utc::now(),
            due_at,
            attempts: Vec::new(),
            mentions: Mentions::default(),
            folded: None,
            summary_of: None,
            issue_key: None,
            replayed_attempts: Vec::new(),
        }
    }

    /// The key a downstream can use to recognise a resent message: the same on every attempt.
    pub fn idempotency_key(&self) -> String {
        format!("herald-{}-{}", self.alert_id, self.id)
    }

    /// Failed attempts that count against the retry schedule (a throttled target's do not: the
    /// robot's rate, not the message, was the problem).
    pub fn counted_failures(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| matches!(a.result, AttemptResult::Failed | AttemptResult::Refused))
            .count()
    }
}

/// One try at delivering a job, and what the downstream said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub result: AttemptResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
    /// The downstream's answer as it said it (errcode and message, HTTP status and body).
    pub answer: String,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    Delivered,
    /// Failed in a way worth retrying.
    Failed,
    /// The target asked to be left alone for a while (rate limit); does not count as a failure.
    Throttled,
    /// Failed for good.
    Refused,
}

/// A job that will not be retried: the schedule ran out, or the downstream refused it for good.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub job: DeliveryJob,
    pub died_at: DateTime<Utc>,
    pub reason: FailureReason,
    /// The downstream's last answer.
    pub last_answer: String,
}
