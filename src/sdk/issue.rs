//! herald's own issues for SDK events: one per project and group, with what was seen of it and
//! its status, and the rule that says what a new event means for it (new, a repeat, a
//! regression, or nothing to say while it is muted).
//!
//! The store keeps these records as they are; the intake updates one per event, atomically, and
//! the admin API changes a status. Nothing here writes or sends.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

use crate::alert::Alert;

/// How many releases an issue remembers (the most recent, by when they were first seen).
const RELEASES_KEPT: usize = 50;

/// The id an issue goes by in the admin API and the CLI: `7-h1-0123456789abcdef` (project, then
/// the group with its grouping version).
pub fn issue_id(project_id: u64, group: &str) -> String {
    format!("{project_id}-{}", group.replace(':', "-"))
}

/// The issue an SDK alert is about, by its id; `None` for other alerts.
pub fn issue_id_of(alert: &Alert) -> Option<String> {
    let project_id = alert.installation.as_deref()?.strip_prefix("sdk/")?;
    let group = alert.issue_id.as_deref()?;
    Some(issue_id(project_id.parse().ok()?, group))
}

/// The issue named by an issue key (`sdk/7/h1:…`, what a GitHub issue's marker carries); `None`
/// for a key of another source.
pub fn issue_id_of_key(key: &str) -> Option<String> {
    let rest = key.strip_prefix("sdk/")?;
    let (project_id, group) = rest.split_once('/')?;
    Some(issue_id(project_id.parse().ok()?, group))
}

/// One issue: a project's events of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkIssue {
    pub id: String,
    pub project_id: u64,
    pub project: String,
    /// The group as the events carry it (`h1:…`); its prefix is the grouping algorithm's version.
    pub group: String,
    pub title: String,
    pub culprit: Option<String>,
    pub level: Option<String>,
    /// Of the latest event.
    pub environment: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Events counted (a duplicate event id is never counted: the intake refuses it first).
    pub count: u64,
    /// Releases the events came from, oldest first, each with when it was first seen here.
    #[serde(default)]
    pub releases: Vec<ReleaseSeen>,
    pub status: Status,
    /// Regressions so far.
    #[serde(default)]
    pub regressions: u64,
    /// Resolutions so far: each one's "Resolved" message has its own dedupe key.
    #[serde(default)]
    pub resolutions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSeen {
    pub name: String,
    pub first_seen: DateTime<Utc>,
}

/// Where an issue stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Open,
    /// Any later event is a regression.
    Resolved {
        at: DateTime<Utc>,
    },
    /// Fixed in `release`: events from an older release are not regressions.
    ResolvedInRelease {
        at: DateTime<Utc>,
        release: String,
    },
    /// Fixed in the release after `after`: events from `after` or older are not regressions.
    ResolvedInNextRelease {
        at: DateTime<Utc>,
        after: String,
    },
    /// Events are counted, nothing is said, until `until` (or until reopened).
    Muted {
        until: Option<DateTime<Utc>>,
    },
}

impl Status {
    /// The name the admin API lists and filters by.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Resolved { .. } => "resolved",
            Status::ResolvedInRelease { .. } => "resolved_in_release",
            Status::ResolvedInNextRelease { .. } => "resolved_in_next_release",
            Status::Muted { .. } => "muted",
        }
    }

    pub const NAMES: [&'static str; 5] = [
        "open",
        "resolved",
        "resolved_in_release",
        "resolved_in_next_release",
        "muted",
    ];

    pub fn is_resolved(&self) -> bool {
        matches!(
            self,
            Status::Resolved { .. }
                | Status::ResolvedInRelease { .. }
                | Status::ResolvedInNextRelease { .. }
        )
    }
}

/// What an event means for its issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// The issue's first event: "New issue".
    New,
    /// The issue was resolved and this event says it is not: "Regression".
    Regression,
    /// Another event of an open issue: folded into counts.
    Repeat,
    /// Counted, nothing said: the issue is muted, or resolved in a release this event predates.
    Quiet,
}

impl Sighting {
    /// The resource and action the event's alert carries.
    pub fn resource_and_action(self) -> (&'static str, &'static str) {
        match self {
            Sighting::New => super::NEW_ISSUE,
            Sighting::Regression => super::REGRESSION,
            Sighting::Repeat | Sighting::Quiet => super::REPEAT,
        }
    }
}

/// How an operator resolves an issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Now,
    InRelease(String),
    InNextRelease,
}

impl SdkIssue {
    /// The issue an alert opens.
    fn opened_by(id: String, alert: &Alert, at: DateTime<Utc>) -> SdkIssue {
        let project_id = alert
            .installation
            .as_deref()
            .and_then(|i| i.strip_prefix("sdk/"))
            .and_then(|p| p.parse().ok())
            .unwrap_or_default();
        SdkIssue {
            id,
            project_id,
            project: alert.project.clone().unwrap_or_default(),
            group: alert.issue_id.clone().unwrap_or_default(),
            title: alert.title.clone(),
            culprit: alert.culprit.clone(),
            level: alert.level.map(|level| level.as_str().to_string()),
            environment: alert.environment.clone(),
            first_seen: at,
            last_seen: at,
            count: 0,
            releases: Vec::new(),
            status: Status::Open,
            regressions: 0,
            resolutions: 0,
        }
    }

    /// The issue once `alert` (one event of it) is counted, and what that event means. `now`
    /// is herald's time: a muted issue's mute ends by it.
    pub fn observe(
        current: Option<SdkIssue>,
        id: &str,
        alert: &Alert,
        now: DateTime<Utc>,
    ) -> (SdkIssue, Sighting) {
        let seen_at = now;
        let Some(mut issue) = current else {
            let mut issue = SdkIssue::opened_by(id.to_string(), alert, seen_at);
            issue.count_event(alert, seen_at);
            return (issue, Sighting::New);
        };
        let release = alert.release.as_deref();
        let sighting = match &issue.status {
            Status::Open => Sighting::Repeat,
            Status::Muted { until: Some(until) } if *until <= now => {
                issue.status = Status::Open;
                Sighting::Repeat
            }
            Status::Muted { .. } => Sighting::Quiet,
            Status::Resolved { .. } => Sighting::Regression,
            Status::ResolvedInRelease { release: fixed, .. } => match release {
                Some(release) if issue.order(release, fixed) != Ordering::Less => {
                    Sighting::Regression
                }
                _ => Sighting::Quiet,
            },
            Status::ResolvedInNextRelease { after, .. } => match release {
                Some(release) if issue.order(release, after) == Ordering::Greater => {
                    Sighting::Regression
                }
                _ => Sighting::Quiet,
            },
        };
        if sighting == Sighting::Regression {
            issue.status = Status::Open;
            issue.regressions += 1;
        }
        // The newest event names the issue (a message's text may have been improved).
        issue.title = alert.title.clone();
        issue.culprit = alert.culprit.clone().or(issue.culprit);
        if let Some(level) = alert.level {
            issue.level = Some(level.as_str().to_string());
        }
        issue.environment = alert.environment.clone().or(issue.environment);
        issue.count_event(alert, seen_at);
        (issue, sighting)
    }

    fn count_event(&mut self, alert: &Alert, at: DateTime<Utc>) {
        self.count += 1;
        self.last_seen = self.last_seen.max(at);
        if let Some(release) = alert.release.as_deref().filter(|r| !r.is_empty()) {
            if !self.releases.iter().any(|seen| seen.name == release) {
                self.releases.push(ReleaseSeen {
                    name: release.to_string(),
                    first_seen: at,
                });
                let excess = self.releases.len().saturating_sub(RELEASES_KEPT);
                self.releases.drain(..excess);
            }
        }
    }

    /// Whether release `a` is older, the same or newer than `b`: by version numbers when both
    /// have them (`billing@1.10.0` after `billing@1.9.2`), else by when this issue first saw
    /// them (a release not seen yet is the newest).
    fn order(&self, a: &str, b: &str) -> Ordering {
        if a == b {
            return Ordering::Equal;
        }
        if let (Some(va), Some(vb)) = (version_of(a), version_of(b)) {
            if va != vb {
                return va.cmp(&vb);
            }
        }
        let first_seen = |name: &str| {
            self.releases
                .iter()
                .find(|seen| seen.name == name)
                .map(|seen| seen.first_seen)
        };
        match (first_seen(a), first_seen(b)) {
            (Some(ta), Some(tb)) => ta.cmp(&tb),
            (None, _) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
        }
    }

    /// Resolves the issue as the operator says. `InNextRelease` needs a release seen.
    pub fn resolve(&mut self, how: Resolution, at: DateTime<Utc>) -> Result<(), String> {
        self.status =
            match how {
                Resolution::Now => Status::Resolved { at },
                Resolution::InRelease(release) => {
                    if release.trim().is_empty() {
                        return Err("release is empty".into());
                    }
                    Status::ResolvedInRelease { at, release }
                }
                Resolution::InNextRelease => match self.latest_release() {
                    Some(after) => Status::ResolvedInNextRelease {
                        at,
                        after: after.to_string(),
                    },
                    None => return Err(
                        "no event of this issue named a release: resolve it now, or in a release"
                            .into(),
                    ),
                },
            };
        self.resolutions += 1;
        Ok(())
    }

    /// The newest release the issue was seen in.
    pub fn latest_release(&self) -> Option<&str> {
        self.releases
            .iter()
            .map(|seen| seen.name.as_str())
            .max_by(|a, b| self.order(a, b))
    }

    pub fn mute(&mut self, until: Option<DateTime<Utc>>) {
        self.status = Status::Muted { until };
    }

    pub fn reopen(&mut self) {
        self.status = Status::Open;
    }

    /// The status as of `now` (a mute whose time is over is open).
    pub fn status_at(&self, now: DateTime<Utc>) -> &Status {
        match &self.status {
            Status::Muted { until: Some(until) } if *until <= now => &Status::Open,
            status => status,
        }
    }
}

/// The version numbers in a release name (`billing@1.10.0+abc` → [1, 10, 0]), if it has any.
fn version_of(release: &str) -> Option<Vec<u64>> {
    let version = release.rsplit('@').next().unwrap_or(release);
    let version = version.trim_start_matches(['v', 'V']);
    let core = version.split(['+', '-', ' ']).next()?;
    let numbers: Option<Vec<u64>> = core.split('.').map(|part| part.parse().ok()).collect();
    numbers.filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn event(release: Option<&str>) -> Alert {
        let raw = crate::alert::RawPayload::parsed(b"{}").unwrap();
        let mut alert = Alert::blank(
            crate::alert::Source::SentrySdk,
            "issue",
            "created",
            Some("sdk/7".into()),
            raw,
        );
        alert.project = Some("billing".into());
        alert.issue_id = Some("h1:0123456789abcdef".into());
        alert.title = "ZeroDivisionError: division by zero".into();
        alert.release = release.map(str::to_string);
        alert
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn seen(issue: Option<SdkIssue>, release: Option<&str>, t: i64) -> (SdkIssue, Sighting) {
        SdkIssue::observe(issue, "7-h1-0123456789abcdef", &event(release), at(t))
    }

    #[test]
    fn an_issue_is_new_once_then_repeats_and_counts() {
        let (issue, first) = seen(None, Some("1.0.0"), 0);
        assert_eq!(first, Sighting::New);
        assert_eq!(issue.id, issue_id_of(&event(None)).unwrap());
        let (issue, second) = seen(Some(issue), Some("1.0.0"), 5);
        assert_eq!(second, Sighting::Repeat);
        assert_eq!(
            (issue.count, issue.first_seen, issue.last_seen),
            (2, at(0), at(5))
        );
        assert_eq!(issue.releases.len(), 1);
    }

    #[test]
    fn a_resolved_issue_seen_again_regresses_and_is_open() {
        let (mut issue, _) = seen(None, Some("1.0.0"), 0);
        issue.resolve(Resolution::Now, at(1)).unwrap();
        let (issue, sighting) = seen(Some(issue), Some("1.0.0"), 2);
        assert_eq!(sighting, Sighting::Regression);
        assert_eq!((issue.status.name(), issue.regressions), ("open", 1));
    }

    #[test]
    fn resolved_in_next_release_regresses_only_on_a_newer_release() {
        let (issue, _) = seen(None, Some("billing@1.9.2"), 0);
        let (mut issue, _) = seen(Some(issue), Some("billing@1.8.0"), 1);
        issue.resolve(Resolution::InNextRelease, at(2)).unwrap();
        assert_eq!(
            issue.status,
            Status::ResolvedInNextRelease {
                at: at(2),
                after: "billing@1.9.2".into()
            }
        );
        for old in [Some("billing@1.9.2"), Some("billing@1.8.0"), None] {
            let (again, sighting) = seen(Some(issue.clone()), old, 3);
            assert_eq!(sighting, Sighting::Quiet, "{old:?}");
            assert!(again.status.is_resolved());
        }
        let (_, sighting) = seen(Some(issue), Some("billing@1.10.0"), 4);
        assert_eq!(sighting, Sighting::Regression);
    }

    #[test]
    fn releases_without_numbers_are_ordered_by_when_they_were_first_seen() {
        let (issue, _) = seen(None, Some("3f2a9c1"), 0);
        let (mut issue, _) = seen(Some(issue), Some("77be014"), 1);
        issue.resolve(Resolution::InNextRelease, at(2)).unwrap();
        let (_, older) = seen(Some(issue.clone()), Some("3f2a9c1"), 3);
        assert_eq!(older, Sighting::Quiet);
        let (_, newer) = seen(Some(issue), Some("c0ffee1"), 3);
        assert_eq!(newer, Sighting::Regression);
    }

    #[test]
    fn resolved_in_a_release_regresses_from_that_release_on() {
        let (mut issue, _) = seen(None, Some("2.0.0"), 0);
        issue
            .resolve(Resolution::InRelease("2.1.0".into()), at(1))
            .unwrap();
        assert_eq!(
            seen(Some(issue.clone()), Some("2.0.5"), 2).1,
            Sighting::Quiet
        );
        assert_eq!(seen(Some(issue), Some("2.1.0"), 2).1, Sighting::Regression);
    }

    #[test]
    fn a_muted_issue_is_counted_silently_until_its_mute_ends() {
        let (mut issue, _) = seen(None, None, 0);
        issue.mute(Some(at(100)));
        let (issue, muted) = seen(Some(issue), None, 50);
        assert_eq!((muted, issue.count), (Sighting::Quiet, 2));
        assert_eq!(issue.status_at(at(100)).name(), "open");
        let (issue, after) = seen(Some(issue), None, 150);
        assert_eq!((after, issue.status.name()), (Sighting::Repeat, "open"));
    }

    #[test]
    fn in_next_release_needs_a_release() {
        let (mut issue, _) = seen(None, None, 0);
        assert!(issue.resolve(Resolution::InNextRelease, at(1)).is_err());
        assert_eq!(issue.status, Status::Open);
    }
}
