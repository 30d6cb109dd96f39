//! The HTTP surface: `POST /webhook`, `GET /healthz`, `GET /metrics`.
//!
//! Handlers only verify, parse and enqueue; all work happens in the
//! reconcile workers, so GitHub gets its answer in milliseconds.

pub mod body;
pub mod delivery;
pub mod serve;
pub mod signature;
pub mod webhook;

use crate::aws::work_queue::WorkQueue;
use crate::clock::Clock;
use crate::reconcile::Job;
use crate::reconcile::durable::Carried;
use crate::reconcile::lease::Claim;
use crate::reconcile::queue::Queue;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use body::BodyBudget;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// GitHub caps webhook payloads at 25 MB.
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// How many delivery ids are remembered to spot redeliveries.
const SEEN_DELIVERIES: usize = 10_000;

/// Where an accepted delivery's jobs go.
pub enum Admit {
    /// Into this process's queue.
    Local(Queue<Job, Carried>),
    /// Each repository's events to the hub, which reads the repository's
    /// config and routes them to its reconciler.
    Hub {
        hub: Arc<crate::reconcile::hub::Hub>,
        queue: crate::reconcile::hub::HubQueue,
        /// With the shared queue, where each repository's jobs are sent;
        /// 202 only once SQS has them.
        shared: Option<SharedQueue>,
    },
    /// Into the SQS queue replicas share; 202 only once SQS has them.
    Shared(SharedQueue),
}

/// The SQS queue replicas share, and their lease.
pub struct SharedQueue {
    pub queue: WorkQueue,
    /// The lease on periodic work, shown on `/metrics`.
    pub claim: Claim,
    pub clock: Clock,
}

/// What the handlers share.
pub struct AppState {
    pub secrets: Vec<SecretString>,
    /// How one repository's events map to jobs; `None` with the hub,
    /// which routes each repository's events under its own config.
    pub router: Option<crate::reconcile::routing::Router>,
    pub admit: Admit,
    pub metrics: PrometheusHandle,
    /// Memory for request bodies in flight, shared by all connections.
    pub budget: BodyBudget,
    seen: Mutex<lru::LruCache<String, ()>>,
}

impl AppState {
    pub fn new(
        secrets: Vec<SecretString>,
        router: Option<crate::reconcile::routing::Router>,
        admit: Admit,
        metrics: PrometheusHandle,
        budget: BodyBudget,
    ) -> AppState {
        let capacity = NonZeroUsize::new(SEEN_DELIVERIES).expect("non-zero");
        AppState {
            secrets,
            router,
            admit,
            metrics,
            budget,
            seen: Mutex::new(lru::LruCache::new(capacity)),
        }
    }

    /// Records a delivery id; false if it was already seen.
    fn first_delivery(&self, id: &str) -> bool {
        let mut seen = self.seen.lock().expect("delivery cache lock");
        seen.put(id.to_owned(), ()).is_none()
    }

    /// Forgets a delivery id: the delivery was refused, and its
    /// redelivery must be taken.
    fn forget_delivery(&self, id: &str) {
        let mut seen = self.seen.lock().expect("delivery cache lock");
        seen.pop(id);
    }
}

/// The application's routes.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhook", post(webhook::receive))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// How long `/metrics` waits for SQS and DynamoDB.
const SHARED_READ: std::time::Duration = std::time::Duration::from_secs(2);

async fn metrics(State(state): State<Arc<AppState>>) -> String {
    if let Admit::Shared(shared)
    | Admit::Hub {
        shared: Some(shared),
        ..
    } = &state.admit
    {
        shared_gauges(&shared.queue, &shared.claim, &shared.clock).await;
    }
    state.metrics.render()
}

/// The shared queue's depth and the lease holder, read when scraped so
/// every replica shows them as they are.
async fn shared_gauges(queue: &WorkQueue, claim: &Claim, clock: &Clock) {
    let now = clock.now();
    let read = async {
        tokio::join!(
            queue.depth(),
            claim.leases.holder(&claim.table, &claim.key, now)
        )
    };
    let Ok((depth, holder)) = tokio::time::timeout(SHARED_READ, read).await else {
        tracing::debug!("reading the shared queue for /metrics timed out");
        return;
    };
    match depth {
        Ok(depth) => {
            metrics::gauge!("pullstack_sqs_messages", "state" => "visible")
                .set(depth.visible as f64);
            metrics::gauge!("pullstack_sqs_messages", "state" => "in_flight")
                .set(depth.in_flight as f64);
        }
        Err(err) => tracing::debug!(error = %err, "reading the queue depth failed"),
    }
    match holder {
        Ok(holder) => {
            // One series at 1, naming the holder ("" when none); the one
            // shown before is zeroed when the holder changes.
            static SHOWN: Mutex<Option<String>> = Mutex::new(None);
            let name = holder.map_or_else(String::new, |held| held.holder);
            let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(before) = shown.replace(name.clone())
                && before != name
            {
                metrics::gauge!("pullstack_lease_holder", "holder" => before).set(0.0);
            }
            metrics::gauge!("pullstack_lease_holder", "holder" => name).set(1.0);
        }
        Err(err) => tracing::debug!(error = %err, "reading the lease holder failed"),
    }
}
