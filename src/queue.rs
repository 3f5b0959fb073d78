//! Delivery jobs: one per (alert, target), stored before herald answers 2xx.
//!
//! A job names its alert by id rather than embedding it, so an alert bound for five targets is
//! stored once. The queue owns each job's schedule; targets only say how an attempt went.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
}

/// One try at delivering a job, and what the downstream said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub outcome: String,
    pub detail: Option<String>,
}
