//! The HTTP surface: `POST /webhook`, `GET /healthz`, `GET /metrics`.
//!
//! Handlers only verify, parse and enqueue; all work happens in the
//! reconcile workers, so GitHub gets its answer in milliseconds.

pub mod body;
pub mod delivery;
pub mod serve;
pub mod signature;
pub mod webhook;

use crate::reconcile::queue::Queue;
use crate::reconcile::{Intent, Job};
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

/// What the handlers share.
pub struct AppState {
    pub secrets: Vec<SecretString>,
    pub router: crate::reconcile::routing::Router,
    pub queue: Queue<Job, Intent>,
    pub metrics: PrometheusHandle,
    /// Memory for request bodies in flight, shared by all connections.
    pub budget: BodyBudget,
    seen: Mutex<lru::LruCache<String, ()>>,
}

impl AppState {
    pub fn new(
        secrets: Vec<SecretString>,
        router: crate::reconcile::routing::Router,
        queue: Queue<Job, Intent>,
        metrics: PrometheusHandle,
        budget: BodyBudget,
    ) -> AppState {
        let capacity = NonZeroUsize::new(SEEN_DELIVERIES).expect("non-zero");
        AppState {
            secrets,
            router,
            queue,
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
}

/// The application's routes.
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhook", post(webhook::receive))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> String {
    state.metrics.render()
}
