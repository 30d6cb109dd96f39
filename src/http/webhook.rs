//! `POST /webhook`: route a verified delivery ([`Delivery`]) and answer.
//! Work happens in the reconcile workers, so GitHub gets its answer in
//! milliseconds.

use super::delivery::Delivery;
use super::{Admit, AppState};
use crate::github::events::Event;
use crate::reconcile::durable::{self, Carried, Wish};
use crate::reconcile::hub::{Hub, HubJob, HubQueue};
use crate::reconcile::routing::Route;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

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

/// How long the shared queue may take to take a delivery's jobs; GitHub
/// waits 10 s for the answer.
const SEND_WITHIN: Duration = Duration::from_secs(5);

pub async fn receive(State(state): State<Arc<AppState>>, delivery: Delivery) -> Answer {
    if let Admit::Hub { hub, queue } = &state.admit {
        return to_hub(hub, queue, delivery.event);
    }
    let router = (state.router.as_ref()).expect("a one-repository server routes its own events");
    let jobs = match router.route(&delivery.event) {
        Route::Pong => return reply(StatusCode::OK, "pong", None),
        Route::Ignored(reason) => return reply(StatusCode::ACCEPTED, "ignored", Some(reason)),
        Route::Jobs(jobs) => jobs,
    };
    let queue = match &state.admit {
        Admit::Local(queue) => {
            for (job, intent) in jobs {
                queue.push(job, intent.map(Carried::Intent));
            }
            return reply(StatusCode::ACCEPTED, "queued", None);
        }
        Admit::Shared { queue, .. } => queue,
        Admit::Hub { .. } => unreachable!("the hub's deliveries are taken above"),
    };
    // Without a delivery id, nothing marks a redelivery: each is new.
    let delivery_id =
        (delivery.id.clone()).unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
    let sends = async {
        for (index, (job, intent)) in jobs.into_iter().enumerate() {
            let dedup = durable::dedup_id(&delivery_id, index, &job);
            durable::send(queue, &Wish { job, intent }, &dedup).await?;
        }
        Ok::<_, crate::aws::Error>(())
    };
    let failure = match tokio::time::timeout(SEND_WITHIN, sends).await {
        Ok(Ok(())) => return reply(StatusCode::ACCEPTED, "queued", None),
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("SQS did not answer within {SEND_WITHIN:?}"),
    };
    // Not acknowledged, so GitHub shows a failed delivery to redeliver;
    // the jobs SQS did take are dropped then as duplicates.
    tracing::warn!(error = failure, "the work queue did not take a delivery");
    if let Some(id) = &delivery.id {
        state.forget_delivery(id);
    }
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        Some("the work queue cannot take the delivery now; redeliver it".to_owned()),
    )
}

/// Hands a delivery to the hub: the repository's config decides what it
/// asks for. A repository the server does not serve is answered 202 and
/// ignored, so GitHub never shows it as a failure to redeliver.
fn to_hub(hub: &Hub, queue: &HubQueue, event: Event) -> Answer {
    match &event {
        Event::Ping => return reply(StatusCode::OK, "pong", None),
        Event::Ignored { reason } => {
            return reply(StatusCode::ACCEPTED, "ignored", Some(reason.clone()));
        }
        Event::Installation { action, account } => {
            tracing::info!(
                action,
                account,
                "installation event: listing the repositories again"
            );
            queue.push(HubJob::Installations, None);
            return reply(StatusCode::ACCEPTED, "queued", None);
        }
        _ => {}
    }
    match event.repo() {
        Some(repo) if hub.serves(repo) => {
            queue.push(HubJob::repo(repo), Some(event));
            reply(StatusCode::ACCEPTED, "queued", None)
        }
        Some(repo) => {
            tracing::info!(%repo, "a delivery for a repository this server does not serve: ignored");
            let reason = format!("{repo} is not served by this server");
            reply(StatusCode::ACCEPTED, "ignored", Some(reason))
        }
        None => reply(StatusCode::ACCEPTED, "ignored", None),
    }
}
