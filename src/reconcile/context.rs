//! What every reconcile pass is given: the config, the two ports (GitHub and
//! AWS), the clock, and the few services that hold state between passes.
//! Each service owns its state and says what happens when it is lost.

use super::Abandoned;
use super::edge::EdgePool;
use super::gate::{Acknowledged, Replies};
use super::preview::checks::SmokeRuns;
use super::preview::{
    Admissions, DeleteAttempts, DeployMarks, ImageWaits, Records, Retired, Statuses,
};
use super::production::gates::ReleaseGates;
use super::sticky::StickyComments;
use crate::aws::Aws;
use crate::aws::shared::Shared;
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::seal::Seal;
use crate::github::client::Forge;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
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
    /// Deployments known to be done with, so sweeps skip them.
    pub retired: Retired,
    /// Outcomes waiting for each environment's record job, and what it
    /// wrote. Lost on restart: passes leave the outcomes again.
    pub records: Records,
    /// The preview limits' line and the account quotas.
    pub admissions: Admissions,
    /// Placement on the shared edge: one at a time, and the shards' loads.
    pub edge: EdgePool,
    /// When each environment's commit started waiting for its image.
    pub image_waits: ImageWaits,
    /// How far each environment's deploy has come, for its phase timings.
    pub deploy_marks: DeployMarks,
    /// DELETE_FAILED attempts per environment.
    pub delete_attempts: DeleteAttempts,
    /// PR commands already answered, so a retried pass does not answer twice.
    /// Lost on restart: pullstack's reaction on each comment says it again.
    pub acknowledged: Acknowledged,
    /// Answers left per commenter and per PR. Lost on restart: budgets start
    /// full again.
    pub replies: Replies,
    /// Jobs a one-shot run gave up on.
    pub abandoned: Abandoned,
    /// Whether a resync has looked for lately deleted stacks since the
    /// start (the first does).
    pub deleted_looked: AtomicBool,
    /// Smoke check runs waiting for each environment's checks job.
    pub smoke_runs: SmokeRuns,
    /// Where smoke checks and the ready probe send their requests instead
    /// of each preview's own URL; `None` in service. Set by tests, whose previews' names
    /// do not resolve.
    pub checks_origin: Option<String>,
    /// The gates before each shift of the production release in flight:
    /// what was asked and what was found.
    pub release_gates: ReleaseGates,
    /// The key gate hooks are signed with; `None` without
    /// `production.gates`.
    pub gate_key: Option<secrecy::SecretString>,
    shared: tokio::sync::Mutex<Option<(tokio::time::Instant, Shared)>>,
}

impl Ctx {
    /// The context for `config`; every stack `aws` changes goes through
    /// the config's CloudFormation service role, if it names one.
    pub fn new(
        config: Arc<Config>,
        forge: Forge,
        aws: Aws,
        clock: Clock,
        mode: Mode,
        seal: Seal,
    ) -> Ctx {
        let aws = aws.with_cloudformation_role(config.shared.cloudformation_role_arn.clone());
        Ctx {
            config,
            forge,
            aws,
            clock,
            mode,
            sticky: StickyComments::new(seal),
            statuses: Statuses::default(),
            retired: Retired::default(),
            records: Records::default(),
            admissions: Admissions::default(),
            edge: EdgePool::default(),
            image_waits: ImageWaits::default(),
            deploy_marks: DeployMarks::default(),
            delete_attempts: DeleteAttempts::default(),
            acknowledged: Acknowledged::default(),
            replies: Replies::default(),
            abandoned: Abandoned::default(),
            // A one-shot run is woken by the event that closed the PR, and
            // waits for its environment to converge.
            deleted_looked: AtomicBool::new(mode == Mode::OneShot),
            smoke_runs: SmokeRuns::default(),
            checks_origin: None,
            release_gates: ReleaseGates::default(),
            gate_key: None,
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

    /// The delay before polling an operation that started `elapsed` ago.
    pub fn poll_delay(&self, elapsed: Duration) -> Duration {
        let q = &self.config.queue;
        poll_delay(elapsed, q.poll_initial, q.poll_max)
    }
}

/// Polls of an operation are spaced at 40% of its age once past the first
/// seconds, and at least this far apart.
pub const STEADY_POLL: Duration = Duration::from_millis(2500);

/// The delay before polling an operation that started `elapsed` ago.
///
/// The pass that starts an operation polls it again at once (a stack
/// already complete is seen with no wait), and from then on this says
/// when: `first`, then twice the age (polls at 3× the last) up to
/// [`STEADY_POLL`], then 40% of `elapsed`, never over `max`. The poll at
/// once is paid for by the wider steady spacing: over a stack of a minute
/// to an hour this polls no more often than the schedule before it
/// (`first`, then up to every 2 s), nor than the fixed 2 s start followed
/// by a quarter of the age before that.
pub fn poll_delay(elapsed: Duration, first: Duration, max: Duration) -> Duration {
    let steady = (elapsed * 2 / 5).max(STEADY_POLL);
    (elapsed * 2).min(steady).clamp(first, max.max(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(30);

    /// Polls of an operation that takes `done`, the one at once included,
    /// and when the last comes.
    fn polls_until(done: Duration) -> (u32, Duration) {
        let (mut at, mut polls) = (Duration::ZERO, 1);
        while at < done {
            at += poll_delay(at, FIRST, MAX);
            polls += 1;
        }
        (polls, at)
    }

    /// Polls under an older schedule: no poll at once, then `delay(age)`.
    fn polls_before(done: Duration, delay: impl Fn(Duration) -> Duration) -> u32 {
        let (mut at, mut polls) = (Duration::ZERO, 0);
        while at < done {
            at += delay(at);
            polls += 1;
        }
        polls
    }

    #[test]
    fn a_fast_operation_is_seen_at_once() {
        assert_eq!(polls_until(Duration::ZERO), (1, Duration::ZERO));
        assert_eq!(polls_until(Duration::from_millis(40)), (2, FIRST));
        let (_, seen) = polls_until(Duration::from_millis(300));
        assert!(seen < Duration::from_millis(500), "{seen:?}");
    }

    #[test]
    fn a_slow_operation_is_not_polled_more_often_than_before() {
        // The schedule before the poll at once: `first`, then 3× the age
        // up to every 2 s, then 40% of the age.
        let last = |at: Duration| {
            (at * 2)
                .min((at * 2 / 5).max(Duration::from_secs(2)))
                .clamp(FIRST, MAX)
        };
        // And before that: the first poll after 2 s, then a quarter of the age.
        let older = |at: Duration| (at / 4).clamp(Duration::from_secs(2), MAX);
        for minutes in [1, 2, 5, 10, 30, 60] {
            let done = Duration::from_secs(60 * minutes);
            let (polls, _) = polls_until(done);
            let before = polls_before(done, last);
            assert!(polls <= before, "{minutes} min: {polls} > {before}");
            let older = polls_before(done, older);
            assert!(polls <= older, "{minutes} min: {polls} > {older}");
        }
    }

    #[test]
    fn polls_never_exceed_the_maximum() {
        let max = Duration::from_millis(500);
        for secs in [0, 1, 10, 1000] {
            let delay = poll_delay(Duration::from_secs(secs), Duration::from_millis(100), max);
            assert!(delay <= max, "{delay:?}");
        }
    }
}
