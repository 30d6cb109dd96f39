//! An environment's tasks beyond its service: the stopped ones and the
//! targets' health that say why a deploy failed, the one-off tasks run
//! before traffic and before a teardown, and the log lines they leave.

use super::error::{Error, ErrorKind, Result};
use crate::domain::diagnosis::{ContainerExit, StoppedTask, TargetHealth};
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, DesiredStatus, KeyValuePair,
    LaunchType, NetworkConfiguration, TaskOverride,
};

/// At most this many stopped tasks are read to explain a failure: the
/// newest say enough.
const STOPPED_READ: i32 = 10;

#[derive(Clone)]
pub struct Tasks {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

/// A one-off task to start: the environment's task definition, in the
/// same subnets and security group as its service (the template's).
#[derive(Clone, Debug)]
pub struct OneOff<'a> {
    pub cluster: &'a str,
    pub task_definition: &'a str,
    pub subnets: &'a [String],
    pub security_group: &'a str,
    /// The container to run `command` in.
    pub container: &'a str,
    pub command: &'a [String],
    /// Variables added to the container's own (name, value).
    pub environment: &'a [(String, String)],
    /// Shown on the task in the ECS console (`startedBy`).
    pub started_by: &'a str,
}

/// A one-off task, as ECS last described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    pub arn: String,
    /// `STOPPED` once it is over.
    pub last_status: String,
    pub stopped: StoppedTask,
}

impl TaskState {
    pub fn is_stopped(&self) -> bool {
        self.last_status == "STOPPED"
    }

    /// The task's id: the last part of its ARN, which names its log stream.
    pub fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or_default()
    }
}

/// A log event's message.
pub type LogLine = String;

impl Tasks {
    pub fn new(
        ecs: aws_sdk_ecs::Client,
        elb: aws_sdk_elasticloadbalancingv2::Client,
        logs: aws_sdk_cloudwatchlogs::Client,
    ) -> Tasks {
        Tasks { ecs, elb, logs }
    }

    /// The newest stopped tasks of task definition family `family`.
    pub async fn stopped(&self, cluster: &str, family: &str) -> Result<Vec<TaskState>> {
        let listed = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .family(family)
            .desired_status(DesiredStatus::Stopped)
            .max_results(STOPPED_READ)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ECS", "ListTasks", format!("{cluster}/{family}"), &e))?;
        let arns = listed.task_arns().to_vec();
        if arns.is_empty() {
            return Ok(Vec::new());
        }
        self.describe(cluster, &arns).await
    }

    /// The tasks `arns`, as ECS describes them now.
    pub async fn describe(&self, cluster: &str, arns: &[String]) -> Result<Vec<TaskState>> {
        let out = self
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(arns.to_vec()))
            .send()
            .await
            .map_err(|e| Error::from_sdk("ECS", "DescribeTasks", cluster, &e))?;
        Ok(out
            .tasks()
            .iter()
            .map(|t| TaskState {
                arn: t.task_arn().unwrap_or_default().to_owned(),
                last_status: t.last_status().unwrap_or_default().to_owned(),
                stopped: StoppedTask {
                    stopped_reason: t.stopped_reason().unwrap_or_default().to_owned(),
                    stop_code: t
                        .stop_code()
                        .map(|c| c.as_str().to_owned())
                        .unwrap_or_default(),
                    containers: t
                        .containers()
                        .iter()
                        .map(|c| ContainerExit {
                            name: c.name().unwrap_or_default().to_owned(),
                            exit_code: c.exit_code(),
                            reason: c.reason().unwrap_or_default().to_owned(),
                        })
                        .collect(),
                },
            })
            .collect())
    }

    /// The health of every target in `target_group`.
    pub async fn targets(&self, target_group: &str) -> Result<Vec<TargetHealth>> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(target_group)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ELBv2", "DescribeTargetHealth", target_group, &e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| d.target_health())
            .map(|h| TargetHealth {
                state: h.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                reason: h
                    .reason()
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_default(),
                description: h.description().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// Starts `task` as a one-off Fargate task; its environment and
    /// secrets come with the task definition. Returns its ARN.
    pub async fn run(&self, task: &OneOff<'_>) -> Result<String> {
        let what = format!("{}/{}", task.cluster, task.task_definition);
        let network = NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(task.subnets.to_vec()))
                    .security_groups(task.security_group)
                    // As the service's tasks: the image is pulled over the
                    // internet gateway.
                    .assign_public_ip(AssignPublicIp::Enabled)
                    .build()
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Validation,
                            "ECS",
                            "RunTask",
                            what.clone(),
                            "Build",
                            e.to_string(),
                        )
                    })?,
            )
            .build();
        let overrides = TaskOverride::builder()
            .container_overrides(
                ContainerOverride::builder()
                    .name(task.container)
                    .set_command(Some(task.command.to_vec()))
                    .set_environment((!task.environment.is_empty()).then(|| {
                        (task.environment.iter())
                            .map(|(name, value)| {
                                KeyValuePair::builder().name(name).value(value).build()
                            })
                            .collect()
                    }))
                    .build(),
            )
            .build();
        let out = self
            .ecs
            .run_task()
            .cluster(task.cluster)
            .task_definition(task.task_definition)
            .launch_type(LaunchType::Fargate)
            .count(1)
            .network_configuration(network)
            .overrides(overrides)
            .started_by(task.started_by)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ECS", "RunTask", what.clone(), &e))?;
        if let Some(arn) = out.tasks().first().and_then(|t| t.task_arn()) {
            return Ok(arn.to_owned());
        }
        let why = out
            .failures()
            .first()
            .map(|f| {
                format!(
                    "{} {}",
                    f.reason().unwrap_or_default(),
                    f.detail().unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "no task was started".into());
        Err(Error::new(
            ErrorKind::Other,
            "ECS",
            "RunTask",
            what,
            "Failure",
            why.trim(),
        ))
    }

    /// Stops a one-off task (its timeout passed).
    pub async fn stop(&self, cluster: &str, arn: &str, reason: &str) -> Result<()> {
        self.ecs
            .stop_task()
            .cluster(cluster)
            .task(arn)
            .reason(reason)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ECS", "StopTask", arn, &e))?;
        Ok(())
    }

    /// The last `limit` lines of a log stream, oldest first; none when the
    /// stream does not exist (the task never started).
    pub async fn last_lines(&self, group: &str, stream: &str, limit: i32) -> Result<Vec<LogLine>> {
        let out = self
            .logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(false)
            .limit(limit)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let err = Error::from_sdk("CloudWatchLogs", "GetLogEvents", stream, &e);
                if err.kind() == ErrorKind::NotFound {
                    return Ok(Vec::new());
                }
                return Err(err);
            }
        };
        Ok(out
            .events()
            .iter()
            .filter_map(|e| e.message().map(str::to_owned))
            .collect())
    }

    /// Log events of the streams under `prefix` in `group` from `start_ms`
    /// (milliseconds since the epoch), oldest first, with the stream each
    /// came from, and the token to read on from.
    pub async fn events(
        &self,
        group: &str,
        prefix: &str,
        start_ms: i64,
        token: Option<String>,
    ) -> Result<(Vec<LogEvent>, Option<String>)> {
        let out = self
            .logs
            .filter_log_events()
            .log_group_name(group)
            .log_stream_name_prefix(prefix)
            .start_time(start_ms)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| Error::from_sdk("CloudWatchLogs", "FilterLogEvents", prefix, &e))?;
        // The prefix is applied here too: not every implementation of the
        // API honours it (moto returns the whole group).
        let events = out
            .events()
            .iter()
            .filter(|e| e.log_stream_name().is_some_and(|s| s.starts_with(prefix)))
            .map(|e| LogEvent {
                stream: e.log_stream_name().unwrap_or_default().to_owned(),
                timestamp_ms: e.timestamp().unwrap_or_default(),
                message: e.message().unwrap_or_default().to_owned(),
            })
            .collect();
        Ok((events, out.next_token().map(str::to_owned)))
    }
}

/// One log event, with its stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    pub stream: String,
    pub timestamp_ms: i64,
    pub message: String,
}
