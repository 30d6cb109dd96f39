//! Tearing a preview environment down: after close or `/pullstack destroy`,
//! coping with a create that never finished and with DELETE_FAILED, then
//! saying on the PR what was removed.

use super::Controller;
use super::preview::Env;
use super::queue::Next;
use super::report::failure_events;
use super::sticky::Sticky;
use crate::aws::stacks::{Phase, Stack};
use crate::domain::comment::State;
use crate::github::client::{DeploymentState, StatusState};
use chrono::Utc;
use std::time::Duration;

const MAX_DELETE_ATTEMPTS: u32 = 3;

impl Controller {
    /// Tears the environment down and reports it.
    pub(super) async fn remove(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        stack: Option<Stack>,
        why: &str,
        reversible: bool,
    ) -> anyhow::Result<Next> {
        let Some(stack) = stack else {
            return self.removed(env, sticky, why, reversible).await;
        };
        match stack.phase() {
            Phase::Deleting => {
                self.report(env, sticky, None, State::Removing).await?;
                let elapsed = stack
                    .operation_started
                    .map(|t| (Utc::now() - t).to_std().unwrap_or_default())
                    .unwrap_or_default();
                Ok(Next::After(self.poll_delay(elapsed)))
            }
            // Another operation is running; CloudFormation allows no second one.
            Phase::InProgress => Ok(Next::After(self.poll_delay(Duration::ZERO))),
            _ => self.delete(env, sticky, &stack).await,
        }
    }

    pub(super) async fn delete(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        stack: &Stack,
    ) -> anyhow::Result<Next> {
        let attempts = {
            let mut attempts = self.delete_attempts.lock().expect("delete attempts lock");
            let n = attempts.entry(env.key.clone()).or_insert(0);
            if stack.phase() == Phase::DeleteFailed {
                *n += 1;
            }
            *n
        };
        if attempts > MAX_DELETE_ATTEMPTS {
            let events = self
                .aws
                .stacks
                .failures(env.stack_name, 5)
                .await
                .unwrap_or_default();
            let reason = format!(
                "Deleting the stack failed {MAX_DELETE_ATTEMPTS} times. Remove what blocks it (see below), then `/pullstack destroy`.",
            );
            let events = failure_events(events);
            self.report(env, sticky, None, State::Failed { reason, events })
                .await?;
            anyhow::bail!("stack {} keeps failing to delete", env.stack_name);
        }
        if sticky.memory.removing.is_empty() {
            sticky.memory.removing = self
                .aws
                .stacks
                .resources(env.stack_name)
                .await
                .unwrap_or_default();
            sticky
                .memory
                .removing
                .insert(0, format!("AWS::CloudFormation::Stack {}", env.stack_name));
        }
        self.aws.stacks.delete(env.stack_name).await?;
        tracing::info!(stack = env.stack_name, "delete started");
        self.report(env, sticky, None, State::Removing).await?;
        Ok(Next::After(self.poll_delay(Duration::ZERO)))
    }

    /// The stack is gone: close the Deployment and say what was removed.
    pub(super) async fn removed(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        why: &str,
        reversible: bool,
    ) -> anyhow::Result<Next> {
        self.delete_attempts
            .lock()
            .expect("delete attempts lock")
            .remove(env.key);
        self.slot_freed(env.key);
        if sticky.comment_id.is_none() && sticky.memory.deployment.is_none() {
            // Nothing was ever deployed or said: nothing to report.
            return Ok(Next::Done);
        }
        let sha = sticky
            .memory
            .deployment
            .as_ref()
            .map(|(_, sha)| sha.clone());
        if let Some((id, _)) = sticky.memory.deployment.take() {
            self.forge
                .deployment_status(id, DeploymentState::Inactive, None, "environment removed")
                .await?;
        }
        if let Some(sha) = &sha {
            self.status(env, sha, StatusState::Success, None, "environment removed")
                .await?;
        }
        sticky.memory.ready = None;
        self.report(
            env,
            sticky,
            sha.as_deref(),
            State::Removed {
                why: why.to_owned(),
                reversible,
            },
        )
        .await?;
        Ok(Next::Done)
    }
}
