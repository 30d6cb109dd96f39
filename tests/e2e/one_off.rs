//! One-off tasks: `preview.before_traffic` before a commit's service takes
//! traffic, and `preview.on_delete` before a teardown.
//!
//! moto cannot run a task (`RunTask` with awsvpc answers 500, and tasks
//! never stop on their own), so these use aws-smithy-mocks on the real ECS
//! client (`support::mocks`): `RunTask`, `DescribeTasks` and `StopTask` are
//! scripted, and every other call (the stack and its outputs, the service's
//! desired count, ECR, CloudWatch Logs) goes through to moto.

use crate::support::mocks::{self, Scripted};
use crate::support::{World, ecs};
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::run_task::RunTaskOutput;
use aws_sdk_ecs::operation::stop_task::StopTaskOutput;
use aws_sdk_ecs::types::{Container, Task, TaskStopCode};
use aws_smithy_mocks::{Rule, mock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TASK_ID: &str = "5a5a5a5a5a5a4b4b4b4b4b4b3c3c3c3c";

fn task_arn() -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/cluster/{TASK_ID}")
}

/// What the scripted ECS says of the one-off task.
#[derive(Clone)]
enum Seen {
    Running,
    Stopped {
        reason: &'static str,
        exit: Option<i32>,
    },
}

fn described(seen: &Seen) -> DescribeTasksOutput {
    let task = Task::builder().task_arn(task_arn());
    let task = match seen {
        Seen::Running => task.last_status("RUNNING").containers(
            Container::builder()
                .name("app")
                .last_status("RUNNING")
                .build(),
        ),
        Seen::Stopped { reason, exit } => {
            let mut container = Container::builder().name("app").last_status("STOPPED");
            if let Some(exit) = exit {
                container = container.exit_code(*exit);
            }
            task.last_status("STOPPED")
                .stopped_reason(*reason)
                .stop_code(TaskStopCode::EssentialContainerExited)
                .containers(container.build())
        }
    };
    DescribeTasksOutput::builder().tasks(task.build()).build()
}

/// The scripted one-off task: `RunTask` (only for `command`, on a task
/// definition, in subnets and a security group), `DescribeTasks` answering
/// what `seen` holds, and `StopTask`.
struct OneOffTask {
    seen: Arc<Mutex<Seen>>,
    /// Whether pullstack asked for the task.
    asked: Arc<AtomicBool>,
    run: Rule,
    describe: Rule,
    stop: Rule,
}

impl OneOffTask {
    fn new(command: &[&str]) -> OneOffTask {
        let seen = Arc::new(Mutex::new(Seen::Running));

        let command: Vec<String> = command.iter().map(|c| (*c).to_owned()).collect();
        let asked = Arc::new(AtomicBool::new(false));
        let flag = asked.clone();
        let run = mock!(aws_sdk_ecs::Client::run_task)
            .match_requests(move |r| {
                flag.store(true, Ordering::SeqCst);
                let overridden = r
                    .overrides()
                    .map(|o| o.container_overrides())
                    .and_then(|c| c.first())
                    .is_some_and(|c| c.name() == Some("app") && c.command() == command);
                let networked = r
                    .network_configuration()
                    .and_then(|n| n.awsvpc_configuration())
                    .is_some_and(|v| !v.subnets().is_empty() && !v.security_groups().is_empty());
                overridden && networked && r.task_definition().is_some_and(|t| !t.is_empty())
            })
            .then_output(|| {
                RunTaskOutput::builder()
                    .tasks(
                        Task::builder()
                            .task_arn(task_arn())
                            .last_status("PROVISIONING")
                            .build(),
                    )
                    .build()
            });
        let answer = seen.clone();
        let describe = mock!(aws_sdk_ecs::Client::describe_tasks)
            .match_requests(|r| r.tasks().iter().any(|t| t.ends_with(TASK_ID)))
            .then_output(move || described(&answer.lock().unwrap()));
        let stopped = seen.clone();
        let stop = mock!(aws_sdk_ecs::Client::stop_task)
            .match_requests(|r| r.task() == Some(task_arn().as_str()))
            .then_output(move || {
                *stopped.lock().unwrap() = Seen::Stopped {
                    reason: "Task stopped by user",
                    exit: Some(143),
                };
                StopTaskOutput::builder().build()
            });
        OneOffTask {
            seen,
            asked,
            run,
            describe,
            stop,
        }
    }

    fn asked(&self) -> bool {
        self.asked.load(Ordering::SeqCst)
    }

    fn set(&self, seen: Seen) {
        *self.seen.lock().unwrap() = seen;
    }

    async fn start(&self, world: &mut World) {
        let scripted = Scripted {
            ecs: vec![&self.run, &self.describe, &self.stop],
            ..Scripted::default()
        };
        world.start_with(mocks::aws(&world.sdk, &scripted)).await;
    }
}

/// The desired count of PR `number`'s service, as moto holds it.
async fn desired_count(world: &World, number: u64) -> i32 {
    ecs::service(world, number).await.desired_count()
}

const BEFORE: &str = "preview:\n  before_traffic:\n    command: [\"./migrate\", \"up\"]\n";

#[tokio::test]
async fn before_traffic_exit_0_scales_the_service_up() {
    let mut world = World::new("btok", BEFORE).await;
    let task = OneOffTask::new(&["./migrate", "up"]);
    task.start(&mut world).await;
    let sha = world.open_pr(1).await;
    world.wait_stack_at(1, &sha).await;
    world
        .wait_comment(1, "running `before_traffic` (`./migrate up`)")
        .await;
    assert_eq!(
        desired_count(&world, 1).await,
        0,
        "no traffic before it ends"
    );
    assert!(task.asked());

    task.set(Seen::Stopped {
        reason: "Essential container in task exited",
        exit: Some(0),
    });
    world.wait_comment(1, "Ready").await;
    assert_eq!(desired_count(&world, 1).await, 1, "scaled up after exit 0");
}

#[tokio::test]
async fn before_traffic_failure_keeps_zero_tasks_and_shows_code_reason_and_logs() {
    let mut world = World::new("btfail", BEFORE).await;
    let task = OneOffTask::new(&["./migrate", "up"]);
    task.set(Seen::Stopped {
        reason: "Essential container in task exited",
        exit: Some(3),
    });
    let group = mocks::shared_output(&world, "LogGroupName").await;
    let mut lines: Vec<String> = (1..=55).map(|i| format!("migration step {i}")).collect();
    // Attack: a migration that prints its connection string would put the
    // database password on a PR comment anyone can read.
    lines.insert(
        30,
        "connecting to postgres://app:hunter2@db.internal/app".into(),
    );
    mocks::put_logs(&world.sdk, &group, &format!("pr-1/app/{TASK_ID}"), &lines).await;
    task.start(&mut world).await;
    world.open_pr(1).await;

    let comment = world.wait_comment(1, "Deploy failed").await;
    let body = comment.body;
    assert!(
        body.contains("`before_traffic` (`./migrate up`) exited with code 3."),
        "{body}"
    );
    assert!(
        body.contains("ECS's stop reason: Essential container in task exited."),
        "{body}"
    );
    assert!(body.contains("stays at zero tasks"), "{body}");
    assert!(body.contains("migration step 55\n"), "{body}");
    assert!(body.contains("migration step 7\n"), "the last 50: {body}");
    assert!(
        !body.contains("migration step 6\n"),
        "only the last 50: {body}"
    );
    assert!(!body.contains("hunter2"), "the password is masked: {body}");
    assert!(
        body.contains("postgres://app:***@db.internal/app"),
        "{body}"
    );
    world.settle().await;
    assert_eq!(
        desired_count(&world, 1).await,
        0,
        "the environment stays at zero"
    );
    assert!(!world.sticky(1).unwrap().body.contains("Ready"));
    let deployment = world.github.deployments(&world.repo).pop().unwrap();
    assert_eq!(deployment.statuses.last().unwrap().state, "failure");
}

#[tokio::test]
async fn before_traffic_timeout_stops_the_task() {
    let yaml = format!("{BEFORE}    timeout: 10m\n");
    let mut world = World::new("bttime", &yaml).await;
    let task = OneOffTask::new(&["./migrate", "up"]);
    task.start(&mut world).await;
    world.open_pr(1).await;
    world.wait_comment(1, "running `before_traffic`").await;
    assert_eq!(task.stop.num_calls(), 0);

    world.advance(Duration::from_secs(11 * 60));
    let comment = world.wait_comment(1, "Deploy failed").await;
    assert!(
        comment
            .body
            .contains("did not finish within 10m 00s, so it was stopped"),
        "{}",
        comment.body
    );
    assert!(task.stop.num_calls() >= 1, "the task was stopped");
    world.settle().await;
    assert_eq!(desired_count(&world, 1).await, 0);
}

#[tokio::test]
async fn on_delete_failure_is_shown_and_the_teardown_completes() {
    let yaml = "preview:\n  on_delete:\n    command: [\"./drop-schema\"]\n";
    let mut world = World::new("ondel", yaml).await;
    let task = OneOffTask::new(&["./drop-schema"]);
    task.set(Seen::Stopped {
        reason: "Essential container in task exited",
        exit: Some(2),
    });
    task.start(&mut world).await;
    let sha = world.open_pr(1).await;
    world.wait_stack_at(1, &sha).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    assert!(!task.asked(), "on_delete runs only at teardown");

    world.close(1, true).await;
    world.wait_stack_gone(1).await;
    let comment = world.wait_comment(1, "Removed").await;
    assert!(
        comment
            .body
            .contains("**`on_delete` failed**: `on_delete` (`./drop-schema`) exited with code 2."),
        "{}",
        comment.body
    );
    assert!(comment.body.contains("removed anyway"), "{}", comment.body);
    assert!(task.asked());
}
