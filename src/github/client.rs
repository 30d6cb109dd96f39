//! The forge port: the GitHub REST calls pullstack makes, over octocrab.
//!
//! octocrab carries authentication (token or GitHub App installation tokens,
//! refreshed before they expire) and the configurable base URL. Every
//! request goes through one `send`, which keeps GitHub's limits for the
//! whole client (`pacing.rs`) and asks again at once after a server error
//! or a failed connection. Responses are read into pullstack's own small
//! types (in `types.rs`), and errors into [`ForgeError`] (in `error.rs`).

pub use super::error::ForgeError;
use super::pacing::{Limits, Priority, SECONDARY_WAIT};
use super::types::{App, Created, Permission, Reaction};
pub use super::types::{
    Comment, DeploymentState, Label, PullRequest, Ref, RepoRef, StatusState, User,
};
use crate::domain::commands::Role;
use crate::domain::naming::RepoName;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// The media type of GitHub's REST API.
const GITHUB_JSON: &str = "application/vnd.github+json";

/// The REST API version pullstack is written against.
const API_VERSION: &str = "2022-11-28";

/// How many times a request that met a server error or a failed connection
/// is sent again at once, before the error goes to the caller.
const RETRIES_AT_ONCE: u32 = 3;

/// How long the default branch is trusted once read.
const DEFAULT_BRANCH_TTL: Duration = Duration::from_secs(600);

/// What a branch name must escape to be a URL path: everything but
/// unreserved characters and the `/` GitHub reads as part of the name.
const PATH_SEGMENTS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(super) type Result<T> = std::result::Result<T, ForgeError>;

/// How pullstack authenticates to GitHub.
#[derive(Clone)]
pub enum Auth {
    Token(secrecy::SecretString),
    App {
        app_id: u64,
        key: octocrab::EncodingKey,
        installation_id: Option<u64>,
    },
}

/// A GitHub App's credentials.
#[derive(Clone)]
pub struct AppAuth {
    pub app_id: u64,
    pub key: octocrab::EncodingKey,
}

/// A file read from a repository, with its blob SHA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoFile {
    pub sha: String,
    pub text: String,
}

/// An App installation and the repositories it may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installation {
    pub id: u64,
    pub repositories: Vec<RepoName>,
}

/// An octocrab builder for `base_url` that sends the media type and API
/// version GitHub asks every client to send, the App's token exchange
/// included.
fn builder(
    base_url: &str,
) -> anyhow::Result<
    octocrab::OctocrabBuilder<
        octocrab::NoSvc,
        octocrab::DefaultOctocrabBuilderConfig,
        octocrab::NoAuth,
        octocrab::NotLayerReady,
    >,
> {
    use anyhow::Context;
    Ok(octocrab::Octocrab::builder()
        .base_uri(base_url)
        .context("invalid GitHub API URL")?
        .add_header(reqwest::header::ACCEPT, GITHUB_JSON.to_owned())
        .add_header(
            reqwest::header::HeaderName::from_static("x-github-api-version"),
            API_VERSION.to_owned(),
        )
        // Retries are `send`'s: octocrab's would repeat a 429 at once,
        // before anyone read its Retry-After.
        .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None))
}

/// Every installation of the App and the repositories each may reach
/// (`GET /app/installations`, then each one's `GET /installation/repositories`).
pub async fn installations(
    base_url: &str,
    app: &AppAuth,
    limits: &Limits,
) -> anyhow::Result<Vec<Installation>> {
    use anyhow::Context;
    #[derive(Deserialize)]
    struct Listed {
        id: u64,
    }
    #[derive(Deserialize)]
    struct Repositories {
        repositories: Vec<Repository>,
    }
    #[derive(Deserialize)]
    struct Repository {
        full_name: String,
    }
    let crab = builder(base_url)?
        .app(app.app_id.into(), app.key.clone())
        .build()?;
    let mut listed: Vec<Listed> = Vec::new();
    for page in 1.. {
        let route = format!("/app/installations?per_page=100&page={page}");
        let batch: Vec<Listed> = send(limits, &crab, Method::Get, &route, None)
            .await
            .context("listing the GitHub App's installations")?;
        let done = batch.len() < 100;
        listed.extend(batch);
        if done {
            break;
        }
    }
    let mut installations = Vec::new();
    for Listed { id } in listed {
        let client = crab.installation(id.into())?;
        let mut repositories = Vec::new();
        for page in 1.. {
            let route = format!("/installation/repositories?per_page=100&page={page}");
            let batch: Repositories = send(limits, &client, Method::Get, &route, None)
                .await
                .with_context(|| format!("listing the repositories of installation {id}"))?;
            let done = batch.repositories.len() < 100;
            repositories
                .extend((batch.repositories.iter()).filter_map(|r| RepoName::parse(&r.full_name)));
            if done {
                break;
            }
        }
        installations.push(Installation { id, repositories });
    }
    Ok(installations)
}

/// The GitHub client for one repository.
#[derive(Clone)]
pub struct Forge {
    crab: octocrab::Octocrab,
    /// The API's base URL, for messages.
    api: String,
    repo: RepoName,
    identity: Arc<OnceCell<String>>,
    /// The default branch and when it was read: it is asked for on every
    /// production poll and changes almost never.
    default_branch: Arc<Mutex<Option<(Instant, String)>>>,
    app_crab: Option<octocrab::Octocrab>,
    /// GitHub's limits, kept for every clone of this client.
    limits: Arc<Limits>,
}

/// The HTTP methods pullstack sends; a write says which goes first when
/// several wait for their turn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post(Priority),
    Patch(Priority),
}

impl Forge {
    /// Connects to the API at `base_url` for `repo`. For a GitHub App, the
    /// installation is looked up from the repository when not given.
    pub async fn connect(
        base_url: &str,
        repo: RepoName,
        auth: Auth,
        writes_per_minute: u32,
    ) -> anyhow::Result<Forge> {
        use anyhow::Context;
        let builder = builder(base_url)?;
        let limits = Arc::new(Limits::new(writes_per_minute));
        let (crab, app_crab) = match auth {
            Auth::Token(token) => (builder.personal_token(token).build()?, None),
            Auth::App {
                app_id,
                key,
                installation_id,
            } => {
                let app = builder.app(app_id.into(), key).build()?;
                let installation = match installation_id {
                    Some(id) => id,
                    None => {
                        let route = format!("/repos/{repo}/installation");
                        let found: Created = send(&limits, &app, Method::Get, &route, None)
                            .await
                            .context("finding the GitHub App installation")?;
                        found.id
                    }
                };
                (app.installation(installation.into())?, Some(app))
            }
        };
        Ok(Forge {
            crab,
            api: base_url.trim_end_matches('/').to_owned(),
            repo,
            identity: Arc::new(OnceCell::new()),
            default_branch: Arc::default(),
            app_crab,
            limits,
        })
    }

    /// The client for `repo` in a GitHub App's `installation`, keeping
    /// `limits`, which every repository of the installation shares: GitHub
    /// counts its limits per installation.
    pub fn for_installation(
        base_url: &str,
        repo: RepoName,
        app: &AppAuth,
        installation: u64,
        limits: Arc<Limits>,
    ) -> anyhow::Result<Forge> {
        let app_crab = builder(base_url)?
            .app(app.app_id.into(), app.key.clone())
            .build()?;
        Ok(Forge {
            crab: app_crab.installation(installation.into())?,
            api: base_url.trim_end_matches('/').to_owned(),
            repo,
            identity: Arc::new(OnceCell::new()),
            default_branch: Arc::default(),
            app_crab: Some(app_crab),
            limits,
        })
    }

    pub fn repo(&self) -> &RepoName {
        &self.repo
    }

    /// Shares the configured writes a minute with `processes` in all
    /// (replicas): this client then paces its share.
    pub fn share_writes(&self, processes: u32) {
        self.limits.share(processes);
    }

    /// The file at `path` on `git_ref`, with its blob SHA; `None` when the
    /// repository has no such file there.
    pub async fn file(&self, path: &str, git_ref: &str) -> Result<Option<RepoFile>> {
        #[derive(Deserialize)]
        struct Contents {
            sha: String,
            #[serde(default)]
            content: String,
            #[serde(default)]
            encoding: String,
        }
        let path = utf8_percent_encode(path, PATH_SEGMENTS);
        let git_ref = utf8_percent_encode(git_ref, PATH_SEGMENTS);
        let route = format!("/repos/{}/contents/{path}?ref={git_ref}", self.repo);
        let contents: Contents = match self.get(route).await {
            Ok(contents) => contents,
            Err(ForgeError::NotFound) => return Ok(None),
            Err(err) => return Err(err),
        };
        let text = match contents.encoding.as_str() {
            "base64" => {
                use base64::Engine;
                // GitHub wraps the base64 text every 60 characters.
                let packed: String = contents.content.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(packed)
                    .map_err(|err| ForgeError::Malformed(format!("{path}: {err}")))?;
                String::from_utf8(bytes)
                    .map_err(|_| ForgeError::Malformed(format!("{path} is not UTF-8 text")))?
            }
            "" | "utf-8" => contents.content,
            other => {
                return Err(ForgeError::Malformed(format!(
                    "{path}: unknown encoding {other:?}"
                )));
            }
        };
        Ok(Some(RepoFile {
            sha: contents.sha,
            text,
        }))
    }

    /// Uses `login` as pullstack's own login instead of asking GitHub: a
    /// token that cannot read `/user` (an Actions `GITHUB_TOKEN`) still finds
    /// the comments it wrote.
    pub fn with_identity(mut self, login: impl Into<String>) -> Forge {
        self.identity = Arc::new(OnceCell::from(login.into()));
        self
    }

    /// The login pullstack's own comments are written by.
    pub async fn identity(&self) -> Result<String> {
        self.identity
            .get_or_try_init(|| async {
                match &self.app_crab {
                    Some(app) => {
                        let app: App = send(&self.limits, app, Method::Get, "/app", None).await?;
                        Ok(format!("{}[bot]", app.slug))
                    }
                    None => Ok(self.get::<User>("/user".into()).await?.login),
                }
            })
            .await
            .cloned()
    }

    /// Asks GitHub which login pullstack writes as, once at start, so that a
    /// wrong API URL or bad credentials stop the start with a message that
    /// says what to check, instead of failing every pass. A transient
    /// failure only warns: each pass asks again.
    pub async fn introduce(&self) -> anyhow::Result<()> {
        let api = &self.api;
        let request = if self.app_crab.is_some() {
            "GET /app"
        } else {
            "GET /user"
        };
        match self.identity().await {
            Ok(login) => {
                tracing::info!(login, api, "pullstack writes to GitHub as {login}");
                Ok(())
            }
            Err(err) if err.is_transient() => {
                tracing::warn!(error = %err, api, "{request} failed; every pass asks again");
                Ok(())
            }
            Err(err) => Err(anyhow::anyhow!(
                "asking GitHub which login pullstack writes as ({request} on {api}): {err}. \
                 Check that {api} is GitHub's API (https://api.github.com, or \
                 https://HOST/api/v3 on GitHub Enterprise Server) and that the credentials \
                 are valid"
            )),
        }
    }

    pub async fn pull_request(&self, number: u64) -> Result<Option<PullRequest>> {
        match self
            .get(format!("/repos/{}/pulls/{number}", self.repo))
            .await
        {
            Ok(pr) => Ok(Some(pr)),
            Err(ForgeError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn open_pull_requests(&self) -> Result<Vec<PullRequest>> {
        self.get_all(format!("/repos/{}/pulls?state=open", self.repo))
            .await
    }

    /// The repository's default branch, read again at most every
    /// [`DEFAULT_BRANCH_TTL`].
    pub async fn default_branch(&self) -> Result<String> {
        #[derive(Deserialize)]
        struct Repo {
            default_branch: String,
        }
        if let Some((at, branch)) = &*self.default_branch.lock().expect("default branch lock")
            && at.elapsed() < DEFAULT_BRANCH_TTL
        {
            return Ok(branch.clone());
        }
        let repo: Repo = self.get(format!("/repos/{}", self.repo)).await?;
        *self.default_branch.lock().expect("default branch lock") =
            Some((Instant::now(), repo.default_branch.clone()));
        Ok(repo.default_branch)
    }

    /// The commit at the head of `branch`, or `None` if it does not exist.
    pub async fn branch_head(&self, branch: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Branch {
            commit: Commit,
        }
        #[derive(Deserialize)]
        struct Commit {
            sha: String,
        }
        let branch = utf8_percent_encode(branch, PATH_SEGMENTS);
        match self
            .get::<Branch>(format!("/repos/{}/branches/{branch}", self.repo))
            .await
        {
            Ok(b) => Ok(Some(b.commit.sha)),
            Err(ForgeError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every branch name in the repository.
    pub async fn branches(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Branch {
            name: String,
        }
        let branches: Vec<Branch> = self
            .get_all(format!("/repos/{}/branches", self.repo))
            .await?;
        Ok(branches.into_iter().map(|b| b.name).collect())
    }

    /// The pull requests a commit belongs to (for a merge: the merged PR).
    pub async fn pulls_for_commit(&self, sha: &str) -> Result<Vec<PullRequest>> {
        self.get(format!("/repos/{}/commits/{sha}/pulls", self.repo))
            .await
    }

    pub async fn comments(&self, issue: u64) -> Result<Vec<Comment>> {
        self.get_all(format!("/repos/{}/issues/{issue}/comments", self.repo))
            .await
    }

    /// Posts a comment; GitHub's answer says when it was written.
    pub async fn create_comment(&self, issue: u64, body: &str) -> Result<Comment> {
        self.write_post(
            format!("/repos/{}/issues/{issue}/comments", self.repo),
            &serde_json::json!({ "body": body }),
            Priority::Shown,
        )
        .await
    }

    /// Replaces a comment's text; GitHub's answer says when.
    pub async fn update_comment(&self, id: u64, body: &str) -> Result<Comment> {
        let route = format!("/repos/{}/issues/comments/{id}", self.repo);
        let body = serde_json::json!({ "body": body });
        let method = Method::Patch(Priority::Shown);
        send(&self.limits, &self.crab, method, &route, Some(&body)).await
    }

    /// Whether pullstack already reacted to a comment: the durable record
    /// that its command was answered, kept on GitHub across restarts.
    /// `None` when the comment is gone.
    pub async fn reacted(&self, comment_id: u64) -> Result<Option<bool>> {
        let me = self.identity().await?;
        let route = format!(
            "/repos/{}/issues/comments/{comment_id}/reactions",
            self.repo
        );
        match self.get_all::<Reaction>(route).await {
            Ok(reactions) => Ok(Some(reactions.iter().any(|r| r.user.login == me))),
            Err(ForgeError::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Adds a reaction (e.g. `eyes`) to acknowledge a command.
    pub async fn react(&self, comment_id: u64, content: &str) -> Result<()> {
        let _: serde_json::Value = self
            .write_post(
                format!(
                    "/repos/{}/issues/comments/{comment_id}/reactions",
                    self.repo
                ),
                &serde_json::json!({ "content": content }),
                Priority::Shown,
            )
            .await?;
        Ok(())
    }

    /// The user's role on the repository. GitHub's `permission` field only
    /// has the legacy values (admin/write/read/none); `role_name` tells
    /// maintain and triage apart. A non-collaborator (404) has no role.
    pub async fn role(&self, login: &str) -> Result<Option<Role>> {
        let url = format!("/repos/{}/collaborators/{login}/permission", self.repo);
        let permission: Permission = match self.get(url).await {
            Ok(p) => p,
            Err(ForgeError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let name = permission
            .role_name
            .filter(|r| !r.is_empty())
            .unwrap_or(permission.permission);
        Ok(match name.as_str() {
            "admin" => Some(Role::Admin),
            "maintain" => Some(Role::Maintain),
            "write" | "push" => Some(Role::Write),
            "triage" => Some(Role::Triage),
            "read" | "pull" => Some(Role::Read),
            _ => None,
        })
    }

    pub(super) async fn get<T: serde::de::DeserializeOwned>(&self, route: String) -> Result<T> {
        send(&self.limits, &self.crab, Method::Get, &route, None).await
    }

    /// Follows `page=` until a short page; GitHub's maximum page size is 100.
    pub(super) async fn get_all<T: serde::de::DeserializeOwned>(
        &self,
        route: String,
    ) -> Result<Vec<T>> {
        let separator = if route.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        for page in 1.. {
            let batch: Vec<T> = self
                .get(format!("{route}{separator}per_page=100&page={page}"))
                .await?;
            let done = batch.len() < 100;
            all.extend(batch);
            if done {
                break;
            }
        }
        Ok(all)
    }

    /// A content-creating request, paced under GitHub's secondary limit.
    pub(super) async fn write_post<T: serde::de::DeserializeOwned>(
        &self,
        route: String,
        body: &serde_json::Value,
        priority: Priority,
    ) -> Result<T> {
        let method = Method::Post(priority);
        send(&self.limits, &self.crab, method, &route, Some(body)).await
    }

    /// A change to something pullstack wrote, paced as a write.
    pub(super) async fn write_patch<T: serde::de::DeserializeOwned>(
        &self,
        route: String,
        body: &serde_json::Value,
        priority: Priority,
    ) -> Result<T> {
        let method = Method::Patch(priority);
        send(&self.limits, &self.crab, method, &route, Some(body)).await
    }

    /// The paths a pull request changes, with how (`added`, `modified`,
    /// `removed`, `renamed`...).
    pub async fn pull_request_files(&self, number: u64) -> Result<Vec<(String, String)>> {
        #[derive(Deserialize)]
        struct File {
            filename: String,
            status: String,
        }
        let files: Vec<File> = self
            .get_all(format!("/repos/{}/pulls/{number}/files", self.repo))
            .await?;
        Ok(files.into_iter().map(|f| (f.filename, f.status)).collect())
    }
}

/// Sends one request to GitHub within its limits: after any pause GitHub
/// asked for and, for a write, in its turn. A pause GitHub asks for in the
/// answer holds every later request of the client. A server error or a
/// failed connection is sent again at once a few times; a rate limit is
/// not (the pause holds the retry), and goes to the caller as a transient
/// [`ForgeError`].
async fn send<T: serde::de::DeserializeOwned>(
    limits: &Limits,
    crab: &octocrab::Octocrab,
    method: Method,
    route: &str,
    body: Option<&serde_json::Value>,
) -> Result<T> {
    use octocrab::FromResponse;
    let write = match method {
        Method::Get => None,
        Method::Post(priority) | Method::Patch(priority) => Some(priority),
    };
    let kind = if write.is_some() { "write" } else { "read" };
    let mut attempt = 0;
    loop {
        limits.ready(write).await;
        metrics::counter!("pullstack_github_requests_total", "kind" => kind).increment(1);
        let answer = match method {
            Method::Get => crab._get(route).await,
            Method::Post(_) => crab._post(route, body).await,
            Method::Patch(_) => crab._patch(route, body).await,
        };
        let err = match answer {
            Ok(response) => {
                let paused = limits.observe(response.status().as_u16(), response.headers());
                match octocrab::map_github_error(response).await {
                    Ok(response) => {
                        return T::from_response(response)
                            .await
                            .map_err(ForgeError::from_octocrab);
                    }
                    Err(err) => {
                        let err = ForgeError::from_octocrab(err);
                        if err.is_rate_limit() && !paused {
                            limits.pause(SECONDARY_WAIT);
                        }
                        err
                    }
                }
            }
            Err(err) => ForgeError::from_octocrab(err),
        };
        if attempt < RETRIES_AT_ONCE && err.is_transient() && !err.is_rate_limit() {
            attempt += 1;
            continue;
        }
        return Err(err);
    }
}
