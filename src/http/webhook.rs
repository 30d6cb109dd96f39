//! `POST /webhook`: route a verified delivery ([`Delivery`]) and answer.
//! Work happens in the reconcile workers, so GitHub gets its answer in
//! milliseconds.

use super::delivery::Delivery;
use super::{Admit, AppState};
use crate::aws::work_queue::WorkQueue;
use crate::github::events::Event;
use crate::reconcile::durable::{self, Carried, Wish};
use crate::reconcile::hub::{Hub, HubJob, HubQueue};
use crate::reconcile::routing::Route;
use crate::reconcile::{Intent, Job};
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

/// How long a server of many repositories may take to read a delivery's
/// repository config and send its jobs: within GitHub's 10 s.
const PREPARE_WITHIN: Duration = Duration::from_secs(8);

pub async fn receive(State(state): State<Arc<AppState>>, delivery: Delivery) -> Answer {
    if let Admit::Hub { hub, queue, shared } = &state.admit {
        return match shared {
            None => to_hub(hub, queue, delivery.event),
            Some(shared) => to_shared_hub(&state, hub, queue, &shared.queue, delivery).await,
        };
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
        Admit::Shared(shared) => &shared.queue,
        Admit::Hub { .. } => unreachable!("the hub's deliveries are taken above"),
    };
    let delivery_id = id_of(&delivery);
    let sent = tokio::time::timeout(SEND_WITHIN, send_jobs(queue, None, &delivery_id, jobs)).await;
    let failure = match sent {
        Ok(Ok(())) => return reply(StatusCode::ACCEPTED, "queued", None),
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("SQS did not answer within {SEND_WITHIN:?}"),
    };
    refuse(&state, &delivery, &failure)
}

/// The delivery's id; without one, nothing marks a redelivery: each is new.
fn id_of(delivery: &Delivery) -> String {
    (delivery.id.clone()).unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()))
}

/// Sends a delivery's jobs for `repository` to the shared queue.
async fn send_jobs(
    queue: &WorkQueue,
    repository: Option<&str>,
    delivery_id: &str,
    jobs: Vec<(Job, Option<Intent>)>,
) -> Result<(), crate::aws::Error> {
    for (index, (job, intent)) in jobs.into_iter().enumerate() {
        let dedup = durable::dedup_id(repository, delivery_id, index, &job);
        let wish = Wish {
            repository: repository.map(str::to_owned),
            job,
            intent,
        };
        durable::send(queue, &wish, &dedup).await?;
    }
    Ok(())
}

/// Not acknowledged, so GitHub shows a failed delivery to redeliver; the
/// jobs SQS did take are dropped then as duplicates.
fn refuse(state: &AppState, delivery: &Delivery, failure: &str) -> Answer {
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

/// What became of a delivery for a repository, with the shared queue.
enum Taken {
    /// Its jobs are in SQS.
    Queued,
    /// Nothing to do, and why.
    Ignored(String),
    /// The repository is not served: answered as without the shared queue.
    NotServed,
}

/// With the shared queue, a delivery for a served repository is answered
/// 202 only once its jobs are in SQS.
///
/// Its repository's config is read before answering ([`Hub::prepare`]),
/// rather than the delivery queued in this process for a later read: then
/// what the delivery asks for is in SQS, in its repository's jobs, before
/// GitHub hears 202, and a replica that dies right after answering loses
/// nothing. The read is a request or two (the file is parsed again only
/// when its blob changes), and a pull request that changes the file gets
/// its Check Run here too. If GitHub or SQS cannot answer in time, the
/// delivery is refused with 503, to be redelivered.
async fn to_shared_hub(
    state: &AppState,
    hub: &Hub,
    queue: &HubQueue,
    work: &WorkQueue,
    delivery: Delivery,
) -> Answer {
    let Some(key) = delivery.event.repo().map(crate::reconcile::hub::key_of) else {
        // Pings, installations and what is ignored.
        return to_hub(hub, queue, delivery.event);
    };
    let delivery_id = id_of(&delivery);
    let event = &delivery.event;
    let taken = async {
        // Another replica may have taken the delivery that added it.
        let serves = (hub.serves_now(&key).await)
            .map_err(|err| format!("listing the App's installations: {err:#}"))?;
        if !serves {
            return Ok(Taken::NotServed);
        }
        let served = (hub.prepare(&key, std::slice::from_ref(event)).await)
            .map_err(|err| format!("reading {key}'s config: {err}"))?;
        let Some(served) = served else {
            let reason = format!("{key} has no valid {}", crate::config::REPO_FILE);
            return Ok(Taken::Ignored(reason));
        };
        match served.router.route(event) {
            Route::Jobs(jobs) => {
                (send_jobs(work, Some(&key), &delivery_id, jobs).await)
                    .map_err(|err| err.to_string())?;
                Ok(Taken::Queued)
            }
            Route::Pong => Ok(Taken::Ignored("a ping".to_owned())),
            Route::Ignored(reason) => Ok(Taken::Ignored(reason)),
        }
    };
    let failure = match tokio::time::timeout(PREPARE_WITHIN, taken).await {
        Ok(Ok(Taken::Queued)) => return reply(StatusCode::ACCEPTED, "queued", None),
        Ok(Ok(Taken::Ignored(reason))) => {
            return reply(StatusCode::ACCEPTED, "ignored", Some(reason));
        }
        Ok(Ok(Taken::NotServed)) => return to_hub(hub, queue, delivery.event),
        Ok(Err(failure)) => failure,
        Err(_) => format!("GitHub and SQS did not answer within {PREPARE_WITHIN:?}"),
    };
    refuse(state, &delivery, &failure)
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
