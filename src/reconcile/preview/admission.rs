//! Admission of new environments: the configured limits on concurrent
//! previews, with a fair line (oldest first) when they are reached, and the
//! account quotas checked before CloudFormation would fail half-way.
//!
//! Admissions are serialised, and a slot is held from the count until the
//! CreateStack call returns, so two environments never take the last slot.
//! The line lives in this process: after a restart, the resync rebuilds it
//! from the open PRs that have no stack, in the order they were opened.
//!
//! With the shared queue, replicas admit as one: see [`shared`].
//!
//! The quotas are read in the background (from the start of `serve`, then
//! again once stale), never while an environment waits to be created: an
//! admission uses the quotas last read, and one not known yet does not
//! block. A quota that cannot be read is not asked for again for
//! [`UNREADABLE_TTL`]. A one-shot run, which has no later pass to benefit,
//! reads them when it first needs them.

use super::Pass;
use super::edge::{Call, Claimed};
use crate::aws::lease::Leases;
use crate::aws::quotas::Usage;
use crate::aws::stacks::tag;
use crate::config::EdgeMode;
use crate::domain::comment::State;
use crate::domain::naming::EnvKey;
use crate::github::client::StatusState;
use crate::reconcile::spec::Spec;
use crate::reconcile::{Action, Ctx, Job, Mode, Result, spec};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod shared;

/// How long quotas read from AWS are trusted.
const QUOTA_TTL: Duration = Duration::from_secs(3600);

/// How long a quota that could not be read (no permission, or an emulator
/// without the call) is taken as unknown before it is asked for again.
pub const UNREADABLE_TTL: Duration = Duration::from_secs(600);

/// The admission state shared by all workers.
pub struct Admissions {
    /// The slot and line shared with other replicas, if any.
    shared: std::sync::OnceLock<shared::Table>,
    /// Held from the count until the stack exists.
    slot: tokio::sync::Mutex<()>,
    /// Environments waiting for a slot, and since when.
    waiting: Mutex<BTreeMap<EnvKey, DateTime<Utc>>>,
    quotas: Arc<Mutex<Quotas>>,
    /// Counts the quota reads finished.
    quota_reads: Arc<tokio::sync::watch::Sender<u64>>,
    count: Mutex<Option<Count>>,
    /// Moves whenever an environment gets or frees a slot: a count read
    /// before a move is never cached after it, however late its listing
    /// returns.
    generation: AtomicU64,
}

impl Default for Admissions {
    fn default() -> Admissions {
        Admissions {
            shared: std::sync::OnceLock::new(),
            slot: tokio::sync::Mutex::default(),
            waiting: Mutex::default(),
            quotas: Arc::default(),
            quota_reads: Arc::default(),
            count: Mutex::default(),
            generation: AtomicU64::default(),
        }
    }
}

/// How long a count of preview stacks is trusted. Stacks other processes
/// create or delete (the account-wide limit) are seen this late at most.
const COUNT_TTL: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
struct Count {
    at: Instant,
    generation: u64,
    mine: usize,
    total: usize,
}

/// The account quotas as last read; `None` where they cannot be read.
#[derive(Clone, Copy)]
struct Limits {
    read_at: DateTime<Utc>,
    load_balancers: Option<u32>,
    stacks: Option<u32>,
}

impl Limits {
    /// Whether these quotas are recent enough to use without reading again.
    fn fresh(&self, now: DateTime<Utc>) -> bool {
        let ttl = if self.load_balancers.is_some() && self.stacks.is_some() {
            QUOTA_TTL
        } else {
            UNREADABLE_TTL
        };
        (now - self.read_at).to_std().unwrap_or_default() < ttl
    }
}

/// The quotas last read, and whether a read is under way.
#[derive(Default)]
struct Quotas {
    last: Option<Limits>,
    reading: bool,
}

/// Whether an environment may create its stack now.
enum Admission<'a> {
    /// Yes; keep the slot until CreateStack returns.
    Go(Slot<'a>),
    /// Not yet: `position` in line, behind `limit`.
    Queued { position: usize, limit: String },
    /// No: an account quota is reached.
    Refused(String),
}

/// The right to create a stack now: this process's, and with the shared
/// queue the replicas'.
struct Slot<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    _shared: Option<shared::Slot>,
}

impl Admissions {
    /// From now on, admit together with the other replicas that share lease
    /// table `table` (`queue.backend: sqs`).
    pub fn share(&self, leases: Leases, table: String, repository: String) {
        let _ = (self.shared).set(shared::Table::new(leases, table, repository));
    }

    /// The shared slot and line, when shared and needed.
    fn shared(&self, ctx: &Ctx) -> Option<&shared::Table> {
        self.shared.get().filter(|_| shared::Table::needed(ctx))
    }

    async fn admit(
        &self,
        ctx: &Ctx,
        key: &EnvKey,
        since: Option<DateTime<Utc>>,
    ) -> Result<Admission<'_>> {
        let local = self.slot.lock().await;
        let table = self.shared(ctx);
        let slot = Slot {
            _local: local,
            _shared: match &table {
                Some(table) => Some(table.take_slot(ctx).await?),
                None => None,
            },
        };
        let limits = &ctx.config.preview.limits;
        if limits.per_repository.is_some() || limits.total.is_some() {
            let since = since.unwrap_or_else(|| ctx.clock.now());
            let (position, since) = {
                let mut waiting = self.waiting.lock().expect("waiting lock");
                let since = *waiting.entry(key.clone()).or_insert(since);
                let mut line: Vec<_> = waiting.iter().collect();
                line.sort_by_key(|(key, since)| (**since, (*key).clone()));
                let position = line.iter().position(|(k, _)| *k == key).unwrap_or(0);
                (position, since)
            };
            let (position, Count { mine, total, .. }) = match &table {
                None => (position, self.count(ctx, false).await?),
                // Other replicas create stacks too: count afresh, and stand
                // in the line they all see.
                Some(table) => {
                    let line = table.queue(key, since, ctx.clock.now()).await?;
                    let me = table.entry(key);
                    let position = line.iter().position(|e| *e == me).unwrap_or(0);
                    (position, self.count(ctx, true).await?)
                }
            };
            let bounds = [
                limits
                    .per_repository
                    .map(|limit| Bound::new(limit, mine, "for this repository")),
                limits
                    .total
                    .map(|limit| Bound::new(limit, total, "in this account and region")),
            ];
            if let Some((position, limit)) = in_line(&bounds, position) {
                tracing::info!(env = %key, position, "queued: {limit}");
                return Ok(Admission::Queued { position, limit });
            }
        }
        if limits.check_quotas
            && let Some(reason) = self.quota_reached(ctx).await?
        {
            self.admitted(ctx, key).await?;
            tracing::warn!(env = %key, "refused: {reason}");
            return Ok(Admission::Refused(reason));
        }
        Ok(Admission::Go(slot))
    }

    /// Starts reading the account quotas in the background, unless they are
    /// not checked, a read is under way, or the last one is still fresh.
    pub fn refresh_quotas(&self, ctx: &Ctx) {
        if !ctx.config.preview.limits.check_quotas {
            return;
        }
        {
            let mut quotas = self.quotas.lock().expect("quotas lock");
            if quotas.reading || quotas.last.is_some_and(|l| l.fresh(ctx.clock.now())) {
                return;
            }
            quotas.reading = true;
        }
        let (aws, clock, cache) = (
            ctx.aws.quotas.clone(),
            ctx.clock.clone(),
            self.quotas.clone(),
        );
        let reads = self.quota_reads.clone();
        tokio::spawn(async move {
            let limits = read_quotas(&aws, &clock).await;
            {
                let mut quotas = cache.lock().expect("quotas lock");
                quotas.last = Some(limits);
                quotas.reading = false;
            }
            reads.send_modify(|n| *n += 1);
        });
    }

    /// How many quota reads have finished, as it changes.
    pub fn quota_reads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.quota_reads.subscribe()
    }

    /// The quotas to admit by: the last read, read again in the background
    /// when stale. A one-shot run reads them here the first time.
    async fn known_quotas(&self, ctx: &Ctx) -> Option<Limits> {
        if ctx.mode == Mode::OneShot {
            let last = self.quotas.lock().expect("quotas lock").last;
            if last.is_none() {
                let limits = read_quotas(&ctx.aws.quotas, &ctx.clock).await;
                self.quotas.lock().expect("quotas lock").last = Some(limits);
                self.quota_reads.send_modify(|n| *n += 1);
                return Some(limits);
            }
        }
        self.refresh_quotas(ctx);
        self.quotas.lock().expect("quotas lock").last
    }

    /// The environment has its stack (or gave up on one): out of the line.
    async fn admitted(&self, ctx: &Ctx, key: &EnvKey) -> Result<()> {
        self.waiting.lock().expect("waiting lock").remove(key);
        {
            let mut count = self.count.lock().expect("count lock");
            self.generation.fetch_add(1, Ordering::SeqCst);
            *count = None;
        }
        if let Some(table) = self.shared(ctx) {
            table.leave(key).await?;
        }
        Ok(())
    }

    /// A slot may have freed: everyone waiting looks again, and the oldest
    /// gets it. Returns the jobs to wake: those waiting here and, with the
    /// shared queue, this repository's in the line of every replica.
    pub async fn freed(&self, ctx: &Ctx, key: &EnvKey) -> Result<Vec<Job>> {
        self.admitted(ctx, key).await?;
        let mut waiting: Vec<EnvKey> = (self.waiting.lock().expect("waiting lock"))
            .keys()
            .cloned()
            .collect();
        if let Some(table) = self.shared(ctx) {
            waiting.extend(table.waiting().await?);
            waiting.sort();
            waiting.dedup();
        }
        Ok(waiting.into_iter().map(Job::Env).collect())
    }

    /// Preview stacks of this repository and of all, listed at most every
    /// [`COUNT_TTL`] unless this process created or deleted one since, or
    /// the count must be `fresh`: PRs waiting in line look again on every
    /// resync.
    async fn count(&self, ctx: &Ctx, fresh: bool) -> Result<Count> {
        let generation = self.generation.load(Ordering::SeqCst);
        if !fresh
            && let Some(count) = *self.count.lock().expect("count lock")
            && count.at.elapsed() < COUNT_TTL
            && count.generation == generation
        {
            return Ok(count);
        }
        let previews = ctx.aws.stacks.list_tagged(tag::ROLE, "preview").await?;
        let managed: Vec<_> = previews
            .iter()
            .filter(|s| s.tag(tag::MANAGED) == Some("true"))
            .collect();
        let repo = ctx.config.repository.as_str();
        let count = Count {
            at: Instant::now(),
            generation,
            mine: managed
                .iter()
                .filter(|s| s.tag(tag::REPO) == Some(repo))
                .count(),
            total: managed.len(),
        };
        let mut cached = self.count.lock().expect("count lock");
        if self.generation.load(Ordering::SeqCst) == generation {
            *cached = Some(count);
        }
        Ok(count)
    }

    /// The region's Application Load Balancers and their quota, when the
    /// quotas are checked, the quota is known and no load balancer can be
    /// added: a new edge shard must then wait.
    pub async fn load_balancers_full(&self, ctx: &Ctx) -> Result<Option<Usage>> {
        if !ctx.config.preview.limits.check_quotas {
            return Ok(None);
        }
        let Some(limit) = self.known_quotas(ctx).await.and_then(|l| l.load_balancers) else {
            return Ok(None);
        };
        let used = ctx.aws.quotas.load_balancers().await?;
        Ok(Some(Usage { used, limit }).filter(|u| u.is_full()))
    }

    /// Why the account cannot take another environment, if it cannot.
    async fn quota_reached(&self, ctx: &Ctx) -> Result<Option<String>> {
        let quotas = &ctx.aws.quotas;
        let Some(Limits {
            load_balancers: albs,
            stacks,
            ..
        }) = self.known_quotas(ctx).await
        else {
            return Ok(None);
        };
        // On the shared edge a preview takes a rule, not a load balancer.
        if let Some(limit) = albs.filter(|_| ctx.config.edge_mode() == EdgeMode::Dedicated) {
            let used = quotas.load_balancers().await?;
            if (Usage { used, limit }).is_full() {
                return Ok(Some(format!(
                    "The account already has {used} of its {limit} Application Load Balancers in \
                     this region (quota from ELB DescribeAccountLimits), and each environment \
                     needs one. Delete unused load balancers or ask AWS for a higher quota."
                )));
            }
        }
        if let Some(limit) = stacks {
            let used = quotas.stacks().await?;
            if (Usage { used, limit }).is_full() {
                return Ok(Some(format!(
                    "The account already has {used} of its {limit} CloudFormation stacks in this \
                     region (quota from CloudFormation DescribeAccountLimits). Delete unused \
                     stacks or ask AWS for a higher quota."
                )));
            }
        }
        Ok(None)
    }
}

impl Pass<'_> {
    /// Creates the environment's stack if admitted. Otherwise says on the PR
    /// that it waits in line or why it was refused, and returns the pass's
    /// end.
    pub(super) async fn create(&mut self, sha: &str, sent: &mut Spec) -> Result<Option<Action>> {
        let ctx = self.ctx;
        let admissions = &ctx.admissions;
        let _slot = match admissions.admit(ctx, &self.env.key, self.env.since).await? {
            Admission::Go(slot) => slot,
            Admission::Queued { position, limit } => {
                self.report(Some(sha), State::Queued { position, limit })
                    .await?;
                let why = "queued: preview limit reached";
                self.status(sha, StatusState::Pending, None, why).await?;
                return Ok(Some(Action::done()));
            }
            Admission::Refused(reason) => {
                self.report(Some(sha), State::Refused { reason }).await?;
                let why = "an AWS quota is reached";
                self.status(sha, StatusState::Error, None, why).await?;
                return Ok(Some(Action::done()));
            }
        };
        if ctx.config.edge_mode() == EdgeMode::Shared {
            if let Claimed::Waiting(action) = self.claim_edge(sha, sent, Call::Create).await? {
                return Ok(Some(action));
            }
        } else {
            let deploy = sent.deploy(&self.env.stack_name);
            ctx.aws
                .stacks
                .create(&deploy)
                .await
                .map_err(spec::refused)?;
        }
        admissions.admitted(ctx, &self.env.key).await?;
        Ok(None)
    }
}

/// Reads both account quotas; `None` for one that cannot be read.
async fn read_quotas(quotas: &crate::aws::quotas::Quotas, clock: &crate::clock::Clock) -> Limits {
    Limits {
        load_balancers: quotas.load_balancer_limit().await,
        stacks: quotas.stack_limit().await,
        read_at: clock.now(),
    }
}

/// One limit and how much of it is used.
struct Bound {
    limit: usize,
    used: usize,
    scope: &'static str,
}

impl Bound {
    fn new(limit: u32, used: usize, scope: &'static str) -> Bound {
        Bound {
            limit: limit as usize,
            used,
            scope,
        }
    }
}

/// Where an environment `position`th in line (0 = oldest) stands: `None`
/// when a slot is free for it, else its place among those still waiting
/// (1 = next) and the limit that holds it back.
fn in_line(bounds: &[Option<Bound>], position: usize) -> Option<(usize, String)> {
    let tightest = bounds
        .iter()
        .flatten()
        .min_by_key(|b| b.limit.saturating_sub(b.used))?;
    let free = tightest.limit.saturating_sub(tightest.used);
    (position >= free).then(|| {
        let text = format!(
            "{} of {} preview environments {} are in use",
            tightest.used, tightest.limit, tightest.scope
        );
        (position - free + 1, text)
    })
}

#[cfg(test)]
mod tests {
    use super::{Bound, in_line};

    #[test]
    fn no_limits_no_line() {
        assert_eq!(in_line(&[None, None], 100), None);
    }

    #[test]
    fn the_oldest_waiting_get_the_free_slots() {
        let bounds = [Some(Bound::new(5, 3, "for this repository")), None];
        assert_eq!(in_line(&bounds, 0), None);
        assert_eq!(in_line(&bounds, 1), None);
        let (place, why) = in_line(&bounds, 2).unwrap();
        assert_eq!(place, 1);
        assert_eq!(
            why,
            "3 of 5 preview environments for this repository are in use"
        );
    }

    #[test]
    fn the_tightest_limit_holds_back() {
        let bounds = [
            Some(Bound::new(10, 2, "for this repository")),
            Some(Bound::new(50, 50, "in this account and region")),
        ];
        let (place, why) = in_line(&bounds, 0).unwrap();
        assert_eq!(place, 1);
        assert!(why.contains("50 of 50"), "{why}");
    }

    #[test]
    fn over_the_limit_counts_as_full() {
        // Stacks created before the limit was lowered.
        let bounds = [Some(Bound::new(2, 7, "for this repository")), None];
        assert_eq!(in_line(&bounds, 0).map(|(place, _)| place), Some(1));
    }
}
