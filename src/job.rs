//! The records the queue and the store share: a delivery job, its attempts, a dead letter, a
//! folded count, and the ids that name them. A leaf: both sides speak these words, neither owns them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::route::Mentions;

/// Identifies a stored alert; assigned by the store, monotonic across restarts.
pub type AlertId = u64;
/// Identifies a delivery job; assigned by the store, monotonic across restarts.
pub type JobId = u64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub id: JobId,
    pub alert_id: AlertId,
    pub target: String,
    #[serde(with = "crate::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due.
    #[serde(with = "crate::rfc3339")]
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
    #[serde(with = "crate::rfc3339")]
    pub since: DateTime<Utc>,
}

impl DeliveryJob {
    /// A job for `target` to deliver `alert_id`, due at `due_at`.
    pub fn new(id: JobId, alert_id: AlertId, target: &str, due_at: DateTime<Utc>) -> DeliveryJob {
        DeliveryJob {
            id,
            alert_id,
            target: target.to_string(),
            created_at: crate::clock::now(),
            due_at,
            attempts: Vec::new(),
            mentions: Mentions::default(),
            folded: None,
            summary_of: None,
            issue_key: None,
            replayed_attempts: Vec::new(),
        }
    }

    /// This job queued again from the dead letters: due `now`, with a fresh retry schedule; the
    /// attempts it made before are kept as history.
    pub fn replayed(mut self, now: DateTime<Utc>) -> DeliveryJob {
        self.due_at = now;
        self.replayed_attempts.append(&mut self.attempts);
        self
    }

    /// A fold summary made ready to send: it reports `folded`, and there is nothing left to resolve.
    pub fn reporting(mut self, folded: Folded) -> DeliveryJob {
        self.folded = Some(folded);
        self.summary_of = None;
        self
    }

    /// The key a downstream can use to recognise a resent message: the same on every attempt.
    pub fn idempotency_key(&self) -> String {
        format!("herald-{}-{}", self.alert_id, self.id)
    }

    /// Parts of a message sent in parts that earlier attempts delivered (see
    /// `Target::deliver`); a replayed job sends its message from the start.
    pub fn parts_sent(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.result == AttemptResult::Continued)
            .count()
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
    #[serde(with = "crate::rfc3339")]
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
    /// Did part of the work; the rest follows in a later attempt (not a failure).
    Continued,
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

/// Why an attempt failed, in the categories operators chart (Alertmanager's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    ClientError,
    ServerError,
    AuthError,
    RateLimited,
    Timeout,
    Other,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ClientError => "client_error",
            FailureReason::ServerError => "server_error",
            FailureReason::AuthError => "auth_error",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::Timeout => "timeout",
            FailureReason::Other => "other",
        }
    }
}
