//! Idle environments: what the rules say of a stable stack, and the step
//! that follows (scale to zero, wake, say it sleeps, or delete it).

use super::Controller;
use super::preview::{Desired, Env, Scale, destroyed};
use super::queue::Next;
use super::sticky::Sticky;
use crate::aws::stacks::{Stack, tag};
use crate::domain::comment::State;
use crate::domain::idle::{self, Ttl, Verdict};
use crate::github::client::PullRequest;
use chrono::{DateTime, Utc};
use std::time::Duration;

impl Controller {
    /// Whether the idle rules spare the PR's environment.
    pub(super) fn kept(&self, pr: &PullRequest) -> bool {
        let idle = &self.config.preview.idle;
        pr.has_label(&idle.keep_label) || idle.exempt.matches(&pr.head.r#ref)
    }

    /// What the idle rules say of a stable stack, from what GitHub last
    /// showed of its PR.
    pub(super) fn idle_verdict(
        &self,
        stack: &Stack,
        touched_at: Option<DateTime<Utc>>,
        kept: bool,
    ) -> Verdict {
        let now = Utc::now();
        let rules = &self.config.preview.idle;
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

    /// The stack is at `sha` and stable: apply the idle rules, or make sure
    /// the environment answers and say it is ready.
    pub(super) async fn settled(
        &self,
        env: &Env<'_>,
        sticky: &mut Sticky,
        stack: &Stack,
        sha: &str,
        took: Duration,
        wake: bool,
    ) -> anyhow::Result<Next> {
        let now = Utc::now();
        let asleep_since = stack.tag_time(tag::IDLE_SINCE);
        let last_activity = last_activity(stack, env.touched_at, now);
        let verdict = match (wake, asleep_since) {
            (true, Some(_)) => Verdict::Wake,
            (true, None) => Verdict::Awake,
            (false, _) => self.idle_verdict(stack, env.touched_at, env.kept),
        };
        match verdict {
            Verdict::Awake => self.ready(env, sticky, stack, sha, took).await,
            Verdict::Wake => {
                tracing::info!(stack = env.stack_name, "waking an idle environment");
                self.deploy(env, sticky, Some(stack), sha, Scale::Up).await
            }
            Verdict::Sleep => {
                tracing::info!(stack = env.stack_name, since = %last_activity, "idle: scaling to zero");
                self.deploy(env, sticky, Some(stack), sha, Scale::Zero)
                    .await
            }
            Verdict::Asleep { deletes_at } => {
                let idle_for = (asleep_since.unwrap_or(now) - last_activity)
                    .to_std()
                    .unwrap_or_default();
                let state = State::Asleep {
                    idle_for,
                    deletes_at,
                };
                self.report(env, sticky, Some(sha), state).await?;
                Ok(Next::Done)
            }
            Verdict::Delete => {
                tracing::info!(stack = env.stack_name, since = %last_activity, "idle: deleting");
                sticky.memory.destroyed = Some(sha.to_owned());
                sticky.memory.idle_deleted = true;
                let Desired::Absent { why, reversible } = destroyed(&sticky.memory) else {
                    unreachable!("destroyed() is always absent");
                };
                self.remove(env, sticky, Some(stack.clone()), &why, reversible)
                    .await
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
