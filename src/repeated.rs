//! Saying a failure that repeats (the database gone, a disk full) once, not once per request:
//! the first time, then at most once a minute with how often it happened meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a repeated failure stays quiet after it was said.
const QUIET_FOR: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Repeated {
    said_at: Mutex<Option<Instant>>,
    since: AtomicU64,
}

impl Repeated {
    pub const fn new() -> Repeated {
        Repeated {
            said_at: Mutex::new(None),
            since: AtomicU64::new(0),
        }
    }

    /// Whether to say the failure now, and how many times it happened unsaid before this one.
    pub fn say(&self) -> Option<u64> {
        let mut said_at = self.said_at.lock().unwrap_or_else(|p| p.into_inner());
        match *said_at {
            Some(at) if at.elapsed() < QUIET_FOR => {
                self.since.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *said_at = Some(Instant::now());
                Some(self.since.swap(0, Ordering::Relaxed))
            }
        }
    }

    /// The failure is over: the next one is said at once.
    pub fn over(&self) -> bool {
        let mut said_at = self.said_at.lock().unwrap_or_else(|p| p.into_inner());
        self.since.store(0, Ordering::Relaxed);
        said_at.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_said_once_then_counted() {
        let repeated = Repeated::new();
        assert_eq!(repeated.say(), Some(0));
        assert_eq!(repeated.say(), None);
        assert_eq!(repeated.say(), None);
        assert!(repeated.over());
        assert_eq!(repeated.say(), Some(0));
        assert!(!Repeated::new().over());
    }
}
