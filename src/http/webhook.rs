//! `POST /webhook`: verify the signature, parse into pullstack's own event,
//! drop redeliveries, enqueue, answer.

use super::AppState;
use crate::github::events::{self, Event};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use std::sync::Arc;

/// The JSON answer to every delivery.
#[derive(Debug, Serialize)]
pub struct Reply {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn reply(
    code: StatusCode,
    status: &'static str,
    reason: Option<String>,
) -> (StatusCode, Json<Reply>) {
    metrics::counter!("pullstack_webhooks_total", "status" => status).increment(1);
    (code, Json(Reply { status, reason }))
}

pub async fn receive(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Reply>) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(signature) = header("x-hub-signature-256") else {
        return reply(
            StatusCode::UNAUTHORIZED,
            "rejected",
            Some("missing X-Hub-Signature-256".into()),
        );
    };
    if !super::signature::verify(&state.secrets, signature, &body) {
        return reply(
            StatusCode::UNAUTHORIZED,
            "rejected",
            Some("signature does not match".into()),
        );
    }
    let Some(event_name) = header("x-github-event") else {
        return reply(
            StatusCode::BAD_REQUEST,
            "rejected",
            Some("missing X-GitHub-Event".into()),
        );
    };
    let event = match events::parse(event_name, &body) {
        Ok(event) => event,
        Err(err) => {
            tracing::info!(event = event_name, error = %err, "rejected delivery");
            return reply(StatusCode::BAD_REQUEST, "rejected", Some(err.to_string()));
        }
    };
    if let Some(delivery) = header("x-github-delivery")
        && !state.first_delivery(delivery)
    {
        tracing::debug!(delivery, "redelivery ignored");
        return reply(StatusCode::ACCEPTED, "duplicate", None);
    }
    match event {
        Event::Ping => reply(StatusCode::OK, "pong", None),
        Event::Ignored { reason } => reply(StatusCode::ACCEPTED, "ignored", Some(reason)),
        Event::Installation { action, account } => {
            tracing::info!(action, account, "installation event");
            reply(
                StatusCode::ACCEPTED,
                "ignored",
                Some("installation events are logged only".into()),
            )
        }
        event => {
            let jobs = state.router.jobs(&event);
            if jobs.is_empty() {
                return reply(
                    StatusCode::ACCEPTED,
                    "ignored",
                    Some("nothing to do for this event".into()),
                );
            }
            for (job, intent) in jobs {
                state.queue.push(job, intent);
            }
            reply(StatusCode::ACCEPTED, "queued", None)
        }
    }
}
