//! Which replica runs the periodic work (the resync, which wakes
//! production and applies the idle rules, and the image prune).
//!
//! With the memory backend the one process always does. With `sqs`, the
//! replicas compete for a DynamoDB lease ([`crate::aws::lease`]): each tries
//! to take or renew it every quarter of `lease_ttl`, on the [`Clock`], and
//! the holder writes an expiry three quarters of `lease_ttl` ahead. A
//! holder that dies is replaced within `lease_ttl` of its last renewal.

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
    /// The lease's key: one per repository, or one for a server of many
    /// ([`Claim::SERVER`]).
    pub key: String,
    /// This replica, as the table names it.
    pub holder: String,
    pub ttl: Duration,
}

impl Claim {
    /// The lease key of a server of many repositories: one holder resyncs
    /// the list of repositories and every repository.
    pub const SERVER: &str = "periodic/repositories";

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

    /// Says this replica is alive for `ttl`, and counts those alive (this
    /// one at least); `None` when the table cannot be read.
    async fn roll_call(&self, now: DateTime<Utc>) -> Option<u32> {
        let counted = async {
            (self.leases)
                .present(&self.table, &self.holder, now + self.ttl)
                .await?;
            self.leases.present_count(&self.table, now).await
        };
        match counted.await {
            Ok(count) => Some(count.max(1)),
            Err(err) => {
                tracing::warn!(error = %err, "the replicas' roll call failed");
                None
            }
        }
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
/// holds it, calls `resync` at once and every `resync_every`. Returns the task and whether the lease is held, as it
/// changes.
///
/// On the same beat, the replica answers a roll call in the table and
/// hands `on_count` how many replicas are alive, so each can take its
/// share of what they must share (GitHub's write limit).
pub fn spawn(
    claim: Claim,
    resync: impl Fn() + Send + 'static,
    resync_every: Duration,
    clock: Clock,
    shutdown: CancellationToken,
    on_count: impl Fn(u32) + Send + 'static,
) -> (JoinHandle<()>, watch::Receiver<bool>) {
    let (held_tx, held) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut next_resync: Option<DateTime<Utc>> = None;
        loop {
            let now = clock.now();
            if let Some(count) = claim.roll_call(now).await {
                metrics::gauge!("pullstack_replicas").set(f64::from(count));
                on_count(count);
            }
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
                resync();
                next_resync = Some(now + resync_every);
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = clock.sleep(claim.ttl / 4) => {}
            }
        }
        if let Err(err) = (claim.leases).absent(&claim.table, &claim.holder).await {
            tracing::debug!(error = %err, "leaving the roll call failed; it expires on its own");
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
