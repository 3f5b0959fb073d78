//! [`RateLimiter`]: keeps a target under its downstream's rate limit, and remembers a pause the
//! downstream asked for. Both survive a restart (they are saved in the store), so a crash loop
//! cannot make herald itself the reason a robot is throttled.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// What the store keeps per target between restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// Times of the most recent attempts (at most the per-minute limit of them).
    pub recent_attempts: VecDeque<DateTime<Utc>>,
    /// Send nothing before this time.
    pub paused_until: Option<DateTime<Utc>>,
}

/// A sliding window: at most `limit` attempts in any `window`. A fixed-minute counter would allow
/// twice the limit across a minute boundary; the window cannot.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: Option<u32>,
    window: ChronoDuration,
    state: TargetState,
}

impl RateLimiter {
    /// `per_minute`: `None` for no limit. The window is a minute and a second, a margin for the
    /// downstream's clock and for the time a request spends on the wire.
    pub fn new(per_minute: Option<u32>, state: TargetState) -> RateLimiter {
        RateLimiter {
            limit: per_minute,
            window: ChronoDuration::seconds(61),
            state,
        }
    }

    /// How long to wait before the next attempt may start; `None` if it may start now.
    pub fn wait(&mut self, now: DateTime<Utc>) -> Option<Duration> {
        if let Some(until) = self.state.paused_until {
            if until > now {
                return (until - now).to_std().ok();
            }
            self.state.paused_until = None;
        }
        let limit = self.limit? as usize;
        while self
            .state
            .recent_attempts
            .front()
            .is_some_and(|t| *t + self.window <= now)
        {
            self.state.recent_attempts.pop_front();
        }
        if self.state.recent_attempts.len() < limit {
            return None;
        }
        let oldest = *self.state.recent_attempts.front()?;
        (oldest + self.window - now).to_std().ok()
    }

    /// How many more attempts the window allows now (`None`: no limit).
    pub fn remaining(&mut self, now: DateTime<Utc>) -> Option<usize> {
        let limit = self.limit? as usize;
        self.wait(now);
        Some(limit.saturating_sub(self.state.recent_attempts.len()))
    }

    /// Notes an attempt starting at `now`.
    pub fn record(&mut self, now: DateTime<Utc>) {
        if let Some(limit) = self.limit {
            self.state.recent_attempts.push_back(now);
            while self.state.recent_attempts.len() > limit as usize {
                self.state.recent_attempts.pop_front();
            }
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

    pub fn state(&self) -> &TargetState {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn at_most_the_limit_in_any_window() {
        let mut limiter = RateLimiter::new(Some(20), TargetState::default());
        for i in 0..20 {
            assert_eq!(limiter.wait(at(i)), None);
            limiter.record(at(i));
        }
        assert_eq!(limiter.wait(at(20)), Some(Duration::from_secs(41)));
        assert_eq!(limiter.wait(at(61)), None);
    }

    #[test]
    fn pauses_hold_and_expire() {
        let mut limiter = RateLimiter::new(None, TargetState::default());
        limiter.pause_until(at(600));
        assert_eq!(limiter.wait(at(0)), Some(Duration::from_secs(600)));
        limiter.pause_until(at(10)); // a shorter pause does not shorten the current one
        assert_eq!(limiter.wait(at(100)), Some(Duration::from_secs(500)));
        assert_eq!(limiter.wait(at(600)), None);
        assert_eq!(limiter.paused_until(), None);
    }

    #[test]
    fn state_carries_over() {
        let mut limiter = RateLimiter::new(Some(2), TargetState::default());
        limiter.record(at(0));
        limiter.record(at(1));
        let mut restarted = RateLimiter::new(Some(2), limiter.state().clone());
        assert!(restarted.wait(at(2)).is_some());
    }
}
