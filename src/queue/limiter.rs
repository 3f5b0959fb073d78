//! [`RateLimiter`]: keeps a target under its downstream's rate limits, and remembers a pause the
//! downstream asked for. Both survive a restart (they are saved in the store), so a crash loop
//! cannot make herald itself the reason a robot is throttled.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use std::time::Duration;

use crate::store::TargetState;
use crate::targets::RateLimit;

/// Sliding windows: at most `limit` attempts in any window. A fixed-minute counter would allow
/// twice the limit across a minute boundary; a sliding window cannot.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: RateLimit,
    state: TargetState,
}

fn minute() -> ChronoDuration {
    ChronoDuration::seconds(61)
}

fn second() -> ChronoDuration {
    ChronoDuration::milliseconds(1_100)
}

impl RateLimiter {
    pub fn new(limit: RateLimit, state: TargetState) -> RateLimiter {
        RateLimiter { limit, state }
    }

    /// How long to wait before the next attempt may start; `None` if it may start now.
    pub fn wait(&mut self, now: DateTime<Utc>) -> Option<Duration> {
        if let Some(until) = self.state.paused_until {
            if until > now {
                return (until - now).to_std().ok();
            }
            self.state.paused_until = None;
        }
        self.forget_before(now - minute().max(second()));
        let recent = &self.state.recent_attempts;
        let free_at = |limit: u32, window: ChronoDuration| -> Option<DateTime<Utc>> {
            let in_window = recent
                .iter()
                .rev()
                .take_while(|t| **t + window > now)
                .count();
            // The attempt that must leave the window before another may start.
            (in_window >= limit as usize).then(|| recent[recent.len() - limit as usize] + window)
        };
        let minute_free = self.limit.per_minute.and_then(|l| free_at(l, minute()));
        let second_free = self.limit.per_second.and_then(|l| free_at(l, second()));
        let free = minute_free.into_iter().chain(second_free).max()?;
        (free - now).to_std().ok()
    }

    /// How many more attempts the minute window allows now (`None`: no per-minute limit).
    pub fn remaining(&mut self, now: DateTime<Utc>) -> Option<usize> {
        let limit = self.limit.per_minute? as usize;
        self.wait(now);
        let used = self
            .state
            .recent_attempts
            .iter()
            .filter(|t| **t + minute() > now)
            .count();
        Some(limit.saturating_sub(used))
    }

    /// Whether no attempt was made within the minute window (a quiet target sends at once).
    pub fn quiet(&self, now: DateTime<Utc>) -> bool {
        !self
            .state
            .recent_attempts
            .iter()
            .any(|t| *t + minute() > now)
    }

    /// Notes an attempt starting at `now`.
    pub fn record(&mut self, now: DateTime<Utc>) {
        let keep = self
            .limit
            .per_minute
            .into_iter()
            .chain(self.limit.per_second)
            .max();
        if let Some(keep) = keep {
            self.state.recent_attempts.push_back(now);
            while self.state.recent_attempts.len() > keep as usize {
                self.state.recent_attempts.pop_front();
            }
        }
    }

    fn forget_before(&mut self, cutoff: DateTime<Utc>) {
        while self
            .state
            .recent_attempts
            .front()
            .is_some_and(|t| *t <= cutoff)
        {
            self.state.recent_attempts.pop_front();
        }
    }

    /// Sends nothing before `until` (a downstream said it is being sent too much).
    pub fn pause_until(&mut self, until: DateTime<Utc>) {
        if self
            .state
            .paused_until
            .is_none_or(|current| current < until)
        {
            self.state.paused_until = Some(until);
        }
    }

    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        self.state.paused_until
    }

    /// Marks the target gone (HTTP 410) for settings with this fingerprint.
    pub fn set_gone(&mut self, fingerprint: Option<String>) {
        self.state.gone_for = fingerprint;
    }

    pub fn gone_for(&self) -> Option<&str> {
        self.state.gone_for.as_deref()
    }

    pub fn delivered(&mut self, at: DateTime<Utc>) {
        self.state.last_success = Some(at);
    }

    pub fn failed(&mut self, at: DateTime<Utc>, answer: &str) {
        self.state.last_error = Some((at, answer.to_string()));
    }

    pub fn state(&self) -> &TargetState {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + millis).unwrap()
    }

    #[test]
    fn at_most_the_limit_in_any_minute() {
        let mut limiter = RateLimiter::new(RateLimit::per_minute(20), TargetState::default());
        for i in 0..20 {
            assert_eq!(limiter.wait(at(i * 1000)), None);
            limiter.record(at(i * 1000));
        }
        assert_eq!(limiter.remaining(at(20_000)), Some(0));
        assert_eq!(limiter.wait(at(20_000)), Some(Duration::from_secs(41)));
        assert_eq!(limiter.wait(at(61_000)), None);
        assert_eq!(limiter.remaining(at(61_000)), Some(1));
    }

    #[test]
    fn per_second_and_per_minute_together() {
        let limit = RateLimit {
            per_minute: Some(100),
            per_second: Some(5),
        };
        let mut limiter = RateLimiter::new(limit, TargetState::default());
        for i in 0..5 {
            assert_eq!(limiter.wait(at(i)), None);
            limiter.record(at(i));
        }
        assert_eq!(limiter.wait(at(10)), Some(Duration::from_millis(1_090)));
        assert_eq!(limiter.wait(at(1_100)), None);
        // Over a minute, no more than 100.
        let mut limiter = RateLimiter::new(limit, TargetState::default());
        for i in 0..100 {
            let t = at(i * 300);
            assert_eq!(limiter.wait(t), None, "{i}");
            limiter.record(t);
        }
        assert!(limiter.wait(at(30_000)).is_some());
    }

    #[test]
    fn pauses_hold_and_expire() {
        let mut limiter = RateLimiter::new(RateLimit::NONE, TargetState::default());
        limiter.pause_until(at(600_000));
        assert_eq!(limiter.wait(at(0)), Some(Duration::from_secs(600)));
        limiter.pause_until(at(10_000)); // a shorter pause does not shorten the current one
        assert_eq!(limiter.wait(at(100_000)), Some(Duration::from_secs(500)));
        assert_eq!(limiter.wait(at(600_000)), None);
        assert_eq!(limiter.paused_until(), None);
    }

    #[test]
    fn state_carries_over() {
        let mut limiter = RateLimiter::new(RateLimit::per_minute(2), TargetState::default());
        limiter.record(at(0));
        limiter.record(at(1));
        let mut restarted = RateLimiter::new(RateLimit::per_minute(2), limiter.state().clone());
        assert!(restarted.wait(at(2)).is_some());
    }
}
