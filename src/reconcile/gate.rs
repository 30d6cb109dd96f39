//! The permission gate every PR command passes: the author's role on the
//! repository against the role the command needs. An allowed command is
//! acknowledged with 👀; a refused one gets 👎 and a reply naming the role.

use super::{Ctx, Result};
use crate::domain::commands::{Command, Role};
use std::num::NonZeroUsize;
use std::sync::Mutex;

/// Whether `author` may run `command`, given on `issue` in `comment_id`.
/// Says so on the PR the first time it is asked for that comment.
pub async fn allowed(
    ctx: &Ctx,
    command: Command,
    author: &str,
    comment_id: u64,
    issue: u64,
) -> Result<bool> {
    if let Some(verdict) = ctx.acknowledged.get(comment_id) {
        return Ok(verdict != Verdict::Refused);
    }
    let needed = command.required_role();
    if ctx.forge.role(author).await? >= Some(needed) {
        ctx.forge.react(comment_id, "eyes").await?;
        ctx.acknowledged.put(comment_id, Verdict::Allowed);
        return Ok(true);
    }
    ctx.forge.react(comment_id, "-1").await?;
    ctx.forge
        .create_comment(issue, &refusal(command, author, needed))
        .await?;
    ctx.acknowledged.put(comment_id, Verdict::Refused);
    Ok(false)
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
/// answered. Lost on restart: a command whose pass was still failing is
/// answered once more.
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
}
