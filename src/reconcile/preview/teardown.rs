//! Tearing a preview environment down: after close, `/pullstack destroy` or
//! long idleness, coping with a create that never finished and with
//! DELETE_FAILED, then saying what was removed. A freed slot wakes the
//! environments waiting in line.

use super::Pass;
use super::record::Outcome;
use super::report::failure_events;
use crate::aws::stacks::{Phase, Stack};
use crate::config::EdgeMode;
use crate::domain::comment::State;
use crate::domain::edge;
use crate::domain::naming::EnvKey;
use crate::reconcile::{Action, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const MAX_DELETE_ATTEMPTS: u32 = 3;

/// DELETE_FAILED attempts per environment. Lost on restart: the count then
/// starts again, so a stuck delete is retried a few more times.
#[derive(Default)]
pub struct DeleteAttempts(Mutex<HashMap<EnvKey, u32>>);

impl Pass<'_> {
    /// Tears the environment down and reports it.
    pub(super) async fn remove(
        &mut self,
        stack: Option<Stack>,
        why: &str,
        reversible: bool,
    ) -> Result<Action> {
        let Some(stack) = stack else {
            if let Some(waiting) = self.drop_database().await? {
                if reversible {
                    self.report(None, State::Removing).await?;
                }
                return Ok(waiting);
            }
            return self.removed(why, reversible).await;
        };
        // Someone who destroyed it, or woke it in vain, is told it is
        // going; a closed PR is told once, when it is gone.
        let announce = reversible;
        match stack.phase() {
            Phase::Deleting => {
                if announce {
                    self.report(None, State::Removing).await?;
                }
                Ok(Action::after(self.ctx.poll_delay(self.elapsed(&stack))))
            }
            // Another operation is running; CloudFormation allows no second one.
            Phase::InProgress => Ok(Action::after(self.ctx.poll_delay(self.elapsed(&stack)))),
            _ => {
                if let Some(waiting) = self.on_delete(&stack).await? {
                    if announce {
                        self.report(None, State::Removing).await?;
                    }
                    return Ok(waiting);
                }
                // The clone goes at the same time as the stack; once the
                // stack is gone, the pass waits for it too.
                // A clone RDS will not delete yet does not hold the stack
                // back: the pass after it is gone tries again.
                if let Err(err) = self.drop_database().await {
                    tracing::warn!(stack = stack.name, error = %err, "could not delete the database yet");
                }
                self.delete(&stack, announce).await
            }
        }
    }

    /// Deletes the stack; `announce` shows "Removing" on the comment.
    pub(super) async fn delete(&mut self, stack: &Stack, announce: bool) -> Result<Action> {
        let ctx = self.ctx;
        let name = self.env.stack_name.clone();
        let attempts = {
            let mut attempts = ctx.delete_attempts.0.lock().expect("delete attempts lock");
            let n = attempts.entry(self.env.key.clone()).or_insert(0);
            if stack.phase() == Phase::DeleteFailed {
                *n += 1;
            }
            *n
        };
        if attempts > MAX_DELETE_ATTEMPTS {
            let events = ctx.aws.stacks.failures(&name, 5).await.unwrap_or_default();
            let reason = format!(
                "Deleting the stack failed {MAX_DELETE_ATTEMPTS} times. Remove what blocks it \
                 (see below), then `/pullstack destroy`.",
            );
            let events = failure_events(events);
            let state = State::Failed {
                reason,
                events,
                logs: Vec::new(),
            };
            self.report(None, state).await?;
            return Err(anyhow::anyhow!("stack {name} keeps failing to delete").into());
        }
        let removing = &mut self.sticky.memory.removing;
        if removing.is_empty() {
            *removing = ctx.aws.stacks.resources(&name).await.unwrap_or_default();
            removing.insert(0, format!("AWS::CloudFormation::Stack {name}"));
        }
        ctx.aws.stacks.delete(&name).await?;
        ctx.edge.deleting(&self.env.key);
        tracing::info!(stack = name, "delete started");
        if announce {
            self.report(None, State::Removing).await?;
        } else {
            ctx.sticky.keep(&self.sticky);
        }
        // Polled at once: a stack already gone is seen with no wait.
        Ok(Action::after(Duration::ZERO))
    }

    /// The stack is gone: say what was removed, and leave the record job
    /// to close the Deployments.
    async fn removed(&mut self, why: &str, reversible: bool) -> Result<Action> {
        let ctx = self.ctx;
        let key = &self.env.key;
        ctx.delete_attempts
            .0
            .lock()
            .expect("delete attempts lock")
            .remove(key);
        ctx.deploy_marks.forget(key);
        // Once per removal: this process deleted the stack, or the comment
        // still remembers a ready commit, so the removal was never finished
        // (a crash).
        let deleted_here = ctx.edge.deleted(key);
        if ctx.config.edge_mode() == EdgeMode::Shared
            && (deleted_here || self.sticky.memory.ready.is_some())
        {
            let host = edge::host(&key.slug(), &ctx.config.preview.dns_zone);
            ctx.edge.release(ctx, &host).await?;
        }
        let freed = Action::done()
            .waking(ctx.admissions.freed(ctx, key).await?)
            .waking(ctx.edge.freed(key));
        if self.sticky.issue.is_some() && self.sticky.comment_id.is_none() {
            // Nothing was ever said on the PR, so nothing was deployed:
            // Deployments come after the comment.
            return Ok(freed);
        }
        let sha = self.sticky.memory.attempted.clone();
        self.sticky.memory.ready = None;
        let state = State::Removed {
            why: why.to_owned(),
            reversible,
        };
        self.report(sha.as_deref(), state).await?;
        // Every Deployment the environment had, a stopped process's too.
        self.record(Outcome::Removed { sha });
        Ok(freed)
    }
}
