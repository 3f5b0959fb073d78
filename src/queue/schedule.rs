//! [`RetrySchedule`]: how long to wait after each failed attempt.

use std::time::Duration;

/// The waits between attempts. The first attempt is immediate; after the n-th failure herald waits
/// the n-th delay (±20 % jitter, so a recovering downstream is not hit by every job at once); after
/// the last delay's attempt fails, the job becomes a dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    /// Standard Webhooks' schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (eight attempts, ~28 h).
    pub fn standard() -> RetrySchedule {
        let delays = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]
            .into_iter()
            .map(Duration::from_secs)
            .collect();
        RetrySchedule { delays }
    }

    pub fn new(delays: Vec<Duration>) -> RetrySchedule {
        RetrySchedule { delays }
    }

    /// A target's `retry` setting, or the standard schedule without one.
    pub fn configured(retry: Option<&[Duration]>) -> RetrySchedule {
        retry.map_or_else(RetrySchedule::standard, |delays| {
            RetrySchedule::new(delays.to_vec())
        })
    }

    /// The wait after `failures` failed attempts (1 for the first failure), jittered; `None` when
    /// the schedule is used up.
    pub fn delay_after(&self, failures: usize) -> Option<Duration> {
        let base = *self.delays.get(failures.checked_sub(1)?)?;
        let factor = 0.8 + fastrand::f64() * 0.4;
        Some(base.mul_f64(factor))
    }

    pub fn attempts(&self) -> usize {
        self.delays.len() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_schedule_with_jitter() {
        let schedule = RetrySchedule::standard();
        assert_eq!(schedule.attempts(), 8);
        assert_eq!(schedule.delay_after(0), None);
        for _ in 0..200 {
            let first = schedule.delay_after(1).unwrap();
            assert!(
                first >= Duration::from_secs(4) && first <= Duration::from_secs(6),
                "{first:?}"
            );
            let last = schedule.delay_after(7).unwrap();
            assert!(last >= Duration::from_secs(28_800) && last <= Duration::from_secs(43_200));
        }
        assert_eq!(schedule.delay_after(8), None);
    }

    #[test]
    fn empty_schedule_means_one_attempt() {
        let schedule = RetrySchedule::new(vec![]);
        assert_eq!(schedule.attempts(), 1);
        assert_eq!(schedule.delay_after(1), None);
    }
}
