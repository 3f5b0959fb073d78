//! What people do to herald's SDK issues: resolve (now, in a release, in the next release), mute
//! (for a while or until reopened), reopen. The admin API, the CLI and a GitHub issue closed or
//! reopened all come here.
//!
//! A resolve is told: its "Resolved" message goes through the routes like any alert (the chat
//! hears it, a GitHub target closes its issue). Muting and reopening say nothing: the next event
//! does (a regression is only possible once resolved).

use chrono::{DateTime, Utc};

use crate::intake::{Intake, Receipt};
use crate::sdk::issue::{Resolution, SdkIssue};
use crate::store::{Store, StoreError};

/// What a person asks of an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Resolve(Resolution),
    Mute { until: Option<DateTime<Utc>> },
    Reopen,
}

#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error("no issue has id {0:?}")]
    UnknownIssue(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a change did.
#[derive(Debug)]
pub struct Changed {
    pub issue: SdkIssue,
    /// For a resolve that changed the status: where its message was queued.
    pub told: Option<Receipt>,
}

/// Applies `change` to issue `id`, atomically, and tells a resolve.
pub async fn change(
    store: &Store,
    intake: &Intake,
    id: &str,
    change: Change,
) -> Result<Changed, TriageError> {
    let now = crate::clock::now();
    let outcome = store.update_issue(id, |current| {
        let Some(mut issue) = current else {
            return (None, Err(TriageError::UnknownIssue(id.to_string())));
        };
        let before = issue.status.clone();
        let applied = match &change {
            Change::Resolve(how) => issue.resolve(how.clone(), now),
            Change::Mute { until } => {
                issue.mute(*until);
                Ok(())
            }
            Change::Reopen => {
                issue.reopen();
                Ok(())
            }
        };
        match applied {
            // A second resolve of a resolved issue changes its terms, and says nothing again.
            Ok(()) => {
                let newly_resolved = issue.status.is_resolved() && !before.is_resolved();
                (Some(issue.clone()), Ok((issue, newly_resolved)))
            }
            Err(reason) => (None, Err(TriageError::Refused(reason))),
        }
    })?;
    let (issue, newly_resolved) = outcome?;
    // The resolve's message commits the change with it; else it is committed alone.
    let told = if newly_resolved {
        let mut alert = crate::sdk::resolved_alert(&issue).map_err(StoreError::from)?;
        Some(intake.accept(&mut alert).await?)
    } else {
        store.commit().await?;
        None
    };
    Ok(Changed { issue, told })
}

/// When a mute of `text` ("2h", "7d") from now ends.
pub fn mute_until(text: &str) -> Result<DateTime<Utc>, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. \"2h\", \"7d\""))?;
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| crate::clock::now().checked_add_signed(duration))
        .ok_or_else(|| "the mute is too long".to_string())
}

/// The issues `project` (a name) has with status `status` (a [`crate::sdk::issue::Status`]
/// name; `resolved` takes in every way of being resolved) as of now, most recently seen first.
pub fn list(
    store: &Store,
    project: Option<&str>,
    status: Option<&str>,
) -> Result<Vec<SdkIssue>, StoreError> {
    let now = crate::clock::now();
    let mut listed = Vec::new();
    for issue in store.issues() {
        let issue = issue?;
        if project.is_some_and(|p| p != issue.project) {
            continue;
        }
        let current = issue.status_at(now);
        if status
            .is_some_and(|s| s != current.name() && !(s == "resolved" && current.is_resolved()))
        {
            continue;
        }
        listed.push(issue);
    }
    listed.sort_by_key(|issue| std::cmp::Reverse(issue.last_seen));
    Ok(listed)
}
