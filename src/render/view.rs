//! What templates see: [`MessageView`] for one alert, [`DigestView`] for several. Built from the
//! alert's normalized fields only, never from the raw payload.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::level_icon;
use crate::alert::{Alert, AlertGroup, GroupMember, Level, MetricStatus, Source};
use crate::job::{AlertId, Folded, JobId};

/// What a template sees of an alert: its normalized fields, some derived ones, and the delivery.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    /// `sentry`, `sentry_legacy_plugin`, `alertmanager` or `grafana`.
    pub source: Source,
    /// The sender as people call it: "Sentry", "Alertmanager", "Grafana".
    pub sender: &'static str,
    /// The Sentry installation (or Alertmanager, Grafana) the alert came from (scopes issue ids).
    pub installation: Option<String>,
    pub resource: String,
    pub action: String,
    /// `resource.action`.
    pub event: String,
    /// One line saying what happened: "New issue", "Resolved", "Alert rule fired: …".
    pub headline: String,
    /// The short form: an issue resolved, a metric alert back to normal.
    pub resolved: bool,
    pub title: String,
    pub level: Option<Level>,
    pub culprit: Option<String>,
    /// Where it happened: the culprit, else the top in-app frame.
    pub location: Option<String>,
    pub project: Option<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub issue_id: Option<String>,
    pub short_id: Option<String>,
    pub link: Option<String>,
    pub event_id: Option<String>,
    pub event_count: Option<u64>,
    pub user_count: Option<u64>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub triggered_rule: Option<String>,
    pub assignee: Option<String>,
    /// How an issue was resolved: "now", "in next release", …
    pub resolution: Option<String>,
    pub metric_status: Option<MetricStatus>,
    pub metric_description: Option<String>,
    pub comment: Option<String>,
    pub comment_author: Option<String>,
    /// `{key, value}` pairs, in Sentry's order.
    pub tags: Vec<Tag>,
    /// In-app frames, innermost first, as `function (file:line)`.
    pub frames: Vec<String>,
    /// Repeats of this issue folded since the last message about it.
    pub folded: Option<FoldedView>,
    /// Alertmanager and Grafana: the group's alerts.
    pub group: Option<GroupView>,
    pub alert_id: AlertId,
    pub job_id: JobId,
    /// When this message is rendered; the `ago` helper counts from here.
    pub now: DateTime<Utc>,
}

/// A group's notification as templates see it: its firing alerts, then the alerts resolved
/// since the group's last message (a resolve told before is left out).
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub receiver: String,
    pub firing: Vec<MemberView>,
    pub resolved: Vec<MemberView>,
    /// Alerts the sender left out (`max_alerts`) or this message does not list: "+N more".
    pub truncated: u64,
    /// The sender's own page.
    pub external_url: Option<String>,
    /// Labels the group is formed by, as `{key, value}`.
    pub group_labels: Vec<Tag>,
    /// Set when the message is sent in parts, to fit a target's size limit: "(2/3)".
    pub part: Option<PartView>,
}

/// Which part of a message split to fit a target's size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartView {
    /// From 1.
    pub number: usize,
    pub of: usize,
}

/// One alert of a group.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub name: String,
    pub summary: String,
    pub description: Option<String>,
    pub level: Option<Level>,
    pub icon: &'static str,
    pub instance: Option<String>,
    pub link: Option<String>,
    pub runbook: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub values: Option<String>,
    /// Not in an earlier message of the group, when some others were.
    pub new: bool,
    pub labels: Vec<Tag>,
}

/// The most alerts one message lists; the rest are counted ("+N more"). 25 alerts of ordinary
/// length keep a DingTalk or Feishu message (20,000 bytes) whole; a smaller limit (WeCom's 4,096)
/// sends it in parts (`Target::deliver`). A storm of hundreds is read as a count anyway, and
/// every alert is in herald's store.
const MAX_LISTED: usize = 25;

impl GroupView {
    fn new(group: &AlertGroup) -> GroupView {
        // "new" says something only beside alerts told before.
        let some_told = group.members.iter().any(|m| m.said_before);
        let member = |m: &GroupMember| MemberView {
            name: m.name.clone(),
            summary: m.summary.clone(),
            description: m.description.clone(),
            level: m.level,
            icon: if m.firing { level_icon(m.level) } else { "✅" },
            instance: m.instance.clone(),
            link: m.link.clone(),
            runbook: m.runbook.clone(),
            starts_at: m.starts_at,
            ends_at: m.ends_at,
            values: m.values.clone(),
            new: some_told && !m.said_before,
            labels: tags(&m.labels),
        };
        let mut firing: Vec<MemberView> = group
            .members
            .iter()
            .filter(|m| m.firing)
            .map(member)
            .collect();
        // Most severe first, and in the sender's order within a level.
        firing.sort_by_key(|m| std::cmp::Reverse(m.level));
        let mut resolved: Vec<MemberView> = group
            .members
            .iter()
            .filter(|m| !m.firing && !m.said_before)
            .map(member)
            .collect();
        let listed = firing.len() + resolved.len();
        firing.truncate(MAX_LISTED);
        resolved.truncate(MAX_LISTED - firing.len());
        let unlisted = (listed - firing.len() - resolved.len()) as u64;
        GroupView {
            receiver: group.receiver.clone(),
            firing,
            resolved,
            truncated: group.truncated + unlisted,
            external_url: group.external_url.clone(),
            group_labels: tags(&group.group_labels),
            part: None,
        }
    }

    /// How many alerts this message lists, firing and resolved.
    pub fn listed(&self) -> usize {
        self.firing.len() + self.resolved.len()
    }

    /// The part of this group that lists the alerts at `listed` (in the order the message lists
    /// them: firing, then resolved). "+N more" goes with the last part only.
    fn part(&self, listed: std::ops::Range<usize>, part: PartView) -> GroupView {
        let firing = self.firing.len();
        let in_range = |at: usize| listed.contains(&at);
        GroupView {
            firing: (0..firing)
                .filter(|at| in_range(*at))
                .map(|at| self.firing[at].clone())
                .collect(),
            resolved: (0..self.resolved.len())
                .filter(|at| in_range(firing + at))
                .map(|at| self.resolved[at].clone())
                .collect(),
            truncated: if part.number == part.of {
                self.truncated
            } else {
                0
            },
            part: Some(part),
            ..self.clone()
        }
    }
}

fn tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(key, value)| Tag {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct FoldedView {
    pub count: u64,
    pub since: DateTime<Utc>,
    /// Ready to show: "×49 more in the last 10 min".
    pub text: String,
}

impl FoldedView {
    pub fn new(folded: Folded, now: DateTime<Utc>) -> FoldedView {
        let minutes = ((now - folded.since).num_seconds().max(1) + 59) / 60;
        FoldedView {
            count: folded.count,
            since: folded.since,
            text: format!("×{} more in the last {minutes} min", folded.count),
        }
    }
}

/// What a digest template sees: several alerts merged into one message, most severe first.
#[derive(Debug, Clone, Serialize)]
pub struct DigestView {
    pub count: usize,
    /// How many alerts of each level, most severe first.
    pub levels: Vec<LevelCount>,
    pub items: Vec<DigestItem>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelCount {
    pub level: String,
    pub icon: &'static str,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DigestItem {
    pub level: Option<Level>,
    pub icon: &'static str,
    pub headline: String,
    pub title: String,
    pub link: Option<String>,
    pub project: Option<String>,
    pub environment: Option<String>,
    pub resolved: bool,
    pub folded: Option<u64>,
}

impl DigestView {
    pub fn new(views: &[MessageView], now: DateTime<Utc>) -> DigestView {
        let mut items: Vec<DigestItem> = views
            .iter()
            .map(|view| DigestItem {
                level: view.level,
                icon: view.icon(),
                headline: view.headline.clone(),
                title: view.title.clone(),
                link: view.link.clone(),
                project: view.project.clone(),
                environment: view.environment.clone(),
                resolved: view.resolved,
                folded: view.folded.as_ref().map(|f| f.count),
            })
            .collect();
        // Most severe first; resolved ones last; otherwise in the order they arrived.
        items.sort_by_key(|item| (item.resolved, std::cmp::Reverse(item.level)));
        let mut levels: Vec<LevelCount> = Vec::new();
        for level in Level::ALL.iter().rev().map(|l| Some(*l)).chain([None]) {
            let count = items
                .iter()
                .filter(|i| i.level == level && !i.resolved)
                .count();
            if count > 0 {
                levels.push(LevelCount {
                    level: level.map_or("other", |l| l.as_str()).to_string(),
                    icon: level_icon(level),
                    count,
                });
            }
        }
        let resolved = items.iter().filter(|i| i.resolved).count();
        if resolved > 0 {
            levels.push(LevelCount {
                level: "resolved".into(),
                icon: "✅",
                count: resolved,
            });
        }
        DigestView {
            count: items.len(),
            levels,
            items,
            now,
        }
    }

    pub fn sample() -> DigestView {
        DigestView::new(&[MessageView::sample(), MessageView::sample()], Utc::now())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl MessageView {
    /// See [`crate::alert::issue_key`].
    pub fn issue_key(&self) -> Option<String> {
        crate::alert::issue_key(self.installation.as_deref(), self.issue_id.as_deref())
    }

    /// ✅ for a resolved issue, else the level's icon.
    pub fn icon(&self) -> &'static str {
        if self.resolved {
            "✅"
        } else {
            level_icon(self.level)
        }
    }

    /// "Open in Sentry", "Open in Alertmanager", …: what a link button says.
    pub fn link_label(&self) -> String {
        format!("Open in {}", self.sender)
    }

    pub fn new(alert: &Alert, alert_id: AlertId, job_id: JobId, now: DateTime<Utc>) -> MessageView {
        let resolved = matches!(
            (alert.resource.as_str(), alert.action.as_str()),
            ("issue", "resolved") | ("metric_alert", "resolved") | ("alert", "resolved")
        );
        let frames: Vec<String> = alert.frames.iter().rev().map(describe_frame).collect();
        let location = alert.culprit.clone().or_else(|| frames.first().cloned());
        let metric = alert.metric_alert.as_ref();
        MessageView {
            source: alert.source,
            sender: match alert.source {
                Source::Sentry | Source::SentryLegacyPlugin => "Sentry",
                // The link is herald's own issue page.
                Source::SentrySdk => "herald",
                Source::Alertmanager => "Alertmanager",
                Source::Grafana => "Grafana",
            },
            installation: alert.installation.clone(),
            resource: alert.resource.clone(),
            action: alert.action.clone(),
            event: alert.event_name(),
            headline: headline(alert),
            resolved,
            title: alert.title.clone(),
            level: alert.level,
            culprit: alert.culprit.clone(),
            location,
            project: alert.project.clone(),
            environment: alert.environment.clone(),
            release: alert.release.clone(),
            issue_id: alert.issue_id.clone(),
            short_id: alert.short_id.clone(),
            link: alert.link.clone(),
            event_id: alert.event_id.clone(),
            event_count: alert.event_count,
            user_count: alert.user_count,
            first_seen: alert.first_seen,
            last_seen: alert.last_seen,
            triggered_rule: alert.triggered_rule.clone(),
            assignee: alert.assignee.as_ref().map(|a| {
                a.name
                    .clone()
                    .or(a.email.clone())
                    .unwrap_or_else(|| a.kind.clone())
            }),
            resolution: alert.resolution_type.as_ref().map(|r| r.replace('_', " ")),
            metric_status: metric.map(|m| m.status),
            metric_description: metric.and_then(|m| m.description_text.clone()),
            comment: alert.comment.as_ref().and_then(|c| c.text.clone()),
            comment_author: alert.comment.as_ref().and_then(|c| c.author.clone()),
            tags: tags(&alert.tags),
            frames,
            folded: None,
            group: alert.group.as_ref().map(GroupView::new),
            alert_id,
            job_id,
            now,
        }
    }

    /// The same view, reporting `folded` repeats.
    /// This message as part `part` of a split, listing the group's alerts at `listed`; the
    /// folded count goes with the last part. A message that is not a group's has no parts.
    pub fn part(&self, listed: std::ops::Range<usize>, part: PartView) -> MessageView {
        MessageView {
            group: self.group.as_ref().map(|group| group.part(listed, part)),
            folded: self.folded.clone().filter(|_| part.number == part.of),
            ..self.clone()
        }
    }

    pub fn with_folded(mut self, folded: Option<Folded>) -> MessageView {
        self.folded = folded.map(|f| FoldedView::new(f, self.now));
        self
    }

    /// A made-up alert, used to try templates at start and by `herald send-test`.
    pub fn sample() -> MessageView {
        let alert = crate::sentry::parse_integration_payload(
            "issue",
            br#"{"action":"created","installation":{"uuid":"herald-test"},"data":{"issue":{
                "id":"0","shortId":"HERALD-TEST","title":"herald test message: this is what an alert looks like",
                "culprit":"herald.send_test","level":"error","project":{"slug":"herald"},
                "web_url":"https://sentry.io/","count":"1","userCount":1,
                "firstSeen":"2026-01-01T00:00:00Z","lastSeen":"2026-01-01T00:00:00Z"}}}"#,
        )
        .expect("the sample alert is valid JSON");
        MessageView::new(&alert, 0, 0, Utc::now())
    }
}

fn headline(alert: &Alert) -> String {
    let resource = alert.resource.as_str();
    let action = alert.action.as_str();
    if alert.source == Source::SentrySdk {
        match (resource, action) {
            ("issue", "unresolved") => {
                return "Regression: seen again after it was resolved".into()
            }
            ("event_alert", _) => return "Seen again".into(),
            _ => {}
        }
    }
    match (resource, action) {
        ("issue", "created") => "New issue".into(),
        ("issue", "resolved") => "Resolved".into(),
        ("issue", "unresolved") => "Regression: unresolved again".into(),
        ("issue", "ignored" | "archived") => "Archived".into(),
        ("issue", "assigned") => match &alert.assignee {
            Some(a) => format!(
                "Assigned to {}",
                a.name.as_deref().or(a.email.as_deref()).unwrap_or(&a.kind)
            ),
            None => "Assigned".into(),
        },
        ("event_alert" | "activity_alert", _) => match &alert.triggered_rule {
            Some(rule) => format!("Alert: {rule}"),
            None => "Alert".into(),
        },
        ("error", _) => "Error event".into(),
        // The title says the state already ("Critical: …", "Resolved: …").
        ("metric_alert", _) => "Metric alert".into(),
        ("comment", _) => alert.title.clone(),
        ("alert", _) => match &alert.group {
            Some(group) => group_headline(group),
            None => alert.event_name(),
        },
        _ => alert.event_name(),
    }
}

/// "Firing: 2 alerts", "Resolved", "Firing: 1 alert, 1 resolved".
fn group_headline(group: &AlertGroup) -> String {
    let firing = group.members.iter().filter(|m| m.firing).count() as u64 + group.truncated;
    let resolved = group
        .members
        .iter()
        .filter(|m| !m.firing && !m.said_before)
        .count();
    let alerts = |n: u64| {
        if n == 1 {
            "1 alert".to_string()
        } else {
            format!("{n} alerts")
        }
    };
    match (firing, resolved) {
        (0, _) => "Resolved".into(),
        (firing, 0) => format!("Firing: {}", alerts(firing)),
        (firing, resolved) => format!("Firing: {}, {resolved} resolved", alerts(firing)),
    }
}

fn describe_frame(frame: &crate::alert::Frame) -> String {
    let function = frame.function.as_deref().unwrap_or("?");
    match (
        frame.filename.as_deref().or(frame.module.as_deref()),
        frame.lineno,
    ) {
        (Some(file), Some(line)) => format!("{function} ({file}:{line})"),
        (Some(file), None) => format!("{function} ({file})"),
        _ => function.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_lists_its_most_severe_and_counts_the_rest() {
        let member = |n: usize, level: Level| GroupMember {
            fingerprint: format!("{n:016x}"),
            firing: true,
            level: Some(level),
            name: "Down".into(),
            summary: format!("instance {n} down"),
            description: None,
            instance: Some(format!("i{n}")),
            link: None,
            runbook: None,
            starts_at: None,
            ends_at: None,
            labels: vec![],
            values: None,
            said_before: false,
        };
        let mut members: Vec<GroupMember> = (0..39).map(|n| member(n, Level::Warning)).collect();
        members.push(member(39, Level::Fatal));
        let group = AlertGroup {
            receiver: "r".into(),
            group_key: "g".into(),
            status: "firing".into(),
            external_url: None,
            truncated: 2,
            group_labels: vec![],
            members,
        };
        let view = GroupView::new(&group);
        assert_eq!(view.firing.len(), MAX_LISTED);
        assert_eq!(
            view.firing[0].summary, "instance 39 down",
            "the worst first"
        );
        assert_eq!(view.truncated, 2 + 40 - MAX_LISTED as u64);
        assert_eq!(group_headline(&group), "Firing: 42 alerts");
    }
}
