//! Stack states moto cannot produce: ROLLBACK_COMPLETE, UPDATE_ROLLBACK_FAILED,
//! DELETE_FAILED, "No updates are to be performed" and throttling.
//!
//! These use aws-smithy-mocks: a `MockResponseInterceptor` on the real
//! CloudFormation client answers the mocked calls (matched by stack name),
//! and lets every other call pass through to moto. Every rule has a typed
//! `match_requests`: without one, a rule also counts calls of other
//! operations. So the rest of the flow
//! (webhook in, ECR, GitHub fake out) is the same as in the other tests.

use crate::support;
use crate::support::mocks::{self, Scripted, circuit_breaker_events, stack_in};
use crate::support::{World, eventually};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::operation::continue_update_rollback::ContinueUpdateRollbackOutput;
use aws_sdk_cloudformation::operation::create_stack::CreateStackError;
use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksError;
use aws_sdk_cloudformation::operation::update_stack::UpdateStackError;
use aws_sdk_cloudformation::types::StackStatus;
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::error::ErrorMetadata;
use pullstack::aws::Aws;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The world's AWS clients, with CloudFormation answering `rules` first.
fn mocked(world: &World, rules: &[&Rule]) -> Aws {
    let cloudformation = rules.to_vec();
    mocks::aws(
        &world.sdk,
        &Scripted {
            cloudformation,
            ..Scripted::default()
        },
    )
}

#[tokio::test]
async fn rollback_complete_is_reported_then_deleted_and_recreated() {
    let mut world = World::new("rbc", "").await;
    let name = world.stack_name(1);
    let first = support::github_fake::fake_sha(&format!("{}-rbc", world.app));
    let (n, s) = (name.clone(), first.clone());
    let describe = mock!(Client::describe_stacks)
        .match_requests(move |r| r.stack_name() == Some(n.as_str()))
        .sequence()
        .output(move || stack_in(&name, StackStatus::RollbackComplete, &s))
        .times(2)
        .build();
    let n = world.stack_name(1);
    let events = mock!(Client::describe_stack_events)
        .match_requests(move |r| r.stack_name() == Some(n.as_str()))
        .then_output({
            let n = world.stack_name(1);
            move || circuit_breaker_events(&n)
        });
    world
        .start_with(mocked(&world, &[&describe, &events]))
        .await;
    world.push_image(&first).await;
    world.open_pr_at(1, &first, &world.repo.clone()).await;

    let comment = world.wait_comment(1, "Deploy failed").await;
    assert!(
        comment.body.contains("ROLLBACK_COMPLETE"),
        "{}",
        comment.body
    );
    assert!(
        comment.body.contains("Circuit Breaker"),
        "names the failing resource: {}",
        comment.body
    );
    assert!(
        comment.body.contains("/pullstack redeploy"),
        "says what to do next"
    );
    // The comment is written first; the Deployment's outcome in the same pass.
    world.settle().await;
    let deployment = world.github.deployments(&world.repo).pop().unwrap();
    assert_eq!(deployment.sha, first);
    assert_eq!(deployment.statuses.last().unwrap().state, "failure");

    // A new commit deletes the dead stack and creates a new one.
    let second = world.push(1, "fix").await;
    world.wait_stack_at(1, &second).await;
    world.wait_comment(1, "Ready").await;
    assert_eq!(describe.num_calls(), 2);
}

#[tokio::test]
async fn update_rollback_failed_is_continued() {
    let mut world = World::new("urf", "").await;
    world.start().await;
    let first = world.open_pr(2).await;
    world.wait_stack_at(2, &first).await;
    world.wait_comment(2, "Ready").await;
    world.stop().await;

    let (name, n) = (world.stack_name(2), world.stack_name(2));
    let s = first.clone();
    let describe = mock!(Client::describe_stacks)
        .match_requests(move |r| r.stack_name() == Some(n.as_str()))
        .sequence()
        .output(move || stack_in(&name, StackStatus::UpdateRollbackFailed, &s))
        .build();
    let resume = mock!(Client::continue_update_rollback)
        .match_requests(|_| true)
        .then_output(|| ContinueUpdateRollbackOutput::builder().build());
    world
        .start_with(mocked(&world, &[&describe, &resume]))
        .await;
    let second = world.push(2, "next").await;
    world.wait_stack_at(2, &second).await;
    world.wait_comment(2, "Ready").await;
    // Mock rules count SDK attempts, and the passthrough transport still
    // reaches moto, which rejects this call: so "at least once".
    assert!(resume.num_calls() >= 1, "ContinueUpdateRollback was called");
}

#[tokio::test]
async fn delete_failed_is_retried_then_reported() {
    let mut world = World::new("delf", "").await;
    world.start().await;
    let sha = world.open_pr(3).await;
    world.wait_stack_at(3, &sha).await;
    world.wait_comment(3, "Ready").await;
    world.stop().await;

    let (name, n) = (world.stack_name(3), world.stack_name(3));
    let s = sha.clone();
    let describe = mock!(Client::describe_stacks)
        .match_requests(move |r| r.stack_name() == Some(n.as_str()))
        .sequence()
        .output(move || stack_in(&name, StackStatus::DeleteFailed, &s))
        .times(5)
        .build();
    world.start_with(mocked(&world, &[&describe])).await;
    world.close(3, true).await;
    world
        .wait_comment(3, "Deleting the stack failed 3 times")
        .await;
    // Once the delete goes through, the environment is reported removed.
    world.wait_stack_gone(3).await;
    world.wait_comment(3, "Removed").await;
}

#[tokio::test]
async fn no_updates_to_perform_counts_as_success() {
    let mut world = World::new("noop", "").await;
    world.start().await;
    let sha = world.open_pr(4).await;
    world.wait_stack_at(4, &sha).await;
    world.wait_comment(4, "Ready").await;
    world.stop().await;

    let n = world.stack_name(4);
    let update = mock!(Client::update_stack)
        .match_requests(move |r| r.stack_name() == Some(n.as_str()))
        .then_error(|| {
            UpdateStackError::generic(
                ErrorMetadata::builder()
                    .code("ValidationError")
                    .message("No updates are to be performed.")
                    .build(),
            )
        });
    world.start_with(mocked(&world, &[&update])).await;
    world
        .comment(4, support::WRITER, "/pullstack redeploy")
        .await;
    eventually("update attempted", Duration::from_secs(10), || async {
        update.num_calls() >= 1
    })
    .await;
    // The comment said Ready before the redeploy too: once the queue is
    // quiet, it still does, and the Deployment never said anything else
    // (it already said success, so nothing is posted again).
    world.settle().await;
    world.wait_comment(4, "Ready").await;
    let deployments = world.github.deployments(&world.repo);
    let states: Vec<_> = deployments
        .iter()
        .filter(|d| d.sha == sha)
        .flat_map(|d| d.statuses.iter().map(|s| s.state.clone()))
        .collect();
    assert_eq!(states, ["success"], "{deployments:#?}");
}

#[tokio::test]
async fn throttling_is_retried() {
    let mut world = World::new("throttle", "").await;
    let throttled = mock!(Client::create_stack)
        .match_requests(|_| true)
        .sequence()
        .error(|| {
            CreateStackError::generic(
                ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .times(2)
        .build();
    world.start_with(mocked(&world, &[&throttled])).await;
    let sha = world.open_pr(5).await;
    world.wait_stack_at(5, &sha).await;
    world.wait_comment(5, "Ready").await;
    assert!(
        throttled.num_calls() >= 2,
        "both throttled answers were consumed, then the call went through"
    );
}

/// Our own failure that persists (an AWS 500 on every CreateStack, from an
/// aws-smithy-mocks rule while `failing` is set): after `notice_after`
/// failed passes the PR's comment says so with a reference for the logs,
/// and the first good pass clears the notice.
///
/// The mock replaces moto's answer, but moto still receives the call and
/// creates the stack. So while failing, DescribeStacks of that stack is
/// mocked as not found too: to pullstack, every attempt fails alike.
#[tokio::test]
async fn a_persisting_internal_failure_is_noticed_on_the_pr_and_cleared() {
    let mut world = World::new("notice", "queue:\n  notice_after: 2\n").await;
    let failing = Arc::new(AtomicBool::new(true));
    let (flag, name) = (failing.clone(), world.stack_name(6));
    let hidden = mock!(Client::describe_stacks)
        .match_requests(move |input| {
            flag.load(Ordering::SeqCst) && input.stack_name() == Some(name.as_str())
        })
        .sequence()
        .error(|| {
            DescribeStacksError::generic(
                ErrorMetadata::builder()
                    .code("ValidationError")
                    .message("Stack with id notice does not exist")
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let flag = failing.clone();
    let broken = mock!(Client::create_stack)
        .match_requests(move |_| flag.load(Ordering::SeqCst))
        .sequence()
        .error(|| {
            CreateStackError::generic(
                ErrorMetadata::builder()
                    .code("InternalFailure")
                    .message("We encountered an internal error. Please try again.")
                    .build(),
            )
        })
        .repeatedly()
        .build();
    world.start_with(mocked(&world, &[&hidden, &broken])).await;
    world.open_pr(6).await;
    let noticed = world.wait_comment(6, "keeps failing on its side").await;
    assert!(noticed.body.contains("under ref `"), "{}", noticed.body);
    assert!(
        broken.num_calls() >= 2,
        "{} CreateStack calls",
        broken.num_calls()
    );

    failing.store(false, Ordering::SeqCst);
    world.wait_comment(6, "Ready").await;
    let cleared = world.sticky(6).unwrap();
    assert!(!cleared.body.contains("keeps failing"), "{}", cleared.body);
}

/// The user's mistake: CloudFormation refuses the stack's values (an
/// aws-smithy-mocks ValidationError on CreateStack, as AWS answers an
/// invalid CPU and memory pair). The PR is told once what to fix, and the
/// create is not retried until the user acts.
///
/// As above, moto still receives the call behind the mocked answer, so
/// DescribeStacks of that stack is mocked as not found.
#[tokio::test]
async fn a_refused_config_is_said_once_and_not_retried() {
    let mut world = World::new("userr", "").await;
    let name = world.stack_name(3);
    let hidden = mock!(Client::describe_stacks)
        .match_requests(move |input| input.stack_name() == Some(name.as_str()))
        .sequence()
        .error(|| {
            DescribeStacksError::generic(
                ErrorMetadata::builder()
                    .code("ValidationError")
                    .message("Stack with id userr does not exist")
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let refused = mock!(Client::create_stack)
        .match_requests(|_| true)
        .sequence()
        .error(|| {
            CreateStackError::generic(
                ErrorMetadata::builder()
                    .code("ValidationError")
                    .message("Invalid CPU or memory value specified")
                    .build(),
            )
        })
        .repeatedly()
        .build();
    world.start_with(mocked(&world, &[&hidden, &refused])).await;
    world.open_pr(3).await;
    let failed = world.wait_comment(3, "Deploy failed").await;
    assert!(
        failed
            .body
            .contains("Invalid CPU or memory value specified")
            && failed.body.contains("`preview` section"),
        "{}",
        failed.body
    );
    world.settle().await;
    assert_eq!(refused.num_calls(), 1, "not retried");

    // Another event changes nothing: no new create, no new words.
    world.label(3, "unrelated", support::WRITER).await;
    world.settle().await;
    assert_eq!(refused.num_calls(), 1);
    assert_eq!(world.sticky(3).unwrap().edits, failed.edits);
}
