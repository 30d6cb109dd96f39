//! How an environment's progress reaches GitHub: its sticky comment, the
//! outcome its record job writes as a Deployment (`record.rs`), its commit
//! status while no Deployment speaks for the commit, the failures
//! CloudFormation reported, and the notice shown while pullstack's own
//! failures persist.

use super::Pass;
use super::record::{Outcome, Recorder};
use crate::aws::stacks::{ResourceFailure, Stack};
use crate::config::Capacity;
use crate::config::EdgeMode;
use crate::domain::comment::{FailureEvent, State, View};
use crate::domain::cost::{self, Shape};
use crate::domain::logs;
use crate::github::client::{DeploymentState, StatusState};
use crate::reconcile::Result;

impl Pass<'_> {
    pub(super) async fn report_failure(&mut self, stack: &Stack, sha: &str) -> Result<()> {
        let events = self.ctx.aws.stacks.failures(&stack.name, 5).await?;
        let found = self.diagnose(stack).await;
        let status = format!("The stack ended in `{}`.", stack.status.as_str());
        let reason = found.reason(&status);
        self.fail(sha, reason, failure_events(events), found.logs)
            .await
    }

    pub(super) async fn fail(
        &mut self,
        sha: &str,
        reason: String,
        events: Vec<FailureEvent>,
        logs: Vec<String>,
    ) -> Result<()> {
        self.sticky.memory.failed = Some(sha.to_owned());
        let state = State::Failed {
            reason,
            events,
            logs,
        };
        self.report(Some(sha), state).await?;
        self.record(Outcome::Ended {
            sha: sha.to_owned(),
            state: DeploymentState::Failure,
            url: None,
            description: "deploy failed".into(),
        });
        Ok(())
    }

    /// Leaves `outcome` for the environment's record job, which the pass
    /// wakes when it ends.
    pub(super) fn record(&self, outcome: Outcome) {
        self.ctx.records.put(&self.env.key, outcome);
    }

    /// Posts a commit status, unless this process already posted the same.
    pub(super) async fn status(
        &self,
        sha: &str,
        state: StatusState,
        url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let recorder = Recorder {
            ctx: self.ctx,
            key: &self.env.key,
        };
        recorder.status(sha, state, url, description).await
    }

    /// Shows `state` on the sticky comment, if its text changes.
    pub(super) async fn report(&mut self, sha: Option<&str>, state: State) -> Result<()> {
        let title = self.env.key.to_string();
        let memory = self.sticky.memory.clone();
        let cost = self.cost(&state);
        let logs = self.logs_url().await;
        let view = View {
            title: &title,
            stack: &self.env.stack_name,
            sha,
            state,
            memory: &memory,
            cost: cost.as_deref(),
            logs: logs.as_deref(),
        };
        let ctx = self.ctx;
        ctx.sticky
            .show(&ctx.forge, &mut self.sticky, view, true)
            .await?;
        Ok(())
    }

    /// The environment's log streams in the CloudWatch console; none when
    /// the region or the shared stack cannot be read.
    async fn logs_url(&self) -> Option<String> {
        let region = self.ctx.aws.region.as_deref()?;
        let shared = self.ctx.shared().await.ok()?;
        let prefix = logs::stream_prefix(&self.env.key.slug());
        Some(logs::console_url(region, &shared.log_group, &prefix))
    }

    /// Puts a notice that pullstack keeps failing on the comment, under the
    /// state it shows, tied to the log by `id`. Best effort: the failure is
    /// already on its way to the log and the retry.
    pub(super) async fn notice(&mut self, id: &str) {
        if self.sticky.issue.is_none() {
            return;
        }
        let memory = &mut self.sticky.memory;
        if memory.notice.is_none() {
            memory.notice = Some(id.to_owned());
        }
        if let Err(err) = self.reshow().await {
            tracing::warn!(env = %self.env.key, error = %err, "could not show the failure notice");
        }
    }

    /// Renders the comment again with the state it last showed (or says
    /// work is starting when it showed none).
    pub(super) async fn reshow(&mut self) -> Result<()> {
        let state = self
            .sticky
            .last_state()
            .cloned()
            .unwrap_or(State::Deploying {
                status: "starting".into(),
                since: None,
                trouble: None,
            });
        let sha = self.target.clone().or_else(|| self.head());
        self.report(sha.as_deref(), state).await
    }

    /// The estimated hourly cost of an environment in `state`, while it has
    /// (or is about to have) running resources.
    fn cost(&self, state: &State) -> Option<String> {
        let preview = &self.ctx.config.preview;
        let tasks = match state {
            State::Asleep { .. } => 0,
            State::Deploying { .. } | State::Ready { .. } | State::Queued { .. } => {
                preview.desired_count
            }
            _ => return None,
        };
        let spot = preview.capacity == Capacity::FargateSpot;
        let shape = Shape::parse(&preview.cpu, &preview.memory, tasks, spot)?;
        let sharing = match self.ctx.config.edge_mode() {
            EdgeMode::Dedicated => 1,
            EdgeMode::Shared => self
                .listener
                .as_deref()
                .and_then(|l| self.ctx.edge.load(l))
                .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        };
        let mut estimate = cost::estimate(shape, &preview.prices, sharing);
        if let Some(database) = &preview.database {
            let clone = cost::Database {
                instance_class: database.instance_class.clone(),
                min_acu: database.min_acu,
                stopped: tasks == 0 && matches!(state, State::Asleep { .. }),
            };
            estimate = estimate.with_database(&clone, &preview.prices);
        }
        Some(estimate.to_string())
    }
}

/// CloudFormation's resource failures, as the comment shows them.
pub(super) fn failure_events(failures: Vec<ResourceFailure>) -> Vec<FailureEvent> {
    failures
        .into_iter()
        .map(|f| FailureEvent {
            logical_id: f.logical_id,
            resource_type: f.resource_type,
            reason: f.reason,
        })
        .collect()
}
