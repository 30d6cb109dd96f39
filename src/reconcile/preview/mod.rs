//! A preview environment, for a pull request or a chosen branch: from what
//! should exist and what does to the next step.
//!
//! Each pass reads the PR or branch (GitHub) and its stack (CloudFormation),
//! takes at most one stack action, reports, and asks to be polled while an
//! operation runs. Nothing here blocks a worker on AWS. A [`Pass`] owns one
//! environment for one run; its steps live beside this file:
//! - [`deploy`]: create or update the stack, wait for the image, say ready;
//! - [`admission`]: the preview limits' line and the account quotas;
//! - [`idle`]: scale to zero, wake, delete after long idleness;
//! - [`database`]: the environment's own Aurora clone;
//! - [`teardown`]: delete and say what was removed;
//! - [`commands`]: PR commands and the approval label;
//! - [`report`]: the sticky comment and the commit status;
//! - [`record`]: the Deployment, written beside the passes;
//! - [`checks`]: the smoke checks' Check Run, run beside the passes.

mod admission;
pub mod checks;
mod commands;
mod database;
mod deploy;
mod diagnose;
mod edge;
pub mod idle;
mod one_off;
pub mod record;
mod report;
mod task_check;
mod teardown;

pub use admission::{Admissions, UNREADABLE_TTL};
pub use deploy::{DeployMarks, ImageWaits};
pub use record::{Records, Retired, Statuses};
pub use teardown::DeleteAttempts;

use super::error::Kind;
use super::sticky::Sticky;
use super::{Action, Ctx, Intent, Job, Result};
use crate::aws::stacks::{Phase, Stack, tag};
use crate::domain::comment::{self, State};
use crate::domain::naming::{EnvKey, RepoName};
use crate::github::client::{PullRequest, StatusState};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// GitHub's limit on ref names, in bytes; a longer name is not a branch.
const MAX_BRANCH_BYTES: usize = 255;

/// How long a stack operation runs before pullstack reads why its tasks
/// are not healthy: a Fargate task starts in well under a minute, and the
/// circuit breaker takes a few failed tasks to trip.
const STUCK_AFTER: Duration = Duration::from_secs(180);

/// What should exist for an environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Desired {
    /// A stack at this commit.
    Deployed { sha: String },
    /// A fork PR whose head commit nobody approved yet.
    AwaitingApproval,
    /// No stack, for this reason (shown on the PR); `reversible` when a
    /// command can bring it back.
    Absent { why: String, reversible: bool },
}

/// What pullstack wants for `pr`, given what the comment remembers.
pub fn desired(
    pr: Option<&PullRequest>,
    memory: &comment::Memory,
    enabled: bool,
    repo: &RepoName,
) -> Desired {
    let Some(pr) = pr else {
        return absent("the pull request no longer exists");
    };
    if !pr.is_open() {
        return absent(if pr.merged {
            "the pull request was merged"
        } else {
            "the pull request was closed"
        });
    }
    if !enabled {
        return absent("previews are disabled in the config");
    }
    if memory.destroyed.as_deref() == Some(pr.head.sha.as_str()) {
        return destroyed(memory);
    }
    if pr.is_fork_of(repo) && memory.approved.as_deref() != Some(pr.head.sha.as_str()) {
        return Desired::AwaitingApproval;
    }
    Desired::Deployed {
        sha: pr.head.sha.clone(),
    }
}

fn absent(why: &str) -> Desired {
    Desired::Absent {
        why: why.into(),
        reversible: false,
    }
}

/// Why an environment was taken down at its current commit, and how to
/// bring it back.
fn destroyed(memory: &comment::Memory) -> Desired {
    let why = if memory.idle_deleted {
        "deleted after a long time without a push or activity; a push or `/pullstack wake` creates it again"
    } else {
        "`/pullstack destroy` was given"
    };
    Desired::Absent {
        why: why.into(),
        reversible: true,
    }
}

/// Forgets a destroy once the environment moved past the commit it was
/// given at: a push brings the environment back.
fn forgive_destroy(memory: &mut comment::Memory, head: Option<&str>) {
    if memory.destroyed.is_some() && memory.destroyed.as_deref() != head {
        memory.destroyed = None;
        memory.idle_deleted = false;
    }
}

/// One pass over a pull request's environment.
pub async fn pull_request(
    ctx: &Ctx,
    number: u64,
    intents: &[Intent],
    failures: u32,
) -> Result<Action> {
    let key = EnvKey::Pr(number);
    let pr = ctx.forge.pull_request(number).await?;
    let sticky = ctx.sticky.load(&ctx.forge, number, &key.slug()).await?;
    let env = Env {
        stack_name: key.stack_name(&ctx.config.app),
        branch: pr
            .as_ref()
            .map(|p| p.head.r#ref.clone())
            .unwrap_or_default(),
        touched_at: pr.as_ref().and_then(|p| p.updated_at),
        kept: pr.as_ref().is_some_and(|p| idle::kept(ctx, p)),
        since: pr.as_ref().and_then(|p| p.created_at),
        key,
        pr,
    };
    let mut pass = Pass::new(ctx, env, sticky);
    pass.handle(intents).await?;
    let head = pass.env.pr.as_ref().map(|p| p.head.sha.clone());
    forgive_destroy(&mut pass.sticky.memory, head.as_deref());
    let desired = desired(
        pass.env.pr.as_ref(),
        &pass.sticky.memory,
        ctx.config.preview.enabled,
        ctx.forge.repo(),
    );
    pass.run(desired, failures).await
}

/// One pass over a branch's environment: kept at the branch head while the
/// branch exists and matches `preview.branches`, removed once it does not.
/// It has no PR to comment on; its URL reaches GitHub as a Deployment and a
/// commit status on the branch head.
pub async fn branch(ctx: &Ctx, branch: &str, failures: u32) -> Result<Action> {
    let key = EnvKey::Branch(branch.to_owned());
    let preview = &ctx.config.preview;
    let wanted =
        preview.enabled && branch.len() <= MAX_BRANCH_BYTES && preview.branches.matches(branch);
    let head = if wanted {
        ctx.forge.branch_head(branch).await?
    } else {
        None
    };
    let mut sticky = ctx.sticky.detached(&key);
    forgive_destroy(&mut sticky.memory, head.as_deref());
    let desired = match head {
        Some(sha) if sticky.memory.destroyed.as_deref() == Some(sha.as_str()) => {
            destroyed(&sticky.memory)
        }
        Some(sha) => Desired::Deployed { sha },
        None if !wanted => absent("the branch no longer matches `preview.branches`"),
        None => absent("the branch was deleted"),
    };
    let env = Env {
        stack_name: key.stack_name(&ctx.config.app),
        key,
        pr: None,
        branch: branch.to_owned(),
        touched_at: None,
        kept: preview.idle.exempt.matches(branch),
        since: None,
    };
    Pass::new(ctx, env, sticky).run(desired, failures).await
}

/// The environment a pass works on.
pub struct Env {
    pub key: EnvKey,
    pub stack_name: String,
    pub pr: Option<PullRequest>,
    /// The branch deployed: the PR's head branch, or the environment's own.
    pub branch: String,
    /// The last time GitHub saw anything happen to it besides deploys (a
    /// PR's `updated_at`), for the idle rules.
    pub touched_at: Option<DateTime<Utc>>,
    /// Whether the idle rules spare it (keep label or exempt branch).
    pub kept: bool,
    /// Since when it has wanted an environment: its place in line when the
    /// preview limit is reached.
    pub since: Option<DateTime<Utc>>,
}

/// What the commands handled in this pass ask of it.
#[derive(Default)]
struct Flags {
    redeploy: bool,
    wake: bool,
}

/// The task count a deploy asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    /// The configured count.
    Up,
    /// Zero, for an idle environment.
    Zero,
}

/// One run over one environment.
struct Pass<'a> {
    ctx: &'a Ctx,
    env: Env,
    sticky: Sticky,
    flags: Flags,
    /// The commit this pass works toward, once known.
    target: Option<String>,
    /// The edge listener the environment's rule is on, once known.
    listener: Option<String>,
    /// A command or a re-run asked the checks job for a run.
    check: bool,
}

impl<'a> Pass<'a> {
    fn new(ctx: &'a Ctx, env: Env, sticky: Sticky) -> Pass<'a> {
        Pass {
            ctx,
            env,
            sticky,
            flags: Flags::default(),
            target: None,
            listener: None,
            check: false,
        }
    }

    /// Pursues `desired`, then applies the error policy's PR side: a user
    /// error is said (and the pass ends), a persisting internal one gets a
    /// notice, and a good pass clears the notice. An outcome left for the
    /// record job wakes it.
    async fn run(mut self, desired: Desired, failures: u32) -> Result<Action> {
        let ctx = self.ctx;
        let key = self.env.key.clone();
        let mut action = self.run_inner(desired, failures).await?;
        if self.check {
            action = action.waking([Job::Checks(key.clone())]);
        }
        Ok(if ctx.records.pending(&key) {
            action.waking([Job::Record(key)])
        } else {
            action
        })
    }

    async fn run_inner(&mut self, desired: Desired, failures: u32) -> Result<Action> {
        match self.pursue(desired).await {
            Ok(action) => {
                if self.sticky.memory.notice.take().is_some() {
                    self.reshow().await?;
                }
                Ok(action)
            }
            Err(err) => {
                if let Some(reason) = err.user_message() {
                    // Said once: the same words again change nothing on the PR.
                    match self.target.clone() {
                        Some(sha) => self.fail(&sha, reason, Vec::new(), Vec::new()).await?,
                        None => {
                            let state = State::Failed {
                                reason,
                                events: Vec::new(),
                                logs: Vec::new(),
                            };
                            self.report(None, state).await?;
                        }
                    }
                    return Ok(Action::done());
                }
                if err.kind() == Kind::Internal
                    && failures + 1 >= self.ctx.config.queue.notice_after
                {
                    self.notice(err.id()).await;
                }
                Err(err)
            }
        }
    }

    /// Takes the next step from the stack as it is toward `desired`.
    ///
    /// A step that starts an operation asks to look again at once; that
    /// look is taken in this pass, which read GitHub a moment ago, so a
    /// stack already complete (or gone) is seen with no second pass.
    async fn pursue(&mut self, desired: Desired) -> Result<Action> {
        let action = self.step(desired.clone()).await?;
        if action.requeue() != Some(Duration::ZERO) {
            return Ok(action);
        }
        // The commands this pass handled were carried out by the step.
        self.flags = Flags::default();
        let again = self.step(desired).await?;
        Ok(again.waking(action.wakes().to_vec()))
    }

    /// The next step toward `desired`, from the stack as it is now.
    async fn step(&mut self, desired: Desired) -> Result<Action> {
        let stack = self.ctx.aws.stacks.describe(&self.env.stack_name).await?;
        self.listener = stack
            .as_ref()
            .and_then(crate::reconcile::edge::Placement::of)
            .map(|p| p.listener);
        match desired {
            Desired::Deployed { sha } => {
                self.target = Some(sha.clone());
                self.converge(stack, &sha).await
            }
            Desired::AwaitingApproval => {
                let sha = self.head().unwrap_or_default();
                let label = self.ctx.config.preview.approve_label.clone();
                self.sticky.memory.awaiting = Some(sha.clone());
                let state = State::AwaitingApproval {
                    label,
                    sha: sha.clone(),
                };
                self.report(Some(&sha), state).await?;
                let why = "waiting for a maintainer's approval";
                self.status(&sha, StatusState::Pending, None, why).await?;
                Ok(Action::done())
            }
            Desired::Absent { why, reversible } => self.remove(stack, &why, reversible).await,
        }
    }

    /// Moves the stack toward `sha`.
    async fn converge(&mut self, stack: Option<Stack>, sha: &str) -> Result<Action> {
        if self.flags.redeploy {
            self.sticky.memory.failed = None;
            self.sticky.memory.ready = None;
            // A redeploy runs a failed `before_traffic` again.
            self.sticky.memory.before_traffic = None;
        }
        let Some(stack) = stack else {
            if self.sticky.memory.failed.as_deref() == Some(sha) {
                return Ok(Action::done());
            }
            return self.deploy(None, sha, Scale::Up).await;
        };
        let deployed = stack.tag(tag::COMMIT).unwrap_or_default().to_owned();
        let elapsed = self.elapsed(&stack);
        let memory = &self.sticky.memory;
        match stack.phase() {
            Phase::InProgress | Phase::Deleting => {
                let mut status = stack.status.as_str().to_owned();
                if stack.tag(tag::IDLE_SINCE).is_some() {
                    status.push_str(", scaling to zero");
                }
                let since = stack.operation_started;
                let trouble = if stack.phase() == Phase::InProgress && elapsed >= STUCK_AFTER {
                    let found = self.diagnose(&stack).await;
                    found.cause.map(|c| format!("{c} {}", c.next()))
                } else {
                    None
                };
                let state = State::Deploying {
                    status,
                    since,
                    trouble,
                };
                self.report(Some(sha), state).await?;
                Ok(Action::after(self.ctx.poll_delay(elapsed)))
            }
            Phase::RollbackFailed => {
                let name = &self.env.stack_name;
                tracing::warn!(stack = name, "update rollback failed; continuing it");
                self.ctx.aws.stacks.continue_rollback(name).await?;
                Ok(Action::after(self.ctx.poll_delay(Duration::ZERO)))
            }
            Phase::DeleteFailed => self.delete(&stack, true).await,
            Phase::Dead if self.lost_priority_race(&stack).await? => {
                // Another process took its rule priority first: not a
                // failure to show; a new create places it again.
                tracing::info!(
                    stack = stack.name,
                    "rule priority taken meanwhile; creating again"
                );
                self.ctx.edge.forget().await;
                self.delete(&stack, false).await
            }
            Phase::Dead => {
                let unreported = memory.failed.as_deref() != Some(deployed.as_str())
                    && memory.ready.is_none()
                    && !self.flags.redeploy;
                if unreported {
                    self.report_failure(&stack, &deployed).await?;
                    if deployed == sha {
                        return Ok(Action::done());
                    }
                }
                if deployed == sha && self.sticky.memory.failed.as_deref() == Some(sha) {
                    return Ok(Action::done());
                }
                // A failed create cannot be updated: delete, then create anew.
                self.delete(&stack, true).await
            }
            Phase::UpdateRolledBack => {
                let attempted = memory.attempted.as_deref();
                let failed = memory.failed.as_deref();
                if attempted == Some(sha)
                    && failed != Some(sha)
                    && memory.ready.as_deref() != Some(sha)
                {
                    self.report_failure(&stack, sha).await?;
                    return Ok(Action::done());
                }
                if failed == Some(sha) {
                    return Ok(Action::done());
                }
                self.deploy(Some(&stack), sha, Scale::Up).await
            }
            Phase::Stable if deployed == sha && !self.flags.redeploy && self.gated(sha) => {
                self.before_traffic(&stack, sha).await
            }
            Phase::Stable if deployed == sha && !self.flags.redeploy => {
                self.settled(&stack, sha, elapsed).await
            }
            Phase::Stable => self.deploy(Some(&stack), sha, Scale::Up).await,
        }
    }

    /// Whether a failed create on the edge failed only because its rule
    /// priority was taken meanwhile.
    async fn lost_priority_race(&self, stack: &Stack) -> Result<bool> {
        if crate::reconcile::edge::Placement::of(stack).is_none() {
            return Ok(false);
        }
        let failures = self.ctx.aws.stacks.failures(&stack.name, 5).await?;
        Ok(failures
            .iter()
            .any(|f| crate::domain::edge::priority_conflict(&f.reason)))
    }

    /// How long the stack's current (or last) operation has been running.
    fn elapsed(&self, stack: &Stack) -> Duration {
        stack
            .operation_started
            .map(|t| self.ctx.clock.since(t))
            .unwrap_or_default()
    }

    fn head(&self) -> Option<String> {
        self.env.pr.as_ref().map(|p| p.head.sha.clone())
    }
}
