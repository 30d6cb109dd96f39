//! The level-triggered reconciler.
//!
//! An event only says "look at environment K again" (plus any command it
//! carries). A pass reads what should exist from GitHub and what does exist
//! from AWS, takes the next step toward the former, and returns what it
//! wants next ([`Action`]). The same code heals a missed webhook, a crash, a
//! redelivery and a stack deleted by hand.
//!
//! The shape follows kube-rs: `reconcile(job, ctx) -> Result<Action, Error>`
//! plus an error policy ([`error`] says which failures are retried and which
//! are shown on the PR).
//!
//! - [`context`]: the [`Ctx`] every pass is given;
//! - [`preview`]: a PR's or branch's environment;
//! - [`checks`]: the smoke checks' runner, for previews and releases;
//! - [`production`]: releases, shared with `pullstack prod`;
//! - [`resync`]: the periodic look at everything;
//! - [`routing`]: which jobs an event asks for;
//! - [`queue`]: one pass per key at a time, retries, deadlines;
//! - [`durable`]: the SQS queue replicas share, in front of [`queue`];
//! - [`lease`]: which replica runs the periodic work;
//! - [`hub`]: many repositories, each with its own config and reconciler;
//! - [`sticky`], [`gate`], [`spec`]: what passes share.

pub mod checks;
pub mod context;
pub mod durable;
pub mod edge;
pub mod error;
pub mod gate;
pub mod hub;
pub mod lease;
pub mod preview;
pub mod production;
pub mod queue;
mod resync;
pub mod routing;
pub mod spec;
pub mod sticky;

pub use context::{Ctx, Mode};
pub use error::{Error, Result};

use crate::domain::commands::Command;
use crate::domain::naming::EnvKey;
use chrono::{DateTime, Utc};
use queue::OnError;
use std::fmt;
use std::sync::Mutex;

/// What a pass returns: when to look again, and which other jobs to wake.
pub type Action = queue::Action<Job>;

/// A unit of work in the queue.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Job {
    /// Reconcile one environment.
    Env(EnvKey),
    /// Write an environment's outcome as its Deployment, beside its passes
    /// and outside their cap.
    Record(EnvKey),
    /// Run an environment's smoke checks and report them as a Check Run,
    /// beside its passes and outside their cap.
    Checks(EnvKey),
    /// List open PRs and owned stacks, and queue every environment found.
    Resync,
    /// Production releases.
    Production,
    /// The checks and gate hooks before the production release's next
    /// step, beside the production pass and outside its cap.
    ReleaseGates,
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Job::Env(key) => write!(f, "{key}"),
            Job::Record(key) => write!(f, "the Deployments of {key}"),
            Job::Checks(key) => write!(f, "the smoke checks of {key}"),
            Job::Resync => f.write_str("every open pull request and owned stack"),
            Job::Production => f.write_str("production"),
            Job::ReleaseGates => f.write_str("the gates before production's next step"),
        }
    }
}

/// What an event asks for beyond "look again".
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Intent {
    Command {
        command: Command,
        /// The commit a `/pullstack deploy <sha>` names.
        sha: Option<String>,
        comment: Given,
    },
    /// A `/pullstack` line that is not a command pullstack can run, with the
    /// reply that says why.
    Unclear { reply: String, comment: Given },
    /// The approval label was added to a fork PR whose head was `sha`.
    ApproveLabel { by: String, sha: String },
    /// The smoke checks' Check Run at `sha` was asked to run again.
    Rerun { sha: String },
}

/// The comment a command came in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Given {
    pub author: String,
    pub comment_id: u64,
    /// The PR the comment is on, for the reply.
    pub issue: u64,
    /// When GitHub says the comment was made.
    pub at: Option<DateTime<Utc>>,
}

/// Failed passes in a row after which a one-shot run gives a job up.
pub const ONE_SHOT_ATTEMPTS: u32 = 5;

impl queue::Reconcile for Ctx {
    type Key = Job;
    type Intent = Intent;
    type Error = Error;

    async fn reconcile(&self, job: Job, intents: &[Intent], failures: u32) -> Result<Action> {
        let started = tokio::time::Instant::now();
        let result = match &job {
            Job::Resync => resync::pass(self).await,
            Job::Env(EnvKey::Pr(number)) => {
                preview::pull_request(self, *number, intents, failures).await
            }
            Job::Env(EnvKey::Branch(branch)) => preview::branch(self, branch, failures).await,
            Job::Record(key) => preview::record::run(self, key).await,
            Job::Checks(key) => preview::checks::run(self, key).await,
            Job::Production => production::pass(self, intents).await,
            Job::ReleaseGates => production::gates::run(self).await,
        };
        metrics::histogram!("pullstack_reconcile_seconds").record(started.elapsed().as_secs_f64());
        result
    }

    /// Record jobs mostly wait for GitHub's write turns: they must not
    /// hold the places passes need to show what a person waits for.
    fn background(&self, job: &Job) -> bool {
        matches!(job, Job::Record(_) | Job::Checks(_) | Job::ReleaseGates)
    }

    fn error_policy(&self, job: &Job, error: &Error, failures: u32) -> OnError {
        match error.kind() {
            // Said where the user reads it; nothing changes until they act.
            error::Kind::User => OnError::GiveUp,
            _ if self.mode == Mode::OneShot && failures >= ONE_SHOT_ATTEMPTS => {
                self.abandoned.lock().expect("abandoned lock").push((
                    job.clone(),
                    format!("failed {failures} times in a row: {error}"),
                ));
                OnError::GiveUp
            }
            _ => OnError::Retry,
        }
    }
}

/// Jobs a one-shot run gave up on, with why.
pub type Abandoned = Mutex<Vec<(Job, String)>>;
