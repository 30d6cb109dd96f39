//! Reading a webhook's body: within GitHub's size cap, under one byte budget
//! shared by every request in flight, its signature computed as it streams
//! in. So however many clients send bodies that turn out unsigned, together
//! they hold at most the budget.

use super::MAX_BODY;
use super::signature::Verifier;
use axum::body::{Body, HttpBody};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long, in all, one request may wait for room in the budget before it
/// is answered 503. Waiters are served in turn, so under a flood of large
/// bodies a small delivery still gets its share within this time.
pub const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// The budget counts kibibytes, so a 25 MB body fits one semaphore acquire.
const UNIT: usize = 1024;

/// Bytes of request bodies the server holds at once, across all
/// connections.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        let units = bytes.div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        BodyBudget {
            units: Arc::new(Semaphore::new(units)),
        }
    }

    /// Bytes of the budget no request holds now.
    pub fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }
}

/// Why a body was not read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("payload is larger than GitHub's 25 MB cap")]
    TooLarge,
    #[error("too many deliveries in flight; retry shortly")]
    Busy,
    #[error("body could not be read: {0}")]
    Unreadable(axum::Error),
}

/// A body in memory, holding its share of the budget until dropped.
pub struct HeldBody {
    pub bytes: Vec<u8>,
    share: Option<OwnedSemaphorePermit>,
    units: usize,
}

impl HeldBody {
    /// Takes budget for the body to grow to `len` bytes, waiting no more
    /// than what is left of [`BUDGET_WAIT`] after `waited`.
    async fn reserve(
        &mut self,
        budget: &BodyBudget,
        len: usize,
        waited: &mut Duration,
    ) -> Result<(), BodyError> {
        let needed = len.div_ceil(UNIT);
        if needed <= self.units {
            return Ok(());
        }
        let more = u32::try_from(needed - self.units).map_err(|_| BodyError::TooLarge)?;
        let start = Instant::now();
        let acquired = tokio::time::timeout(
            BUDGET_WAIT.saturating_sub(*waited),
            budget.units.clone().acquire_many_owned(more),
        )
        .await;
        *waited += start.elapsed();
        let permit = acquired
            .map_err(|_| BodyError::Busy)?
            .expect("the budget's semaphore is never closed");
        match &mut self.share {
            Some(share) => share.merge(permit),
            None => self.share = Some(permit),
        }
        self.units = needed;
        Ok(())
    }
}

/// Reads `body` to its end into memory, feeding `verifier` as it goes.
/// Each frame takes its room in `budget` before it is kept.
pub async fn read(
    mut body: Body,
    budget: &BodyBudget,
    verifier: &mut Verifier,
) -> Result<HeldBody, BodyError> {
    // A declared Content-Length is exact (hyper enforces it), so the buffer
    // is sized once; its pages are only touched as bytes arrive.
    let declared = HttpBody::size_hint(&body).exact();
    let capacity = declared.map_or(0, |len| usize::try_from(len).unwrap_or(usize::MAX));
    if capacity > MAX_BODY {
        return Err(BodyError::TooLarge);
    }
    let mut held = HeldBody {
        bytes: Vec::with_capacity(capacity),
        share: None,
        units: 0,
    };
    let mut waited = Duration::ZERO;
    while let Some(frame) = body.frame().await {
        // Trailers carry nothing GitHub signs.
        let Ok(data) = frame.map_err(BodyError::Unreadable)?.into_data() else {
            continue;
        };
        let len = held.bytes.len() + data.len();
        if len > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        held.reserve(budget, len, &mut waited).await?;
        verifier.update(&data);
        held.bytes.extend_from_slice(&data);
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn verifier(body: &[u8]) -> Verifier {
        let secrets = [SecretString::from("s".to_owned())];
        Verifier::new(&secrets, &super::super::signature::sign("s", body)).unwrap()
    }

    #[tokio::test]
    async fn reads_a_signed_body_and_returns_its_budget() {
        let budget = BodyBudget::new(4 * UNIT);
        let body = b"hello, world";
        let mut check = verifier(body);
        let held = read(Body::from(&body[..]), &budget, &mut check)
            .await
            .unwrap();
        assert_eq!(held.bytes, body);
        assert!(check.verify());
        assert_eq!(budget.available(), 3 * UNIT);
        drop(held);
        assert_eq!(budget.available(), 4 * UNIT);
    }

    #[tokio::test]
    async fn a_body_the_budget_cannot_hold_is_busy_and_takes_nothing() {
        let budget = BodyBudget::new(2 * UNIT);
        let body = vec![b'x'; 3 * UNIT];
        let result = read(Body::from(body.clone()), &budget, &mut verifier(&body)).await;
        assert!(matches!(result, Err(BodyError::Busy)), "{:?}", result.err());
        assert_eq!(budget.available(), 2 * UNIT);
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_before_it_is_read() {
        let budget = BodyBudget::new(64 * UNIT * UNIT);
        let body = vec![b'x'; MAX_BODY + 1];
        let result = read(Body::from(body.clone()), &budget, &mut verifier(&body)).await;
        assert!(matches!(result, Err(BodyError::TooLarge)));
        assert_eq!(budget.available(), 64 * UNIT * UNIT);
    }
}
