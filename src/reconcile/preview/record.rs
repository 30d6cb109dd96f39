//! An environment's record on GitHub: its Deployments and commit statuses,
//! written beside its passes rather than in them.
//!
//! A pass that knows an outcome (ready, failed, removed) shows it on the
//! sticky comment, leaves it here and wakes its record job (`Job::Record`). That job runs
//! outside the cap on passes, and its writes take their turns after the
//! sticky comments', so a comment is never stuck behind other
//! environments' bookkeeping. A newer outcome replaces one not yet
//! written: a commit replaced before its turn gets no Deployment at all.
//!
//! A Deployment is created only with its outcome (one create, one status),
//! found again by (commit, environment) before any create, and every other
//! live Deployment of the environment is marked inactive after it.
//!
//! Lost on restart: what was not yet written. A pass that finds the
//! environment ready, or gone, leaves its outcome again, and the record
//! job reads before it writes, so an outcome already on GitHub costs no
//! write.

use crate::config::Backend;
use crate::domain::naming::EnvKey;
use crate::github::client::{DeploymentState, StatusState};
use crate::reconcile::{Action, Ctx, Result};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;

const STATUS_PREFIX: &str = "pullstack/";

/// What an environment's Deployments should say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The deploy of `sha` ended: its Deployment gets `state`.
    Ended {
        sha: String,
        state: DeploymentState,
        url: Option<String>,
        description: String,
    },
    /// The environment is gone; `sha` was its last commit, if known.
    Removed { sha: Option<String> },
}

/// A Deployment as this process last wrote or read it: (id, commit, state).
type Written = (u64, String, DeploymentState);

/// Outcomes waiting to be written, and what was written, by environment.
pub struct Records {
    wanted: Mutex<HashMap<EnvKey, Outcome>>,
    written: Mutex<lru::LruCache<EnvKey, Written>>,
}

impl Default for Records {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(10_000).expect("non-zero");
        Records {
            wanted: Mutex::default(),
            written: Mutex::new(lru::LruCache::new(capacity)),
        }
    }
}

impl Records {
    /// Leaves `outcome` for `key`'s record job, replacing any not yet
    /// written.
    pub fn put(&self, key: &EnvKey, outcome: Outcome) {
        self.wanted
            .lock()
            .expect("records lock")
            .insert(key.clone(), outcome);
    }

    /// Whether `key`'s Deployment of `sha` is known to say `state`, or is
    /// about to.
    pub fn says(&self, key: &EnvKey, sha: &str, state: DeploymentState) -> bool {
        let wanted = self.wanted.lock().expect("records lock");
        if let Some(Outcome::Ended {
            sha: s, state: t, ..
        }) = wanted.get(key)
        {
            return s == sha && *t == state;
        }
        let mut written = self.written.lock().expect("records lock");
        written
            .get(key)
            .is_some_and(|(_, s, t)| s == sha && *t == state)
    }

    /// Whether an outcome for `key` waits to be written.
    pub fn pending(&self, key: &EnvKey) -> bool {
        self.wanted.lock().expect("records lock").contains_key(key)
    }

    fn take(&self, key: &EnvKey) -> Option<Outcome> {
        self.wanted.lock().expect("records lock").remove(key)
    }

    /// Puts back an outcome that failed to be written, unless a newer one
    /// came meanwhile.
    fn put_back(&self, key: &EnvKey, outcome: Outcome) {
        self.wanted
            .lock()
            .expect("records lock")
            .entry(key.clone())
            .or_insert(outcome);
    }

    fn written(&self, key: &EnvKey) -> Option<Written> {
        self.written.lock().expect("records lock").get(key).cloned()
    }
}

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
/// does not read their status again, each with the `updated_at` GitHub
/// listed it with when it was found done. Lost on restart: each is read
/// once more.
///
/// A Deployment done with comes back when its commit is deployed again;
/// with replicas, maybe by another one, so a process that shares the queue
/// trusts only a stamp GitHub still lists: a new status would have changed
/// it. A stamp is kept only when it is older than the newest in its listing,
/// so a status added in the same whole second cannot hide behind it.
pub struct Retired(Mutex<lru::LruCache<u64, Option<DateTime<Utc>>>>);

impl Default for Retired {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(10_000).expect("non-zero");
        Retired(Mutex::new(lru::LruCache::new(capacity)))
    }
}

impl Retired {
    /// Whether Deployment `id`, listed as last changed at `updated_at`, is
    /// known to be done with; `shared`: other processes write too.
    fn knows(&self, id: u64, updated_at: DateTime<Utc>, shared: bool) -> bool {
        match self.0.lock().expect("retired lock").get(&id) {
            None => false,
            Some(stamp) => !shared || *stamp == Some(updated_at),
        }
    }

    fn insert(&self, id: u64, stamp: Option<DateTime<Utc>>) {
        self.0.lock().expect("retired lock").put(id, stamp);
    }

    fn forget(&self, id: u64) {
        self.0.lock().expect("retired lock").pop(&id);
    }
}

/// Whether a Deployment whose newest status is `state` still shows as live.
fn is_live(state: Option<&str>) -> bool {
    matches!(
        state,
        None | Some("success" | "in_progress" | "queued" | "pending")
    )
}

/// The record job of one environment: writes the outcome left for it.
pub async fn run(ctx: &Ctx, key: &EnvKey) -> Result<Action> {
    let Some(outcome) = ctx.records.take(key) else {
        return Ok(Action::done());
    };
    let recorder = Recorder { ctx, key };
    let written = match &outcome {
        Outcome::Ended {
            sha,
            state,
            url,
            description,
        } => {
            recorder
                .ended(sha, *state, url.as_deref(), description)
                .await
        }
        Outcome::Removed { sha } => recorder.removed(sha.as_deref()).await,
    };
    if let Err(err) = written {
        ctx.records.put_back(key, outcome);
        return Err(err);
    }
    Ok(Action::done())
}

/// Writes one environment's Deployments and commit statuses.
pub(super) struct Recorder<'a> {
    pub ctx: &'a Ctx,
    pub key: &'a EnvKey,
}

impl Recorder<'_> {
    /// Gives the Deployment of `sha` its outcome, then retires the
    /// environment's other Deployments. A commit status says the same only
    /// where one was posted before the Deployment could.
    async fn ended(
        &self,
        sha: &str,
        state: DeploymentState,
        url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let ctx = self.ctx;
        let id = match ctx.records.written(self.key) {
            Some((id, s, t)) if s == sha => {
                if t != state {
                    self.deployment_status(id, sha, state, url, description)
                        .await?;
                }
                id
            }
            _ => self.ensure_deployment(sha, state, url, description).await?,
        };
        match state {
            // A branch's head commit has no PR timeline to show the
            // Deployment: its commit status carries the outcome and URL.
            DeploymentState::Success | DeploymentState::Failure
                if matches!(self.key, EnvKey::Branch(_)) =>
            {
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
        if state == DeploymentState::Success && !self.still_ready(sha).await? {
            let why = "replaced by a newer commit";
            (self.ctx.forge)
                .deployment_status(id, DeploymentState::Inactive, None, why)
                .await?;
            self.remember(id, sha, DeploymentState::Inactive);
            return Ok(());
        }
        self.retire_deployments(Some(id)).await
    }

    /// Whether the PR's comment still shows `sha` ready, after its
    /// Deployment said success.
    ///
    /// With replicas, another may have moved the environment on (a newer
    /// commit, or its removal) while this outcome waited for its write
    /// turn. That replica changes the comment first and retires the live
    /// Deployments after, so of the two record jobs, the one that looks
    /// last sees the other's work: either its retiring finds this success,
    /// or this look finds its comment. One process has no such race: a
    /// newer outcome replaces one not yet written.
    async fn still_ready(&self, sha: &str) -> Result<bool> {
        let ctx = self.ctx;
        let EnvKey::Pr(number) = self.key else {
            return Ok(true);
        };
        if ctx.config.queue.backend != Backend::Sqs {
            return Ok(true);
        }
        let memory = (ctx.sticky)
            .read_afresh(&ctx.forge, *number, &self.key.slug())
            .await?;
        Ok(memory.is_none_or(|m| m.ready.as_deref() == Some(sha)))
    }

    /// The Deployment of `sha`, saying `state`: one found on GitHub (a
    /// record job before a restart may have made it), else a new one.
    async fn ensure_deployment(
        &self,
        sha: &str,
        state: DeploymentState,
        url: Option<&str>,
        description: &str,
    ) -> Result<u64> {
        let forge = &self.ctx.forge;
        let environment = self.key.deployment_environment();
        let found = forge.deployments(&environment, Some(sha), 1).await?;
        let (id, says) = match found.first() {
            Some((id, _)) => (*id, forge.deployment_state(*id).await?),
            None => {
                let why = format!("pullstack preview for {}", self.key);
                let id = forge
                    .create_deployment(sha, &environment, true, false, &why)
                    .await?;
                (id, None)
            }
        };
        if says.as_deref() == Some(state.as_str()) {
            self.remember(id, sha, state);
        } else {
            self.deployment_status(id, sha, state, url, description)
                .await?;
        }
        Ok(id)
    }

    async fn deployment_status(
        &self,
        id: u64,
        sha: &str,
        state: DeploymentState,
        url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        self.ctx
            .forge
            .deployment_status(id, state, url, description)
            .await?;
        self.remember(id, sha, state);
        Ok(())
    }

    fn remember(&self, id: u64, sha: &str, state: DeploymentState) {
        if is_live(Some(state.as_str())) {
            // A commit deployed again brings its Deployment back.
            self.ctx.retired.forget(id);
        }
        self.ctx
            .records
            .written
            .lock()
            .expect("records lock")
            .put(self.key.clone(), (id, sha.to_owned(), state));
    }

    /// The environment is gone: every Deployment it had is marked
    /// inactive, and a pending commit status left on its last commit is
    /// resolved.
    async fn removed(&self, sha: Option<&str>) -> Result<()> {
        let why = "environment removed";
        self.retire_deployments(None).await?;
        self.ctx
            .records
            .written
            .lock()
            .expect("records lock")
            .pop(self.key);
        if let Some(sha) = sha {
            self.resolve_status(sha, None, why).await?;
        }
        Ok(())
    }

    /// Marks every live Deployment of the environment but `keep` inactive:
    /// those of replaced commits, and any a stopped process left behind.
    /// GitHub deactivates none of them on its own, since previews are
    /// transient environments.
    async fn retire_deployments(&self, keep: Option<u64>) -> Result<()> {
        let ctx = self.ctx;
        let forge = &ctx.forge;
        let environment = self.key.deployment_environment();
        let shared = ctx.config.queue.backend == Backend::Sqs;
        let listed = forge.listed_deployments(&environment, None, 100).await?;
        let newest = listed.iter().map(|d| d.updated_at).max();
        for deployment in listed {
            let id = deployment.id;
            if Some(id) == keep || ctx.retired.knows(id, deployment.updated_at, shared) {
                continue;
            }
            let state = forge.deployment_state(id).await?;
            // Found done with, and older than the newest change listed: a
            // status added since would have moved its stamp.
            let stamp = Some(deployment.updated_at).filter(|t| Some(*t) < newest);
            if is_live(state.as_deref()) {
                let why = if keep.is_some() {
                    "replaced by a newer commit"
                } else {
                    "environment removed"
                };
                forge
                    .deployment_status(id, DeploymentState::Inactive, None, why)
                    .await?;
                // Its stamp moved with that status: read once more.
                ctx.retired.insert(id, None);
            } else {
                ctx.retired.insert(id, stamp);
            }
        }
        Ok(())
    }

    /// Posts `success` where this process last posted another state for
    /// `sha` (queued, awaiting approval): a pending status is not left
    /// behind once the Deployment speaks for the commit.
    async fn resolve_status(&self, sha: &str, url: Option<&str>, description: &str) -> Result<()> {
        let key = (sha.to_owned(), self.status_context());
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
        format!("{STATUS_PREFIX}{}", self.key.slug())
    }

    /// Posts a commit status, unless this process already posted the same.
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
}
