//! A stateful fake of the slice of the GitHub REST API that pullstack uses, served over
//! HTTP by axum on 127.0.0.1. Self-contained (no `crate::` imports): it is included with
//! `#[path]` from integration tests and from `examples/github_fake.rs`.
//!
//! Responses follow the real JSON shapes (they parse with octocrab's models). Emulated
//! GitHub behaviour worth knowing about:
//! * every API request needs an `Authorization` header (any value) except `/rate_limit`;
//! * list endpoints paginate with `per_page` (default 30, max 100) / `page` and a `Link` header;
//! * `POST .../deployments` answers 409 when commit statuses on the sha are not `success`
//!   (all contexts when `required_contexts` is omitted, the listed ones otherwise; pass
//!   `required_contexts: []` to skip the check, as on GitHub);
//! * a `success` deployment status marks older `success` deployments of the same
//!   environment `inactive` unless `auto_inactive: false`;
//! * descriptions of deployment and commit statuses longer than 140 chars → 422;
//! * POST is accepted in place of PATCH for editing comments (octocrab's `update_comment` uses it);
//! * the permission endpoint answers 404 for logins never given to `set_permission`. Note that
//!   octocrab 0.54's `get_contributor_permission` cannot parse real answers other than "admin"
//!   (its enum expects pull/push/...), so parse that body yourself;
//! * `/_fake/...` control routes (no auth, not recorded) let scripts seed state over HTTP.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// Login of comments, deployments and statuses created through the API.
pub const BOT_LOGIN: &str = "pullstack[bot]";
const DOCS: &str = "https://docs.github.com/rest";
const ROLES: [&str; 6] = ["admin", "maintain", "write", "triage", "read", "none"];
const REACTIONS: [&str; 8] = [
    "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FakePr {
    pub number: u64,
    pub title: String,
    /// "open" | "closed"
    pub state: String,
    pub merged: bool,
    pub head_sha: String,
    pub head_ref: String,
    /// Full name of the head repository; differs from the base repo for forks.
    /// Left empty, `upsert_pr` sets it to the base repository.
    pub head_repo: String,
    pub base_ref: String,
    pub labels: Vec<String>,
    pub user: String,
    pub draft: bool,
}

impl Default for FakePr {
    fn default() -> Self {
        FakePr {
            number: 1,
            title: "Test pull request".into(),
            state: "open".into(),
            merged: false,
            head_sha: fake_sha("head"),
            head_ref: "feature".into(),
            head_repo: String::new(),
            base_ref: "main".into(),
            labels: vec![],
            user: "octocat".into(),
            draft: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FakeComment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    pub user: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Number of PATCHes received.
    pub edits: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FakeDeployment {
    pub id: u64,
    pub sha: String,
    pub ref_: String,
    pub task: String,
    pub environment: String,
    pub transient: bool,
    pub production: bool,
    pub description: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    /// Oldest first (the API lists them newest first).
    pub statuses: Vec<FakeDeploymentStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FakeDeploymentStatus {
    pub id: u64,
    pub state: String,
    pub environment: String,
    pub environment_url: String,
    pub log_url: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FakeStatus {
    pub id: u64,
    pub sha: String,
    pub state: String,
    pub context: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path with query string, e.g. "/repos/o/r/pulls?state=open".
    pub path: String,
    pub status: u16,
    pub authorization: Option<String>,
}

struct StoredPr {
    pr: FakePr,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Default)]
struct Repo {
    full_name: String,
    default_branch: String,
    prs: BTreeMap<u64, StoredPr>,
    branches: BTreeMap<String, String>,
    permissions: HashMap<String, String>,
    comments: Vec<FakeComment>,
    /// (comment id, content, login)
    reactions: Vec<(u64, String, String)>,
    deployments: Vec<FakeDeployment>,
    statuses: Vec<FakeStatus>,
}

impl Repo {
    /// 40-hex → itself; else branch head, else head of a PR with that head ref, else the ref.
    fn resolve(&self, git_ref: &str) -> String {
        let r = git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref);
        if r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
            return r.to_string();
        }
        let pr_head = || self.prs.values().rev().find(|p| p.pr.head_ref == r);
        (self.branches.get(r).cloned())
            .or_else(|| pr_head().map(|p| p.pr.head_sha.clone()))
            .unwrap_or_else(|| git_ref.to_string())
    }
}

#[derive(Default)]
struct Db {
    repos: BTreeMap<String, Repo>,
    requests: Vec<RecordedRequest>,
    failures: (usize, u16),
    tokens_issued: usize,
}

struct Shared {
    base: String,
    next_id: AtomicU64,
    db: Mutex<Db>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
    /// Runs `f` on the repo (owner/name matched case-insensitively like GitHub) or 404s.
    fn with_repo<T>(
        &self,
        o: &str,
        r: &str,
        f: impl FnOnce(&mut Repo) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let key = format!("{o}/{r}").to_lowercase();
        f(self.lock().repos.get_mut(&key).ok_or_else(not_found)?)
    }
    fn repo<T>(
        &self,
        full: &str,
        f: impl FnOnce(&mut Repo) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let (o, r) = full.split_once('/').unwrap_or((full, ""));
        self.with_repo(o, r, f)
    }
}

/// Handle to a running fake; the server shuts down when this is dropped.
pub struct GitHubFake {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for GitHubFake {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn must<T>(what: &str, r: Result<T, ApiError>) -> T {
    r.unwrap_or_else(|e| panic!("GitHubFake::{what}: {} (call add_repo first?)", e.message))
}

impl GitHubFake {
    pub async fn start() -> GitHubFake {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> GitHubFake {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("GitHubFake: cannot bind {addr}: {e}"));
        let addr = listener.local_addr().expect("local_addr");
        let shared = Arc::new(Shared {
            base: format!("http://{addr}/"),
            next_id: AtomicU64::new(1000),
            db: Mutex::default(),
        });
        let app = router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    rx.await.ok();
                })
                .await;
        });
        GitHubFake {
            shared,
            addr,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        self.shared.base.clone()
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds (or updates) a repository; its default branch gets a fake head sha.
    pub fn add_repo(&self, full_name: &str, default_branch: &str) {
        let mut db = self.shared.lock();
        let repo = db
            .repos
            .entry(full_name.to_lowercase())
            .or_insert_with(|| Repo {
                full_name: full_name.to_string(),
                ..Repo::default()
            });
        repo.default_branch = default_branch.to_string();
        let sha = fake_sha(&format!("{full_name}:{default_branch}"));
        repo.branches
            .entry(default_branch.to_string())
            .or_insert(sha);
    }

    /// Inserts or replaces PR `pr.number`. Does not create the head branch (see `add_branch`).
    pub fn upsert_pr(&self, repo: &str, pr: FakePr) {
        must("upsert_pr", upsert(&self.shared, repo, pr));
    }
    pub fn pr(&self, repo: &str, number: u64) -> Option<FakePr> {
        self.shared
            .repo(repo, |r| Ok(r.prs.get(&number).map(|p| p.pr.clone())))
            .ok()
            .flatten()
    }

    /// `permission` is a role: admin | maintain | write | triage | read | none.
    pub fn set_permission(&self, repo: &str, login: &str, permission: &str) {
        assert!(ROLES.contains(&permission), "unknown role {permission:?}");
        must(
            "set_permission",
            self.shared.repo(repo, |r| {
                Ok(r.permissions.insert(login.into(), permission.into()))
            }),
        );
    }
    pub fn add_branch(&self, repo: &str, name: &str, sha: &str) {
        must(
            "add_branch",
            self.shared
                .repo(repo, |r| Ok(r.branches.insert(name.into(), sha.into()))),
        );
    }
    pub fn branch(&self, repo: &str, name: &str) -> Option<String> {
        self.shared
            .repo(repo, |r| Ok(r.branches.get(name).cloned()))
            .ok()
            .flatten()
    }
    pub fn remove_branch(&self, repo: &str, name: &str) {
        must(
            "remove_branch",
            self.shared.repo(repo, |r| Ok(r.branches.remove(name))),
        );
    }

    /// Comments on one issue/PR, oldest first.
    pub fn comments(&self, repo: &str, issue: u64) -> Vec<FakeComment> {
        let f = |r: &mut Repo| {
            Ok(r.comments
                .iter()
                .filter(|c| c.issue == issue)
                .cloned()
                .collect())
        };
        self.shared.repo(repo, f).unwrap_or_default()
    }
    /// Simulates a human comment; returns its id.
    pub fn add_comment(&self, repo: &str, issue: u64, login: &str, body: &str) -> u64 {
        must(
            "add_comment",
            new_comment(&self.shared, repo, issue, login, body),
        )
        .id
    }
    /// Reaction contents on a comment, in creation order.
    pub fn reactions(&self, repo: &str, comment_id: u64) -> Vec<String> {
        let f = |r: &mut Repo| {
            Ok(r.reactions
                .iter()
                .filter(|x| x.0 == comment_id)
                .map(|x| x.1.clone())
                .collect())
        };
        self.shared.repo(repo, f).unwrap_or_default()
    }
    /// Deployments in creation order (oldest first).
    pub fn deployments(&self, repo: &str) -> Vec<FakeDeployment> {
        self.shared
            .repo(repo, |r| Ok(r.deployments.clone()))
            .unwrap_or_default()
    }
    /// Commit statuses created for `sha`, oldest first.
    pub fn statuses(&self, repo: &str, sha: &str) -> Vec<FakeStatus> {
        let f = |r: &mut Repo| {
            Ok(r.statuses
                .iter()
                .filter(|s| s.sha == sha)
                .cloned()
                .collect())
        };
        self.shared.repo(repo, f).unwrap_or_default()
    }
    /// Every API request received (including rejected ones), oldest first. `/_fake/` excluded.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }
    /// The next `n` authenticated API requests answer `status` with a GitHub-style error body.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().failures = (n, status);
    }
    pub fn installation_tokens_issued(&self) -> usize {
        self.shared.lock().tokens_issued
    }
}

fn upsert(sh: &Shared, repo: &str, mut pr: FakePr) -> Result<FakePr, ApiError> {
    sh.repo(repo, |r| {
        if pr.head_repo.is_empty() {
            pr.head_repo = r.full_name.clone();
        }
        let now = Utc::now();
        let created_at = r.prs.get(&pr.number).map_or(now, |p| p.created_at);
        r.prs.insert(
            pr.number,
            StoredPr {
                pr: pr.clone(),
                created_at,
                updated_at: now,
            },
        );
        Ok(pr)
    })
}

fn new_comment(
    sh: &Shared,
    repo: &str,
    issue: u64,
    login: &str,
    body: &str,
) -> Result<FakeComment, ApiError> {
    let id = sh.id();
    sh.repo(repo, |r| {
        let now = Utc::now();
        let c = FakeComment {
            id,
            issue,
            body: body.into(),
            user: login.into(),
            created_at: now,
            updated_at: now,
            edits: 0,
        };
        r.comments.push(c.clone());
        // Like GitHub, a new comment counts as activity on its PR.
        if let Some(pr) = r.prs.get_mut(&issue) {
            pr.updated_at = now;
        }
        Ok(c)
    })
}

// ---------------------------------------------------------------------------------------
// Errors, body parsing, pagination

#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    errors: Option<Box<Value>>,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: u16, message: &str) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            message: message.into(),
            errors: None,
            headers: vec![],
        }
    }
}

fn not_found() -> ApiError {
    ApiError::new(404, "Not Found")
}

/// GitHub's 422 shape for a rejected field.
fn invalid(resource: &str, field: &str, message: &str) -> ApiError {
    let mut e = ApiError::new(422, "Validation Failed");
    let error =
        json!({ "resource": resource, "code": "custom", "field": field, "message": message });
    e.errors = Some(Box::new(json!([error])));
    e
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "message": self.message, "documentation_url": DOCS, "status": self.status.as_str() });
        if let Some(errors) = self.errors {
            body["errors"] = *errors;
        }
        let mut resp = (self.status, Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut()
                .insert(k, HeaderValue::from_str(&v).expect("header value"));
        }
        resp
    }
}

/// The body `fail_next` answers with, per status code.
fn injected_failure(status: u16) -> ApiError {
    let reset = (Utc::now().timestamp() + 60).to_string();
    let message = match status {
        401 => "Bad credentials",
        403 => "API rate limit exceeded for installation ID 1.",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Validation Failed",
        429 => {
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        }
        502 => "Server Error",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let mut e = ApiError::new(status, message);
    match status {
        403 => {
            e.headers = vec![
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset),
            ]
        }
        429 => e.headers = vec![("retry-after", "1".into())],
        _ => {}
    }
    e
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}
fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// 400 for malformed JSON, 422 for a body of the wrong shape (like GitHub).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::new(400, "Problems parsing JSON"))?;
    serde_json::from_value(v).map_err(|e| ApiError::new(422, &format!("Invalid request.\n\n{e}")))
}

fn check_description(resource: &str, description: Option<&str>) -> Result<(), ApiError> {
    match description {
        Some(d) if d.chars().count() > 140 => Err(invalid(
            resource,
            "description",
            "description is too long (maximum is 140 characters)",
        )),
        _ => Ok(()),
    }
}

type Params = Query<HashMap<String, String>>;

/// Slices `items` by `per_page`/`page` and adds GitHub's `Link` header.
fn paginate(base: &str, uri: &Uri, q: &HashMap<String, String>, items: Vec<Value>) -> ApiResult {
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let page_items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let others: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("page="))
        .collect();
    let link = |n: usize, rel: &str| {
        let query = others
            .iter()
            .copied()
            .chain([format!("page={n}").as_str()])
            .collect::<Vec<_>>()
            .join("&");
        format!(
            "<{}{}?{query}>; rel=\"{rel}\"",
            base.trim_end_matches('/'),
            uri.path()
        )
    };
    let mut links = vec![];
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let mut resp = Json(page_items).into_response();
    if !links.is_empty() {
        resp.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&links.join(", ")).expect("link"),
        );
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------
// JSON shapes

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Deterministic 40-hex "sha" for a seed.
pub fn fake_sha(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))[..40].to_string()
}

fn stable_id(seed: &str) -> u64 {
    u64::from_str_radix(&fake_sha(seed)[..7], 16).unwrap_or(1)
}

fn user_json(base: &str, login: &str) -> Value {
    let id = stable_id(login);
    let enc = login.replace('[', "%5B").replace(']', "%5D");
    let api = format!("{base}users/{enc}");
    json!({
        "login": login, "id": id, "node_id": format!("U_kgDO{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"), "gravatar_id": "",
        "url": api, "html_url": format!("https://github.com/{enc}"),
        "followers_url": format!("{api}/followers"), "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"), "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"), "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"), "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": if login.ends_with("[bot]") { "Bot" } else { "User" }, "user_view_type": "public", "site_admin": false,
    })
}

fn repo_json(base: &str, full: &str, default_branch: &str, fork: bool) -> Value {
    let (owner, name) = full.split_once('/').unwrap_or((full, full));
    let (api, id) = (format!("{base}repos/{full}"), stable_id(full));
    json!({
        "id": id, "node_id": format!("R_kgDO{id}"), "name": name, "full_name": full, "private": false,
        "owner": user_json(base, owner), "html_url": format!("https://github.com/{full}"), "description": null,
        "fork": fork, "url": api, "pulls_url": format!("{api}/pulls{{/number}}"),
        "issues_url": format!("{api}/issues{{/number}}"), "deployments_url": format!("{api}/deployments"),
        "statuses_url": format!("{api}/statuses/{{sha}}"), "branches_url": format!("{api}/branches{{/branch}}"),
        "clone_url": format!("https://github.com/{full}.git"), "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z", "pushed_at": "2024-01-01T00:00:00Z", "archived": false,
        "disabled": false, "visibility": "public", "default_branch": default_branch,
    })
}

fn label_json(base: &str, full: &str, name: &str) -> Value {
    let id = stable_id(&format!("{full}#{name}"));
    json!({ "id": id, "node_id": format!("LA_kwDO{id}"), "url": format!("{base}repos/{full}/labels/{name}"),
        "name": name, "color": "ededed", "default": false, "description": null })
}

fn pr_json(base: &str, repo: &Repo, sp: &StoredPr, full: bool) -> Value {
    let (pr, name) = (&sp.pr, &repo.full_name);
    let (api, html) = (
        format!("{base}repos/{name}"),
        format!("https://github.com/{name}/pull/{}", pr.number),
    );
    let fork = !pr.head_repo.eq_ignore_ascii_case(name);
    let closed = pr.state == "closed";
    let updated = ts(&sp.updated_at);
    let side = |repo_name: &str, git_ref: &str, sha: &str, fork: bool| {
        let owner = repo_name.split('/').next().unwrap_or(repo_name);
        json!({ "label": format!("{owner}:{git_ref}"), "ref": git_ref, "sha": sha, "user": user_json(base, owner),
            "repo": repo_json(base, repo_name, &repo.default_branch, fork) })
    };
    let base_sha = repo
        .branches
        .get(&pr.base_ref)
        .cloned()
        .unwrap_or_else(|| fake_sha(&pr.base_ref));
    let mut v = json!({
        "url": format!("{api}/pulls/{}", pr.number), "id": stable_id(&html), "node_id": format!("PR_kwDO{}", pr.number),
        "html_url": html, "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{}", pr.number), "number": pr.number, "state": pr.state, "locked": false,
        "title": pr.title, "user": user_json(base, &pr.user), "body": null,
        "labels": pr.labels.iter().map(|l| label_json(base, name, l)).collect::<Vec<_>>(),
        "milestone": null, "active_lock_reason": null, "created_at": ts(&sp.created_at), "updated_at": updated,
        "closed_at": if closed { json!(updated) } else { Value::Null },
        "merged_at": if pr.merged { json!(updated) } else { Value::Null },
        "merge_commit_sha": if pr.merged { json!(fake_sha(&html)) } else { Value::Null },
        "assignee": null, "assignees": [], "requested_reviewers": [], "requested_teams": [], "draft": pr.draft,
        "commits_url": format!("{api}/pulls/{}/commits", pr.number),
        "comments_url": format!("{api}/issues/{}/comments", pr.number),
        "statuses_url": format!("{api}/statuses/{}", pr.head_sha),
        "head": side(&pr.head_repo, &pr.head_ref, &pr.head_sha, fork),
        "base": side(name, &pr.base_ref, &base_sha, false),
        "author_association": if fork { "CONTRIBUTOR" } else { "MEMBER" }, "auto_merge": null,
    });
    if full {
        let extra = json!({ "merged": pr.merged, "mergeable": null, "rebaseable": null, "mergeable_state": "unknown",
            "merged_by": null, "comments": repo.comments.iter().filter(|c| c.issue == pr.number).count(),
            "review_comments": 0, "maintainer_can_modify": false, "commits": 1, "additions": 1, "deletions": 0, "changed_files": 1 });
        v.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
    }
    v
}

fn comment_json(base: &str, repo: &Repo, c: &FakeComment) -> Value {
    let (api, name) = (format!("{base}repos/{}", repo.full_name), &repo.full_name);
    let association = match repo.permissions.get(&c.user).map(String::as_str) {
        _ if c.user.ends_with("[bot]") => "NONE",
        _ if name.split('/').next() == Some(c.user.as_str()) => "OWNER",
        Some("none") | None => "NONE",
        Some(_) => "COLLABORATOR",
    };
    let url = format!("{api}/issues/comments/{}", c.id);
    let mut reactions = json!({ "url": format!("{url}/reactions"), "total_count": 0 });
    for content in REACTIONS {
        let n = repo
            .reactions
            .iter()
            .filter(|r| r.0 == c.id && r.1 == content)
            .count();
        reactions[content] = json!(n);
        reactions["total_count"] = json!(reactions["total_count"].as_u64().unwrap_or(0) + n as u64);
    }
    json!({
        "url": url, "html_url": format!("https://github.com/{name}/pull/{}#issuecomment-{}", c.issue, c.id),
        "issue_url": format!("{api}/issues/{}", c.issue), "id": c.id, "node_id": format!("IC_kwDO{}", c.id),
        "user": user_json(base, &c.user), "created_at": ts(&c.created_at), "updated_at": ts(&c.updated_at),
        "author_association": association, "body": c.body, "reactions": reactions, "performed_via_github_app": null,
    })
}

fn deployment_json(base: &str, full: &str, d: &FakeDeployment) -> Value {
    let api = format!("{base}repos/{full}");
    json!({
        "url": format!("{api}/deployments/{}", d.id), "id": d.id, "node_id": format!("DE_kwDO{}", d.id),
        "sha": d.sha, "ref": d.ref_, "task": d.task, "payload": d.payload, "original_environment": d.environment,
        "environment": d.environment, "description": d.description, "creator": user_json(base, BOT_LOGIN),
        "created_at": ts(&d.created_at), "updated_at": ts(d.statuses.last().map_or(&d.created_at, |s| &s.created_at)),
        "statuses_url": format!("{api}/deployments/{}/statuses", d.id), "repository_url": api,
        "transient_environment": d.transient, "production_environment": d.production, "performed_via_github_app": null,
    })
}

fn deployment_status_json(
    base: &str,
    full: &str,
    d: &FakeDeployment,
    s: &FakeDeploymentStatus,
) -> Value {
    let api = format!("{base}repos/{full}");
    json!({
        "url": format!("{api}/deployments/{}/statuses/{}", d.id, s.id), "id": s.id, "node_id": format!("DES_kwDO{}", s.id),
        "state": s.state, "creator": user_json(base, BOT_LOGIN), "description": s.description,
        "environment": s.environment, "target_url": s.log_url, "log_url": s.log_url, "environment_url": s.environment_url,
        "created_at": ts(&s.created_at), "updated_at": ts(&s.created_at),
        "deployment_url": format!("{api}/deployments/{}", d.id), "repository_url": api, "performed_via_github_app": null,
    })
}

fn status_json(base: &str, full: &str, s: &FakeStatus) -> Value {
    json!({
        "url": format!("{base}repos/{full}/statuses/{}", s.sha), "avatar_url": null, "id": s.id,
        "node_id": format!("SC_kwDO{}", s.id), "state": s.state, "description": s.description, "target_url": s.target_url,
        "context": s.context, "created_at": ts(&s.created_at), "updated_at": ts(&s.created_at),
        "creator": user_json(base, BOT_LOGIN),
    })
}

fn branch_json(base: &str, full: &str, name: &str, sha: &str) -> Value {
    json!({ "name": name, "commit": { "sha": sha, "url": format!("{base}repos/{full}/commits/{sha}") }, "protected": false })
}

fn installation_permissions() -> Value {
    json!({ "contents": "read", "deployments": "write", "issues": "write", "metadata": "read",
        "pull_requests": "write", "statuses": "write" })
}

// ---------------------------------------------------------------------------------------
// Router, middleware, handlers

type Sh = State<Arc<Shared>>;

fn router(shared: Arc<Shared>) -> Router {
    let repo = "/repos/{o}/{r}";
    Router::new()
        .route(repo, get(get_repo))
        .route(&format!("{repo}/pulls"), get(list_pulls))
        .route(&format!("{repo}/pulls/{{n}}"), get(get_pull))
        .route(
            &format!("{repo}/issues/{{n}}/comments"),
            get(list_comments).post(create_comment),
        )
        // GitHub accepts POST in place of PATCH (octocrab's update_comment relies on it).
        .route(
            &format!("{repo}/issues/comments/{{id}}"),
            get(get_comment).patch(edit_comment).post(edit_comment),
        )
        .route(
            &format!("{repo}/issues/comments/{{id}}/reactions"),
            post(add_reaction),
        )
        .route(
            &format!("{repo}/deployments"),
            get(list_deployments).post(create_deployment),
        )
        .route(&format!("{repo}/deployments/{{id}}"), get(get_deployment))
        .route(
            &format!("{repo}/deployments/{{id}}/statuses"),
            get(list_deployment_statuses).post(create_deployment_status),
        )
        .route(&format!("{repo}/statuses/{{sha}}"), post(create_status))
        .route(
            &format!("{repo}/commits/{{git_ref}}/statuses"),
            get(list_statuses),
        )
        .route(
            &format!("{repo}/collaborators/{{login}}/permission"),
            get(get_permission),
        )
        .route(&format!("{repo}/commits/{{sha}}/pulls"), get(commit_pulls))
        .route(&format!("{repo}/branches"), get(list_branches))
        .route(&format!("{repo}/branches/{{*name}}"), get(get_branch))
        .route(&format!("{repo}/installation"), get(get_installation))
        .route("/app/installations/{id}/access_tokens", post(create_token))
        .route("/rate_limit", get(rate_limit))
        .route("/user", get(get_user))
        .route("/app", get(get_app))
        .route("/_fake/prs", post(fake_post_pr))
        .route("/_fake/comments/{o}/{r}/{n}", get(fake_comments))
        .route("/_fake/deployments/{o}/{r}", get(fake_deployments))
        .route("/_fake/requests", get(fake_requests))
        .fallback(|| async { not_found() })
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Auth check, injected failures, request recording and rate-limit headers.
async fn gate(State(sh): Sh, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_fake/") {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |pq| pq.to_string());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let rejection = if authorization.is_none() && req.uri().path() != "/rate_limit" {
        Some(ApiError::new(401, "Requires authentication"))
    } else {
        let mut db = sh.lock();
        (db.failures.0 > 0).then(|| {
            db.failures.0 -= 1;
            injected_failure(db.failures.1)
        })
    };
    let mut resp = match rejection {
        Some(e) => e.into_response(),
        None => next.run(req).await,
    };
    let used = {
        let mut db = sh.lock();
        db.requests.push(RecordedRequest {
            method,
            path,
            status: resp.status().as_u16(),
            authorization,
        });
        db.requests.len().min(5000)
    };
    let headers = [
        ("x-ratelimit-limit", "5000".to_string()),
        ("x-ratelimit-remaining", (5000 - used).to_string()),
        ("x-ratelimit-used", used.to_string()),
        (
            "x-ratelimit-reset",
            (Utc::now().timestamp() + 3600).to_string(),
        ),
        ("x-ratelimit-resource", "core".into()),
        ("x-github-request-id", format!("FAKE:{:X}", sh.id())),
        ("x-github-api-version-selected", "2022-11-28".into()),
    ];
    for (name, value) in headers {
        resp.headers_mut()
            .entry(name)
            .or_insert(HeaderValue::from_str(&value).expect("header"));
    }
    resp
}

async fn get_repo(State(sh): Sh, Path((o, r)): Path<(String, String)>) -> ApiResult {
    let v = sh.with_repo(&o, &r, |repo| {
        Ok(repo_json(
            &sh.base,
            &repo.full_name,
            &repo.default_branch,
            false,
        ))
    })?;
    ok(v)
}

/// `state` (open|closed|all, default open), `head` ("owner:branch") and `base` filters; newest first.
async fn list_pulls(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let state = q.get("state").map_or("open", String::as_str);
    let items = sh.with_repo(&o, &r, |repo| {
        let keep = |p: &FakePr| {
            let head_ok = q.get("head").is_none_or(|h| {
                let owner = p.head_repo.split('/').next().unwrap_or("");
                h.split_once(':')
                    .is_some_and(|(ho, hr)| ho.eq_ignore_ascii_case(owner) && hr == p.head_ref)
            });
            (state == "all" || p.state == state)
                && head_ok
                && q.get("base").is_none_or(|b| *b == p.base_ref)
        };
        Ok(repo
            .prs
            .values()
            .rev()
            .filter(|sp| keep(&sp.pr))
            .map(|sp| pr_json(&sh.base, repo, sp, false))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

async fn get_pull(State(sh): Sh, Path((o, r, n)): Path<(String, String, u64)>) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| {
        Ok(pr_json(
            &sh.base,
            repo,
            repo.prs.get(&n).ok_or_else(not_found)?,
            true,
        ))
    })?)
}

async fn list_comments(
    State(sh): Sh,
    Path((o, r, n)): Path<(String, String, u64)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        let on_issue = repo.comments.iter().filter(|c| c.issue == n);
        Ok(on_issue
            .map(|c| comment_json(&sh.base, repo, c))
            .collect::<Vec<_>>())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

#[derive(Deserialize)]
struct BodyOnly {
    body: String,
}

/// Issues exist here if a PR has that number or someone already commented on it.
async fn create_comment(
    State(sh): Sh,
    Path((o, r, n)): Path<(String, String, u64)>,
    body: Bytes,
) -> ApiResult {
    let BodyOnly { body } = parse(&body)?;
    let full = sh.with_repo(&o, &r, |repo| {
        let exists = repo.prs.contains_key(&n) || repo.comments.iter().any(|c| c.issue == n);
        exists.then(|| repo.full_name.clone()).ok_or_else(not_found)
    })?;
    let c = new_comment(&sh, &full, n, BOT_LOGIN, &body)?;
    created(sh.repo(&full, |repo| Ok(comment_json(&sh.base, repo, &c)))?)
}

async fn get_comment(State(sh): Sh, Path((o, r, id)): Path<(String, String, u64)>) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| {
        let c = repo
            .comments
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(not_found)?;
        Ok(comment_json(&sh.base, repo, c))
    })?)
}

async fn edit_comment(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> ApiResult {
    let BodyOnly { body } = parse(&body)?;
    ok(sh.with_repo(&o, &r, |repo| {
        let c = repo
            .comments
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(not_found)?;
        (c.body, c.updated_at, c.edits) = (body, Utc::now(), c.edits + 1);
        let c = c.clone();
        Ok(comment_json(&sh.base, repo, &c))
    })?)
}

/// 201 for a new reaction, 200 when the bot already reacted with that content (like GitHub).
async fn add_reaction(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> ApiResult {
    #[derive(Deserialize)]
    struct NewReaction {
        content: String,
    }
    let NewReaction { content } = parse(&body)?;
    if !REACTIONS.contains(&content.as_str()) {
        return Err(invalid(
            "Reaction",
            "content",
            "content is not included in the list",
        ));
    }
    let rid = sh.id();
    let fresh = sh.with_repo(&o, &r, |repo| {
        repo.comments
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(not_found)?;
        let fresh = !repo
            .reactions
            .iter()
            .any(|x| x.0 == id && x.1 == content && x.2 == BOT_LOGIN);
        if fresh {
            repo.reactions.push((id, content.clone(), BOT_LOGIN.into()));
        }
        Ok(fresh)
    })?;
    let v = json!({ "id": rid, "node_id": format!("REA_lADO{rid}"), "user": user_json(&sh.base, BOT_LOGIN),
        "content": content, "created_at": ts(&Utc::now()) });
    if fresh { created(v) } else { ok(v) }
}

#[derive(Deserialize)]
struct NewDeployment {
    #[serde(rename = "ref")]
    ref_: String,
    task: Option<String>,
    environment: Option<String>,
    description: Option<String>,
    transient_environment: Option<bool>,
    production_environment: Option<bool>,
    /// Accepted and ignored (the fake never merges the default branch into the ref).
    auto_merge: Option<bool>,
    required_contexts: Option<Vec<String>>,
    #[serde(default)]
    payload: Value,
}

async fn create_deployment(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let nd: NewDeployment = parse(&body)?;
    let id = sh.id();
    created(sh.with_repo(&o, &r, |repo| {
        let sha = repo.resolve(&nd.ref_);
        let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
        for s in repo.statuses.iter().filter(|s| s.sha == sha) {
            latest.insert(&s.context, &s.state);
        }
        let failing: Vec<Value> = match &nd.required_contexts {
            None => latest.iter().filter(|(_, st)| **st != "success").map(|(c, st)| json!({"context": c, "state": st})).collect(),
            Some(req) => (req.iter().map(|c| (c.as_str(), latest.get(c.as_str()).copied().unwrap_or("missing"))))
                .filter(|(_, st)| *st != "success").map(|(c, st)| json!({"context": c, "state": st})).collect(),
        };
        if !failing.is_empty() {
            let mut e = ApiError::new(409, &format!("Conflict: Commit status checks failed for {}.", nd.ref_));
            e.errors = Some(Box::new(json!([{ "contexts": failing, "resource": "Deployment", "field": "required_contexts", "code": "invalid" }])));
            return Err(e);
        }
        let environment = nd.environment.clone().unwrap_or_else(|| "production".into());
        let d = FakeDeployment {
            id,
            sha,
            ref_: nd.ref_.clone(),
            task: nd.task.clone().unwrap_or_else(|| "deploy".into()),
            production: nd.production_environment.unwrap_or(environment == "production"),
            transient: nd.transient_environment.unwrap_or(false),
            environment,
            description: nd.description.clone().unwrap_or_default(),
            payload: if nd.payload.is_null() { json!({}) } else { nd.payload.clone() },
            created_at: Utc::now(),
            statuses: vec![],
        };
        repo.deployments.push(d);
        Ok(deployment_json(&sh.base, &repo.full_name, repo.deployments.last().expect("pushed")))
    })?)
}

/// Filters: environment, sha, ref, task. Newest first.
async fn list_deployments(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        let matches = |d: &FakeDeployment| {
            [
                ("environment", &d.environment),
                ("sha", &d.sha),
                ("ref", &d.ref_),
                ("task", &d.task),
            ]
            .iter()
            .all(|(k, v)| q.get(*k).is_none_or(|want| want == *v))
        };
        let found = repo.deployments.iter().rev().filter(|d| matches(d));
        Ok(found
            .map(|d| deployment_json(&sh.base, &repo.full_name, d))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

async fn get_deployment(State(sh): Sh, Path((o, r, id)): Path<(String, String, u64)>) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| {
        let d = repo
            .deployments
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(not_found)?;
        Ok(deployment_json(&sh.base, &repo.full_name, d))
    })?)
}

#[derive(Deserialize)]
struct NewDeploymentStatus {
    state: String,
    environment_url: Option<String>,
    log_url: Option<String>,
    target_url: Option<String>,
    description: Option<String>,
    environment: Option<String>,
    auto_inactive: Option<bool>,
}

async fn create_deployment_status(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> ApiResult {
    let ns: NewDeploymentStatus = parse(&body)?;
    const STATES: [&str; 7] = [
        "error",
        "failure",
        "inactive",
        "in_progress",
        "queued",
        "pending",
        "success",
    ];
    if !STATES.contains(&ns.state.as_str()) {
        return Err(invalid(
            "DeploymentStatus",
            "state",
            "state is not included in the list",
        ));
    }
    check_description("DeploymentStatus", ns.description.as_deref())?;
    let sid = sh.id();
    created(sh.with_repo(&o, &r, |repo| {
        let idx = repo
            .deployments
            .iter()
            .position(|d| d.id == id)
            .ok_or_else(not_found)?;
        let now = Utc::now();
        let d = &mut repo.deployments[idx];
        if let Some(env) = &ns.environment {
            d.environment = env.clone();
        }
        let status = FakeDeploymentStatus {
            id: sid,
            state: ns.state.clone(),
            environment: d.environment.clone(),
            environment_url: ns.environment_url.clone().unwrap_or_default(),
            log_url: ns
                .log_url
                .clone()
                .or(ns.target_url.clone())
                .unwrap_or_default(),
            description: ns.description.clone().unwrap_or_default(),
            created_at: now,
        };
        d.statuses.push(status.clone());
        let env = d.environment.clone();
        // auto_inactive (default true): older deployments of the same environment whose latest
        // status is `success` get an `inactive` status. (GitHub's docs say "prior non-transient,
        // non-production" deployments; production ones are deactivated too nowadays.)
        if ns.state == "success" && ns.auto_inactive.unwrap_or(true) {
            for old in repo
                .deployments
                .iter_mut()
                .filter(|x| x.id < id && x.environment == env)
            {
                if old.statuses.last().is_some_and(|s| s.state == "success") {
                    let s = FakeDeploymentStatus {
                        id: sh.id(),
                        state: "inactive".into(),
                        environment: env.clone(),
                        environment_url: String::new(),
                        log_url: String::new(),
                        description: String::new(),
                        created_at: now,
                    };
                    old.statuses.push(s);
                }
            }
        }
        Ok(deployment_status_json(
            &sh.base,
            &repo.full_name,
            &repo.deployments[idx],
            &status,
        ))
    })?)
}

async fn list_deployment_statuses(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        let d = repo
            .deployments
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(not_found)?;
        Ok(d.statuses
            .iter()
            .rev()
            .map(|s| deployment_status_json(&sh.base, &repo.full_name, d, s))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

#[derive(Deserialize)]
struct NewStatus {
    state: String,
    target_url: Option<String>,
    description: Option<String>,
    context: Option<String>,
}

async fn create_status(
    State(sh): Sh,
    Path((o, r, sha)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    let ns: NewStatus = parse(&body)?;
    if !["error", "failure", "pending", "success"].contains(&ns.state.as_str()) {
        return Err(invalid(
            "Status",
            "state",
            "state is not included in the list",
        ));
    }
    check_description("Status", ns.description.as_deref())?;
    let id = sh.id();
    created(sh.with_repo(&o, &r, |repo| {
        let context = ns.context.unwrap_or_else(|| "default".into());
        let s = FakeStatus {
            id,
            sha,
            state: ns.state,
            context,
            description: ns.description,
            target_url: ns.target_url,
            created_at: Utc::now(),
        };
        repo.statuses.push(s.clone());
        Ok(status_json(&sh.base, &repo.full_name, &s))
    })?)
}

/// `git_ref` may be a sha or a branch name. Newest first.
async fn list_statuses(
    State(sh): Sh,
    Path((o, r, git_ref)): Path<(String, String, String)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        let sha = repo.resolve(&git_ref);
        let found = repo.statuses.iter().rev().filter(|s| s.sha == sha);
        Ok(found
            .map(|s| status_json(&sh.base, &repo.full_name, s))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

/// Real shape: `permission` is the legacy level (maintain→write, triage→read), `role_name` the
/// role. Logins never given to `set_permission` answer 404 (GitHub answers 404 for users it
/// cannot resolve and, on private repos, for non-collaborators); set "none" for a known
/// non-collaborator.
async fn get_permission(
    State(sh): Sh,
    Path((o, r, login)): Path<(String, String, String)>,
) -> ApiResult {
    let role = sh.with_repo(&o, &r, |repo| {
        repo.permissions.get(&login).cloned().ok_or_else(not_found)
    })?;
    let rank = ROLES.iter().position(|x| *x == role).unwrap_or(5);
    let legacy = ["admin", "write", "write", "read", "read", "none"][rank];
    let mut user = user_json(&sh.base, &login);
    user["permissions"] = json!({ "admin": rank == 0, "maintain": rank <= 1, "push": rank <= 2, "triage": rank <= 3, "pull": rank <= 4 });
    user["role_name"] = json!(role);
    ok(json!({ "permission": legacy, "role_name": role, "user": user }))
}

async fn list_branches(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        Ok(repo
            .branches
            .iter()
            .map(|(n, sha)| branch_json(&sh.base, &repo.full_name, n, sha))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

async fn get_branch(
    State(sh): Sh,
    Path((o, r, name)): Path<(String, String, String)>,
) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| {
        let sha = repo.branches.get(&name).ok_or_else(|| ApiError::new(404, "Branch not found"))?;
        let mut v = branch_json(&sh.base, &repo.full_name, &name, sha);
        let api = format!("{}repos/{}/branches/{name}", sh.base, repo.full_name);
        v["_links"] = json!({ "self": api, "html": format!("https://github.com/{}/tree/{name}", repo.full_name) });
        v["protection"] = json!({ "enabled": false, "required_status_checks": { "enforcement_level": "off", "contexts": [], "checks": [] } });
        v["protection_url"] = json!(format!("{api}/protection"));
        Ok(v)
    })?)
}

async fn get_installation(State(sh): Sh, Path((o, r)): Path<(String, String)>) -> ApiResult {
    let owner = sh.with_repo(&o, &r, |repo| {
        Ok(repo.full_name.split('/').next().unwrap_or("").to_string())
    })?;
    ok(json!({
        "id": 1, "account": user_json(&sh.base, &owner), "repository_selection": "all",
        "access_tokens_url": format!("{}app/installations/1/access_tokens", sh.base),
        "repositories_url": format!("{}installation/repositories", sh.base),
        "html_url": format!("https://github.com/settings/installations/1"), "app_id": 1, "app_slug": "pullstack",
        "target_id": stable_id(&owner), "target_type": "User", "permissions": installation_permissions(),
        "events": ["delete", "issue_comment", "pull_request", "push", "workflow_run"],
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "single_file_name": null,
        "has_multiple_single_files": false, "single_file_paths": [], "suspended_by": null, "suspended_at": null,
    }))
}

/// Needs `Authorization: Bearer <a.b.c>` (the JWT's signature is not verified).
async fn create_token(State(sh): Sh, Path(id): Path<u64>, headers: HeaderMap) -> ApiResult {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let jwt = auth.strip_prefix("Bearer ").unwrap_or("");
    if jwt.split('.').count() != 3 || jwt.split('.').any(str::is_empty) {
        return Err(ApiError::new(401, "A JSON web token could not be decoded"));
    }
    if id != 1 {
        return Err(not_found());
    }
    let n = {
        let mut db = sh.lock();
        db.tokens_issued += 1;
        db.tokens_issued
    };
    let expires_at = ts(&(Utc::now() + chrono::Duration::hours(1)));
    created(
        json!({ "token": format!("ghs_fake_{n}"), "expires_at": expires_at,
        "permissions": installation_permissions(), "repository_selection": "all" }),
    )
}

async fn rate_limit(State(sh): Sh) -> ApiResult {
    let used = sh
        .lock()
        .requests
        .iter()
        .filter(|r| r.authorization.is_some())
        .count()
        .min(5000);
    let reset = Utc::now().timestamp() + 3600;
    let rate = |limit: usize, used: usize| json!({ "limit": limit, "used": used, "remaining": limit - used, "reset": reset });
    ok(json!({
        "resources": { "core": rate(5000, used), "search": rate(30, 0), "graphql": rate(5000, 0),
            "integration_manifest": rate(5000, 0), "source_import": rate(100, 0), "code_scanning_upload": rate(1000, 0),
            "actions_runner_registration": rate(10000, 0), "scim": rate(15000, 0), "dependency_snapshots": rate(100, 0),
            "code_search": rate(10, 0) },
        "rate": rate(5000, used),
    }))
}

/// Pull requests whose head is `sha` (as for a fast-forward merge), newest first.
async fn commit_pulls(
    State(sh): Sh,
    Path((o, r, sha)): Path<(String, String, String)>,
) -> ApiResult {
    let v = sh.with_repo(&o, &r, |repo| {
        let prs: Vec<Value> = repo
            .prs
            .values()
            .rev()
            .filter(|sp| sp.pr.head_sha == sha)
            .map(|sp| pr_json(&sh.base, repo, sp, false))
            .collect();
        Ok(json!(prs))
    })?;
    ok(v)
}

/// The authenticated user: with a token, pullstack runs as `pullstack[bot]`.
async fn get_user() -> ApiResult {
    ok(
        json!({ "login": BOT_LOGIN, "id": 9_000_001, "node_id": "U_kgDOfake", "type": "Bot", "site_admin": false }),
    )
}

/// The authenticated GitHub App (JWT auth); its bot login is `<slug>[bot]`.
async fn get_app() -> ApiResult {
    ok(
        json!({ "id": 29_310, "slug": "pullstack", "node_id": "A_kwDOfake", "name": "pullstack",
        "owner": { "login": "octo", "id": 1, "type": "Organization" } }),
    )
}

// ---------------------------------------------------------------------------------------
// Control API for demo scripts (no auth, not recorded)

#[derive(Deserialize)]
struct ControlPr {
    /// Defaults to the only (or first) repository.
    repo: Option<String>,
    #[serde(flatten)]
    pr: FakePr,
}

/// `POST /_fake/prs` with a FakePr JSON (missing fields take `FakePr::default()` values).
async fn fake_post_pr(State(sh): Sh, body: Bytes) -> ApiResult {
    let ControlPr { repo, pr } = parse(&body)?;
    let repo = repo
        .or_else(|| sh.lock().repos.values().next().map(|r| r.full_name.clone()))
        .ok_or_else(not_found)?;
    created(serde_json::to_value(upsert(&sh, &repo, pr)?).expect("serialize"))
}

async fn fake_comments(State(sh): Sh, Path((o, r, n)): Path<(String, String, u64)>) -> ApiResult {
    let v = sh.with_repo(&o, &r, |repo| {
        Ok(json!(
            repo.comments
                .iter()
                .filter(|c| c.issue == n)
                .collect::<Vec<_>>()
        ))
    })?;
    ok(v)
}

async fn fake_deployments(State(sh): Sh, Path((o, r)): Path<(String, String)>) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| Ok(json!(repo.deployments)))?)
}

async fn fake_requests(State(sh): Sh) -> ApiResult {
    ok(json!(sh.lock().requests))
}
