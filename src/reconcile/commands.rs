//! Commands given in a PR's comments, and the approval label: checked
//! against the author's permission, answered on the PR, and turned into
//! memory or flags for the pass.

use super::preview::Pass;
use super::sticky::Sticky;
use super::{Controller, Intent};
use crate::domain::commands::{Command, Role};
use crate::domain::comment;
use crate::github::client::PullRequest;

impl Controller {
    /// Applies one command or approval, answering on the PR.
    pub(super) async fn handle(
        &self,
        pr: Option<&PullRequest>,
        sticky: &mut Sticky,
        pass: &mut Pass,
        intent: Intent,
    ) -> anyhow::Result<()> {
        let Some(issue) = sticky.issue else {
            return Ok(());
        };
        match intent {
            Intent::Unknown {
                word,
                suggestion,
                comment_id,
            } => {
                let hint = suggestion
                    .map(|c| format!(" Did you mean `/pullstack {}`?", c.name()))
                    .unwrap_or_default();
                let body = format!("Unknown command `{word}`.{hint}\n\n{}", comment::help());
                self.forge.react(comment_id, "confused").await?;
                self.forge.create_comment(issue, &body).await?;
            }
            Intent::Command {
                command: Command::Help,
                comment_id,
                ..
            } => {
                self.forge.react(comment_id, "eyes").await?;
                self.forge.create_comment(issue, &comment::help()).await?;
            }
            Intent::Command {
                command,
                author,
                comment_id,
                ..
            } => {
                let role = self.forge.role(&author).await?;
                if role < Some(command.required_role()) {
                    self.forge.react(comment_id, "-1").await?;
                    let body = format!(
                        "@{author} `/pullstack {}` needs {} permission on this repository, \
                         which you do not have. Ask a maintainer to run it.",
                        command.name(),
                        command.required_role().name()
                    );
                    self.forge.create_comment(issue, &body).await?;
                    return Ok(());
                }
                self.forge.react(comment_id, "eyes").await?;
                let head = pr.map(|p| p.head.sha.clone());
                sticky.memory.idle_deleted = false;
                match command {
                    Command::Destroy => sticky.memory.destroyed = head,
                    Command::Deploy => {
                        sticky.memory.approved = head;
                        sticky.memory.destroyed = None;
                        pass.redeploy = sticky.memory.failed.is_some();
                    }
                    Command::Redeploy => {
                        sticky.memory.destroyed = None;
                        pass.redeploy = true;
                    }
                    Command::Wake => {
                        sticky.memory.destroyed = None;
                        pass.wake = true;
                    }
                    Command::Help | Command::Promote | Command::Rollback => {}
                }
            }
            Intent::ApproveLabel { by } => {
                if self.forge.role(&by).await? >= Some(Role::Write) {
                    sticky.memory.approved = pr.map(|p| p.head.sha.clone());
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
}
