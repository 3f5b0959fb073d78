//! The delivery queue: durable jobs, their retry schedule, and one worker per target.
//!
//! A job is one (alert, target) pair, stored before herald answers 2xx and removed only after the
//! downstream accepted it, so delivery is at-least-once across crashes. A job names its alert by id
//! rather than embedding it: an alert bound for five targets is stored once.
//!
//! The queue owns the schedule. A target makes one attempt and says how it went
//! ([`Outcome`](crate::targets::Outcome)); the worker records the attempt, then removes the job,
//! reschedules it, or turns it into a dead letter.

mod backoff;
mod limiter;
mod order;
mod policy;
mod schedule;
mod worker;
mod workers;

pub use limiter::RateLimiter;
pub use schedule::RetrySchedule;
pub use workers::{TargetQueue, Workers};
