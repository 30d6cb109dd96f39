//! What every reconcile pass is given: the config, the two ports (GitHub and
//! AWS), the clock, and the few services that hold state between passes.
//! Each service owns its state and says what happens when it is lost.

use super::Abandoned;
use super::gate::Acknowledged;
use super::preview::{Admissions, DeleteAttempts, ImageWaits, Statuses};
use super::sticky::StickyComments;
use crate::aws::Aws;
use crate::aws::shared::Shared;
use crate::clock::Clock;
use crate::config::Config;
use crate::github::client::Forge;
use std::sync::Arc;
use std::time::Duration;

/// How long the shared stack's outputs are trusted before reading them again.
const SHARED_TTL: Duration = Duration::from_secs(300);

/// How the reconciler is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `pullstack serve`: resync periodically, retry failures for ever.
    Serve,
    /// `pullstack handle-event`: run until the queue is quiet, giving up
    /// on a key after a few failures in a row.
    OneShot,
}

/// The reconcile context, shared by every worker.
pub struct Ctx {
    pub config: Arc<Config>,
    pub forge: Forge,
    pub aws: Aws,
    pub clock: Clock,
    pub mode: Mode,
    /// Each environment's sticky comment and, through its marker, its memory.
    pub sticky: StickyComments,
    /// Commit statuses last posted, so unchanged ones are not posted again.
    pub statuses: Statuses,
    /// The preview limits' line and the account quotas.
    pub admissions: Admissions,
    /// When each environment's commit started waiting for its image.
    pub image_waits: ImageWaits,
    /// DELETE_FAILED attempts per environment.
    pub delete_attempts: DeleteAttempts,
    /// PR commands already answered, so a retried pass does not answer twice.
    pub acknowledged: Acknowledged,
    /// Jobs a one-shot run gave up on.
    pub abandoned: Abandoned,
    shared: tokio::sync::Mutex<Option<(tokio::time::Instant, Shared)>>,
}

impl Ctx {
    /// The context for `config`; every stack `aws` changes goes through
    /// the config's CloudFormation service role, if it names one.
    pub fn new(config: Arc<Config>, forge: Forge, aws: Aws, clock: Clock, mode: Mode) -> Ctx {
        let aws = aws.with_cloudformation_role(config.shared.cloudformation_role_arn.clone());
        Ctx {
            config,
            forge,
            aws,
            clock,
            mode,
            sticky: StickyComments::default(),
            statuses: Statuses::default(),
            admissions: Admissions::default(),
            image_waits: ImageWaits::default(),
            delete_attempts: DeleteAttempts::default(),
            acknowledged: Acknowledged::default(),
            abandoned: Abandoned::default(),
            shared: tokio::sync::Mutex::new(None),
        }
    }

    /// The shared stack's outputs, cached for a few minutes.
    pub async fn shared(&self) -> anyhow::Result<Shared> {
        let mut cached = self.shared.lock().await;
        if let Some((at, shared)) = cached.as_ref()
            && at.elapsed() < SHARED_TTL
        {
            return Ok(shared.clone());
        }
        let shared = Shared::load(&self.aws.stacks, &self.config.shared_stack_name()).await?;
        *cached = Some((tokio::time::Instant::now(), shared.clone()));
        Ok(shared)
    }

    /// The delay before polling an operation that started `elapsed` ago:
    /// quick at first, then backing off to the configured maximum.
    pub fn poll_delay(&self, elapsed: Duration) -> Duration {
        let q = &self.config.queue;
        (elapsed / 4).clamp(q.poll_initial, q.poll_max.max(q.poll_initial))
    }
}
