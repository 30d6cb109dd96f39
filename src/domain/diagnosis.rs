//! Why an environment's tasks stopped or never became healthy, in plain
//! words: ECS's stop reasons and exit codes, and the load balancer's target
//! health, turned into one cause and what to do about it.
//!
//! CloudFormation only says "ECS Deployment Circuit Breaker was triggered";
//! the cause a person can act on is in the stopped tasks and the targets.

mod wording;

pub use wording::one_off;

/// A stopped task, as ECS describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoppedTask {
    /// ECS's `stoppedReason`, e.g. "Essential container in task exited".
    pub stopped_reason: String,
    /// ECS's `stopCode`, e.g. `TaskFailedToStart` or `EssentialContainerExited`.
    pub stop_code: String,
    pub containers: Vec<ContainerExit>,
}

/// How one container of a stopped task ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerExit {
    pub name: String,
    pub exit_code: Option<i32>,
    /// ECS's `reason` for the container, e.g. "OutOfMemoryError: ...".
    pub reason: String,
}

/// One target's health, as the load balancer describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetHealth {
    /// `healthy`, `unhealthy`, `initial`, `draining`, ...
    pub state: String,
    /// e.g. `Target.ResponseCodeMismatch`.
    pub reason: String,
    /// e.g. "Health checks failed with these codes: [404]".
    pub description: String,
}

/// The cause of a failure, as a person can act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The image (or its registry credentials, or its secrets) could not be
    /// pulled; `detail` is what ECS said.
    ImagePull { detail: String },
    /// A container used more memory than the task has.
    OutOfMemory { container: String },
    /// An essential container exited on its own.
    Exited {
        container: String,
        code: i32,
        reason: String,
    },
    /// The load balancer's health check got these status codes.
    HealthCodes { codes: String, path: String },
    /// The load balancer's health check timed out or could not connect.
    HealthTimeout { path: String, detail: String },
    /// The task failed the load balancer's health checks, codes unknown.
    HealthFailed { path: String },
    /// Fargate Spot took the capacity back.
    SpotInterrupted,
    /// Something else ECS said.
    Other { reason: String },
}

/// The most telling cause among the stopped tasks and the targets, if any.
///
/// A task's own failure (pull, memory, exit) comes first: when a task
/// fails at start, the targets only say it is gone. A failed health check
/// is told by the target health when it has the status codes.
pub fn diagnose(tasks: &[StoppedTask], targets: &[TargetHealth], path: &str) -> Option<Cause> {
    let from_tasks: Vec<Cause> = tasks.iter().filter_map(|t| from_task(t, path)).collect();
    let own = from_tasks
        .iter()
        .find(|c| !c.is_health() && !matches!(c, Cause::SpotInterrupted));
    if let Some(cause) = own {
        return Some(cause.clone());
    }
    let from_targets = targets.iter().find_map(|t| from_target(t, path));
    from_targets.or_else(|| from_tasks.into_iter().next())
}

/// What a stopped task says went wrong; `None` for a task stopped on
/// purpose (scaled in, replaced by a newer deployment).
pub fn from_task(task: &StoppedTask, path: &str) -> Option<Cause> {
    let reason = task.stopped_reason.as_str();
    let pull_markers = [
        "CannotPullContainerError",
        "CannotPullImageManifestError",
        "unable to pull secrets or registry auth",
        "pull image manifest has been retried",
    ];
    if pull_markers.iter().any(|m| reason.contains(m)) {
        return Some(Cause::ImagePull {
            detail: reason.to_owned(),
        });
    }
    for c in &task.containers {
        if c.reason.contains("CannotPullContainerError")
            || c.reason.contains("CannotPullImageManifestError")
        {
            return Some(Cause::ImagePull {
                detail: c.reason.clone(),
            });
        }
    }
    if task.stop_code == "SpotInterruption" {
        return Some(Cause::SpotInterrupted);
    }
    if let Some(c) = task
        .containers
        .iter()
        .find(|c| c.reason.contains("OutOfMemory"))
    {
        return Some(Cause::OutOfMemory {
            container: c.name.clone(),
        });
    }
    if reason.contains("ELB health checks") {
        return Some(Cause::HealthFailed {
            path: path.to_owned(),
        });
    }
    let exited = task.stop_code == "EssentialContainerExited"
        || reason.contains("Essential container in task exited");
    if exited {
        // The container that ended it: one with a non-zero code first.
        let failed = task
            .containers
            .iter()
            .find(|c| c.exit_code.is_some_and(|code| code != 0))
            .or_else(|| task.containers.iter().find(|c| c.exit_code.is_some()));
        return Some(match failed {
            Some(c) if c.exit_code == Some(137) && c.reason.is_empty() => Cause::OutOfMemory {
                container: c.name.clone(),
            },
            Some(c) => Cause::Exited {
                container: c.name.clone(),
                code: c.exit_code.unwrap_or_default(),
                reason: c.reason.clone(),
            },
            None => Cause::Other {
                reason: reason.to_owned(),
            },
        });
    }
    let routine = [
        "Scaling activity initiated by",
        "Service",
        "Task stopped by user",
    ];
    if reason.is_empty() || routine.iter().any(|r| reason.starts_with(r)) {
        return None;
    }
    Some(Cause::Other {
        reason: reason.to_owned(),
    })
}

/// What an unhealthy target says; `None` for a healthy or starting one.
pub fn from_target(target: &TargetHealth, path: &str) -> Option<Cause> {
    if target.state != "unhealthy" {
        return None;
    }
    let path = path.to_owned();
    match target.reason.as_str() {
        "Target.ResponseCodeMismatch" => {
            let codes = codes_in(&target.description).unwrap_or_else(|| "an error".into());
            Some(Cause::HealthCodes { codes, path })
        }
        "Target.Timeout" | "Elb.InternalError" => Some(Cause::HealthTimeout {
            path,
            detail: target.description.clone(),
        }),
        _ => Some(Cause::HealthFailed { path }),
    }
}

/// `404` from "Health checks failed with these codes: [404]", `404, 500`
/// from `[404,500]`.
fn codes_in(description: &str) -> Option<String> {
    let open = description.find('[')?;
    let close = description[open..].find(']')? + open;
    let codes: Vec<&str> = description[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    (!codes.is_empty()).then(|| codes.join(", "))
}

impl Cause {
    fn is_health(&self) -> bool {
        matches!(
            self,
            Cause::HealthCodes { .. } | Cause::HealthTimeout { .. } | Cause::HealthFailed { .. }
        )
    }
}

/// How a one-off task (`before_traffic`, `on_delete`) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OneOffEnd {
    /// Its container exited with this code.
    Exited(i32),
    /// It stopped without an exit code (it never started, or was stopped
    /// from outside); ECS's stop reason says why.
    NoExitCode,
    /// It ran past its timeout and was stopped.
    TimedOut(std::time::Duration),
    /// ECS no longer knows it (stopped tasks are forgotten after a while).
    Gone,
}

impl OneOffEnd {
    /// How `task` ended, judged by `container`'s exit code.
    pub fn of(task: &StoppedTask, container: &str) -> OneOffEnd {
        match task.containers.iter().find(|c| c.name == container) {
            Some(ContainerExit {
                exit_code: Some(code),
                ..
            }) => OneOffEnd::Exited(*code),
            _ => OneOffEnd::NoExitCode,
        }
    }

    pub fn succeeded(&self) -> bool {
        *self == OneOffEnd::Exited(0)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::domain::diagnosis) fn task(
        reason: &str,
        code: &str,
        containers: &[(&str, Option<i32>, &str)],
    ) -> StoppedTask {
        StoppedTask {
            stopped_reason: reason.into(),
            stop_code: code.into(),
            containers: containers
                .iter()
                .map(|(name, exit, why)| ContainerExit {
                    name: (*name).into(),
                    exit_code: *exit,
                    reason: (*why).into(),
                })
                .collect(),
        }
    }

    pub(in crate::domain::diagnosis) fn unhealthy(reason: &str, description: &str) -> TargetHealth {
        TargetHealth {
            state: "unhealthy".into(),
            reason: reason.into(),
            description: description.into(),
        }
    }

    #[test]
    fn image_pull_failure() {
        let t = task(
            "CannotPullContainerError: pull image manifest has been retried 5 time(s): \
             failed to resolve ref 1234.dkr.ecr.eu-west-1.amazonaws.com/app:abc: not found",
            "TaskFailedToStart",
            &[("app", None, "")],
        );
        let cause = from_task(&t, "/").unwrap();
        assert!(matches!(cause, Cause::ImagePull { .. }));
        assert!(cause.to_string().contains("could not pull its image"));
        assert!(cause.to_string().contains("not found"));
    }

    #[test]
    fn secrets_pull_failure_is_a_pull_failure() {
        let t = task(
            "ResourceInitializationError: unable to pull secrets or registry auth: execution \
             resource retrieval failed",
            "TaskFailedToStart",
            &[],
        );
        assert!(matches!(from_task(&t, "/"), Some(Cause::ImagePull { .. })));
    }

    #[test]
    fn out_of_memory_by_reason_or_by_137() {
        let by_reason = task(
            "Essential container in task exited",
            "EssentialContainerExited",
            &[(
                "app",
                Some(137),
                "OutOfMemoryError: Container killed due to memory usage",
            )],
        );
        let by_code = task(
            "Essential container in task exited",
            "EssentialContainerExited",
            &[("app", Some(137), "")],
        );
        for t in [by_reason, by_code] {
            let cause = from_task(&t, "/").unwrap();
            assert_eq!(
                cause,
                Cause::OutOfMemory {
                    container: "app".into()
                }
            );
            assert!(cause.to_string().contains("out of memory"));
            assert!(cause.next().contains("preview.memory"));
        }
    }

    #[test]
    fn routine_stops_are_not_causes() {
        for reason in [
            "Scaling activity initiated by (deployment ecs-svc/123)",
            "Service pr-1 deployment completed",
            "Task stopped by user",
            "",
        ] {
            assert_eq!(from_task(&task(reason, "", &[]), "/"), None, "{reason}");
        }
    }

    #[test]
    fn healthy_and_starting_targets_say_nothing() {
        for state in ["healthy", "initial", "draining"] {
            let t = TargetHealth {
                state: state.into(),
                ..TargetHealth::default()
            };
            assert_eq!(from_target(&t, "/"), None);
        }
    }

    #[test]
    fn health_timeout() {
        let t = unhealthy("Target.Timeout", "Request timed out");
        let cause = from_target(&t, "/").unwrap();
        assert!(matches!(cause, Cause::HealthTimeout { .. }));
        assert!(cause.next().contains("0.0.0.0"));
    }

    #[test]
    fn a_task_failure_comes_before_the_targets() {
        let tasks = [
            task(
                "Task failed ELB health checks in (target-group arn)",
                "",
                &[],
            ),
            task(
                "Essential container in task exited",
                "EssentialContainerExited",
                &[("app", Some(1), "")],
            ),
        ];
        let targets = [unhealthy("Target.ResponseCodeMismatch", "[500]")];
        let cause = diagnose(&tasks, &targets, "/").unwrap();
        assert!(matches!(cause, Cause::Exited { code: 1, .. }));
    }

    #[test]
    fn target_codes_explain_a_health_check_stop() {
        let tasks = [task(
            "Task failed ELB health checks in (target-group arn)",
            "",
            &[],
        )];
        let targets = [unhealthy(
            "Target.ResponseCodeMismatch",
            "Health checks failed with these codes: [404]",
        )];
        let cause = diagnose(&tasks, &targets, "/health").unwrap();
        assert!(cause.to_string().contains("404 on `/health`"));
        // Without the targets (they went with the stack), the stop still says it.
        let cause = diagnose(&tasks, &[], "/health").unwrap();
        assert!(matches!(cause, Cause::HealthFailed { .. }));
    }

    #[test]
    fn one_off_ends_by_the_container_exit_code() {
        let ok = task(
            "Essential container in task exited",
            "",
            &[("app", Some(0), "")],
        );
        assert!(OneOffEnd::of(&ok, "app").succeeded());
        let failed = task(
            "Essential container in task exited",
            "",
            &[("app", Some(3), "")],
        );
        assert_eq!(OneOffEnd::of(&failed, "app"), OneOffEnd::Exited(3));
        let never = task("CannotPullContainerError: denied", "", &[("app", None, "")]);
        assert_eq!(OneOffEnd::of(&never, "app"), OneOffEnd::NoExitCode);
        assert!(!OneOffEnd::of(&never, "app").succeeded());
    }

    #[test]
    fn nothing_to_say() {
        assert_eq!(diagnose(&[], &[], "/"), None);
    }
}
