//! Commands given in a PR's comments, and the approval label: checked
//! through the permission gate, answered on the PR, and turned into memory
//! or flags for the pass.
//!
//! When a pass fails, the queue hands its commands to the retry; the gate
//! remembers each comment's verdict, so the retry applies the command again
//! (every effect here is idempotent) without answering twice.

use super::Pass;
use crate::domain::commands::{Command, Role};
use crate::domain::comment;
use crate::reconcile::gate::{self, Verdict};
use crate::reconcile::{Intent, Result};

impl Pass<'_> {
    /// Applies one command or approval, answering on the PR once.
    pub(super) async fn handle(&mut self, intent: &Intent) -> Result<()> {
        let ctx = self.ctx;
        let Some(issue) = self.sticky.issue else {
            return Ok(());
        };
        match intent {
            Intent::Unknown {
                word,
                suggestion,
                comment_id,
            } => {
                if ctx.acknowledged.get(*comment_id).is_some() {
                    return Ok(());
                }
                let hint = suggestion
                    .map(|c| format!(" Did you mean `/pullstack {}`?", c.name()))
                    .unwrap_or_default();
                let body = format!(
                    "Unknown command `{word}`.{hint}\n\n{}",
                    comment::help(ctx.config.production.enabled)
                );
                ctx.forge.react(*comment_id, "confused").await?;
                ctx.forge.create_comment(issue, &body).await?;
                ctx.acknowledged.put(*comment_id, Verdict::Done);
            }
            Intent::Command {
                command: Command::Help,
                comment_id,
                ..
            } => {
                if ctx.acknowledged.get(*comment_id).is_some() {
                    return Ok(());
                }
                ctx.forge.react(*comment_id, "eyes").await?;
                ctx.forge
                    .create_comment(issue, &comment::help(ctx.config.production.enabled))
                    .await?;
                ctx.acknowledged.put(*comment_id, Verdict::Done);
            }
            // Routed here only when production releases are off.
            Intent::Command {
                command: command @ (Command::Promote | Command::Rollback),
                comment_id,
                ..
            } => {
                if ctx.acknowledged.get(*comment_id).is_some() {
                    return Ok(());
                }
                let body = format!(
                    "`/pullstack {}` acts on production releases, which are not enabled for \
                     this repository (`production.enabled` in pullstack's config).",
                    command.name()
                );
                ctx.forge.react(*comment_id, "confused").await?;
                ctx.forge.create_comment(issue, &body).await?;
                ctx.acknowledged.put(*comment_id, Verdict::Done);
            }
            Intent::Command {
                command,
                author,
                comment_id,
                ..
            } => {
                if gate::allowed(ctx, *command, author, *comment_id, issue).await? {
                    self.apply(*command);
                }
            }
            Intent::ApproveLabel { by } => {
                if ctx.forge.role(by).await? >= Some(Role::Write) {
                    self.sticky.memory.approved = self.head();
                } else {
                    tracing::info!(
                        by,
                        issue,
                        "approval label added by a user without write permission; ignored"
                    );
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, command: Command) {
        let head = self.head();
        let memory = &mut self.sticky.memory;
        memory.idle_deleted = false;
        match command {
            Command::Destroy => memory.destroyed = head,
            Command::Deploy => {
                memory.approved = head;
                memory.destroyed = None;
                self.flags.redeploy = memory.failed.is_some();
            }
            Command::Redeploy => {
                memory.destroyed = None;
                self.flags.redeploy = true;
            }
            Command::Wake => {
                memory.destroyed = None;
                self.flags.wake = true;
            }
            Command::Help | Command::Promote | Command::Rollback => {}
        }
    }
}
