//! [`TargetBackoff`]: while a downstream is down, the whole target waits, not each message.
//!
//! A job that fails is retried on its own schedule. But when the downstream itself is failing
//! (refusing connections, timing out, answering 5xx), every new alert would still be tried at once
//! and fail the same way: a dead downstream would cost herald one attempt per alert, and the
//! intake would pay for them. Instead, after such a failure the worker sends nothing to the target
//! for a while (1 s, doubling with each failure in a row, at most a minute, never longer than the
//! failed job's own retry wait), then tries one job, the earliest due, as a probe. The first
//! answer that shows the downstream is up ends the backoff. Not saved: after a restart the first
//! attempt is the probe.

use chrono::{DateTime, Utc};
use std::time::Duration;

use super::policy::to_chrono;
use crate::job::FailureReason;
use crate::targets::Outcome;

/// The longest a failing target waits between probes.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default)]
pub struct TargetBackoff {
    /// Failures of the downstream in a row.
    failures: u32,
    until: Option<DateTime<Utc>>,
}

impl TargetBackoff {
    /// Until when nothing is sent, if the target is backing off now.
    pub fn wait(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.until.filter(|until| *until > now)
    }

    /// Whether the downstream is failing: then one attempt at a time, each a probe.
    pub fn probing(&self) -> bool {
        self.failures > 0
    }

    /// Notes how an attempt went; `retry_in` is how long its job waits for its own retry.
    pub fn attempted(&mut self, outcome: &Outcome, retry_in: Option<Duration>, now: DateTime<Utc>) {
        match outcome {
            Outcome::Retry {
                pause_target: false,
                reason: FailureReason::Timeout | FailureReason::ServerError | FailureReason::Other,
                ..
            } => {
                self.failures = self.failures.saturating_add(1);
                let doubled = Duration::from_secs(1u64 << (self.failures - 1).min(6));
                let wait = doubled
                    .min(MAX_BACKOFF)
                    .min(retry_in.unwrap_or(MAX_BACKOFF));
                self.until = Some(now + to_chrono(wait));
            }
            // A pause the downstream asked for is the rate limiter's; a refusal or a 410 is an
            // answer, so the downstream is up.
            Outcome::Retry {
                pause_target: true, ..
            } => {}
            _ => *self = TargetBackoff::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Outcome {
        Outcome::retry(FailureReason::Other, "could not connect")
    }

    #[test]
    fn failures_in_a_row_double_the_wait_up_to_a_minute() {
        let now = crate::clock::now();
        let mut backoff = TargetBackoff::default();
        assert!(!backoff.probing());
        assert_eq!(backoff.wait(now), None);
        let mut waits = Vec::new();
        for _ in 0..9 {
            backoff.attempted(&refused(), Some(Duration::from_secs(3600)), now);
            waits.push((backoff.wait(now).unwrap() - now).num_seconds());
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(backoff.probing());
        assert_eq!(backoff.wait(now + chrono::Duration::seconds(61)), None);
    }

    #[test]
    fn never_longer_than_the_job_s_own_retry_and_over_at_the_first_answer() {
        let now = crate::clock::now();
        let mut backoff = TargetBackoff::default();
        for _ in 0..5 {
            backoff.attempted(&refused(), Some(Duration::from_millis(100)), now);
        }
        assert_eq!(
            backoff.wait(now),
            Some(now + chrono::Duration::milliseconds(100))
        );
        backoff.attempted(
            &Outcome::permanent(FailureReason::ClientError, "HTTP 400"),
            None,
            now,
        );
        assert!(!backoff.probing());
        assert_eq!(backoff.wait(now), None);
    }

    #[test]
    fn a_rate_limit_pause_is_not_a_failure() {
        let now = crate::clock::now();
        let mut backoff = TargetBackoff::default();
        backoff.attempted(
            &Outcome::slow_down(None, FailureReason::RateLimited, "130101"),
            None,
            now,
        );
        assert!(!backoff.probing());
        backoff.attempted(
            &Outcome::retry(FailureReason::RateLimited, "429"),
            None,
            now,
        );
        assert!(!backoff.probing());
    }
}
