//! Why a preview's tasks stopped or never became healthy, read from ECS
//! (its stopped tasks) and the load balancer (its targets), with the last
//! log lines of the task that failed. Best effort: a failure to read is
//! logged, and the comment then shows what CloudFormation said.

use super::Pass;
use crate::aws::stacks::Stack;
use crate::aws::tasks::TaskState;
use crate::config::EdgeMode;
use crate::domain::diagnosis::{self, Cause};
use crate::domain::logs;

/// A cause, and the log lines of the task it came from.
#[derive(Clone, Debug, Default)]
pub(super) struct Diagnosis {
    pub cause: Option<Cause>,
    pub logs: Vec<String>,
}

impl Diagnosis {
    /// `status` (what the stack or the check says) after the cause and
    /// what to do about it, when there is one.
    pub fn reason(&self, status: &str) -> String {
        match &self.cause {
            Some(cause) => format!("{cause} {} {status}", cause.next()),
            None => status.to_owned(),
        }
    }
}

impl Pass<'_> {
    /// Reads why `stack`'s tasks failed.
    pub(super) async fn diagnose(&self, stack: &Stack) -> Diagnosis {
        match self.try_diagnose(stack).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(stack = stack.name, error = %err, "could not read why the tasks failed");
                Diagnosis::default()
            }
        }
    }

    async fn try_diagnose(&self, stack: &Stack) -> anyhow::Result<Diagnosis> {
        let ctx = self.ctx;
        let shared = ctx.shared().await?;
        // The task definition's family is the stack's name, so its tasks
        // are found even once a rollback removed the service.
        let tasks = ctx
            .aws
            .tasks
            .stopped(&shared.cluster_name, &stack.name)
            .await?;
        let targets = match self.target_group(stack).await? {
            Some(arn) => ctx.aws.tasks.targets(&arn).await?,
            None => Vec::new(),
        };
        let path = &ctx.config.preview.health_path;
        let stopped: Vec<_> = tasks.iter().map(|t| t.stopped.clone()).collect();
        let cause = diagnosis::diagnose(&stopped, &targets, path);
        // The log lines of the task the cause came from.
        let source = cause.as_ref().and_then(|cause| {
            tasks
                .iter()
                .find(|t| diagnosis::from_task(&t.stopped, path).as_ref() == Some(cause))
        });
        let logs = match source {
            Some(task) => self.last_lines(&shared.log_group, task).await,
            None => Vec::new(),
        };
        Ok(Diagnosis { cause, logs })
    }

    /// The stack's target group: its output once complete, its resource
    /// while an operation runs.
    async fn target_group(&self, stack: &Stack) -> anyhow::Result<Option<String>> {
        if let Some(arn) = stack.output("TargetGroupArn") {
            return Ok(Some(arn.to_owned()));
        }
        let logical = match self.ctx.config.edge_mode() {
            EdgeMode::Shared => "EdgeTargetGroup",
            EdgeMode::Dedicated => "TargetGroup",
        };
        Ok(self
            .ctx
            .aws
            .stacks
            .physical_id(&stack.name, logical)
            .await?)
    }

    /// The last lines `task` logged, credentials masked for the PR; none
    /// when they cannot be read.
    pub(super) async fn last_lines(&self, group: &str, task: &TaskState) -> Vec<String> {
        let stream = logs::stream(&self.env.key.slug(), task.id());
        let limit = i32::try_from(logs::FAILURE_LINES).unwrap_or(i32::MAX);
        match self.ctx.aws.tasks.last_lines(group, &stream, limit).await {
            Ok(lines) => lines.iter().map(|l| logs::redact(l)).collect(),
            Err(err) => {
                tracing::warn!(stream, error = %err, "could not read a task's log lines");
                Vec::new()
            }
        }
    }
}
