//! How an environment's progress reaches GitHub: its sticky comment, its
//! Deployment and its commit status, and the failures CloudFormation reported.

use super::Controller;
use super::preview::Env;
use super::sticky::Sticky;
use crate::aws::stacks::Stack;
use crate::config::Capacity;
use crate::domain::comment::{FailureEvent, State, View};
use crate::domain::cost::{self, Shape};
use crate::github::client::{DeploymentState, StatusState};

const STATUS_PREFIX: &str = "pullstack/";

impl Controller {
    pub(super) async fn report_failure(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        stack: &Stack,
        sha: &str,
    ) -> anyhow::Result<()> {
        let events = self.aws.stacks.failures(env.stack_name, 5).await?;
        let events = failure_events(events);
        let reason = format!("The stack ended in `{}`.", stack.status.as_str());
        self.fail(env, sticky, sha, reason, events).await
    }

    pub(super) async fn fail(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        sha: &str,
        reason: String,
        events: Vec<FailureEvent>,
    ) -> anyhow::Result<()> {
        sticky.memory.failed = Some(sha.to_owned());
        self.deployment(
            env,
            sticky,
            sha,
            DeploymentState::Failure,
            None,
            "deploy failed",
        )
        .await?;
        self.status(env, sha, StatusState::Failure, None, "deploy failed")
            .await?;
        self.report(env, sticky, Some(sha), State::Failed { reason, events })
            .await?;
        Ok(())
    }

    /// Ensures a Deployment exists for `sha` and gives it a status.
    pub(super) async fn deployment(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        sha: &str,
        state: DeploymentState,
        url: Option<&str>,
        description: &str,
    ) -> anyhow::Result<()> {
        let id = match &sticky.memory.deployment {
            Some((id, deployed)) if deployed == sha => *id,
            _ => {
                let environment = env.key.deployment_environment();
                let id = self
                    .forge
                    .create_deployment(
                        sha,
                        &environment,
                        true,
                        false,
                        &format!("pullstack preview for {}", env.key),
                    )
                    .await?;
                sticky.memory.deployment = Some((id, sha.to_owned()));
                id
            }
        };
        self.forge
            .deployment_status(id, state, url, description)
            .await?;
        Ok(())
    }

    pub(super) async fn status(
        &self,
        env: &Env<'_>,
        sha: &str,
        state: StatusState,
        url: Option<&str>,
        description: &str,
    ) -> anyhow::Result<()> {
        if sha.is_empty() {
            return Ok(());
        }
        let context = format!("{STATUS_PREFIX}{}", env.key.slug());
        let posted = (state, url.map(str::to_owned), description.to_owned());
        let key = (sha.to_owned(), context.clone());
        if self.statuses.lock().expect("statuses lock").get(&key) == Some(&posted) {
            // Already says so: passes that change nothing post nothing.
            return Ok(());
        }
        self.forge
            .commit_status(sha, &context, state, url, description)
            .await?;
        self.statuses
            .lock()
            .expect("statuses lock")
            .put(key, posted);
        Ok(())
    }

    pub(super) async fn report(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        sha: Option<&str>,
        state: State,
    ) -> anyhow::Result<()> {
        let title = env.key.to_string();
        let memory = sticky.memory.clone();
        let cost = self.cost(&state);
        let view = View {
            title: &title,
            stack: env.stack_name,
            sha,
            state,
            memory: &memory,
            cost: cost.as_deref(),
        };
        self.sticky.show(&self.forge, sticky, view, true).await?;
        Ok(())
    }
}

impl Controller {
    /// The estimated hourly cost of an environment in `state`, while it has
    /// (or is about to have) running resources.
    fn cost(&self, state: &State) -> Option<String> {
        let preview = &self.config.preview;
        let tasks = match state {
            State::Asleep { .. } => 0,
            State::Deploying { .. } | State::Ready { .. } | State::Queued { .. } => {
                preview.desired_count
            }
            _ => return None,
        };
        let spot = preview.capacity == Capacity::FargateSpot;
        let shape = Shape::parse(&preview.cpu, &preview.memory, tasks, spot)?;
        Some(cost::estimate(shape, &preview.prices).to_string())
    }
}

/// CloudFormation's resource failures, as the comment shows them.
pub(super) fn failure_events(
    failures: Vec<crate::aws::stacks::ResourceFailure>,
) -> Vec<FailureEvent> {
    failures
        .into_iter()
        .map(|f| FailureEvent {
            logical_id: f.logical_id,
            resource_type: f.resource_type,
            reason: f.reason,
        })
        .collect()
}
