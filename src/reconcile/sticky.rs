//! The sticky comment of each environment: found once by its marker, then
//! cached, and edited in place only when its text changes. The text shows
//! when a wait or an operation began, never how long it has run, so a
//! comment is not edited while nothing happens.

use crate::domain::comment::{self, Memory, State, View};
use crate::domain::naming::EnvKey;
use crate::domain::seal::Seal;
use crate::github::client::{Comment, Forge, ForgeError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// One environment's comment as last seen or written.
///
/// A branch environment has no PR to comment on: its `issue` is `None`. Its
/// memory lives in this process, and its Deployment is found again on
/// GitHub after a restart.
#[derive(Clone, Debug)]
pub struct Sticky {
    pub issue: Option<u64>,
    pub comment_id: Option<u64>,
    pub body: String,
    pub memory: Memory,
    /// When GitHub says the comment last changed.
    pub shown_at: Option<DateTime<Utc>>,
    last_state: Option<State>,
}

/// A cache of sticky comments, keyed by environment slug, and the seal
/// their memories are signed with.
pub struct StickyComments {
    cache: Mutex<HashMap<String, Sticky>>,
    seal: Seal,
}

impl StickyComments {
    pub fn new(seal: Seal) -> StickyComments {
        StickyComments {
            cache: Mutex::default(),
            seal,
        }
    }

    /// The environment's comment (from cache, or found by its marker among
    /// the comments pullstack wrote), or a fresh one not yet posted.
    pub async fn load(&self, forge: &Forge, issue: u64, env: &str) -> Result<Sticky, ForgeError> {
        if let Some(found) = self.cache.lock().expect("sticky lock").get(env) {
            return Ok(found.clone());
        }
        let sticky = match self.find(forge, issue, env).await? {
            Some((c, memory)) => Sticky {
                issue: Some(issue),
                comment_id: Some(c.id),
                shown_at: c.updated_at,
                body: c.body,
                memory,
                last_state: None,
            },
            None => Sticky::new(Some(issue), env),
        };
        self.cache
            .lock()
            .expect("sticky lock")
            .insert(env.to_owned(), sticky.clone());
        Ok(sticky)
    }

    /// The environment's memory as its comment says now, read past the
    /// cache and leaving it alone: another replica may have changed it.
    pub async fn read_afresh(
        &self,
        forge: &Forge,
        issue: u64,
        env: &str,
    ) -> Result<Option<Memory>, ForgeError> {
        Ok(self
            .find(forge, issue, env)
            .await?
            .map(|(_, memory)| memory))
    }

    /// The comment pullstack wrote with `env`'s marker, and its memory.
    async fn find(
        &self,
        forge: &Forge,
        issue: u64,
        env: &str,
    ) -> Result<Option<(Comment, Memory)>, ForgeError> {
        let me = forge.identity().await?;
        Ok(forge
            .comments(issue)
            .await?
            .into_iter()
            .filter(|c| c.user.login == me)
            .find_map(|c| Memory::from_body(&c.body, env, &self.seal).map(|m| (c, m))))
    }

    /// What this process last knew of an environment's comment: its memory
    /// and the state last shown, if it has been loaded at all.
    pub fn peek(&self, env: &str) -> Option<(Memory, Option<State>)> {
        self.cache
            .lock()
            .expect("sticky lock")
            .get(env)
            .map(|s| (s.memory.clone(), s.last_state.clone()))
    }

    /// The memory of an environment without a PR to comment on. It lives
    /// in this process only: its Deployments are found again on GitHub
    /// when the environment goes.
    pub fn detached(&self, key: &EnvKey) -> Sticky {
        let env = key.slug();
        let mut cache = self.cache.lock().expect("sticky lock");
        cache
            .entry(env.clone())
            .or_insert_with(|| Sticky::new(None, &env))
            .clone()
    }

    /// Writes the comment for `state` if its text changed; creates it the
    /// first time. `create` false only edits an existing comment.
    pub async fn show(
        &self,
        forge: &Forge,
        sticky: &mut Sticky,
        view: View<'_>,
        create: bool,
    ) -> Result<(), ForgeError> {
        let Some(issue) = sticky.issue else {
            sticky.last_state = Some(view.state);
            self.remember(sticky, view.memory);
            return Ok(());
        };
        let body = comment::render(&view, &self.seal);
        if body == sticky.body {
            return Ok(());
        }
        let written = match sticky.comment_id {
            Some(id) => match forge.update_comment(id, &body).await {
                Err(ForgeError::NotFound) => {
                    // Someone deleted it: forget it, and post again next time.
                    self.forget(&view.memory.env);
                    return Err(ForgeError::NotFound);
                }
                other => other?,
            },
            None if create => forge.create_comment(issue, &body).await?,
            None => return Ok(()),
        };
        sticky.comment_id = Some(written.id);
        sticky.shown_at = written.updated_at;
        sticky.body = body;
        sticky.last_state = Some(view.state);
        self.remember(sticky, view.memory);
        Ok(())
    }

    fn remember(&self, sticky: &Sticky, memory: &Memory) {
        let mut sticky = sticky.clone();
        sticky.memory = memory.clone();
        self.cache
            .lock()
            .expect("sticky lock")
            .insert(memory.env.clone(), sticky);
    }

    /// Keeps what a pass learned without showing it yet (say, what a quiet
    /// delete removes), so the next pass of this process has it.
    pub fn keep(&self, sticky: &Sticky) {
        self.remember(sticky, &sticky.memory);
    }

    /// Drops a cached comment, so the next load looks on GitHub again.
    pub fn forget(&self, env: &str) {
        self.cache.lock().expect("sticky lock").remove(env);
    }
}

impl Sticky {
    /// The state the comment last showed, in this process.
    pub fn last_state(&self) -> Option<&State> {
        self.last_state.as_ref()
    }

    fn new(issue: Option<u64>, env: &str) -> Sticky {
        Sticky {
            issue,
            comment_id: None,
            body: String::new(),
            memory: Memory::new(env),
            shown_at: None,
            last_state: None,
        }
    }
}
