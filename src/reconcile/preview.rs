//! A pull request's preview environment: from desired and actual state to the
//! next step.
//!
//! Each pass reads the PR (GitHub) and its stack (CloudFormation), takes at
//! most one stack action, reports on the PR, and asks to be polled while an
//! operation runs. Nothing here blocks a worker on AWS.

use super::queue::Next;
use super::sticky::Sticky;
use super::{Controller, Intent};
use crate::aws::stacks::{Phase, Stack, Started, tag};
use crate::domain::comment::{self, State};
use crate::domain::naming::{EnvKey, short_sha};
use crate::github::client::{DeploymentState, PullRequest, StatusState};
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

/// What should exist for the PR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Desired {
    /// A stack at this commit.
    Deployed { sha: String },
    /// A fork PR whose head commit nobody approved yet.
    AwaitingApproval,
    /// No stack, for this reason (shown on the PR); `reversible` when a
    /// command can bring it back.
    Absent { why: String, reversible: bool },
}

/// What pullstack wants for `pr`, given what the comment remembers.
pub fn desired(
    pr: Option<&PullRequest>,
    memory: &comment::Memory,
    enabled: bool,
    repo: &crate::domain::naming::RepoName,
) -> Desired {
    let Some(pr) = pr else {
        return Desired::Absent {
            why: "the pull request no longer exists".into(),
            reversible: false,
        };
    };
    if !pr.is_open() {
        let why = if pr.merged {
            "the pull request was merged"
        } else {
            "the pull request was closed"
        };
        return Desired::Absent {
            why: why.into(),
            reversible: false,
        };
    }
    if !enabled {
        return Desired::Absent {
            why: "previews are disabled in the config".into(),
            reversible: false,
        };
    }
    if memory.destroyed.as_deref() == Some(pr.head.sha.as_str()) {
        return destroyed(memory);
    }
    if pr.is_fork_of(repo) && memory.approved.as_deref() != Some(pr.head.sha.as_str()) {
        return Desired::AwaitingApproval;
    }
    Desired::Deployed {
        sha: pr.head.sha.clone(),
    }
}

/// Why an environment was taken down at its current commit, and how to
/// bring it back.
pub(super) fn destroyed(memory: &comment::Memory) -> Desired {
    let why = if memory.idle_deleted {
        "deleted after a long time without a push or activity; a push or `/pullstack wake` creates it again"
    } else {
        "`/pullstack destroy` was given"
    };
    Desired::Absent {
        why: why.into(),
        reversible: true,
    }
}

/// Forgets a destroy once the environment moved past the commit it was
/// given at: a push brings the environment back.
pub(super) fn forgive_destroy(memory: &mut comment::Memory, head: Option<&str>) {
    if memory.destroyed.is_some() && memory.destroyed.as_deref() != head {
        memory.destroyed = None;
        memory.idle_deleted = false;
    }
}

/// Flags a pass carries from the commands it handled.
#[derive(Default)]
pub(super) struct Pass {
    pub(super) redeploy: bool,
    pub(super) wake: bool,
}

/// The task count a deploy asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scale {
    /// The configured count.
    Up,
    /// Zero, for an idle environment.
    Zero,
}

impl Controller {
    pub(super) async fn preview(&self, number: u64, intents: Vec<Intent>) -> anyhow::Result<Next> {
        let key = EnvKey::Pr(number);
        let slug = key.slug();
        let pr = self.forge.pull_request(number).await?;
        let mut sticky = self.sticky.load(&self.forge, number, &slug).await?;
        let mut pass = Pass::default();
        for intent in intents {
            self.handle(pr.as_ref(), &mut sticky, &mut pass, intent)
                .await?;
        }
        forgive_destroy(&mut sticky.memory, pr.as_ref().map(|p| p.head.sha.as_str()));
        let repo = self.forge.repo().clone();
        let desired = desired(
            pr.as_ref(),
            &sticky.memory,
            self.config.preview.enabled,
            &repo,
        );
        let stack_name = key.stack_name(&self.config.app);
        let branch = pr.as_ref().map_or("", |p| p.head.r#ref.as_str());
        let env = Env {
            key: &key,
            stack_name: &stack_name,
            pr: pr.as_ref(),
            branch,
            touched_at: pr.as_ref().and_then(|p| p.updated_at),
            kept: pr.as_ref().is_some_and(|p| self.kept(p)),
            since: pr.as_ref().and_then(|p| p.created_at),
        };
        self.pursue(&env, &mut sticky, desired, pass).await
    }

    /// Takes the next step from the stack as it is toward `desired`.
    pub(super) async fn pursue(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        desired: Desired,
        pass: Pass,
    ) -> anyhow::Result<Next> {
        let stack = self.aws.stacks.describe(env.stack_name).await?;
        match desired {
            Desired::Deployed { sha } => self.converge(env, sticky, stack, &sha, pass).await,
            Desired::AwaitingApproval => {
                let sha = env.pr.map(|p| p.head.sha.clone()).unwrap_or_default();
                let label = self.config.preview.approve_label.clone();
                self.report(env, sticky, Some(&sha), State::AwaitingApproval { label })
                    .await?;
                self.status(
                    env,
                    &sha,
                    StatusState::Pending,
                    None,
                    "waiting for a maintainer's approval",
                )
                .await?;
                Ok(Next::Done)
            }
            Desired::Absent { why, reversible } => {
                self.remove(env, sticky, stack, &why, reversible).await
            }
        }
    }

    /// Moves the stack toward `sha`.
    async fn converge(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        stack: Option<Stack>,
        sha: &str,
        pass: Pass,
    ) -> anyhow::Result<Next> {
        if pass.redeploy {
            sticky.memory.failed = None;
            sticky.memory.ready = None;
        }
        let Some(stack) = stack else {
            if sticky.memory.failed.as_deref() == Some(sha) {
                return Ok(Next::Done);
            }
            return self.deploy(env, sticky, None, sha, Scale::Up).await;
        };
        let deployed = stack.tag(tag::COMMIT).unwrap_or_default().to_owned();
        let elapsed = stack
            .operation_started
            .map(|t| (Utc::now() - t).to_std().unwrap_or_default())
            .unwrap_or_default();
        match stack.phase() {
            Phase::InProgress | Phase::Deleting => {
                let mut status = stack.status.as_str().to_owned();
                if stack.tag(tag::IDLE_SINCE).is_some() {
                    status.push_str(", scaling to zero");
                }
                self.report(env, sticky, Some(sha), State::Deploying { status, elapsed })
                    .await?;
                Ok(Next::After(self.poll_delay(elapsed)))
            }
            Phase::RollbackFailed => {
                tracing::warn!(
                    stack = env.stack_name,
                    "update rollback failed; continuing it"
                );
                self.aws.stacks.continue_rollback(env.stack_name).await?;
                Ok(Next::After(self.poll_delay(Duration::ZERO)))
            }
            Phase::DeleteFailed => self.delete(env, sticky, &stack).await,
            Phase::Dead => {
                if sticky.memory.failed.as_deref() != Some(deployed.as_str())
                    && sticky.memory.ready.is_none()
                    && !pass.redeploy
                {
                    self.report_failure(env, sticky, &stack, &deployed).await?;
                    if deployed == sha {
                        return Ok(Next::Done);
                    }
                }
                if deployed == sha && sticky.memory.failed.as_deref() == Some(sha) {
                    return Ok(Next::Done);
                }
                // A failed create cannot be updated: delete, then create anew.
                self.delete(env, sticky, &stack).await
            }
            Phase::UpdateRolledBack => {
                let attempted = sticky.memory.deployment.as_ref().map(|(_, s)| s.as_str());
                let failed = sticky.memory.failed.as_deref();
                if attempted == Some(sha)
                    && failed != Some(sha)
                    && sticky.memory.ready.as_deref() != Some(sha)
                {
                    self.report_failure(env, sticky, &stack, sha).await?;
                    return Ok(Next::Done);
                }
                if failed == Some(sha) {
                    return Ok(Next::Done);
                }
                self.deploy(env, sticky, Some(&stack), sha, Scale::Up).await
            }
            Phase::Stable if deployed == sha && !pass.redeploy => {
                self.settled(env, sticky, &stack, sha, elapsed, pass.wake)
                    .await
            }
            Phase::Stable => self.deploy(env, sticky, Some(&stack), sha, Scale::Up).await,
        }
    }

    /// Creates or updates the stack for `sha`, once its image is in ECR,
    /// with the configured tasks or none.
    pub(super) async fn deploy(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        stack: Option<&Stack>,
        sha: &str,
        scale: Scale,
    ) -> anyhow::Result<Next> {
        let shared = self.shared().await?;
        let image = shared.image(sha);
        if !self.aws.images.exists(&shared.repository_name, sha).await? {
            return self.wait_for_image(env, sticky, sha, &image).await;
        }
        self.image_waits
            .lock()
            .expect("image waits lock")
            .remove(&(env.key.clone(), sha.to_owned()));
        let spec = self.spec(env, &shared, stack, sha, scale)?;
        let deploy = spec.deploy(env.stack_name);
        sticky.memory.failed = None;
        sticky.memory.ready = None;
        sticky.memory.removing.clear();
        match stack {
            None => {
                if let Some(waiting) = self.create(env, sticky, sha, &deploy).await? {
                    return Ok(waiting);
                }
            }
            Some(existing) => {
                if self.aws.stacks.update(&deploy).await? == Started::NoChange {
                    // Same template and parameters: restart the tasks instead.
                    if let (Some(cluster), Some(service)) = (
                        existing.output("ClusterName"),
                        existing.output("ServiceName"),
                    ) {
                        self.aws.services.restart(cluster, service).await?;
                    }
                    tracing::info!(stack = env.stack_name, "stack unchanged; tasks restarted");
                }
            }
        }
        if scale == Scale::Zero {
            let state = State::Deploying {
                status: "UPDATE_IN_PROGRESS, scaling to zero".into(),
                elapsed: Duration::ZERO,
            };
            self.report(env, sticky, Some(sha), state).await?;
            return Ok(Next::After(self.poll_delay(Duration::ZERO)));
        }
        tracing::info!(
            stack = env.stack_name,
            commit = short_sha(sha),
            "deploy started"
        );
        self.deployment(
            env,
            sticky,
            sha,
            DeploymentState::InProgress,
            None,
            "deploying",
        )
        .await?;
        self.status(env, sha, StatusState::Pending, None, "deploying")
            .await?;
        let status = if stack.is_some() {
            "UPDATE_IN_PROGRESS"
        } else {
            "CREATE_IN_PROGRESS"
        };
        self.report(
            env,
            sticky,
            Some(sha),
            State::Deploying {
                status: status.into(),
                elapsed: Duration::ZERO,
            },
        )
        .await?;
        Ok(Next::After(self.poll_delay(Duration::ZERO)))
    }

    async fn wait_for_image(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        sha: &str,
        image: &str,
    ) -> anyhow::Result<Next> {
        let waited = {
            let mut waits = self.image_waits.lock().expect("image waits lock");
            waits
                .entry((env.key.clone(), sha.to_owned()))
                .or_insert_with(Instant::now)
                .elapsed()
        };
        if waited > self.config.preview.image_timeout {
            let state = State::ImageTimeout {
                image: image.to_owned(),
                waited,
            };
            self.report(env, sticky, Some(sha), state).await?;
            self.status(
                env,
                sha,
                StatusState::Failure,
                None,
                "the image never appeared in ECR",
            )
            .await?;
            return Ok(Next::Done);
        }
        self.report(
            env,
            sticky,
            Some(sha),
            State::WaitingForImage {
                image: image.to_owned(),
                waited,
            },
        )
        .await?;
        self.status(
            env,
            sha,
            StatusState::Pending,
            None,
            "waiting for the image",
        )
        .await?;
        Ok(Next::After(self.poll_delay(waited)))
    }

    /// The stack is at `sha`: check the URL if configured, then say so.
    pub(super) async fn ready(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        stack: &Stack,
        sha: &str,
        took: Duration,
    ) -> anyhow::Result<Next> {
        let Some(url) = stack.output("Url").map(str::to_owned) else {
            anyhow::bail!("stack {} has no Url output", env.stack_name);
        };
        if sticky.memory.ready.as_deref() == Some(sha) {
            return Ok(Next::Done);
        }
        let preview = &self.config.preview;
        if preview.ready_check && !probe(&url, &preview.health_path).await {
            if took > preview.ready_timeout {
                let reason = format!(
                    "the stack is up but {url}{} did not answer within {}.",
                    preview.health_path,
                    comment::human(preview.ready_timeout)
                );
                return self
                    .fail(env, sticky, sha, reason, Vec::new())
                    .await
                    .map(|()| Next::Done);
            }
            let state = State::Deploying {
                status: "waiting for the app to answer".into(),
                elapsed: took,
            };
            self.report(env, sticky, Some(sha), state).await?;
            return Ok(Next::After(self.poll_delay(took)));
        }
        sticky.memory.ready = Some(sha.to_owned());
        self.deployment(
            env,
            sticky,
            sha,
            DeploymentState::Success,
            Some(&url),
            "ready",
        )
        .await?;
        self.status(env, sha, StatusState::Success, Some(&url), "ready")
            .await?;
        self.report(env, sticky, Some(sha), State::Ready { url, took })
            .await?;
        tracing::info!(stack = env.stack_name, commit = short_sha(sha), took = ?took, "environment ready");
        Ok(Next::Done)
    }
}

/// The environment a pass works on.
pub(super) struct Env<'a> {
    pub(super) key: &'a EnvKey,
    pub(super) stack_name: &'a str,
    pub(super) pr: Option<&'a PullRequest>,
    /// The branch deployed: the PR's head branch, or the environment's own.
    pub(super) branch: &'a str,
    /// The last time GitHub saw anything happen to it besides deploys (a
    /// PR's `updated_at`), for the idle rules.
    pub(super) touched_at: Option<DateTime<Utc>>,
    /// Whether the idle rules spare it (keep label or exempt branch).
    pub(super) kept: bool,
    /// Since when it has wanted an environment: its place in line when the
    /// preview limit is reached.
    pub(super) since: Option<DateTime<Utc>>,
}

/// Whether `url` + `path` answers with a non-error status within a few seconds.
async fn probe(url: &str, path: &str) -> bool {
    let target = format!("{}{path}", url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build();
    match client {
        Ok(client) => client
            .get(target)
            .send()
            .await
            .is_ok_and(|r| !r.status().is_server_error() && !r.status().is_client_error()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::probe;

    #[tokio::test]
    async fn probe_needs_a_healthy_answer() {
        use axum::http::StatusCode;
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/broken", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        assert!(probe(&url, "/health").await);
        assert!(!probe(&url, "/broken").await);
        assert!(!probe(&url, "/missing").await);
        assert!(!probe("http://127.0.0.1:9", "/").await);
    }
}
