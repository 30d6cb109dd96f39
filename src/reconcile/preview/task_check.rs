//! Smoke checks that are one-off tasks (`preview.checks[].task`): the
//! team's own test command, run on the preview's task definition with
//! `PREVIEW_URL` in its environment, passing when it exits 0.
//!
//! They run inside the checks job, which is outside the workers' cap:
//! every task is started, then all are described together on the clock's
//! poll schedule until each has stopped or passed its timeout (then it is
//! stopped). The bypass value of a private preview is not passed: only
//! its header's name and its secret's ARN, which the command reads with
//! the task role, so the value never shows in `DescribeTasks`.

use crate::aws::tasks::{OneOff, TaskState};
use crate::config::{Check, TaskCheck};
use crate::domain::checks::Outcome;
use crate::domain::diagnosis::{self, OneOffEnd};
use crate::domain::logs;
use crate::domain::naming::EnvKey;
use crate::reconcile::Ctx;
use crate::reconcile::checks::failed;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// The variable a task check finds the preview's URL in.
pub const PREVIEW_URL: &str = "PREVIEW_URL";
/// The variable naming the header that lets requests past a private
/// preview's access rules.
pub const BYPASS_HEADER: &str = "PULLSTACK_BYPASS_HEADER";
/// The variable holding the ARN of the secret whose value goes in it.
pub const BYPASS_SECRET_ARN: &str = "PULLSTACK_BYPASS_SECRET_ARN";

/// A task check started and not yet over.
struct Running<'a> {
    index: usize,
    check: &'a Check,
    task: &'a TaskCheck,
    arn: String,
    started: DateTime<Utc>,
}

/// Runs the task checks of `checks` (the others are left out) against the
/// preview of `key` at `url`; their outcomes, in order.
pub(super) async fn run_all(ctx: &Ctx, key: &EnvKey, url: &str, checks: &[Check]) -> Vec<Outcome> {
    let tasks: Vec<(&Check, &TaskCheck)> = (checks.iter())
        .filter_map(|c| c.task.as_ref().map(|t| (c, t)))
        .collect();
    if tasks.is_empty() {
        return Vec::new();
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; tasks.len()];
    let place = match Place::find(ctx, key).await {
        Ok(place) => place,
        Err(why) => {
            return (tasks.iter())
                .map(|(c, _)| failed(c, Duration::ZERO, &why))
                .collect();
        }
    };
    let mut environment = vec![(PREVIEW_URL.to_owned(), url.to_owned())];
    let access = &ctx.config.preview.access;
    if access.has_bypass() {
        environment.push((BYPASS_HEADER.to_owned(), access.bypass_header.clone()));
        environment.push((
            BYPASS_SECRET_ARN.to_owned(),
            access.bypass_secret_arn.clone(),
        ));
    }
    let mut running = Vec::new();
    for (index, (check, task)) in tasks.iter().enumerate() {
        let one_off = OneOff {
            cluster: &place.cluster,
            task_definition: &place.task_definition,
            subnets: &place.subnets,
            security_group: &place.security_group,
            container: logs::CONTAINER,
            command: &task.command,
            environment: &environment,
            started_by: "pullstack-check",
        };
        match ctx.aws.tasks.run(&one_off).await {
            Ok(arn) => {
                tracing::info!(env = %key, check = check.name, task = arn, "task check started");
                running.push(Running {
                    index,
                    check,
                    task,
                    arn,
                    started: ctx.clock.now(),
                });
            }
            Err(err) => {
                let why = format!("the task could not be started: {err}");
                outcomes[index] = Some(failed(check, Duration::ZERO, &why));
            }
        }
    }
    while !running.is_empty() {
        let arns: Vec<String> = running.iter().map(|r| r.arn.clone()).collect();
        let described = ctx.aws.tasks.describe(&place.cluster, &arns).await;
        let seen: Option<HashMap<String, TaskState>> = match described {
            Ok(found) => Some(found.into_iter().map(|t| (t.arn.clone(), t)).collect()),
            Err(err) => {
                // Looked at again on the next poll; the timeouts still hold.
                tracing::warn!(env = %key, error = %err, "could not describe the task checks");
                None
            }
        };
        let mut still = Vec::new();
        for run in running {
            match end(ctx, &place, key, &run, seen.as_ref()).await {
                Some(outcome) => outcomes[run.index] = Some(outcome),
                None => still.push(run),
            }
        }
        running = still;
        let Some(delay) = (running.iter())
            .map(|r| {
                let waited = ctx.clock.since(r.started);
                ctx.poll_delay(waited)
                    .min(r.task.timeout.saturating_sub(waited) + Duration::from_secs(1))
            })
            .min()
        else {
            break;
        };
        ctx.clock.sleep(delay).await;
    }
    (outcomes.into_iter().zip(&tasks))
        .map(|(o, (c, _))| o.unwrap_or_else(|| failed(c, Duration::ZERO, "not run")))
        .collect()
}

/// `run`'s outcome if it is over, as ECS last described the tasks
/// (`None` when that could not be read); a task past its timeout is
/// stopped.
async fn end(
    ctx: &Ctx,
    place: &Place,
    key: &EnvKey,
    run: &Running<'_>,
    seen: Option<&HashMap<String, TaskState>>,
) -> Option<Outcome> {
    let waited = ctx.clock.since(run.started);
    let state = seen.and_then(|s| s.get(&run.arn));
    let over = |end: &OneOffEnd, reason: &str, logs: Vec<String>| {
        let why = diagnosis::one_off("task", &run.task.command, end, reason);
        Outcome {
            logs,
            ..failed(run.check, waited, &why)
        }
    };
    if let Some(state) = state.filter(|s| s.is_stopped()) {
        let end = OneOffEnd::of(&state.stopped, logs::CONTAINER);
        if end.succeeded() {
            return Some(Outcome {
                name: run.check.name.clone(),
                took: waited,
                status: None,
                excerpt: String::new(),
                failure: None,
                logs: Vec::new(),
            });
        }
        let lines = last_lines(ctx, place, key, state).await;
        return Some(over(&end, &state.stopped.stopped_reason, lines));
    }
    if waited > run.task.timeout {
        let why = format!(
            "pullstack: did not finish within {}",
            crate::domain::comment::human(run.task.timeout)
        );
        if let Err(err) = ctx.aws.tasks.stop(&place.cluster, &run.arn, &why).await {
            tracing::warn!(env = %key, task = run.arn, error = %err, "could not stop a task check");
        }
        let lines = match state {
            Some(state) => last_lines(ctx, place, key, state).await,
            None => Vec::new(),
        };
        return Some(over(&OneOffEnd::TimedOut(run.task.timeout), "", lines));
    }
    if seen.is_some() && state.is_none() {
        return Some(over(&OneOffEnd::Gone, "", Vec::new()));
    }
    None
}

/// The last log lines of `task`, redacted; none when they cannot be read.
async fn last_lines(ctx: &Ctx, place: &Place, key: &EnvKey, task: &TaskState) -> Vec<String> {
    let stream = logs::stream(&key.slug(), task.id());
    let limit = i32::try_from(logs::FAILURE_LINES).unwrap_or(i32::MAX);
    match ctx
        .aws
        .tasks
        .last_lines(&place.log_group, &stream, limit)
        .await
    {
        Ok(lines) => lines.iter().map(|l| logs::redact(l)).collect(),
        Err(err) => {
            tracing::warn!(stream, error = %err, "could not read a task check's log lines");
            Vec::new()
        }
    }
}

/// Where a preview's tasks run: its stack's task definition and security
/// group, the shared cluster, subnets and log group.
struct Place {
    cluster: String,
    task_definition: String,
    subnets: Vec<String>,
    security_group: String,
    log_group: String,
}

impl Place {
    /// `Err` says why in words for the Check Run.
    async fn find(ctx: &Ctx, key: &EnvKey) -> Result<Place, String> {
        let name = key.stack_name(&ctx.config.app);
        let stack = match ctx.aws.stacks.describe(&name).await {
            Ok(Some(stack)) => stack,
            Ok(None) => return Err(format!("the preview's stack {name} is gone")),
            Err(err) => return Err(format!("the preview's stack could not be read: {err}")),
        };
        let output = |k: &str| {
            stack
                .output(k)
                .map(str::to_owned)
                .ok_or_else(|| format!("the preview's stack {name} has no {k} output"))
        };
        let shared = ctx
            .shared()
            .await
            .map_err(|e| format!("the shared stack could not be read: {e:#}"))?;
        Ok(Place {
            cluster: shared.cluster_name,
            task_definition: output("TaskDefinitionArn")?,
            subnets: shared.subnets,
            security_group: output("ServiceSecurityGroupId")?,
            log_group: shared.log_group,
        })
    }
}
