//! The webhook's front door as one axum extractor: a [`Delivery`] exists
//! only once its signature verified, its event parsed into pullstack's own
//! type, and its delivery id was not seen before. Anything else is answered
//! here, before a handler runs; a request that cannot be signed, or is too
//! large, is answered before a byte of its body is read.

use super::AppState;
use super::body::{self, BodyError};
use super::signature::Verifier;
use super::webhook::reply;
use crate::github::events::{self, Event};
use axum::body::HttpBody;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// A verified, parsed, first-seen webhook delivery.
pub struct Delivery {
    pub event: Event,
    /// `X-GitHub-Delivery`: the same for a redelivery.
    pub id: Option<String>,
}

fn rejected(code: StatusCode, reason: &str) -> Response {
    reply(code, "rejected", Some(reason.to_owned())).into_response()
}

impl FromRequest<Arc<AppState>> for Delivery {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, Response> {
        let [signature, event_name, delivery] =
            ["x-hub-signature-256", "x-github-event", "x-github-delivery"].map(|name| {
                let value = request.headers().get(name)?;
                value.to_str().ok().map(str::to_owned)
            });
        let Some(signature) = signature else {
            return Err(rejected(
                StatusCode::UNAUTHORIZED,
                "missing X-Hub-Signature-256",
            ));
        };
        let Some(mut verifier) = Verifier::new(&state.secrets, &signature) else {
            return Err(rejected(
                StatusCode::UNAUTHORIZED,
                "X-Hub-Signature-256 is not sha256= followed by 64 hex digits",
            ));
        };
        let declared = HttpBody::size_hint(request.body()).lower();
        if declared > super::MAX_BODY as u64 {
            return Err(rejected(
                StatusCode::PAYLOAD_TOO_LARGE,
                &BodyError::TooLarge.to_string(),
            ));
        }
        let body = body::read(request.into_body(), &state.budget, &mut verifier)
            .await
            .map_err(|err| match err {
                BodyError::TooLarge => rejected(StatusCode::PAYLOAD_TOO_LARGE, &err.to_string()),
                BodyError::Busy => {
                    tracing::debug!("delivery refused: the body memory budget is in use");
                    let mut busy = reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        Some(err.to_string()),
                    )
                    .into_response();
                    busy.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    busy
                }
                BodyError::Unreadable(_) => rejected(StatusCode::BAD_REQUEST, &err.to_string()),
            })?;
        if !verifier.verify() {
            return Err(rejected(
                StatusCode::UNAUTHORIZED,
                "signature does not match",
            ));
        }
        let Some(event_name) = event_name else {
            return Err(rejected(StatusCode::BAD_REQUEST, "missing X-GitHub-Event"));
        };
        let event = events::parse(&event_name, &body.bytes).map_err(|err| {
            tracing::info!(event = event_name, error = %err, "rejected delivery");
            rejected(StatusCode::BAD_REQUEST, &err.to_string())
        })?;
        if let Some(delivery) = &delivery
            && !state.first_delivery(delivery)
        {
            tracing::debug!(delivery, "redelivery ignored");
            return Err(reply(StatusCode::ACCEPTED, "duplicate", None).into_response());
        }
        Ok(Delivery {
            event,
            id: delivery,
        })
    }
}
