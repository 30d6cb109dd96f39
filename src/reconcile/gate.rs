//! The gate every PR command passes, and how pullstack answers commenters.
//!
//! - **Once per comment.** A comment's command acts once. Within a process
//!   the verdict is remembered ([`Acknowledged`]); across restarts the
//!   record is pullstack's reaction on the comment, which is written before
//!   the command acts. A replayed delivery of an answered comment does
//!   nothing.
//! - **Permission.** The author's role on the repository against the role
//!   the command needs. An accepted command gets 👀.
//! - **Answers cost writes, so they are rationed.** Anyone can comment on a
//!   public repository. A refusal, an unknown command or `help` is answered
//!   with a reaction, plus a reply only to users with at least triage
//!   permission, and only within a budget per author and per pull request
//!   ([`Replies`]). Past the budget pullstack stays silent.

use super::{Ctx, Given, Result};
use crate::domain::commands::{Command, Role};
use crate::github::client::Forge;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Mutex;

/// What to do with a comment's command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ruling {
    /// Already judged (in this process or, by its reaction, before).
    Answered(Verdict),
    /// The author may run it; `role` is theirs.
    Allow(Option<Role>),
    /// The author may not; `role` is theirs.
    Refuse(Option<Role>),
}

/// Judges a command without writing anything: every refusal can wait until
/// the commands that act have acted.
pub async fn judge(ctx: &Ctx, needed: Role, given: &Given, roles: &mut Roles) -> Result<Ruling> {
    if let Some(verdict) = ctx.acknowledged.get(given.comment_id) {
        return Ok(Ruling::Answered(verdict));
    }
    match ctx.forge.reacted(given.comment_id).await? {
        // Answered before, perhaps by a process that has since stopped; or
        // the comment was deleted before anyone acted on it.
        Some(true) | None => {
            ctx.acknowledged.put(given.comment_id, Verdict::Done);
            return Ok(Ruling::Answered(Verdict::Done));
        }
        Some(false) => {}
    }
    let role = roles.of(&ctx.forge, &given.author).await?;
    Ok(if role >= Some(needed) {
        Ruling::Allow(role)
    } else {
        Ruling::Refuse(role)
    })
}

/// Accepts an allowed command with 👀, recorded on GitHub before it acts.
pub async fn accept(ctx: &Ctx, given: &Given) -> Result<()> {
    ctx.forge.react(given.comment_id, "eyes").await?;
    ctx.acknowledged.put(given.comment_id, Verdict::Allowed);
    Ok(())
}

/// Refuses `command`, saying which role it needs, within the budgets.
pub async fn refuse(ctx: &Ctx, command: Command, given: &Given, role: Option<Role>) -> Result<()> {
    let reply = refusal(command, &given.author, command.required_role());
    answer(ctx, given, role, "-1", &reply).await?;
    ctx.acknowledged.put(given.comment_id, Verdict::Refused);
    Ok(())
}

/// Answers a command that does nothing else (`help`, an unknown command, a
/// production command without production): a reaction, and `reply` for
/// users with triage permission, within the budgets.
pub async fn answer(
    ctx: &Ctx,
    given: &Given,
    role: Option<Role>,
    reaction: &str,
    reply: &str,
) -> Result<()> {
    if ctx.replies.spend(&given.author, given.issue) {
        ctx.forge.react(given.comment_id, reaction).await?;
        if role >= Some(Role::Triage) {
            ctx.forge.create_comment(given.issue, reply).await?;
        }
    } else {
        tracing::info!(
            author = given.author,
            issue = given.issue,
            comment = given.comment_id,
            "reply budget spent; command not answered"
        );
    }
    ctx.acknowledged.put(given.comment_id, Verdict::Done);
    Ok(())
}

/// What became of a comment's command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Refused,
    /// Allowed; its effect may still have to be applied.
    Allowed,
    /// Answered and done: nothing is left to apply.
    Done,
}

/// What became of each comment's command. When a pass fails, the queue
/// hands its commands to the retry, which reads here that they were already
/// answered. After a restart pullstack's reaction on the comment says so.
pub struct Acknowledged(Mutex<lru::LruCache<u64, Verdict>>);

impl Default for Acknowledged {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(10_000).expect("non-zero");
        Acknowledged(Mutex::new(lru::LruCache::new(capacity)))
    }
}

impl Acknowledged {
    pub fn get(&self, comment_id: u64) -> Option<Verdict> {
        self.0
            .lock()
            .expect("acknowledged lock")
            .get(&comment_id)
            .copied()
    }

    pub fn put(&self, comment_id: u64, verdict: Verdict) {
        self.0
            .lock()
            .expect("acknowledged lock")
            .put(comment_id, verdict);
    }
}

/// Authors' roles, read once per pass however many comments they wrote.
#[derive(Default)]
pub struct Roles(HashMap<String, Option<Role>>);

impl Roles {
    pub async fn of(&mut self, forge: &Forge, login: &str) -> Result<Option<Role>> {
        if let Some(role) = self.0.get(login) {
            return Ok(*role);
        }
        let role = forge.role(login).await?;
        self.0.insert(login.to_owned(), role);
        Ok(role)
    }
}

/// Answers per author and per pull request, each refilled over an hour.
pub struct Replies {
    authors: DefaultKeyedRateLimiter<String>,
    pulls: DefaultKeyedRateLimiter<u64>,
}

/// Answers one author gets in an hour, across pull requests.
pub const PER_AUTHOR_HOURLY: u32 = 10;
/// Answers one pull request gets in an hour, across authors.
pub const PER_PULL_HOURLY: u32 = 30;
/// Authors and pull requests remembered before idle ones are forgotten.
const REMEMBERED: usize = 10_000;

impl Default for Replies {
    fn default() -> Self {
        let hourly = |n| Quota::per_hour(NonZeroU32::new(n).expect("non-zero"));
        Replies {
            authors: RateLimiter::keyed(hourly(PER_AUTHOR_HOURLY)),
            pulls: RateLimiter::keyed(hourly(PER_PULL_HOURLY)),
        }
    }
}

impl Replies {
    /// Takes one answer from both budgets; false if either is spent.
    pub fn spend(&self, author: &str, issue: u64) -> bool {
        if self.authors.len() > REMEMBERED {
            self.authors.retain_recent();
        }
        if self.pulls.len() > REMEMBERED {
            self.pulls.retain_recent();
        }
        // The PR's budget is checked first, so one author flooding a PR does
        // not also spend their budget elsewhere.
        self.pulls.check_key(&issue).is_ok() && self.authors.check_key(&author.to_owned()).is_ok()
    }
}

fn refusal(command: Command, author: &str, needed: Role) -> String {
    let (role, who) = match needed {
        Role::Maintain | Role::Admin => ("maintain or admin", "a release manager"),
        role => (role.name(), "a maintainer"),
    };
    format!(
        "@{author} `/pullstack {}` needs {role} permission on this repository, which you do \
         not have. Ask {who} to run it.",
        command.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_role_needed() {
        let text = refusal(Command::Rollback, "mallory", Role::Maintain);
        assert!(
            text.contains("needs maintain or admin permission"),
            "{text}"
        );
        let text = refusal(Command::Wake, "mallory", Role::Triage);
        assert!(
            text.contains("`/pullstack wake` needs triage permission"),
            "{text}"
        );
    }

    // Attack: one commenter flooding a PR made the bot spend the
    // repository's write budget answering.
    #[test]
    fn answers_are_rationed_per_author_and_per_pull_request() {
        let replies = Replies::default();
        let answered = (0..100).filter(|_| replies.spend("mallory", 1)).count();
        assert_eq!(answered, PER_AUTHOR_HOURLY as usize);
        assert!(!replies.spend("mallory", 2), "the author's budget is spent");
        let others = (0..100)
            .filter(|n| replies.spend(&format!("sock-{n}"), 3))
            .count();
        assert_eq!(others, PER_PULL_HOURLY as usize);
        assert!(
            replies.spend("alice", 4),
            "other PRs and authors still get answers"
        );
    }
}
