//! `POST /webhook`: route a verified delivery ([`Delivery`]) and answer.
//! Work happens in the reconcile workers, so GitHub gets its answer in
//! milliseconds.

use super::AppState;
use super::delivery::Delivery;
use crate::reconcile::routing::Route;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;

/// The JSON answer to every delivery.
#[derive(Debug, Serialize)]
pub struct Reply {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A status code with its [`Reply`].
pub type Answer = (StatusCode, Json<Reply>);

pub(super) fn reply(code: StatusCode, status: &'static str, reason: Option<String>) -> Answer {
    metrics::counter!("pullstack_webhooks_total", "status" => status).increment(1);
    (code, Json(Reply { status, reason }))
}

pub async fn receive(State(state): State<Arc<AppState>>, delivery: Delivery) -> Answer {
    match state.router.route(&delivery.event) {
        Route::Pong => reply(StatusCode::OK, "pong", None),
        Route::Ignored(reason) => reply(StatusCode::ACCEPTED, "ignored", Some(reason)),
        Route::Jobs(jobs) => {
            for (job, intent) in jobs {
                state.queue.push(job, intent);
            }
            reply(StatusCode::ACCEPTED, "queued", None)
        }
    }
}
