//! Which replica runs the periodic work (the resync, which wakes
//! production and applies the idle rules, and the image prune).
//!
//! With the memory backend the one process always does. With `sqs`, the
//! replicas compete for a DynamoDB lease ([`crate::aws::lease`]): each tries
//! to take or renew it every quarter of `lease_ttl`, on the [`Clock`], and
//! the holder writes an expiry three quarters of `lease_ttl` ahead. A
//! holder that dies is replaced within `lease_ttl` of its last renewal.

use super::Job;
use super::durable::Carried;
use super::queue::Queue;
use crate::aws::lease::Leases;
use crate::clock::Clock;
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One replica's claim on the periodic work.
#[derive(Clone)]
pub struct Claim {
    pub leases: Leases,
    pub table: String,
    /// The lease's key: one per repository.
    pub key: String,
    /// This replica, as the table names it.
    pub holder: String,
    pub ttl: Duration,
}

impl Claim {
    /// The lease key for `repository`'s periodic work.
    pub fn key_for(repository: &str) -> String {
        format!("periodic/{repository}")
    }

    /// A name for this replica: the host's, plus a random suffix so two
    /// processes on one host differ.
    pub fn replica_name() -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "pullstack".to_owned());
        format!("{host}-{:08x}", rand::random::<u32>())
    }

    /// How far ahead a renewal sets the expiry.
    fn span(&self) -> Duration {
        self.ttl * 3 / 4
    }

    /// Takes or renews the lease at `now`.
    async fn hold(&self, now: DateTime<Utc>) -> bool {
        let until = now + self.span();
        match (self.leases)
            .hold(&self.table, &self.key, &self.holder, now, until)
            .await
        {
            Ok(held) => held,
            Err(err) => {
                tracing::warn!(error = %err, "renewing the lease failed");
                false
            }
        }
    }
}

/// Whether this process holds the periodic work: always with the memory
/// backend.
pub fn always() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
    // Kept alive for good: the receiver never sees a change.
    std::mem::forget(tx);
    rx
}

/// Keeps trying for the lease until `shutdown`, then gives it up. While it
/// holds it, pushes a resync into `local` at once and every
/// `resync_every`. Returns the task and whether the lease is held, as it
/// changes.
pub fn spawn(
    claim: Claim,
    local: Queue<Job, Carried>,
    resync_every: Duration,
    clock: Clock,
    shutdown: CancellationToken,
) -> (JoinHandle<()>, watch::Receiver<bool>) {
    let (held_tx, held) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut next_resync: Option<DateTime<Utc>> = None;
        loop {
            let now = clock.now();
            let held = claim.hold(now).await;
            let was = held_tx.send_replace(held);
            metrics::gauge!("pullstack_lease_held").set(if held { 1.0 } else { 0.0 });
            if held != was {
                if held {
                    tracing::info!(holder = claim.holder, "took the lease on periodic work");
                } else {
                    tracing::info!(holder = claim.holder, "lost the lease on periodic work");
                }
                metrics::counter!("pullstack_lease_changes_total").increment(1);
            }
            if !held {
                next_resync = None;
            } else if next_resync.is_none_or(|at| at <= now) {
                local.push(Job::Resync, None);
                next_resync = Some(now + resync_every);
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = clock.sleep(claim.ttl / 4) => {}
            }
        }
        if *held_tx.borrow()
            && let Err(err) = (claim.leases)
                .release(&claim.table, &claim.key, &claim.holder)
                .await
        {
            tracing::debug!(error = %err, "giving the lease up failed; it expires on its own");
        }
    });
    (task, held)
}
