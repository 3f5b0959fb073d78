//! Templates: what a message says, separate from how a target sends it.
//!
//! Every target kind has a default handlebars template in `templates/`, embedded in the binary; a
//! target may name its own file with `template = PATH`. All templates are compiled, and rendered
//! once against a sample alert, when the config is loaded, so a broken template stops herald at
//! start (naming the file and line) instead of failing a delivery at 3 a.m.
//!
//! Templates see a [`MessageView`], never the raw payload: Sentry events carry request bodies,
//! cookies, headers and frame variables, and none of that belongs in a chat group.
//!
//! HTML escaping is off (these are markdown and plain text, not HTML); escaping is explicit, per
//! output format, through the `md` and `json` helpers.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

use crate::alert::{Alert, Level, MetricStatus};
use crate::job::{AlertId, Folded, JobId};

/// A template that cannot be used, named for the operator.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {name} line {line}, column {column}: {message}")]
    Syntax {
        name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("template {name} cannot render: {message}")]
    Render { name: String, message: String },
}

/// The default template of each target kind, embedded at build time.
pub fn default_template(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "console" => Some((
            "console.txt.hbs",
            include_str!("../templates/console.txt.hbs"),
        )),
        "dingtalk" => Some((
            "dingtalk.md.hbs",
            include_str!("../templates/dingtalk.md.hbs"),
        )),
        "feishu" => Some(("feishu.md.hbs", include_str!("../templates/feishu.md.hbs"))),
        "wecom" => Some(("wecom.md.hbs", include_str!("../templates/wecom.md.hbs"))),
        "github" => Some((
            "github_issue.md.hbs",
            include_str!("../templates/github_issue.md.hbs"),
        )),
        _ => None,
    }
}

/// The digest template of each target kind that merges alerts when its rate limit is reached.
pub fn default_digest_template(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "dingtalk" => Some((
            "dingtalk_digest.md.hbs",
            include_str!("../templates/dingtalk_digest.md.hbs"),
        )),
        "feishu" => Some((
            "feishu_digest.md.hbs",
            include_str!("../templates/feishu_digest.md.hbs"),
        )),
        "wecom" => Some((
            "wecom_digest.md.hbs",
            include_str!("../templates/wecom_digest.md.hbs"),
        )),
        _ => None,
    }
}

/// The registry name of a target's digest template.
fn digest_name(target: &str) -> String {
    format!("{target}#digest")
}

/// Where a target's template comes from: its file, or the built-in one of its kind.
#[derive(Debug, Clone)]
pub struct TemplateSource {
    pub target: String,
    pub kind: &'static str,
    /// A template file overriding the kind's built-in template.
    pub path: Option<PathBuf>,
}

/// Compiled templates, one per target (by target name).
pub struct Templates {
    registry: Handlebars<'static>,
    /// Where each target's template came from, for error messages.
    sources: HashMap<String, String>,
}

impl Templates {
    /// Compiles the template of every target in `targets`, and checks each renders.
    pub fn load(targets: &[TemplateSource], timezone: Tz) -> Result<Templates, TemplateError> {
        let mut templates = Templates {
            registry: registry(timezone),
            sources: HashMap::new(),
        };
        for target in targets {
            let (source_name, text) = match &target.path {
                Some(path) => (
                    path.display().to_string(),
                    std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
                        path: path.clone(),
                        source,
                    })?,
                ),
                None => match default_template(target.kind) {
                    Some((name, text)) => {
                        (format!("templates/{name} (built in)"), text.to_string())
                    }
                    None => continue,
                },
            };
            templates.add(&target.target, &source_name, &text)?;
            if let Some((name, text)) = default_digest_template(target.kind) {
                templates.add_digest(
                    &target.target,
                    &format!("templates/{name} (built in)"),
                    text,
                )?;
            }
        }
        Ok(templates)
    }

    fn add_digest(
        &mut self,
        target: &str,
        source_name: &str,
        text: &str,
    ) -> Result<(), TemplateError> {
        let name = digest_name(target);
        self.compile(&name, source_name, text)?;
        self.render_digest(target, &DigestView::sample())
            .map(|_| ())
    }

    /// Whether `target` has a template (a webhook without one sends herald's own JSON).
    pub fn has(&self, target: &str) -> bool {
        self.registry.has_template(target)
    }

    pub fn has_digest(&self, target: &str) -> bool {
        self.registry.has_template(&digest_name(target))
    }

    /// Renders the digest template of `target` for `view`.
    pub fn render_digest(&self, target: &str, view: &DigestView) -> Result<String, TemplateError> {
        let name = digest_name(target);
        self.registry
            .render(&name, view)
            .map_err(|e| TemplateError::Render {
                name: self.sources.get(&name).cloned().unwrap_or(name.clone()),
                message: e.to_string(),
            })
    }

    fn add(&mut self, target: &str, source_name: &str, text: &str) -> Result<(), TemplateError> {
        self.compile(target, source_name, text)?;
        // A template that compiles can still fail on a helper's arguments: try it now.
        let sample = MessageView::sample();
        self.render(target, &sample).map(|_| ())
    }

    fn compile(&mut self, name: &str, source_name: &str, text: &str) -> Result<(), TemplateError> {
        self.registry
            .register_template_string(name, text)
            .map_err(|e| {
                let (line, column) = e.pos().unwrap_or((1, 1));
                TemplateError::Syntax {
                    name: source_name.to_string(),
                    line,
                    column,
                    message: e.reason().to_string(),
                }
            })?;
        self.sources
            .insert(name.to_string(), source_name.to_string());
        Ok(())
    }

    /// Renders the template of `target` for `view`.
    pub fn render(&self, target: &str, view: &MessageView) -> Result<String, TemplateError> {
        self.registry
            .render(target, view)
            .map_err(|e| TemplateError::Render {
                name: self
                    .sources
                    .get(target)
                    .cloned()
                    .unwrap_or_else(|| target.to_string()),
                message: e.to_string(),
            })
    }
}

/// What a template sees of an alert: its normalized fields, some derived ones, and the delivery.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    /// The Sentry installation the alert came from (scopes issue ids).
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
    pub alert_id: AlertId,
    pub job_id: JobId,
    /// When this message is rendered; the `ago` helper counts from here.
    pub now: DateTime<Utc>,
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

    fn sample() -> DigestView {
        DigestView::new(&[MessageView::sample(), MessageView::sample()], Utc::now())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl MessageView {
    /// ✅ for a resolved issue, else the level's icon.
    pub fn icon(&self) -> &'static str {
        if self.resolved {
            "✅"
        } else {
            level_icon(self.level)
        }
    }

    pub fn new(alert: &Alert, alert_id: AlertId, job_id: JobId, now: DateTime<Utc>) -> MessageView {
        let resolved = matches!(
            (alert.resource.as_str(), alert.action.as_str()),
            ("issue", "resolved") | ("metric_alert", "resolved")
        );
        let frames: Vec<String> = alert.frames.iter().rev().map(describe_frame).collect();
        let location = alert.culprit.clone().or_else(|| frames.first().cloned());
        let metric = alert.metric_alert.as_ref();
        MessageView {
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
            tags: alert
                .tags
                .iter()
                .map(|(key, value)| Tag {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            frames,
            folded: None,
            alert_id,
            job_id,
            now,
        }
    }

    /// The same view, reporting `folded` repeats.
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
        _ => alert.event_name(),
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

fn registry(timezone: Tz) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.register_escape_fn(handlebars::no_escape);
    registry.set_strict_mode(false);
    register_text_helper(&mut registry, "md", escape_markdown);
    register_text_helper(&mut registry, "json", escape_json);
    register_text_helper(&mut registry, "level_icon", |text| {
        level_icon(Level::parse(text)).to_string()
    });
    registry.register_helper("truncate", Box::new(truncate_helper));
    registry.register_helper(
        "time",
        Box::new(
            move |h: &Helper,
                  _: &Handlebars,
                  _: &Context,
                  _: &mut RenderContext,
                  out: &mut dyn Output|
                  -> HelperResult {
                if let Some(time) = time_param(h, 0)? {
                    out.write(
                        &time
                            .with_timezone(&timezone)
                            .format("%Y-%m-%d %H:%M:%S %Z")
                            .to_string(),
                    )?;
                }
                Ok(())
            },
        ),
    );
    registry.register_helper("ago", Box::new(ago_helper));
    registry
}

/// Escapes what DingTalk's (and most chat apps') markdown would otherwise interpret: emphasis,
/// links, code, and block markers at the start of a line. Newlines become spaces, so a value can
/// never start a new heading or list item.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// The contents of a JSON string literal (without the quotes).
pub fn escape_json(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string()
}

/// At most `max_chars` characters; a cut text ends with `…`.
pub fn truncate_chars(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some(_) => {
            let keep: String = text.chars().take(max_chars.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

pub fn level_icon(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Fatal) => "🔥",
        Some(Level::Error) => "🔴",
        Some(Level::Warning) => "🟠",
        Some(Level::Info) => "🔵",
        Some(Level::Debug) => "⚪",
        None => "🔔",
    }
}

/// "3 minutes ago", "2 days ago", "just now"; `in …` for a time after `now`.
pub fn relative_time(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - time).num_seconds();
    let (amount, future) = (seconds.unsigned_abs(), seconds < 0);
    if amount < 45 {
        return "just now".into();
    }
    let (value, unit) = match amount {
        0..=5_399 => (((amount + 30) / 60).max(1), "minute"),
        5_400..=129_599 => ((amount + 1_800) / 3_600, "hour"),
        _ => ((amount + 43_200) / 86_400, "day"),
    };
    let plural = if value == 1 { "" } else { "s" };
    if future {
        format!("in {value} {unit}{plural}")
    } else {
        format!("{value} {unit}{plural} ago")
    }
}

fn string_param(h: &Helper, index: usize) -> String {
    match h.param(index).map(|p| p.value()) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn time_param(h: &Helper, index: usize) -> Result<Option<DateTime<Utc>>, RenderError> {
    match h.param(index).map(|p| p.value()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| RenderErrorReason::InvalidParamType("an RFC 3339 time").into()),
        Some(_) => Err(RenderErrorReason::InvalidParamType("an RFC 3339 time").into()),
    }
}

/// A helper that turns its one argument (as text) into other text.
fn register_text_helper(
    registry: &mut Handlebars<'static>,
    name: &str,
    transform: fn(&str) -> String,
) {
    registry.register_helper(
        name,
        Box::new(
            move |h: &Helper,
                  _: &Handlebars,
                  _: &Context,
                  _: &mut RenderContext,
                  out: &mut dyn Output|
                  -> HelperResult {
                out.write(&transform(&string_param(h, 0)))?;
                Ok(())
            },
        ),
    );
}

fn truncate_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let max = h
        .param(1)
        .and_then(|p| p.value().as_u64())
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("truncate", 1))?;
    out.write(&truncate_chars(&string_param(h, 0), max as usize))?;
    Ok(())
}

fn ago_helper(
    h: &Helper,
    _: &Handlebars,
    ctx: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let now = ctx
        .data()
        .get("now")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    if let Some(time) = time_param(h, 0)? {
        out.write(&relative_time(time, now))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_escaping_neutralizes_formatting() {
        assert_eq!(
            escape_markdown("*bold* _x_ [a](b) `c`"),
            r"\*bold\* \_x\_ \[a\](b) \`c\`"
        );
        assert_eq!(escape_markdown("line\n# heading"), r"line \# heading");
        assert_eq!(escape_markdown("中文 ok"), "中文 ok");
    }

    #[test]
    fn json_escaping() {
        assert_eq!(escape_json("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("héllo", 10), "héllo");
        assert_eq!(truncate_chars("héllo wörld", 5), "héll…");
        assert_eq!(truncate_chars("错误错误错误", 3), "错误…");
    }

    #[test]
    fn relative_times() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(relative_time(at("2026-01-01T23:59:30Z"), now), "just now");
        assert_eq!(
            relative_time(at("2026-01-01T23:57:00Z"), now),
            "3 minutes ago"
        );
        assert_eq!(
            relative_time(at("2026-01-01T22:00:00Z"), now),
            "2 hours ago"
        );
        assert_eq!(relative_time(at("2025-12-30T00:00:00Z"), now), "3 days ago");
        assert_eq!(
            relative_time(at("2026-01-02T00:01:00Z"), now),
            "in 1 minute"
        );
    }
}
