//! [`IssueOrder`]: one Sentry issue's messages go out in the order they were accepted.

use chrono::{DateTime, Utc};
use std::collections::HashMap;

use crate::job::{DeliveryJob, JobId};
use crate::store::Store;

/// Keeps each Sentry issue's messages in the order they were accepted, per target: a job waits
/// while an earlier job of its issue is in flight, or is waiting for a retry (then it is moved
/// behind that retry). Without this, a `resolved` could overtake the `created` whose first try
/// failed, and a GitHub issue would be opened after Sentry had already closed it.
#[derive(Default)]
pub(super) struct IssueOrder {
    in_flight: HashMap<String, JobId>,
    /// The earliest job of each issue waiting for a retry, and when it is due.
    waiting: HashMap<String, (JobId, DateTime<Utc>)>,
}

pub(super) enum Blocker {
    None,
    InFlight,
    Waiting(DateTime<Utc>),
}

impl IssueOrder {
    /// Rebuilt at start from the queue: the jobs that already failed at least once.
    pub(super) fn from_queue(store: &Store, target: &str) -> IssueOrder {
        let mut order = IssueOrder::default();
        for job in store.retried_jobs_of(target).filter_map(Result::ok) {
            if !job.attempts.is_empty() {
                order.retrying(&job);
            }
        }
        order
    }

    pub(super) fn blocker(&self, job: &DeliveryJob) -> Blocker {
        let Some(issue) = job.issue_key.as_deref() else {
            return Blocker::None;
        };
        if self.in_flight.get(issue).is_some_and(|id| *id < job.id) {
            return Blocker::InFlight;
        }
        match self.waiting.get(issue) {
            Some((id, due)) if *id < job.id && *due >= job.due_at => Blocker::Waiting(*due),
            _ => Blocker::None,
        }
    }

    pub(super) fn started(&mut self, job: &DeliveryJob) {
        if let Some(issue) = &job.issue_key {
            let earliest = self.in_flight.entry(issue.clone()).or_insert(job.id);
            *earliest = (*earliest).min(job.id);
        }
    }

    /// `job` finished an attempt; `retry_at` is when it is tried again, if it is.
    pub(super) fn finished(&mut self, job: &DeliveryJob, retry_at: Option<DateTime<Utc>>) {
        let Some(issue) = &job.issue_key else { return };
        if self.in_flight.get(issue) == Some(&job.id) {
            self.in_flight.remove(issue);
        }
        match retry_at {
            Some(_) => self.retrying(job),
            None => {
                if self.waiting.get(issue).is_some_and(|(id, _)| *id == job.id) {
                    self.waiting.remove(issue);
                }
            }
        }
    }

    fn retrying(&mut self, job: &DeliveryJob) {
        let Some(issue) = &job.issue_key else { return };
        let entry = self
            .waiting
            .entry(issue.clone())
            .or_insert((job.id, job.due_at));
        if job.id <= entry.0 {
            *entry = (job.id, job.due_at);
        }
    }
}
