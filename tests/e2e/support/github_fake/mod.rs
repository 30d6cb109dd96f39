//! A stateful fake of the slice of the GitHub REST API that pullstack uses, served over
//! HTTP by axum on 127.0.0.1. Self-contained (no `crate::` imports): it is the end-to-end
//! tests' `support::github_fake`, and `examples/github_fake.rs` includes it with `#[path]`.
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
//! * `/_fake/...` control routes (no auth, not recorded) let scripts seed state over HTTP;
//! * failures on demand: the next `n` requests (`fail_next`, `secondary_limit_next`), or a
//!   seeded share of all of them (`set_chaos`): server errors, secondary rate limits with
//!   `Retry-After`, and connections dropped before the request is handled.
//!
//! Here: the handle tests drive (`GitHubFake`) and the state behind it. `router` sends each
//! request through the gate to a handler, one file per resource, and the handlers answer
//! with the shapes in `json`.

mod api;
mod apps;
mod checks;
mod comments;
mod contents;
mod control;
mod deployments;
mod json;
mod pulls;
mod repos;
pub(crate) mod router;
mod statuses;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};

use api::{ApiError, not_found};
use comments::new_comment;
use pulls::upsert;
use router::router;

/// Login of comments, deployments and statuses created through the API.
pub const BOT_LOGIN: &str = "pullstack[bot]";
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
    /// Who merged it; empty for nobody (GitHub's `merged_by: null`).
    pub merged_by: String,
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
            merged_by: String::new(),
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

/// An annotation on a check run, as GitHub takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeAnnotation {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub start_column: Option<u32>,
    pub end_column: Option<u32>,
    pub annotation_level: String,
    pub message: String,
    pub title: Option<String>,
    pub raw_details: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FakeCheckRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    /// Every request's, in order.
    pub annotations: Vec<FakeAnnotation>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The create and each update.
    pub requests: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path with query string, e.g. "/repos/o/r/pulls?state=open".
    pub path: String,
    pub status: u16,
    pub authorization: Option<String>,
    pub accept: Option<String>,
    /// `X-GitHub-Api-Version`.
    pub api_version: Option<String>,
    /// When the request arrived.
    pub at: DateTime<Utc>,
}

/// Failures the fake answers a seeded share of API requests with (see `set_chaos`).
#[derive(Clone, Debug)]
pub struct Chaos {
    pub seed: u64,
    /// Share of requests that fail, from 0 to 1.
    pub rate: f64,
    /// The `Retry-After` of the secondary rate limits among them, in seconds.
    pub retry_after: u64,
}

/// The failure one request gets.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// A GitHub-style error with this status.
    Status(u16),
    /// 403, "You have exceeded a secondary rate limit", with `Retry-After` (seconds).
    SecondaryLimit(u64),
    /// The connection is dropped before the request is handled.
    Drop,
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
    /// Files by commit sha, then by path.
    files: HashMap<String, BTreeMap<String, String>>,
    check_runs: Vec<FakeCheckRun>,
}

impl Repo {
    /// The files of commit `sha`; a commit the fake was told no files of
    /// has the default branch's.
    fn tree(&self, sha: &str) -> BTreeMap<String, String> {
        (self.files.get(sha))
            .or_else(|| self.files.get(&self.resolve(&self.default_branch)))
            .cloned()
            .unwrap_or_default()
    }

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
    /// The next `.0` requests fail with `.1`.
    failures: Option<(usize, Fault)>,
    chaos: Option<(Chaos, rand::rngs::StdRng)>,
    tokens_issued: usize,
    /// The App's installations and the repositories each reaches; none
    /// given, installation 1 reaches every repository.
    installations: BTreeMap<u64, Vec<String>>,
    /// Which installation each token issued belongs to.
    tokens: HashMap<String, u64>,
}

impl Db {
    /// The installations, as given or the default one.
    fn installations(&self) -> BTreeMap<u64, Vec<String>> {
        if self.installations.is_empty() {
            let all = self.repos.values().map(|r| r.full_name.clone()).collect();
            return BTreeMap::from([(1, all)]);
        }
        self.installations.clone()
    }
}

impl Db {
    /// The failure the next API request gets, if any.
    fn next_fault(&mut self) -> Option<Fault> {
        use rand::Rng;
        if let Some((left, fault)) = &mut self.failures
            && *left > 0
        {
            *left -= 1;
            return Some(*fault);
        }
        let (chaos, rng) = self.chaos.as_mut()?;
        if !rng.random_bool(chaos.rate) {
            return None;
        }
        Some(match rng.random_range(0..4) {
            0 => Fault::Status([500, 502, 503][rng.random_range(0..3)]),
            1 => Fault::SecondaryLimit(chaos.retry_after),
            2 => Fault::Drop,
            _ => Fault::Status(502),
        })
    }
}

struct Shared {
    base: String,
    next_id: AtomicU64,
    db: Mutex<Db>,
    /// API requests being handled right now.
    in_flight: std::sync::atomic::AtomicUsize,
    /// How many API requests have been answered: a wait for what
    /// pullstack writes looks again the moment one lands.
    answered: watch::Sender<u64>,
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
/// Serves `app` on `listener` in the background until the returned sender
/// is used or dropped.
pub(crate) fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> oneshot::Sender<()> {
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                rx.await.ok();
            })
            .await;
    });
    tx
}

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
            in_flight: Default::default(),
            answered: watch::Sender::new(0),
        });
        GitHubFake {
            shutdown: Some(serve(listener, router(shared.clone()))),
            shared,
            addr,
        }
    }

    pub fn url(&self) -> String {
        self.shared.base.clone()
    }
    #[allow(dead_code)] // no caller in the tests or the example yet
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
    /// Waits until no API request is being handled: the requests of a
    /// server that was just killed have landed, or never will.
    pub async fn quiesce(&self) {
        while self.shared.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::task::yield_now().await;
        }
    }
    /// Changes each time an API request has been answered.
    pub fn answered(&self) -> watch::Receiver<u64> {
        self.shared.answered.subscribe()
    }
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }
    /// The next `n` authenticated API requests answer `status` with a GitHub-style error body.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.shared.lock().failures = Some((n, Fault::Status(status)));
    }
    /// The next `n` authenticated API requests meet GitHub's secondary rate limit: 403 with
    /// `Retry-After: retry_after` (seconds).
    pub fn secondary_limit_next(&self, n: usize, retry_after: u64) {
        self.shared.lock().failures = Some((n, Fault::SecondaryLimit(retry_after)));
    }
    /// From now on, a seeded share of authenticated API requests fail (server errors,
    /// secondary rate limits, dropped connections); `None` stops it.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        use rand::SeedableRng;
        self.shared.lock().chaos = chaos.map(|c| {
            let rng = rand::rngs::StdRng::seed_from_u64(c.seed);
            (c, rng)
        });
    }
    /// Check runs created on `sha`, oldest first.
    pub fn check_runs(&self, repo: &str, sha: &str) -> Vec<FakeCheckRun> {
        let f = |r: &mut Repo| {
            Ok((r.check_runs.iter())
                .filter(|c| c.head_sha == sha)
                .cloned()
                .collect())
        };
        self.shared.repo(repo, f).unwrap_or_default()
    }
    /// Adds an installation of the App reaching `repos` (the default
    /// installation 1, reaching every repository, is then gone).
    pub fn add_installation(&self, id: u64, repos: &[&str]) {
        let repos = repos.iter().map(|r| r.to_string()).collect();
        self.shared.lock().installations.insert(id, repos);
    }
    /// Writes `path` into the commit `git_ref` resolves to (a branch's head, a PR's head, a
    /// sha); a commit with no files yet starts from the default branch's.
    pub fn set_file(&self, repo: &str, git_ref: &str, path: &str, text: &str) {
        must(
            "set_file",
            self.shared.repo(repo, |r| {
                let sha = r.resolve(git_ref);
                let mut files = r.tree(&sha);
                files.insert(path.into(), text.into());
                Ok(r.files.insert(sha, files))
            }),
        );
    }
    /// A new commit on `branch` that writes `path`; returns its sha.
    pub fn commit_file(&self, repo: &str, branch: &str, path: &str, text: &str) -> String {
        must(
            "commit_file",
            self.shared.repo(repo, |r| {
                let parent = r.resolve(branch);
                let sha = fake_sha(&format!("{parent}:{path}:{text}"));
                let mut files = r.tree(&parent);
                files.insert(path.into(), text.into());
                r.files.insert(sha.clone(), files);
                r.branches.insert(branch.into(), sha.clone());
                Ok(sha)
            }),
        )
    }
    pub fn installation_tokens_issued(&self) -> usize {
        self.shared.lock().tokens_issued
    }
}

/// Deterministic 40-hex "sha" for a seed.
pub fn fake_sha(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))[..40].to_string()
}
