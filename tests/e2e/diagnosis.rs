//! Why a deploy failed, in words: the cause read from ECS's stopped tasks
//! and the load balancer's target health comes first on the comment, with
//! what to do next; CloudFormation's events stay below, in `<details>`.
//!
//! moto runs no tasks and reports every target healthy, so these use
//! aws-smithy-mocks on the real clients (`support::mocks`): the stack's
//! state, ECS's stopped tasks and the target health are scripted, while
//! every other call (ECR, CloudWatch Logs, the stack's resources) goes
//! through to moto.

use crate::support::World;
use crate::support::mocks::{self, Scripted, circuit_breaker_events, stack_in};
use aws_sdk_cloudformation::types::StackStatus;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types::{Container, Task, TaskStopCode};
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
use aws_sdk_elasticloadbalancingv2::types::{
    TargetDescription, TargetHealth, TargetHealthDescription, TargetHealthReasonEnum,
    TargetHealthStateEnum,
};
use aws_smithy_mocks::mock;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TASK_ID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn stopped_task(reason: &str, code: TaskStopCode, exit: Option<i32>) -> DescribeTasksOutput {
    let mut container = Container::builder().name("app").last_status("STOPPED");
    if let Some(exit) = exit {
        container = container.exit_code(exit);
    }
    DescribeTasksOutput::builder()
        .tasks(
            Task::builder()
                .task_arn(format!(
                    "arn:aws:ecs:us-east-1:123456789012:task/c/{TASK_ID}"
                ))
                .last_status("STOPPED")
                .desired_status("STOPPED")
                .stopped_reason(reason)
                .stop_code(code)
                .containers(container.build())
                .build(),
        )
        .build()
}

/// A stack that rolled back after its service's circuit breaker tripped,
/// its stopped task described by `task`; returns the PR's comment.
async fn rolled_back_with(prefix: &str, task: DescribeTasksOutput, logs: &[String]) -> String {
    let mut world = World::new(prefix, "").await;
    let name = world.stack_name(1);
    let sha = crate::support::github_fake::fake_sha(&format!("{}-{prefix}", world.app));
    let (n, m, s) = (name.clone(), name.clone(), sha.clone());
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .match_requests(move |r| r.stack_name() == Some(n.as_str()))
        .then_output(move || stack_in(&m, StackStatus::RollbackComplete, &s));
    let n = name.clone();
    let events = mock!(aws_sdk_cloudformation::Client::describe_stack_events)
        .match_requests(move |r| r.stack_name() == Some(n.as_str()))
        .then_output({
            let n = name.clone();
            move || circuit_breaker_events(&n)
        });
    // The service is gone with the rollback: its tasks are found by the
    // task definition's family, the stack's name.
    let family = name.clone();
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .match_requests(move |r| {
            r.family() == Some(family.as_str())
                && r.desired_status() == Some(&aws_sdk_ecs::types::DesiredStatus::Stopped)
        })
        .then_output(|| {
            ListTasksOutput::builder()
                .task_arns(format!(
                    "arn:aws:ecs:us-east-1:123456789012:task/c/{TASK_ID}"
                ))
                .build()
        });
    let describe_tasks = mock!(aws_sdk_ecs::Client::describe_tasks)
        .match_requests(|r| r.tasks().iter().any(|t| t.ends_with(TASK_ID)))
        .then_output(move || task.clone());
    let group = mocks::shared_output(&world, "LogGroupName").await;
    if !logs.is_empty() {
        mocks::put_logs(&world.sdk, &group, &format!("pr-1/app/{TASK_ID}"), logs).await;
    }
    let scripted = Scripted {
        cloudformation: vec![&describe, &events],
        ecs: vec![&list, &describe_tasks],
        elb: vec![],
    };
    world.start_with(mocks::aws(&world.sdk, &scripted)).await;
    world.push_image(&sha).await;
    world.open_pr_at(1, &sha, &world.repo.clone()).await;
    let comment = world.wait_comment(1, "Deploy failed").await;
    comment.body
}

#[tokio::test]
async fn circuit_breaker_failure_names_the_exit_code_and_shows_the_logs() {
    let mut lines: Vec<String> = (1..=60).map(|i| format!("boot line {i}")).collect();
    lines.push("fatal: DATABASE_URL is not set".into());
    let task = stopped_task(
        "Essential container in task exited",
        TaskStopCode::EssentialContainerExited,
        Some(3),
    );
    let body = rolled_back_with("cbexit", task, &lines).await;
    let cause = "The essential `app` container exited with code 3.";
    let failed = body.find("Deploy failed.").unwrap();
    let cause_at = body
        .find(cause)
        .unwrap_or_else(|| panic!("names the exit: {body}"));
    let details_at = body.find("<details>").unwrap();
    assert!(
        failed < cause_at && cause_at < details_at,
        "the cause comes first: {body}"
    );
    assert!(body.contains("read the task's logs"), "{body}");
    // The last 50 lines: the 61st (the fatal one) and down to the 12th.
    assert!(body.contains("fatal: DATABASE_URL is not set"), "{body}");
    assert!(body.contains("boot line 12\n"), "{body}");
    assert!(!body.contains("boot line 11\n"), "only the last 50: {body}");
    // CloudFormation's events stay, below, in <details>.
    let events_at = body.find("What CloudFormation reported").unwrap();
    assert!(events_at > cause_at);
    assert!(body.contains("Circuit Breaker"), "{body}");
    assert!(body.contains("ROLLBACK_COMPLETE"), "{body}");
}

#[tokio::test]
async fn circuit_breaker_failure_names_the_image_pull_failure() {
    let task = stopped_task(
        "CannotPullContainerError: pull image manifest has been retried 7 time(s): failed to \
         resolve ref 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:abc: not found",
        TaskStopCode::TaskFailedToStart,
        None,
    );
    let body = rolled_back_with("cbpull", task, &[]).await;
    assert!(
        body.contains("The task could not pull its image: CannotPullContainerError"),
        "{body}"
    );
    assert!(
        body.contains("task execution role may pull it"),
        "says what to do next: {body}"
    );
    // No log lines: the container never started.
    assert!(!body.contains("log lines"), "{body}");
}

#[tokio::test]
async fn a_stack_stuck_on_unhealthy_targets_names_the_status_code() {
    let mut world = World::new("stuck", "preview:\n  health_path: /health\n").await;
    let name = world.stack_name(1);
    let stuck = Arc::new(AtomicBool::new(false));
    let (n, on) = (name.clone(), stuck.clone());
    let second = crate::support::github_fake::fake_sha(&format!("{}-1-broken", world.app));
    let s = second.clone();
    let describe = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .match_requests(move |r| r.stack_name() == Some(n.as_str()) && on.load(Ordering::SeqCst))
        .then_output({
            let n = name.clone();
            move || stack_in(&n, StackStatus::UpdateInProgress, &s)
        });
    // The target group is read from the stack's resource on moto: the
    // rule only answers for a real target group ARN.
    let health = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_target_health)
        .match_requests(|r| {
            r.target_group_arn()
                .is_some_and(|arn| arn.contains(":targetgroup/"))
        })
        .then_output(|| {
            DescribeTargetHealthOutput::builder()
                .target_health_descriptions(
                    TargetHealthDescription::builder()
                        .target(
                            TargetDescription::builder()
                                .id("10.0.1.7")
                                .port(8080)
                                .build(),
                        )
                        .target_health(
                            TargetHealth::builder()
                                .state(TargetHealthStateEnum::Unhealthy)
                                .reason(TargetHealthReasonEnum::ResponseCodeMismatch)
                                .description("Health checks failed with these codes: [404]")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let scripted = Scripted {
        cloudformation: vec![&describe],
        ecs: vec![],
        elb: vec![&health],
    };
    world.start_with(mocks::aws(&world.sdk, &scripted)).await;
    let first = world.open_pr(1).await;
    world.wait_stack_at(1, &first).await;
    world.wait_comment(1, "Ready").await;

    // The next commit's tasks never pass the health check: the update
    // stays in progress.
    stuck.store(true, Ordering::SeqCst);
    world.push_image(&second).await;
    world.push_sha(1, &second).await;
    world.wait_comment(1, "UPDATE_IN_PROGRESS").await;
    let early = world.sticky(1).unwrap().body;
    assert!(!early.contains("not healthy"), "not at once: {early}");
    world.advance(Duration::from_secs(240));
    let comment = world.wait_comment(1, "not healthy yet").await;
    assert!(
        comment
            .body
            .contains("The load balancer's health check got 404 on `/health`."),
        "{}",
        comment.body
    );
    assert!(
        comment.body.contains("preview.health_path"),
        "{}",
        comment.body
    );
}
