//! A fake GitHub issues API on 127.0.0.1 that enforces GitHub's headers, keeps issues and comments,
//! refuses bodies over 65,536 characters, and can be told to misbehave on creates: answer late
//! (after creating), or refuse with a secondary rate limit.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "ghp_testtoken0123456789";

#[derive(Debug, Clone, PartialEq)]
pub enum OnCreate {
    /// Create the issue, then hold the answer this long (longer than herald's timeout: lost).
    CreateThenHang(Duration),
    /// Refuse with 403 and `retry-after`, creating nothing.
    SecondaryRateLimit { retry_after_seconds: u64 },
    /// Answer 502, creating nothing.
    ServerError,
}

#[derive(Debug, Clone)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub state: String,
    pub state_reason: Option<String>,
    pub comments: Vec<String>,
}

#[derive(Default)]
struct Repo {
    issues: Vec<Issue>,
    on_create: VecDeque<OnCreate>,
    writes: Vec<Instant>,
    refused: Vec<String>,
}

#[derive(Clone)]
pub struct FakeGithub {
    repo: Arc<Mutex<Repo>>,
    pub address: SocketAddr,
}

impl FakeGithub {
    pub async fn start() -> FakeGithub {
        let repo = Arc::new(Mutex::new(Repo::default()));
        let app = Router::new()
            .route("/repos/{owner}/{name}/issues", post(create).get(list))
            .route(
                "/repos/{owner}/{name}/issues/{number}",
                get(read).patch(update),
            )
            .route(
                "/repos/{owner}/{name}/issues/{number}/comments",
                post(comment),
            )
            .with_state(repo.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeGithub { repo, address }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn on_create(&self, behaviour: OnCreate) {
        self.repo.lock().unwrap().on_create.push_back(behaviour);
    }

    pub fn issues(&self) -> Vec<Issue> {
        self.repo.lock().unwrap().issues.clone()
    }

    /// A person closes issue `number` on GitHub (`completed` or `not_planned`).
    pub fn close(&self, number: u64, reason: &str) -> Issue {
        let mut repo = self.repo.lock().unwrap();
        let issue = repo.issues.iter_mut().find(|i| i.number == number).unwrap();
        issue.state = "closed".into();
        issue.state_reason = Some(reason.into());
        issue.clone()
    }

    pub fn write_times(&self) -> Vec<Instant> {
        self.repo.lock().unwrap().writes.clone()
    }

    /// Requests refused for a missing or wrong header, with why.
    pub fn refused(&self) -> Vec<String> {
        self.repo.lock().unwrap().refused.clone()
    }

    pub async fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&[Issue]) -> bool) {
        super::eventually(
            timeout,
            || format!("{what}: not yet; issues: {:?}", self.issues()),
            || done(&self.issues()).then_some(()),
        )
        .await
    }
}

/// GitHub's required headers; a request without them is refused as GitHub would.
fn check_headers(repo: &Mutex<Repo>, headers: &HeaderMap) -> Option<Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let problem = if header("authorization") != format!("Bearer {TOKEN}") {
        Some((StatusCode::UNAUTHORIZED, "Bad credentials"))
    } else if header("user-agent").is_empty() {
        Some((StatusCode::FORBIDDEN, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"))
    } else if header("accept") != "application/vnd.github+json" {
        Some((
            StatusCode::BAD_REQUEST,
            "Accept must be application/vnd.github+json",
        ))
    } else if header("x-github-api-version") != "2022-11-28" {
        Some((
            StatusCode::BAD_REQUEST,
            "X-GitHub-Api-Version must be 2022-11-28",
        ))
    } else {
        None
    };
    match problem {
        Some((status, message)) => {
            repo.lock().unwrap().refused.push(message.to_string());
            Some((status, Json(json!({"message": message}))).into_response())
        }
        None => None,
    }
}

fn issue_json(issue: &Issue) -> Value {
    json!({
        "number": issue.number,
        "title": issue.title,
        "body": issue.body,
        "state": issue.state,
        "state_reason": issue.state_reason,
        "labels": issue.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
        "html_url": format!("https://github.com/acme/backend/issues/{}", issue.number),
    })
}

async fn create(
    State(repo): State<Arc<Mutex<Repo>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = check_headers(&repo, &headers) {
        return refused;
    }
    let text = body["body"].as_str().unwrap_or_default().to_string();
    if text.chars().count() > 65_536 {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({"message": "Validation Failed: body is too long (maximum is 65536 characters)"}))).into_response();
    }
    let behaviour = repo.lock().unwrap().on_create.pop_front();
    if let Some(OnCreate::SecondaryRateLimit {
        retry_after_seconds,
    }) = behaviour
    {
        return (
            StatusCode::FORBIDDEN,
            [("retry-after", retry_after_seconds.to_string())],
            Json(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."})),
        )
            .into_response();
    }
    if behaviour == Some(OnCreate::ServerError) {
        return (
            StatusCode::BAD_GATEWAY,
            Json(json!({"message": "Server Error"})),
        )
            .into_response();
    }
    let created = {
        let mut repo = repo.lock().unwrap();
        repo.writes.push(Instant::now());
        let issue = Issue {
            number: repo.issues.len() as u64 + 1,
            title: body["title"].as_str().unwrap_or_default().to_string(),
            body: text,
            labels: body["labels"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            state: "open".into(),
            state_reason: None,
            comments: vec![],
        };
        repo.issues.push(issue.clone());
        issue
    };
    if let Some(OnCreate::CreateThenHang(duration)) = behaviour {
        tokio::time::sleep(duration).await;
    }
    (StatusCode::CREATED, Json(issue_json(&created))).into_response()
}

async fn list(State(repo): State<Arc<Mutex<Repo>>>, headers: HeaderMap) -> Response {
    if let Some(refused) = check_headers(&repo, &headers) {
        return refused;
    }
    let issues: Vec<Value> = repo
        .lock()
        .unwrap()
        .issues
        .iter()
        .rev()
        .map(issue_json)
        .collect();
    Json(Value::Array(issues)).into_response()
}

async fn read(
    State(repo): State<Arc<Mutex<Repo>>>,
    headers: HeaderMap,
    Path((_, _, number)): Path<(String, String, u64)>,
) -> Response {
    if let Some(refused) = check_headers(&repo, &headers) {
        return refused;
    }
    match repo
        .lock()
        .unwrap()
        .issues
        .iter()
        .find(|i| i.number == number)
    {
        Some(issue) => Json(issue_json(issue)).into_response(),
        None => not_found(),
    }
}

async fn update(
    State(repo): State<Arc<Mutex<Repo>>>,
    headers: HeaderMap,
    Path((_, _, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    write_to_issue(&repo, &headers, number, |issue| {
        if let Some(state) = body["state"].as_str() {
            issue.state = state.to_string();
        }
        issue.state_reason = body["state_reason"].as_str().map(String::from);
        Json(issue_json(issue)).into_response()
    })
}

async fn comment(
    State(repo): State<Arc<Mutex<Repo>>>,
    headers: HeaderMap,
    Path((_, _, number)): Path<(String, String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    write_to_issue(&repo, &headers, number, |issue| {
        issue
            .comments
            .push(body["body"].as_str().unwrap_or_default().to_string());
        (StatusCode::CREATED, Json(json!({"id": 1}))).into_response()
    })
}

/// A write to an existing issue, as GitHub takes it: headers checked, the write counted against
/// the pace, 404 for an issue that does not exist.
fn write_to_issue(
    repo: &Mutex<Repo>,
    headers: &HeaderMap,
    number: u64,
    write: impl FnOnce(&mut Issue) -> Response,
) -> Response {
    if let Some(refused) = check_headers(repo, headers) {
        return refused;
    }
    let mut repo = repo.lock().unwrap();
    repo.writes.push(Instant::now());
    match repo.issues.iter_mut().find(|i| i.number == number) {
        Some(issue) => write(issue),
        None => not_found(),
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response()
}
