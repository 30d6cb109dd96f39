//! The level-triggered reconciler.
//!
//! An event only says "look at environment K again" (plus any command it
//! carries). The reconcile reads what should exist from GitHub and what does
//! exist from AWS, and takes the next step toward the former. The same code
//! heals a missed webhook, a crash, a redelivery and a stack deleted by hand.

mod branch;
mod capacity;
mod commands;
mod idle;
pub mod preview;
pub mod production;
pub mod queue;
mod report;
pub mod routing;
mod spec;
pub mod sticky;
mod teardown;

use crate::aws::Aws;
use crate::aws::shared::Shared;
use crate::aws::stacks::{Phase, Stack, tag};
use crate::config::Config;
use crate::domain::commands::Command;
use crate::domain::comment::State;
use crate::domain::idle::Verdict;
use crate::domain::naming::{EnvKey, Tagged};
use crate::github::client::Forge;
use crate::github::client::{PullRequest, StatusState};
use queue::{Next, Queue};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A unit of work in the queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// Reconcile one environment.
    Env(EnvKey),
    /// List open PRs and owned stacks, and queue every environment found.
    Resync,
    /// Production releases.
    Production,
}

/// What an event asks for beyond "look again".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    Command {
        command: Command,
        author: String,
        comment_id: u64,
        /// The PR the command was given on, for the reply.
        issue: u64,
    },
    Unknown {
        word: String,
        suggestion: Option<Command>,
        comment_id: u64,
    },
    /// The approval label was added to a fork PR.
    ApproveLabel { by: String },
}

/// Everything a reconcile needs, shared by all workers.
pub struct Controller {
    pub config: Arc<Config>,
    pub forge: Forge,
    pub aws: Aws,
    pub sticky: sticky::StickyComments,
    shared: tokio::sync::Mutex<Option<(Instant, Shared)>>,
    /// When each (environment, commit) started waiting for its image.
    image_waits: Mutex<HashMap<(EnvKey, String), Instant>>,
    /// Delete attempts per environment, for DELETE_FAILED.
    delete_attempts: Mutex<HashMap<EnvKey, u32>>,
    queue: OnceLock<Queue<Job, Intent>>,
    admissions: capacity::Admissions,
    /// The commit statuses last posted: (sha, context) to what they said.
    statuses: Mutex<lru::LruCache<(String, String), PostedStatus>>,
}

/// A commit status as posted: state, target URL, description.
type PostedStatus = (StatusState, Option<String>, String);

/// Commit statuses remembered, so unchanged ones are not posted again.
const REMEMBERED_STATUSES: NonZeroUsize = NonZeroUsize::new(10_000).expect("non-zero");

/// How long the shared stack's outputs are trusted before reading them again.
const SHARED_TTL: Duration = Duration::from_secs(300);

impl Controller {
    pub fn new(config: Arc<Config>, forge: Forge, aws: Aws) -> Controller {
        Controller {
            config,
            forge,
            aws,
            sticky: sticky::StickyComments::default(),
            shared: tokio::sync::Mutex::new(None),
            image_waits: Mutex::new(HashMap::new()),
            delete_attempts: Mutex::new(HashMap::new()),
            queue: OnceLock::new(),
            admissions: capacity::Admissions::default(),
            statuses: Mutex::new(lru::LruCache::new(REMEMBERED_STATUSES)),
        }
    }

    /// Gives the controller the queue it feeds during resyncs.
    pub fn attach(&self, queue: Queue<Job, Intent>) {
        let _ = self.queue.set(queue);
    }

    /// The shared stack's outputs, cached for a few minutes.
    pub async fn shared(&self) -> anyhow::Result<Shared> {
        let mut cached = self.shared.lock().await;
        if let Some((at, shared)) = cached.as_ref()
            && at.elapsed() < SHARED_TTL
        {
            return Ok(shared.clone());
        }
        let shared = Shared::load(&self.aws.stacks, &self.config.shared_stack_name()).await?;
        *cached = Some((Instant::now(), shared.clone()));
        Ok(shared)
    }

    /// The delay before polling an operation that started `elapsed` ago:
    /// quick at first, then backing off to the configured maximum.
    pub fn poll_delay(&self, elapsed: Duration) -> Duration {
        let q = &self.config.queue;
        (elapsed / 4).clamp(q.poll_initial, q.poll_max.max(q.poll_initial))
    }

    /// Lists open PRs and owned stacks and queues each environment once.
    async fn resync(&self) -> anyhow::Result<Next> {
        let Some(queue) = self.queue.get() else {
            return Ok(Next::Done);
        };
        let prs = if self.config.preview.enabled {
            self.forge.open_pull_requests().await?
        } else {
            Vec::new()
        };
        let repo = self.forge.repo().to_string();
        let mut stacks = HashMap::new();
        let mut slugs = Vec::new();
        for stack in self.aws.stacks.list_tagged(tag::REPO, &repo).await? {
            if stack.tag(tag::MANAGED) != Some("true") {
                continue;
            }
            match stack.tag(tag::ENV).and_then(EnvKey::from_tag_value) {
                Some(Tagged::Key(key)) => {
                    stacks.insert(key, stack);
                }
                Some(Tagged::BranchSlug(slug)) => slugs.push((slug, stack.name)),
                None => {}
            }
        }
        let mut keys = BTreeSet::new();
        let mut unchanged = 0;
        for pr in &prs {
            let key = EnvKey::Pr(pr.number);
            if self.unchanged(&key, pr, stacks.get(&key)) {
                unchanged += 1;
            } else {
                keys.insert(key);
            }
        }
        let open: BTreeSet<EnvKey> = prs.iter().map(|pr| EnvKey::Pr(pr.number)).collect();
        keys.extend(stacks.into_keys().filter(|key| !open.contains(key)));
        if !slugs.is_empty() {
            keys.extend(self.branches_by_slug(slugs).await?);
        }
        tracing::info!(environments = keys.len() + unchanged, unchanged, "resync");
        if self.config.production.enabled {
            queue.push(Job::Production, None);
        }
        metrics::counter!("pullstack_resyncs_total").increment(1);
        for key in keys {
            queue.push(Job::Env(key), None);
        }
        Ok(Next::After(self.config.resync.interval))
    }
}

impl Controller {
    /// Whether the listings show a PR's environment exactly as this process
    /// last reported it, with no idle step due: then the resync need not
    /// look closer. Webhooks still trigger a full pass; after a restart
    /// nothing is known, so every environment gets one.
    fn unchanged(&self, key: &EnvKey, pr: &PullRequest, stack: Option<&Stack>) -> bool {
        let Some(stack) = stack else {
            return false;
        };
        if stack.phase() != Phase::Stable || stack.tag(tag::COMMIT) != Some(pr.head.sha.as_str()) {
            return false;
        }
        let Some((memory, shown)) = self.sticky.peek(&key.slug()) else {
            return false;
        };
        let asleep = stack.tag(tag::IDLE_SINCE).is_some();
        match (
            self.idle_verdict(stack, pr.updated_at, self.kept(pr)),
            shown,
        ) {
            (Verdict::Awake, _) => !asleep && memory.ready.as_deref() == Some(pr.head.sha.as_str()),
            (
                Verdict::Asleep { deletes_at },
                Some(State::Asleep {
                    deletes_at: shown, ..
                }),
            ) => deletes_at == shown,
            _ => false,
        }
    }

    /// The branches of stacks tagged by slug (their names could not be tag
    /// values). A stack whose branch is gone is deleted here, since no
    /// branch name is left to queue it under.
    async fn branches_by_slug(&self, slugs: Vec<(String, String)>) -> anyhow::Result<Vec<EnvKey>> {
        let branches: BTreeMap<String, String> = self
            .forge
            .branches()
            .await?
            .into_iter()
            .map(|name| (EnvKey::Branch(name.clone()).slug(), name))
            .collect();
        let mut keys = Vec::new();
        for (slug, stack) in slugs {
            match branches.get(&slug) {
                Some(name) => keys.push(EnvKey::Branch(name.clone())),
                None => {
                    tracing::info!(stack, "its branch is gone: deleting");
                    self.aws.stacks.delete(&stack).await?;
                }
            }
        }
        Ok(keys)
    }
}

impl queue::Reconcile for Controller {
    type Key = Job;
    type Intent = Intent;

    async fn reconcile(&self, job: Job, intents: Vec<Intent>) -> anyhow::Result<Next> {
        let started = Instant::now();
        let result = match &job {
            Job::Resync => self.resync().await,
            Job::Env(EnvKey::Pr(number)) => self.preview(*number, intents).await,
            Job::Env(EnvKey::Branch(branch)) => self.branch(branch).await,
            Job::Production => self.production(intents).await,
        };
        metrics::histogram!("pullstack_reconcile_seconds").record(started.elapsed().as_secs_f64());
        result
    }
}
