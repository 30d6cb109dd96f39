//! The webhook's front door as one axum extractor: a [`Delivery`] exists
//! only once its signature verified, its event parsed into pullstack's own
//! type, and its delivery id was not seen before. Anything else is answered
//! here, before a handler runs.

use super::AppState;
use super::webhook::{Answer, reply};
use crate::github::events::{self, Event};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use std::sync::Arc;

/// A verified, parsed, first-seen webhook delivery.
pub struct Delivery {
    pub event: Event,
}

impl FromRequest<Arc<AppState>> for Delivery {
    type Rejection = Answer;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, Answer> {
        let [signature, event_name, delivery] =
            ["x-hub-signature-256", "x-github-event", "x-github-delivery"].map(|name| {
                let value = request.headers().get(name)?;
                value.to_str().ok().map(str::to_owned)
            });
        let rejected = |code, reason: &str| reply(code, "rejected", Some(reason.to_owned()));
        // Refused before a byte of the body is read.
        let Some(signature) = signature else {
            return Err(rejected(
                StatusCode::UNAUTHORIZED,
                "missing X-Hub-Signature-256",
            ));
        };
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let code = rejection.status();
                reply(code, "rejected", Some(rejection.body_text()))
            })?;
        if !super::signature::verify(&state.secrets, &signature, &body) {
            return Err(rejected(
                StatusCode::UNAUTHORIZED,
                "signature does not match",
            ));
        }
        let Some(event_name) = event_name else {
            return Err(rejected(StatusCode::BAD_REQUEST, "missing X-GitHub-Event"));
        };
        let event = events::parse(&event_name, &body).map_err(|err| {
            tracing::info!(event = event_name, error = %err, "rejected delivery");
            rejected(StatusCode::BAD_REQUEST, &err.to_string())
        })?;
        if let Some(delivery) = delivery
            && !state.first_delivery(&delivery)
        {
            tracing::debug!(delivery, "redelivery ignored");
            return Err(reply(StatusCode::ACCEPTED, "duplicate", None));
        }
        Ok(Delivery { event })
    }
}
