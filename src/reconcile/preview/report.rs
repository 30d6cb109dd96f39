//! How an environment's progress reaches GitHub: its sticky comment, its
//! Deployment and its commit status, the failures CloudFormation reported,
//! and the notice shown while pullstack's own failures persist.

use super::Pass;
use crate::aws::stacks::{ResourceFailure, Stack};
use crate::config::Capacity;
use crate::config::EdgeMode;
use crate::domain::comment::{FailureEvent, State, View};
use crate::domain::cost::{self, Shape};
use crate::github::client::{DeploymentState, StatusState};
use crate::reconcile::Result;
use std::num::NonZeroUsize;
use std::sync::Mutex;

const STATUS_PREFIX: &str = "pullstack/";

/// A commit status as posted: state, target URL, description.
type PostedStatus = (StatusState, Option<String>, String);

/// The commit statuses last posted, by (sha, context), so a pass that
/// changes nothing posts nothing. Lost on restart: each status is then
/// posted once more.
///
/// On a PR, a commit status is posted only where no Deployment speaks for
/// the commit yet (waiting for approval, queued, refused, no image): the
/// Deployment already says ready or failed. A branch's head gets the
/// outcome as a commit status too, having no PR to show the Deployment.
pub struct Statuses(Mutex<lru::LruCache<(String, String), PostedStatus>>);

impl Default for Statuses {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(10_000).expect("non-zero");
        Statuses(Mutex::new(lru::LruCache::new(capacity)))
    }
}

/// Deployments GitHub shows as done with (inactive, failed), so a sweep
/// does not read their status again. Lost on restart: each is read once
/// more.
pub struct Retired(Mutex<lru::LruCache<u64, ()>>);

impl Default for Retired {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(10_000).expect("non-zero");
        Retired(Mutex::new(lru::LruCache::new(capacity)))
    }
}

impl Retired {
    pub(super) fn contains(&self, id: u64) -> bool {
        self.0.lock().expect("retired lock").contains(&id)
    }

    pub(super) fn insert(&self, id: u64) {
        self.0.lock().expect("retired lock").put(id, ());
    }
}

/// Whether a Deployment whose newest status is `state` still shows as live.
fn is_live(state: Option<&str>) -> bool {
    matches!(
        state,
        None | Some("success" | "in_progress" | "queued" | "pending")
    )
}

impl Pass<'_> {
    pub(super) async fn report_failure(&mut self, stack: &Stack, sha: &str) -> Result<()> {
        let events = self.ctx.aws.stacks.failures(&stack.name, 5).await?;
        let reason = format!("The stack ended in `{}`.", stack.status.as_str());
        self.fail(sha, reason, failure_events(events)).await
    }

    pub(super) async fn fail(
        &mut self,
        sha: &str,
        reason: String,
        events: Vec<FailureEvent>,
    ) -> Result<()> {
        self.sticky.memory.failed = Some(sha.to_owned());
        self.report(Some(sha), State::Failed { reason, events })
            .await?;
        self.deployment(sha, DeploymentState::Failure, None, "deploy failed")
            .await
    }

    /// The Deployment of `sha`: the one remembered, else one found on
    /// GitHub (the pass that made it may have stopped before remembering
    /// it), else a new one.
    pub(super) async fn ensure_deployment(&mut self, sha: &str) -> Result<u64> {
        if let Some((id, deployed)) = &self.sticky.memory.deployment
            && deployed == sha
        {
            return Ok(*id);
        }
        let forge = &self.ctx.forge;
        let environment = self.env.key.deployment_environment();
        let id = match forge.deployments(&environment, Some(sha), 1).await?.first() {
            Some((id, _)) => *id,
            None => {
                let description = self.env.description();
                forge
                    .create_deployment(sha, &environment, true, false, &description)
                    .await?
            }
        };
        self.sticky.memory.deployment = Some((id, sha.to_owned()));
        // Remembered in this process now; on the comment with its next edit.
        self.ctx.sticky.keep(&self.sticky);
        Ok(id)
    }

    /// Gives the Deployment of `sha` its outcome, then retires the
    /// environment's other Deployments. A commit status says the same only
    /// where one was posted before the Deployment could.
    pub(super) async fn deployment(
        &mut self,
        sha: &str,
        state: DeploymentState,
        url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let id = self.ensure_deployment(sha).await?;
        self.ctx
            .forge
            .deployment_status(id, state, url, description)
            .await?;
        match state {
            // A branch's head commit has no PR timeline to show the
            // Deployment: its commit status carries the outcome and URL.
            DeploymentState::Success | DeploymentState::Failure if self.sticky.issue.is_none() => {
                let state = if state == DeploymentState::Success {
                    StatusState::Success
                } else {
                    StatusState::Failure
                };
                self.status(sha, state, url, description).await?;
            }
            DeploymentState::Success => self.resolve_status(sha, url, description).await?,
            _ => {}
        }
        self.retire_deployments(Some(id)).await
    }

    /// Marks every live Deployment of the environment but `keep` inactive:
    /// those of replaced commits, and any a stopped pass left behind.
    /// GitHub deactivates none of them on its own, since previews are
    /// transient environments.
    pub(super) async fn retire_deployments(&self, keep: Option<u64>) -> Result<()> {
        let ctx = self.ctx;
        let forge = &ctx.forge;
        let environment = self.env.key.deployment_environment();
        for (id, _) in forge.deployments(&environment, None, 100).await? {
            if Some(id) == keep || ctx.retired.contains(id) {
                continue;
            }
            let state = forge.deployment_state(id).await?;
            if is_live(state.as_deref()) {
                let why = if keep.is_some() {
                    "replaced by a newer commit"
                } else {
                    "environment removed"
                };
                forge
                    .deployment_status(id, DeploymentState::Inactive, None, why)
                    .await?;
            }
            ctx.retired.insert(id);
        }
        Ok(())
    }

    /// Posts `success` where this process last posted another state for
    /// `sha` (queued, awaiting approval): a pending status is not left
    /// behind once the Deployment speaks for the commit.
    pub(super) async fn resolve_status(
        &self,
        sha: &str,
        url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let context = self.status_context();
        let key = (sha.to_owned(), context);
        let posted = self
            .ctx
            .statuses
            .0
            .lock()
            .expect("statuses lock")
            .get(&key)
            .cloned();
        match posted {
            Some((StatusState::Success, ..)) | None => Ok(()),
            Some(_) => {
                self.status(sha, StatusState::Success, url, description)
                    .await
            }
        }
    }

    fn status_context(&self) -> String {
        format!("{STATUS_PREFIX}{}", self.env.key.slug())
    }

    pub(super) async fn status(
        &self,
        sha: &str,
        state: StatusState,
        url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        if sha.is_empty() {
            return Ok(());
        }
        let statuses = &self.ctx.statuses.0;
        let context = self.status_context();
        let posted = (state, url.map(str::to_owned), description.to_owned());
        let key = (sha.to_owned(), context.clone());
        if statuses.lock().expect("statuses lock").get(&key) == Some(&posted) {
            // Already says so: passes that change nothing post nothing.
            return Ok(());
        }
        self.ctx
            .forge
            .commit_status(sha, &context, state, url, description)
            .await?;
        statuses.lock().expect("statuses lock").put(key, posted);
        Ok(())
    }

    /// Shows `state` on the sticky comment, if its text changes.
    pub(super) async fn report(&mut self, sha: Option<&str>, state: State) -> Result<()> {
        let title = self.env.key.to_string();
        let memory = self.sticky.memory.clone();
        let cost = self.cost(&state);
        let view = View {
            title: &title,
            stack: &self.env.stack_name,
            sha,
            state,
            memory: &memory,
            cost: cost.as_deref(),
        };
        let ctx = self.ctx;
        ctx.sticky
            .show(&ctx.forge, &mut self.sticky, view, true)
            .await?;
        Ok(())
    }

    /// Puts a notice that pullstack keeps failing on the comment, under the
    /// state it shows, tied to the log by `id`. Best effort: the failure is
    /// already on its way to the log and the retry.
    pub(super) async fn notice(&mut self, id: &str) {
        if self.sticky.issue.is_none() {
            return;
        }
        let memory = &mut self.sticky.memory;
        if memory.notice.is_none() {
            memory.notice = Some(id.to_owned());
        }
        if let Err(err) = self.reshow().await {
            tracing::warn!(env = %self.env.key, error = %err, "could not show the failure notice");
        }
    }

    /// Renders the comment again with the state it last showed (or says
    /// work is starting when it showed none).
    pub(super) async fn reshow(&mut self) -> Result<()> {
        let state = self
            .sticky
            .last_state()
            .cloned()
            .unwrap_or(State::Deploying {
                status: "starting".into(),
                since: None,
            });
        let sha = self.target.clone().or_else(|| self.head());
        self.report(sha.as_deref(), state).await
    }

    /// The estimated hourly cost of an environment in `state`, while it has
    /// (or is about to have) running resources.
    fn cost(&self, state: &State) -> Option<String> {
        let preview = &self.ctx.config.preview;
        let tasks = match state {
            State::Asleep { .. } => 0,
            State::Deploying { .. } | State::Ready { .. } | State::Queued { .. } => {
                preview.desired_count
            }
            _ => return None,
        };
        let spot = preview.capacity == Capacity::FargateSpot;
        let shape = Shape::parse(&preview.cpu, &preview.memory, tasks, spot)?;
        let sharing = match self.ctx.config.edge_mode() {
            EdgeMode::Dedicated => 1,
            EdgeMode::Shared => self
                .listener
                .as_deref()
                .and_then(|l| self.ctx.edge.load(l))
                .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        };
        Some(cost::estimate(shape, &preview.prices, sharing).to_string())
    }
}

/// CloudFormation's resource failures, as the comment shows them.
pub(super) fn failure_events(failures: Vec<ResourceFailure>) -> Vec<FailureEvent> {
    failures
        .into_iter()
        .map(|f| FailureEvent {
            logical_id: f.logical_id,
            resource_type: f.resource_type,
            reason: f.reason,
        })
        .collect()
}
