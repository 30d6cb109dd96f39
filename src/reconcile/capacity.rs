//! Admission of new environments: the configured limits on concurrent
//! previews, with a fair line (oldest first) when they are reached, and the
//! account quotas checked before CloudFormation would fail half-way.
//!
//! Admissions are serialised, and a slot is held from the count until the
//! CreateStack call returns, so two environments never take the last slot.

use super::preview::Env;
use super::{Controller, Job};
use crate::aws::quotas::Usage;
use crate::aws::stacks::tag;
use crate::domain::naming::EnvKey;
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
}

/// The account quotas as last read; `None` where they cannot be read.
#[derive(Clone, Copy)]
struct Limits {
    read_at: Instant,
    load_balancers: Option<u32>,
    stacks: Option<u32>,
}

/// Whether an environment may create its stack now.
pub(super) enum Admission<'a> {
    /// Yes; keep the guard until CreateStack returns.
    Go(tokio::sync::MutexGuard<'a, ()>),
    /// Not yet: `position` in line, behind `limit`.
    Queued { position: usize, limit: String },
    /// No: an account quota is reached.
    Refused(String),
}

impl Controller {
    pub(super) async fn admit(&self, env: &Env<'_>) -> anyhow::Result<Admission<'_>> {
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
            let previews = self.aws.stacks.list_tagged(tag::ROLE, "preview").await?;
            let managed: Vec<_> = previews
                .iter()
                .filter(|s| s.tag(tag::MANAGED) == Some("true"))
                .collect();
            let repo = self.forge.repo().to_string();
            let mine = managed
                .iter()
                .filter(|s| s.tag(tag::REPO) == Some(repo.as_str()))
                .count();
            let bounds = [
                limits
                    .per_repository
                    .map(|l| (l as usize, mine, "for this repository")),
                limits
                    .total
                    .map(|l| (l as usize, managed.len(), "in this account and region")),
            ];
            let (free, binding) = bounds
                .into_iter()
                .flatten()
                .map(|(limit, used, scope)| {
                    let text = format!("{used} of {limit} preview environments {scope} are in use");
                    (limit.saturating_sub(used), text)
                })
                .min_by_key(|(free, _)| *free)
                .expect("at least one limit is set");
            if position >= free {
                tracing::info!(env = %env.key, position = position - free + 1, "queued: {binding}");
                return Ok(Admission::Queued {
                    position: position - free + 1,
                    limit: binding,
                });
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

    /// The environment has its stack (or gave up on one): out of the line.
    pub(super) fn admitted(&self, key: &EnvKey) {
        self.admissions
            .waiting
            .lock()
            .expect("waiting lock")
            .remove(key);
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
