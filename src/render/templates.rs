//! Compiled templates: one per target, from its file or its kind's built-in one, checked at load.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

use super::{
    code_span, escape_json, escape_markdown, level_icon, relative_time, truncate_chars, DigestView,
    MessageView,
};
use crate::alert::Level;

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
            include_str!("../../templates/console.txt.hbs"),
        )),
        "dingtalk" => Some((
            "dingtalk.md.hbs",
            include_str!("../../templates/dingtalk.md.hbs"),
        )),
        "feishu" => Some((
            "feishu.md.hbs",
            include_str!("../../templates/feishu.md.hbs"),
        )),
        "wecom" => Some(("wecom.md.hbs", include_str!("../../templates/wecom.md.hbs"))),
        "github" => Some((
            "github_issue.md.hbs",
            include_str!("../../templates/github_issue.md.hbs"),
        )),
        _ => None,
    }
}

/// The digest template of each target kind that merges alerts when its rate limit is reached.
pub fn default_digest_template(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "dingtalk" => Some((
            "dingtalk_digest.md.hbs",
            include_str!("../../templates/dingtalk_digest.md.hbs"),
        )),
        "feishu" => Some((
            "feishu_digest.md.hbs",
            include_str!("../../templates/feishu_digest.md.hbs"),
        )),
        "wecom" => Some((
            "wecom_digest.md.hbs",
            include_str!("../../templates/wecom_digest.md.hbs"),
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

fn registry(timezone: Tz) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.register_escape_fn(handlebars::no_escape);
    registry.set_strict_mode(false);
    register_text_helper(&mut registry, "md", escape_markdown);
    register_text_helper(&mut registry, "json", escape_json);
    register_text_helper(&mut registry, "code", code_span);
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

/// Parameter `index` as text: a string as it is, null or missing as nothing, anything else as JSON.
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
