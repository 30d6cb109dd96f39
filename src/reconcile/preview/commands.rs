//! Commands given in a PR's comments, and the approval label: checked
//! through the gate, answered on the PR, and turned into memory or flags
//! for the pass.
//!
//! When a pass fails, the queue hands its commands to the retry; the gate
//! remembers each comment's verdict, so the retry applies the command again
//! (every effect here is idempotent) without answering twice.
//!
//! An approval of a fork PR is bound to the commit the maintainer saw: the
//! one a `/pullstack deploy <sha>` names, or, for a bare `/pullstack
//! deploy`, the one the sticky comment asked about when the command was
//! given. If the head has moved since, nothing is deployed and pullstack
//! asks again.

use super::Pass;
use crate::domain::commands::{Command, Role};
use crate::domain::comment;
use crate::domain::naming::short_sha;
use crate::reconcile::gate::{self, Roles, Ruling, Verdict};
use crate::reconcile::{Given, Intent, Result};
use chrono::{DateTime, Utc};

impl Pass<'_> {
    /// Applies the commands and approvals of this pass, answering each
    /// comment once.
    pub(super) async fn handle(&mut self, intents: &[Intent]) -> Result<()> {
        let mut roles = Roles::default();
        for intent in intents {
            self.handle_one(intent, &mut roles).await?;
        }
        Ok(())
    }

    async fn handle_one(&mut self, intent: &Intent, roles: &mut Roles) -> Result<()> {
        let ctx = self.ctx;
        let production = ctx.config.production.enabled;
        match intent {
            Intent::Unclear { reply, comment } => {
                if let Ruling::Allow(role) = gate::judge(ctx, Role::Read, comment, roles).await? {
                    let body = format!("{reply}\n\n{}", comment::help(production));
                    gate::answer(ctx, comment, role, "confused", &body).await?;
                }
            }
            Intent::Command {
                command,
                sha,
                comment,
            } => match gate::judge(ctx, command.required_role(), comment, roles).await? {
                Ruling::Answered(Verdict::Allowed) => self.apply(*command, sha, comment).await?,
                Ruling::Answered(_) => {}
                Ruling::Refuse(role) => gate::refuse(ctx, *command, comment, role).await?,
                Ruling::Allow(role) => match command {
                    Command::Help => {
                        let body = comment::help(production);
                        gate::answer(ctx, comment, role, "eyes", &body).await?;
                    }
                    // Routed here only when production releases are off.
                    Command::Promote | Command::Rollback => {
                        let body = format!(
                            "`/pullstack {}` acts on production releases, which are not enabled \
                             for this repository (`production.enabled` in pullstack's config).",
                            command.name()
                        );
                        gate::answer(ctx, comment, role, "confused", &body).await?;
                    }
                    Command::Check => match self.cannot_check() {
                        Some(reply) => gate::answer(ctx, comment, role, "confused", reply).await?,
                        None => {
                            gate::accept(ctx, comment).await?;
                            self.apply(*command, sha, comment).await?;
                        }
                    },
                    _ => {
                        gate::accept(ctx, comment).await?;
                        self.apply(*command, sha, comment).await?;
                    }
                },
            },
            Intent::Rerun { sha } => {
                // A run of an older commit stays as it was: the ready
                // commit has its own run, which is the one that counts.
                let ready = self.sticky.memory.ready.as_deref() == Some(sha.as_str());
                if ready && self.cannot_check().is_none() {
                    self.check_again(sha).await?;
                } else {
                    tracing::info!(
                        issue = self.sticky.issue,
                        commit = short_sha(sha),
                        "re-run of the smoke checks of a commit that is not the ready one; \
                         left as it was"
                    );
                }
            }
            Intent::ApproveLabel { by, sha } => {
                if roles.of(&ctx.forge, by).await? >= Some(Role::Write) {
                    // The commit the label was added at, not the head now.
                    self.sticky.memory.approved = Some(sha.clone());
                } else {
                    tracing::info!(
                        by,
                        issue = self.sticky.issue,
                        "approval label added by a user without write permission; ignored"
                    );
                }
            }
        }
        Ok(())
    }

    async fn apply(&mut self, command: Command, sha: &Option<String>, given: &Given) -> Result<()> {
        if command == Command::Check {
            if let Some(ready) = self.sticky.memory.ready.clone() {
                self.check_again(&ready).await?;
            }
            return Ok(());
        }
        let head = self.head();
        if command == Command::Deploy
            && let Some(head) = &head
            && self.is_fork()
        {
            let asked = self.sticky.memory.awaiting.as_deref();
            let shown = (asked, self.sticky.shown_at);
            if let Err(reply) = approval(head, sha.as_deref(), shown, given.at) {
                let issue = given.issue;
                self.ctx
                    .forge
                    .create_comment(issue, &format!("@{} {reply}", given.author))
                    .await?;
                self.ctx.acknowledged.put(given.comment_id, Verdict::Done);
                return Ok(());
            }
        }
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
            Command::Help | Command::Promote | Command::Rollback | Command::Check => {}
        }
        Ok(())
    }

    /// Why `/pullstack check` has nothing to run now, in plain words.
    fn cannot_check(&self) -> Option<&'static str> {
        if self.ctx.config.preview.checks.is_empty() {
            return Some(
                "This repository has no smoke checks (`preview.checks` in pullstack's config), \
                 so there is nothing to run.",
            );
        }
        if self.sticky.memory.ready.is_none() {
            return Some(
                "The preview is not ready yet, so there is nothing to check: the smoke checks \
                 run on their own once it is.",
            );
        }
        None
    }

    /// Asks the checks job for a run at `sha`, the ready commit, against
    /// the stack's URL.
    async fn check_again(&mut self, sha: &str) -> Result<()> {
        let stack = self.ctx.aws.stacks.describe(&self.env.stack_name).await?;
        let Some(url) = stack.as_ref().and_then(|s| s.output("Url")) else {
            tracing::info!(
                stack = self.env.stack_name,
                "no stack URL to check; the checks run again once it is ready"
            );
            return Ok(());
        };
        let wanted = super::checks::Wanted {
            sha: sha.to_owned(),
            url: url.to_owned(),
        };
        self.ctx.smoke_runs.put(&self.env.key, wanted);
        self.check = true;
        Ok(())
    }

    fn is_fork(&self) -> bool {
        let repo = self.ctx.forge.repo();
        self.env.pr.as_ref().is_some_and(|pr| pr.is_fork_of(repo))
    }
}

/// Whether a `/pullstack deploy` approves `head`, the PR's head now.
///
/// - `named`: the commit the command names, if any.
/// - `asked`: the commit the sticky comment asked a maintainer to approve,
///   with when GitHub says the comment last changed.
/// - `given_at`: when the command was given.
///
/// A bare command approves the commit the comment showed when it was given.
/// A comment changed after the command could show a commit the maintainer
/// never saw, so then nothing is approved. The error is the reply.
fn approval(
    head: &str,
    named: Option<&str>,
    (asked, shown_at): (Option<&str>, Option<DateTime<Utc>>),
    given_at: Option<DateTime<Utc>>,
) -> Result<(), String> {
    let again = format!(
        "Approve `{short}` with `/pullstack deploy {short}` if it is the commit you mean.",
        short = short_sha(head)
    );
    if let Some(named) = named {
        return if head.starts_with(named) {
            Ok(())
        } else {
            Err(format!(
                "`{named}` is not this pull request's head commit, which is now `{}`. Nothing \
                 was deployed. {again}",
                short_sha(head)
            ))
        };
    }
    let seen = match (asked, shown_at, given_at) {
        (Some(asked), Some(shown), Some(given)) if shown <= given => Some(asked),
        _ => None,
    };
    match seen {
        Some(seen) if seen == head => Ok(()),
        Some(seen) => Err(format!(
            "The head moved from `{}` to `{}` since the commit you approved was shown. Nothing \
             was deployed. {again}",
            short_sha(seen),
            short_sha(head)
        )),
        None => Err(format!(
            "pullstack cannot tell which commit you saw when you commented: the head is now `{}`. \
             Nothing was deployed. {again}",
            short_sha(head)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaa111111111111111111111111111111111";
    const B: &str = "bbbbbbb222222222222222222222222222222222";

    fn at(second: u32) -> Option<DateTime<Utc>> {
        Some(format!("2026-11-30T10:00:{second:02}Z").parse().unwrap())
    }

    #[test]
    fn a_named_commit_must_be_the_head() {
        assert_eq!(approval(A, Some("aaaaaaa1"), (None, None), None), Ok(()));
        let reply = approval(B, Some("aaaaaaa"), (None, None), None).unwrap_err();
        assert!(reply.contains("`aaaaaaa` is not"), "{reply}");
        assert!(reply.contains("/pullstack deploy bbbbbbb"), "{reply}");
    }

    #[test]
    fn a_bare_deploy_approves_the_commit_shown_when_it_was_given() {
        assert_eq!(approval(A, None, (Some(A), at(1)), at(5)), Ok(()));
    }

    // Attack: the fork's author pushes B right after a maintainer approves A.
    #[test]
    fn a_bare_deploy_never_approves_a_commit_pushed_after_it() {
        // The comment still shows A, but the head is B.
        let reply = approval(B, None, (Some(A), at(1)), at(5)).unwrap_err();
        assert!(
            reply.contains("moved from `aaaaaaa` to `bbbbbbb`"),
            "{reply}"
        );
        // The comment already shows B, but it changed after the command.
        let reply = approval(B, None, (Some(B), at(9)), at(5)).unwrap_err();
        assert!(reply.contains("cannot tell"), "{reply}");
        // Nothing was ever shown.
        assert!(approval(B, None, (None, None), at(5)).is_err());
    }
}
