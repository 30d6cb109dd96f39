//! The one-off tasks of a preview: `before_traffic`, run once the stack is
//! up at zero tasks and before its service scales up, and `on_delete`, run
//! before a teardown. Each is started with `RunTask`, then looked at again
//! on the pass's timers until it stops (or its timeout stops it): no pass
//! waits for a task.

use super::{Pass, Scale};
use crate::aws::stacks::{Stack, tag};
use crate::aws::tasks::{OneOff, TaskState};
use crate::config::OneOffTask;
use crate::domain::comment::{State, TaskRun};
use crate::domain::diagnosis::{self, OneOffEnd};
use crate::domain::logs;
use crate::reconcile::{Action, Result};

/// Where a one-off task stands.
enum Progress {
    /// Still running, started at `since`; look again after the delay.
    Running(Action),
    /// Over: how it ended, ECS's stop reason and its last log lines.
    Ended {
        end: OneOffEnd,
        reason: String,
        logs: Vec<String>,
    },
}

impl Pass<'_> {
    /// Whether `sha`'s service must wait at zero tasks for its
    /// `before_traffic` task.
    pub(super) fn gated(&self, sha: &str) -> bool {
        self.ctx.config.preview.before_traffic.is_some()
            && self.sticky.memory.passed.as_deref() != Some(sha)
    }

    /// The stack is up at `sha` with zero tasks: runs `before_traffic`,
    /// then scales the service up once it exited 0. Any other end leaves
    /// the environment at zero tasks, said on the comment.
    pub(super) async fn before_traffic(&mut self, stack: &Stack, sha: &str) -> Result<Action> {
        let Some(task) = self.ctx.config.preview.before_traffic.clone() else {
            return Ok(Action::done());
        };
        if self.sticky.memory.failed.as_deref() == Some(sha) {
            return Ok(Action::done());
        }
        let run = self
            .sticky
            .memory
            .before_traffic
            .clone()
            .filter(|r| r.sha == sha);
        let Some(run) = run else {
            let run = self.start(stack, sha, &task, "before-traffic").await?;
            self.sticky.memory.before_traffic = Some(run.clone());
            self.report_running(sha, &task, &run).await?;
            return Ok(Action::after(
                self.ctx.poll_delay(std::time::Duration::ZERO),
            ));
        };
        match self.progress(stack, &run, &task).await? {
            Progress::Running(action) => {
                self.report_running(sha, &task, &run).await?;
                Ok(action)
            }
            Progress::Ended { end, .. } if end.succeeded() => {
                tracing::info!(stack = stack.name, "before_traffic exited 0; scaling up");
                let memory = &mut self.sticky.memory;
                memory.passed = Some(sha.to_owned());
                memory.before_traffic = None;
                self.deploy(Some(stack), sha, Scale::Up).await
            }
            Progress::Ended { end, reason, logs } => {
                let words = diagnosis::one_off("before_traffic", &task.command, &end, &reason);
                let reason = format!(
                    "{words} The environment stays at zero tasks. Fix the command or what it \
                     needs, then push or `/pullstack redeploy`."
                );
                tracing::info!(stack = stack.name, ?end, "before_traffic failed");
                self.fail(sha, reason, Vec::new(), logs).await?;
                Ok(Action::done())
            }
        }
    }

    /// Before a teardown: runs `on_delete` and waits for it, best effort.
    /// Returns the action to wait with while it runs, or `None` once the
    /// teardown may go on (its failure, if any, kept for the comment).
    pub(super) async fn on_delete(&mut self, stack: &Stack) -> Result<Option<Action>> {
        let Some(task) = self.ctx.config.preview.on_delete.clone() else {
            return Ok(None);
        };
        // Only a stack with a running service has a task definition and
        // network to borrow.
        if stack.output("ServiceName").is_none() || self.sticky.memory.on_delete_failed.is_some() {
            return Ok(None);
        }
        let sha = stack.tag(tag::COMMIT).unwrap_or_default().to_owned();
        let run = self.sticky.memory.on_delete.clone();
        let Some(run) = run else {
            return match self.start(stack, &sha, &task, "on-delete").await {
                Ok(run) => {
                    self.sticky.memory.on_delete = Some(run);
                    self.ctx.sticky.keep(&self.sticky);
                    Ok(Some(Action::after(
                        self.ctx.poll_delay(std::time::Duration::ZERO),
                    )))
                }
                Err(err) => {
                    tracing::warn!(stack = stack.name, error = %err, "could not start on_delete");
                    self.sticky.memory.on_delete_failed =
                        Some(format!("`on_delete` could not be started: {err}."));
                    Ok(None)
                }
            };
        };
        let progress = match self.progress(stack, &run, &task).await {
            Ok(progress) => progress,
            Err(err) => {
                tracing::warn!(stack = stack.name, error = %err, "could not follow on_delete");
                Progress::Ended {
                    end: OneOffEnd::Gone,
                    reason: String::new(),
                    logs: Vec::new(),
                }
            }
        };
        match progress {
            Progress::Running(action) => {
                self.ctx.sticky.keep(&self.sticky);
                Ok(Some(action))
            }
            Progress::Ended { end, .. } if end.succeeded() => Ok(None),
            Progress::Ended { end, reason, .. } => {
                let words = diagnosis::one_off("on_delete", &task.command, &end, &reason);
                tracing::info!(
                    stack = stack.name,
                    ?end,
                    "on_delete failed; tearing down anyway"
                );
                self.sticky.memory.on_delete_failed = Some(words);
                Ok(None)
            }
        }
    }

    /// Starts `task` on the stack's service's task definition and network.
    async fn start(
        &self,
        stack: &Stack,
        sha: &str,
        task: &OneOffTask,
        what: &str,
    ) -> Result<TaskRun> {
        let output = |k: &str| {
            stack.output(k).map(str::to_owned).ok_or_else(|| {
                anyhow::anyhow!("stack {} has no {k} output; a deploy adds it", stack.name)
            })
        };
        let shared = self.ctx.shared().await?;
        let started_by = format!("pullstack-{what}");
        let arn = self
            .ctx
            .aws
            .tasks
            .run(&OneOff {
                cluster: &shared.cluster_name,
                task_definition: &output("TaskDefinitionArn")?,
                subnets: &shared.subnets,
                security_group: &output("ServiceSecurityGroupId")?,
                container: logs::CONTAINER,
                command: &task.command,
                environment: &[],
                started_by: &started_by,
            })
            .await?;
        tracing::info!(stack = stack.name, task = arn, "{what} task started");
        Ok(TaskRun {
            sha: sha.to_owned(),
            arn,
            started: self.ctx.clock.now(),
        })
    }

    /// Looks at `run`: still running, or how it ended. A task past its
    /// timeout is stopped and ends as timed out.
    async fn progress(&self, stack: &Stack, run: &TaskRun, task: &OneOffTask) -> Result<Progress> {
        let ctx = self.ctx;
        let cluster = stack.output("ClusterName").unwrap_or_default();
        let found = ctx
            .aws
            .tasks
            .describe(cluster, std::slice::from_ref(&run.arn))
            .await?;
        let Some(state) = found.into_iter().next() else {
            return Ok(Progress::Ended {
                end: OneOffEnd::Gone,
                reason: String::new(),
                logs: Vec::new(),
            });
        };
        let waited = ctx.clock.since(run.started);
        if state.is_stopped() {
            let end = OneOffEnd::of(&state.stopped, logs::CONTAINER);
            let logs = if end.succeeded() {
                Vec::new()
            } else {
                self.task_logs(&state).await
            };
            return Ok(Progress::Ended {
                end,
                reason: state.stopped.stopped_reason,
                logs,
            });
        }
        if waited > task.timeout {
            let why = format!(
                "pullstack: did not finish within {}",
                crate::domain::comment::human(task.timeout)
            );
            ctx.aws.tasks.stop(cluster, &run.arn, &why).await?;
            return Ok(Progress::Ended {
                end: OneOffEnd::TimedOut(task.timeout),
                reason: String::new(),
                logs: self.task_logs(&state).await,
            });
        }
        // Never later than its timeout, so a stuck task is stopped on time.
        let delay = ctx
            .poll_delay(waited)
            .min(task.timeout.saturating_sub(waited) + std::time::Duration::from_secs(1));
        Ok(Progress::Running(Action::after(delay)))
    }

    async fn task_logs(&self, state: &TaskState) -> Vec<String> {
        match self.ctx.shared().await {
            Ok(shared) => self.last_lines(&shared.log_group, state).await,
            Err(err) => {
                tracing::warn!(error = %err, "could not read the shared stack for the log group");
                Vec::new()
            }
        }
    }

    async fn report_running(&mut self, sha: &str, task: &OneOffTask, run: &TaskRun) -> Result<()> {
        let command: String = task.command.join(" ").chars().take(200).collect();
        let state = State::Deploying {
            status: format!(
                "running `before_traffic` (`{}`) before traffic",
                command.replace('`', "'")
            ),
            since: Some(run.started),
            trouble: None,
        };
        self.report(Some(sha), state).await
    }
}
