//! Branch environments, end to end: `push` and `delete` webhooks in, the
//! real AWS SDK against moto and octocrab against the GitHub fake out.

use crate::support::{World, eventually};
use pullstack::aws::stacks::Stack;
use std::time::Duration;

const BRANCHES: &str = "preview:\n  branches: [\"release/*\"]\n";

async fn wait_branch_at(world: &World, branch: &str, sha: &str) -> Stack {
    world
        .wait_named_stack_at(&world.branch_stack_name(branch), sha)
        .await
}

async fn wait_branch_gone(world: &World, branch: &str) {
    world
        .wait_named_stack_gone(&world.branch_stack_name(branch))
        .await;
}

#[tokio::test]
async fn a_matching_branch_gets_an_environment_reported_on_its_head() {
    let mut world = World::new("branch", BRANCHES).await;
    world.start().await;
    let branch = "release/1.0";

    let first = world.push_branch(branch, "one").await;
    let stack = wait_branch_at(&world, branch, &first).await;
    assert_eq!(stack.tag("pullstack:env"), Some("branch/release/1.0"));
    assert_eq!(stack.tag("pullstack:role"), Some("preview"));
    let url = stack.output("Url").expect("Url output").to_owned();

    let context = format!(
        "pullstack/{}",
        stack.name.trim_start_matches(&format!("{}-", world.app))
    );
    eventually(
        "a success status with the URL on the branch head",
        Duration::from_secs(30),
        || async {
            world.github.statuses(&world.repo, &first).iter().any(|s| {
                s.context == context
                    && s.state == "success"
                    && s.target_url.as_deref() == Some(url.as_str())
            })
        },
    )
    .await;
    eventually(
        "a successful Deployment for the branch",
        Duration::from_secs(30),
        || async {
            world.github.deployments(&world.repo).iter().any(|d| {
                d.environment == "branch/release/1.0"
                    && d.sha == first
                    && d.statuses
                        .last()
                        .is_some_and(|s| s.state == "success" && s.environment_url == url)
            })
        },
    )
    .await;

    let second = world.push_branch(branch, "two").await;
    wait_branch_at(&world, branch, &second).await;
    assert!(
        world.sticky(1).is_none(),
        "a branch has no PR to comment on"
    );

    world.delete_branch(branch, true).await;
    wait_branch_gone(&world, branch).await;
    eventually(
        "the Deployment marked inactive",
        Duration::from_secs(30),
        || async {
            world.github.deployments(&world.repo).iter().any(|d| {
                d.sha == second && d.statuses.last().is_some_and(|s| s.state == "inactive")
            })
        },
    )
    .await;
}

#[tokio::test]
async fn branches_that_do_not_match_get_nothing() {
    let mut world = World::new("nomatch", BRANCHES).await;
    world.start().await;
    world.push_branch("feature/x", "one").await;
    // A matching push after it is handled; by then the other one was too.
    let sha = world.push_branch("release/2.0", "one").await;
    wait_branch_at(&world, "release/2.0", &sha).await;
    assert!(world.branch_stack("feature/x").await.is_none());
}

#[tokio::test]
async fn the_resync_removes_environments_of_branches_deleted_unseen() {
    let config = "preview:\n  branches: [\"**\"]\nresync:\n  interval: 1s\n";
    let mut world = World::new("unseen", config).await;
    world.start().await;
    // A tidy name, and one that cannot be an AWS tag value.
    let tidy = "release/3.0";
    let hostile = format!("feature/ünï#{}", "x".repeat(240));
    let a = world.push_branch(tidy, "one").await;
    let b = world.push_branch(&hostile, "one").await;
    wait_branch_at(&world, tidy, &a).await;
    let stack = wait_branch_at(&world, &hostile, &b).await;
    assert!(
        stack
            .tag("pullstack:env")
            .unwrap()
            .starts_with("branch-slug/"),
        "{:?}",
        stack.tag("pullstack:env")
    );

    world.delete_branch(tidy, false).await;
    world.delete_branch(&hostile, false).await;
    wait_branch_gone(&world, tidy).await;
    wait_branch_gone(&world, &hostile).await;
}

#[tokio::test]
async fn branch_names_that_differ_only_in_case_or_punctuation_get_their_own_stacks() {
    let mut world = World::new("collide", "preview:\n  branches: [\"**\"]\n").await;
    world.start().await;
    let names = [
        "Preview/ünï-1",
        "preview/ünï-1",
        "preview/ünï.1",
        "preview/ünï_1",
    ];
    let mut stacks = Vec::new();
    for name in names {
        let sha = world.push_branch(name, "one").await;
        stacks.push(wait_branch_at(&world, name, &sha).await.name);
    }
    let distinct: std::collections::BTreeSet<_> = stacks.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{stacks:?}");
    for name in &stacks {
        assert!(name.len() <= 128 && name.is_ascii(), "{name}");
    }
}

/// A branch deleted while pullstack was down: the start-up resync removes
/// its stack, and the Deployment the branch had before the restart is
/// closed, not left `success` for good.
#[tokio::test]
async fn a_restart_keeps_a_branch_environments_deployment() {
    let mut world = World::new("brmem", BRANCHES).await;
    world.start().await;
    let branch = "release/3.0";
    let sha = world.push_branch(branch, "one").await;
    wait_branch_at(&world, branch, &sha).await;
    let last_state = |world: &World| {
        let deployment = world
            .github
            .deployments(&world.repo)
            .into_iter()
            .find(|d| d.environment == "branch/release/3.0");
        deployment.and_then(|d| d.statuses.last().map(|s| s.state.clone()))
    };
    eventually(
        "the branch's Deployment succeeds",
        Duration::from_secs(30),
        || async { last_state(&world).as_deref() == Some("success") },
    )
    .await;
    world.settle().await;

    world.kill();
    world.delete_branch(branch, false).await;
    world.start().await;
    wait_branch_gone(&world, branch).await;
    eventually(
        "the Deployment is closed",
        Duration::from_secs(30),
        || async { last_state(&world).as_deref() == Some("inactive") },
    )
    .await;
    let deployments = world.github.deployments(&world.repo);
    assert_eq!(
        deployments.len(),
        1,
        "no second Deployment: {deployments:?}"
    );
}
