//! Admission shared by replicas (`queue.backend: sqs`).
//!
//! Each replica counts the preview stacks itself, so two replicas counting
//! at once could both take the last slot. With the shared queue, the slot
//! is therefore also a DynamoDB lease (`admission` in the lease table),
//! held from the count until CreateStack returns, and the line is one item
//! of that table, with an attribute per waiting environment. Replicas then
//! admit as one process would: never past a limit, oldest first.
//!
//! Each admission that finds the slot held by another replica counts in
//! `pullstack_admission_slot_waits_total`.
//!
//! An entry of the line that has not asked again for [`STALE_AFTER`] (its
//! replica died, or its PR went elsewhere) is ignored and dropped: waiting
//! environments ask again on every resync.

use crate::aws::lease::{Leases, Waiting};
use crate::domain::naming::EnvKey;
use crate::reconcile::{Ctx, Error, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The lease key of the admission slot.
const SLOT: &str = "admission";

/// How long a replica may hold the slot: a count and one CreateStack.
const SLOT_TTL: Duration = Duration::from_secs(30);

/// How long a replica waits for the slot before it gives up on this pass
/// (the pass is then retried as any failed call is).
const SLOT_WAIT: Duration = Duration::from_secs(60);

/// The first pause between tries for the slot; it doubles up to half a
/// second.
const FIRST_PAUSE: Duration = Duration::from_millis(20);

/// A line entry not renewed for this long is dropped.
pub const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// Where the shared slot and line live, and who this replica is.
#[derive(Clone)]
pub struct Table {
    leases: Leases,
    name: String,
    replica: String,
    repository: String,
}

impl Table {
    /// The slot and line in lease table `name`, for `repository`'s
    /// environments.
    pub fn new(leases: Leases, name: String, repository: String) -> Table {
        Table {
            leases,
            name,
            replica: crate::reconcile::lease::Claim::replica_name(),
            repository,
        }
    }

    /// Whether admission has anything to count, so needs the slot.
    pub fn needed(ctx: &Ctx) -> bool {
        let limits = &ctx.config.preview.limits;
        limits.per_repository.is_some() || limits.total.is_some() || limits.check_quotas
    }

    /// Takes the admission slot, waiting while another replica holds it.
    pub async fn take_slot(&self, ctx: &Ctx) -> Result<Slot> {
        // Each hold is its own holder, so the late give-back of an earlier
        // hold of this replica never frees a later one.
        let holder = format!("{}/{:016x}", self.replica, rand::random::<u64>());
        let started = std::time::Instant::now();
        let mut pause = FIRST_PAUSE;
        loop {
            let now = ctx.clock.now();
            let until = now + SLOT_TTL;
            if (self.leases)
                .hold(&self.name, SLOT, &holder, now, until)
                .await?
            {
                return Ok(Slot {
                    held: Some((self.clone(), holder)),
                });
            }
            if pause == FIRST_PAUSE {
                metrics::counter!("pullstack_admission_slot_waits_total").increment(1);
            }
            if started.elapsed() > SLOT_WAIT {
                return Err(Error::internal(anyhow::anyhow!(
                    "another replica has held the preview admission slot for over {}s",
                    SLOT_WAIT.as_secs()
                )));
            }
            // Jittered, so replicas that wait together do not ask together.
            let jitter = Duration::from_millis(rand::random_range(0..=pause.as_millis() as u64));
            tokio::time::sleep(pause + jitter).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Puts `key` in the line (keeping its place) and returns the line,
    /// oldest first, without stale entries.
    pub async fn queue(
        &self,
        key: &EnvKey,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let env = self.entry(key);
        self.leases
            .wait_in_line(&self.name, &env, since, now)
            .await?;
        let mut line = self.leases.line(&self.name).await?;
        let (stale, mut live): (Vec<Waiting>, Vec<Waiting>) = line
            .drain(..)
            .partition(|w| (now - w.seen).to_std().is_ok_and(|age| age > STALE_AFTER));
        for gone in stale {
            self.leases.leave_line(&self.name, &gone.env).await?;
        }
        live.sort_by(|a, b| (a.since, &a.env).cmp(&(b.since, &b.env)));
        Ok(live.into_iter().map(|w| w.env).collect())
    }

    /// The line's name for `key`.
    pub fn entry(&self, key: &EnvKey) -> String {
        let key = serde_json::to_string(key).expect("an EnvKey serialises");
        format!("{} {key}", self.repository)
    }

    /// Takes `key` out of the line.
    pub async fn leave(&self, key: &EnvKey) -> Result<()> {
        Ok(self.leases.leave_line(&self.name, &self.entry(key)).await?)
    }

    /// This repository's environments waiting in the line.
    pub async fn waiting(&self) -> Result<Vec<EnvKey>> {
        let prefix = format!("{} ", self.repository);
        let line = self.leases.line(&self.name).await?;
        Ok(line
            .iter()
            .filter_map(|w| serde_json::from_str(w.env.strip_prefix(&prefix)?).ok())
            .collect())
    }
}

/// The shared slot while held; given back when dropped.
pub struct Slot {
    held: Option<(Table, String)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some((table, holder)) = self.held.take() else {
            return;
        };
        // Given back at once rather than left to expire, so the next
        // replica does not wait out SLOT_TTL.
        tokio::spawn(async move {
            if let Err(err) = table.leases.release(&table.name, SLOT, &holder).await {
                tracing::warn!(error = %err, "giving back the admission slot failed; it expires");
            }
        });
    }
}
