//! herald's own issues (SDK events): the list, one issue's page (what SDK messages link to), and
//! resolve, mute and reopen buttons.

use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::fmt::Write;
use std::sync::Arc;

use super::page::{button, esc, layout, segment, time};
use super::{failed, may_change, signed_in};
use crate::http::{ApiError, AppState};
use crate::sdk::issue::{Resolution, SdkIssue, Status};
use crate::triage::{self, Change, TriageError};

/// Issues one page lists.
const PAGE: usize = 200;

#[derive(Deserialize)]
pub struct Filter {
    status: Option<String>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    let (_, session) = match signed_in(&state, &headers) {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let status = filter
        .status
        .filter(|s| Status::NAMES.contains(&s.as_str()));
    let issues = match triage::list(&state.store, None, status.as_deref()) {
        Ok(issues) => issues,
        Err(error) => return failed(&session, error.into()),
    };
    let now = crate::clock::now();
    let mut body = String::from("<p>Issues herald keeps for the events Sentry SDKs send it.</p>");
    let mut links = String::from("<a href=\"/ui/issues\">all</a>");
    for name in Status::NAMES {
        let _ = write!(links, " · <a href=\"/ui/issues?status={name}\">{name}</a>");
    }
    let _ = write!(body, "<p>Show: {links}</p>");
    if issues.is_empty() {
        body.push_str("<p>No issues.</p>");
    } else {
        body.push_str(
            "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Issue</th><th scope=\"col\">Project</th>\
             <th scope=\"col\">Level</th><th scope=\"col\">Events</th><th scope=\"col\">Last seen</th>\
             <th scope=\"col\">Status</th></tr></thead><tbody>",
        );
        for issue in issues.iter().take(PAGE) {
            let _ = write!(
                body,
                "<tr><td><a href=\"/ui/issues/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                segment(&issue.id),
                esc(&issue.title),
                esc(&issue.project),
                esc(issue.level.as_deref().unwrap_or("—")),
                issue.count,
                time(issue.last_seen),
                issue.status_at(now).name(),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    layout("Issues", "/ui/issues", &session, &body).into_response()
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (_, session) = match signed_in(&state, &headers) {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let issue = match state.store.issue(&id) {
        Ok(Some(issue)) => issue,
        Ok(None) => return failed(&session, TriageError::UnknownIssue(id).into()),
        Err(error) => return failed(&session, error.into()),
    };
    let body = issue_page(&issue, &session);
    layout(&issue.title, "/ui/issues", &session, &body).into_response()
}

fn issue_page(issue: &SdkIssue, session: &super::session::Session) -> String {
    let now = crate::clock::now();
    let status = issue.status_at(now);
    let mut facts = String::new();
    let mut fact = |name: &str, value: String| {
        let _ = write!(facts, "<dt>{name}</dt><dd>{}</dd>", esc(&value));
    };
    fact("Id", issue.id.clone());
    fact("Project", issue.project.clone());
    fact("Where", issue.culprit.clone().unwrap_or_else(|| "—".into()));
    fact("Level", issue.level.clone().unwrap_or_else(|| "—".into()));
    fact(
        "Environment",
        issue.environment.clone().unwrap_or_else(|| "—".into()),
    );
    fact("Events", issue.count.to_string());
    fact("First seen", time(issue.first_seen));
    fact("Last seen", time(issue.last_seen));
    let releases: Vec<&str> = issue.releases.iter().map(|r| r.name.as_str()).collect();
    fact(
        "Releases",
        if releases.is_empty() {
            "—".into()
        } else {
            releases.join(", ")
        },
    );
    fact("Regressions", issue.regressions.to_string());
    let said = match status {
        Status::Open => "open".to_string(),
        Status::Resolved { at } => format!("resolved {}", time(*at)),
        Status::ResolvedInRelease { release, .. } => format!("resolved in {release}"),
        Status::ResolvedInNextRelease { after, .. } => {
            format!("resolved in the release after {after}")
        }
        Status::Muted { until: Some(until) } => format!("muted until {}", time(*until)),
        Status::Muted { until: None } => "muted until reopened".into(),
    };
    fact("Status", said);
    let action = |verb: &str, label: &str, hidden: &str| {
        button(
            &format!("/ui/issues/{}/{verb}", segment(&issue.id)),
            label,
            session,
            hidden,
        )
    };
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            esc(value)
        )
    };
    let mut actions = String::new();
    if !status.is_resolved() {
        actions.push_str(&action("resolve", "Resolve", ""));
        if issue.latest_release().is_some() {
            actions.push_str(&action(
                "resolve",
                "Resolve in the next release",
                &hidden("how", "next_release"),
            ));
        }
    }
    if matches!(status, Status::Muted { .. }) || status.is_resolved() {
        actions.push_str(&action("reopen", "Reopen", ""));
    } else {
        actions.push_str(&action("mute", "Mute for a day", &hidden("for", "1d")));
        actions.push_str(&action("mute", "Mute until reopened", ""));
    }
    format!("<dl>{facts}</dl><p class=\"actions\">{actions}</p>")
}

#[derive(Deserialize)]
pub struct ChangeForm {
    form_token: Option<String>,
    how: Option<String>,
    #[serde(rename = "for")]
    duration: Option<String>,
}

pub async fn change(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, verb)): Path<(String, String)>,
    Form(form): Form<ChangeForm>,
) -> Response {
    let (live, session) = match may_change(&state, &headers, form.form_token.as_deref()) {
        Ok(allowed) => allowed,
        Err(response) => return response,
    };
    let change = match verb.as_str() {
        "resolve" if form.how.as_deref() == Some("next_release") => {
            Change::Resolve(Resolution::InNextRelease)
        }
        "resolve" => Change::Resolve(Resolution::Now),
        "reopen" => Change::Reopen,
        "mute" => match form.duration.as_deref().map(triage::mute_until).transpose() {
            Ok(until) => Change::Mute { until },
            Err(reason) => return failed(&session, ApiError::BadRequest(reason)),
        },
        _ => {
            return failed(
                &session,
                ApiError::NotFound(format!("no action {:?}", crate::text::printable(&verb))),
            )
        }
    };
    match triage::change(&state.store, &live.intake, &id, change).await {
        Ok(_) => {
            tracing::info!(issue_id = %crate::text::printable(&id), action = %verb, "SDK issue changed in the console");
            Redirect::to(&format!("/ui/issues/{}", segment(&id))).into_response()
        }
        Err(error) => failed(&session, error.into()),
    }
}
