//! Admission of new environments: the configured limits on concurrent
//! previews, with a fair line (oldest first) when they are reached, and the
//! account quotas checked before CloudFormation would fail half-way.
//!
//! Admissions are serialised, and a slot is held from the count until the
//! CreateStack call returns, so two environments never take the last slot.

use super::preview::Env;
use super::queue::Next;
use super::sticky::Sticky;
use super::{Controller, Job};
use crate::aws::quotas::Usage;
use crate::aws::stacks::Deploy;
use crate::aws::stacks::tag;
use crate::domain::comment::State;
use crate::domain::naming::EnvKey;
use crate::github::client::StatusState;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long quotas read from AWS are trusted.
const QUOTA_TTL: Duration = Duration::from_secs(3600);

/// The admission state shared by all workers.
#[derive(Default)]
pub(super) struct Admissions {
    /// Held from the count until the stack exists.
    slot: tokio::sync::Mutex<()>,
    /// Environments waiting for a slot, and since when.
    waiting: Mutex<BTreeMap<EnvKey, DateTime<Utc>>>,
    quotas: tokio::sync::Mutex<Option<Limits>>,
    count: Mutex<Option<Count>>,
}

/// How long a count of preview stacks is trusted. Stacks other processes
/// create or delete (the account-wide limit) are seen this late at most.
const COUNT_TTL: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
struct Count {
    at: Instant,
    mine: usize,
    total: usize,
}

/// The account quotas as last read; `None` where they cannot be read.
#[derive(Clone, Copy)]
struct Limits {
    read_at: Instant,
    load_balancers: Option<u32>,
    stacks: Option<u32>,
}

/// Whether an environment may create its stack now.
enum Admission<'a> {
    /// Yes; keep the guard until CreateStack returns.
    Go(tokio::sync::MutexGuard<'a, ()>),
    /// Not yet: `position` in line, behind `limit`.
    Queued { position: usize, limit: String },
    /// No: an account quota is reached.
    Refused(String),
}

impl Controller {
    async fn admit(&self, env: &Env<'_>) -> anyhow::Result<Admission<'_>> {
        let slot = self.admissions.slot.lock().await;
        let limits = &self.config.preview.limits;
        if limits.per_repository.is_some() || limits.total.is_some() {
            let since = env.since.unwrap_or_else(Utc::now);
            let position = {
                let mut waiting = self.admissions.waiting.lock().expect("waiting lock");
                waiting.entry(env.key.clone()).or_insert(since);
                let mut line: Vec<_> = waiting.iter().collect();
                line.sort_by_key(|(key, since)| (**since, (*key).clone()));
                line.iter()
                    .position(|(key, _)| *key == env.key)
                    .unwrap_or(0)
            };
            let Count { mine, total, .. } = self.count().await?;
            let bounds = [
                limits
                    .per_repository
                    .map(|limit| Bound::new(limit, mine, "for this repository")),
                limits
                    .total
                    .map(|limit| Bound::new(limit, total, "in this account and region")),
            ];
            if let Some((position, limit)) = in_line(&bounds, position) {
                tracing::info!(env = %env.key, position, "queued: {limit}");
                return Ok(Admission::Queued { position, limit });
            }
        }
        if self.config.preview.limits.check_quotas
            && let Some(reason) = self.quota_reached().await?
        {
            self.admitted(env.key);
            tracing::warn!(env = %env.key, "refused: {reason}");
            return Ok(Admission::Refused(reason));
        }
        Ok(Admission::Go(slot))
    }

    /// Creates the environment's stack if admitted. Otherwise says on the PR
    /// that it waits in line or why it was refused, and returns the pass's
    /// end.
    pub(super) async fn create(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        sha: &str,
        deploy: &Deploy<'_>,
    ) -> anyhow::Result<Option<Next>> {
        let _slot = match self.admit(env).await? {
            Admission::Go(slot) => slot,
            Admission::Queued { position, limit } => {
                let state = State::Queued { position, limit };
                self.report(env, sticky, Some(sha), state).await?;
                let why = "queued: preview limit reached";
                self.status(env, sha, StatusState::Pending, None, why)
                    .await?;
                return Ok(Some(Next::Done));
            }
            Admission::Refused(reason) => {
                self.report(env, sticky, Some(sha), State::Refused { reason })
                    .await?;
                let why = "an AWS quota is reached";
                self.status(env, sha, StatusState::Error, None, why).await?;
                return Ok(Some(Next::Done));
            }
        };
        self.aws.stacks.create(deploy).await?;
        self.admitted(env.key);
        Ok(None)
    }

    /// The environment has its stack (or gave up on one): out of the line.
    pub(super) fn admitted(&self, key: &EnvKey) {
        self.admissions
            .waiting
            .lock()
            .expect("waiting lock")
            .remove(key);
        *self.admissions.count.lock().expect("count lock") = None;
    }

    /// Preview stacks of this repository and of all, listed at most every
    /// [`COUNT_TTL`] unless this process created or deleted one since: PRs
    /// waiting in line look again on every resync.
    async fn count(&self) -> anyhow::Result<Count> {
        if let Some(count) = *self.admissions.count.lock().expect("count lock")
            && count.at.elapsed() < COUNT_TTL
        {
            return Ok(count);
        }
        let previews = self.aws.stacks.list_tagged(tag::ROLE, "preview").await?;
        let managed: Vec<_> = previews
            .iter()
            .filter(|s| s.tag(tag::MANAGED) == Some("true"))
            .collect();
        let repo = self.forge.repo().to_string();
        let count = Count {
            at: Instant::now(),
            mine: managed
                .iter()
                .filter(|s| s.tag(tag::REPO) == Some(repo.as_str()))
                .count(),
            total: managed.len(),
        };
        *self.admissions.count.lock().expect("count lock") = Some(count);
        Ok(count)
    }

    /// A slot may have freed: everyone waiting looks again, and the oldest
    /// gets it.
    pub(super) fn slot_freed(&self, key: &EnvKey) {
        self.admitted(key);
        let waiting: Vec<EnvKey> = self
            .admissions
            .waiting
            .lock()
            .expect("waiting lock")
            .keys()
            .cloned()
            .collect();
        if let Some(queue) = self.queue.get() {
            for key in waiting {
                queue.push(Job::Env(key), None);
            }
        }
    }

    /// Why the account cannot take another environment, if it cannot.
    async fn quota_reached(&self) -> anyhow::Result<Option<String>> {
        let Limits {
            load_balancers: albs,
            stacks,
            ..
        } = {
            let mut cached = self.admissions.quotas.lock().await;
            match *cached {
                Some(limits) if limits.read_at.elapsed() < QUOTA_TTL => limits,
                _ => {
                    let limits = Limits {
                        read_at: Instant::now(),
                        load_balancers: self.aws.quotas.load_balancer_limit().await,
                        stacks: self.aws.quotas.stack_limit().await,
                    };
                    *cached = Some(limits);
                    limits
                }
            }
        };
        if let Some(limit) = albs {
            let used = self.aws.quotas.load_balancers().await?;
            if (Usage { used, limit }).is_full() {
                return Ok(Some(format!(
                    "The account already has {used} of its {limit} Application Load Balancers in \
                     this region (quota from ELB DescribeAccountLimits), and each environment \
                     needs one. Delete unused load balancers or ask AWS for a higher quota."
                )));
            }
        }
        if let Some(limit) = stacks {
            let used = self.aws.quotas.stacks().await?;
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
