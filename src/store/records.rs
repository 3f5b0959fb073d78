//! The records the store keeps besides jobs and dead letters (those are in [`crate::job`]): what
//! a stored alert reads back as, fold counts, GitHub links, and each target's saved state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

use crate::alert::Alert;
use crate::job::AlertId;

/// A stored alert: the normalized alert (raw payload included) and when it arrived.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAlert {
    pub id: AlertId,
    pub received_at: DateTime<Utc>,
    pub alert: Alert,
    pub routing: Routing,
}

/// Where the intake sent an alert: the targets a message was queued for, and those for which it
/// was folded into the count of an earlier message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queued: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<String>,
}

/// Repeated alerts of one issue for one target within the fold window: the first was sent, these
/// are counted. Only the count is kept (the first folded alert of a window is stored for the
/// summary); a flood of repeats rewrites these few bytes, not an alert per repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldRecord {
    pub window_start: DateTime<Utc>,
    /// Alerts folded since the count was last reported.
    pub folded: u64,
}

/// The GitHub issue a Sentry issue is linked to, or a create in progress (so a create whose answer
/// was lost is looked for before another is tried).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating_since: Option<DateTime<Utc>>,
    /// The issue was reopened and the comment saying why is still to be written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub comment_after_reopen: bool,
}

impl LinkRecord {
    /// Linked to GitHub issue `number`, nothing under way.
    pub fn to(number: u64) -> LinkRecord {
        LinkRecord {
            number: Some(number),
            ..LinkRecord::default()
        }
    }
}

/// What the store keeps per target between restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetState {
    /// Times of the most recent attempts (as many as the largest limit).
    pub recent_attempts: VecDeque<DateTime<Utc>>,
    /// Send nothing before this time.
    pub paused_until: Option<DateTime<Utc>>,
    /// Set when the downstream said it is gone for good (HTTP 410): the fingerprint of the
    /// target's settings then. Nothing is sent until the settings change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_for: Option<String>,
    /// When the downstream last accepted a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// When an attempt last failed, and what the downstream said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<(DateTime<Utc>, String)>,
}
