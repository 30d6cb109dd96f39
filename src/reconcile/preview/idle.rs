//! Idle environments: what the rules say of a stable stack, and the step
//! that follows (scale to zero, wake, say it sleeps, or delete it).

use super::{Desired, Pass, Scale, destroyed};
use crate::aws::stacks::{Stack, tag};
use crate::domain::comment::State;
use crate::domain::idle::{self, Ttl, Verdict};
use crate::github::client::PullRequest;
use crate::reconcile::{Action, Ctx, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Whether the idle rules spare the PR's environment.
pub fn kept(ctx: &Ctx, pr: &PullRequest) -> bool {
    let idle = &ctx.config.preview.idle;
    pr.has_label(&idle.keep_label) || idle.exempt.matches(&pr.head.r#ref)
}

/// What the idle rules say of a stable stack, from what GitHub last showed
/// of it (`touched_at`).
pub fn verdict(ctx: &Ctx, stack: &Stack, touched_at: Option<DateTime<Utc>>, kept: bool) -> Verdict {
    let now = ctx.clock.now();
    let rules = &ctx.config.preview.idle;
    let ttl = Ttl {
        scale_after: rules.scale_after,
        delete_after: rules.delete_after,
    };
    let asleep = stack.tag(tag::IDLE_SINCE).is_some();
    idle::verdict(
        now,
        last_activity(stack, touched_at, now),
        asleep,
        kept,
        ttl,
    )
}

impl Pass<'_> {
    /// The stack is at `sha` and stable: apply the idle rules, or make sure
    /// the environment answers and say it is ready.
    pub(super) async fn settled(
        &mut self,
        stack: &Stack,
        sha: &str,
        took: Duration,
    ) -> Result<Action> {
        let ctx = self.ctx;
        let now = ctx.clock.now();
        let asleep_since = stack.tag_time(tag::IDLE_SINCE);
        let last_activity = last_activity(stack, self.env.touched_at, now);
        let verdict = match (self.flags.wake, asleep_since) {
            (true, Some(_)) => Verdict::Wake,
            (true, None) => Verdict::Awake,
            (false, _) => verdict(ctx, stack, self.env.touched_at, self.env.kept),
        };
        let name = self.env.stack_name.clone();
        match verdict {
            Verdict::Awake => {
                self.wake_database().await?;
                self.ready(stack, sha, took).await
            }
            Verdict::Wake => {
                tracing::info!(stack = name, "waking an idle environment");
                self.deploy(Some(stack), sha, Scale::Up).await
            }
            Verdict::Sleep => {
                tracing::info!(stack = name, since = %last_activity, "idle: scaling to zero");
                self.deploy(Some(stack), sha, Scale::Zero).await
            }
            Verdict::Asleep { deletes_at } => {
                self.sleep_database().await?;
                let idle_for = (asleep_since.unwrap_or(now) - last_activity)
                    .to_std()
                    .unwrap_or_default();
                let state = State::Asleep {
                    idle_for,
                    deletes_at,
                };
                self.report(Some(sha), state).await?;
                Ok(Action::done())
            }
            Verdict::Delete => {
                tracing::info!(stack = name, since = %last_activity, "idle: deleting");
                let memory = &mut self.sticky.memory;
                memory.destroyed = Some(sha.to_owned());
                memory.idle_deleted = true;
                let Desired::Absent { why, reversible } = destroyed(memory) else {
                    unreachable!("destroyed() is always absent");
                };
                self.remove(Some(stack.clone()), &why, reversible).await
            }
        }
    }
}

/// The latest sign of life: the last deploy of a new commit or wake
/// (tagged on the stack), or anything GitHub saw happen to the PR.
fn last_activity(
    stack: &Stack,
    touched_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let deployed = stack
        .tag_time(tag::ACTIVE_AT)
        .or(stack.tag_time(tag::CREATED_AT))
        .unwrap_or(now);
    touched_at.map_or(deployed, |touched| touched.max(deployed))
}
