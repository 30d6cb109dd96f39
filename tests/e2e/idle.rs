//! Idle environments, end to end: scaled to zero, woken, kept, deleted and
//! brought back, with the periodic resync applying the rules against moto
//! and the GitHub fake.

use crate::support;
use crate::support::{WRITER, World, eventually};
use std::time::Duration;

async fn desired_count(world: &World, number: u64) -> Option<String> {
    world
        .stack(number)
        .await
        .and_then(|s| s.parameters.get("DesiredCount").cloned())
}

async fn wait_desired_count(world: &World, number: u64, count: &str) {
    let what = format!("PR #{number}'s stack at {count} tasks");
    eventually(&what, Duration::from_secs(30), || async {
        world.stack(number).await.is_some_and(|s| {
            s.parameters.get("DesiredCount").map(String::as_str) == Some(count)
                && s.status.as_str().ends_with("_COMPLETE")
        })
    })
    .await;
}

#[tokio::test]
async fn an_idle_environment_sleeps_and_wakes_on_command() {
    let config =
        "preview:\n  idle:\n    scale_after: 3s\n    delete_after: 1h\nresync:\n  interval: 1s\n";
    let mut world = World::new("sleep", config).await;
    world.start().await;
    world.open_pr(1).await;
    let ready = world.wait_comment(1, "Ready").await;
    assert!(ready.body.contains("Estimated cost: ~$"), "{}", ready.body);
    assert_eq!(desired_count(&world, 1).await.as_deref(), Some("1"));

    let asleep = world.wait_comment(1, "Asleep").await;
    assert!(asleep.body.contains("`/pullstack wake`"), "{}", asleep.body);
    assert!(
        asleep.body.contains("will be deleted at"),
        "{}",
        asleep.body
    );
    wait_desired_count(&world, 1, "0").await;
    let stack = world.stack(1).await.unwrap();
    assert!(stack.tag("pullstack:idle-since").is_some());

    world.comment(1, WRITER, "/pullstack wake").await;
    wait_desired_count(&world, 1, "1").await;
    world.wait_comment(1, "Ready").await;
    assert!(
        world
            .stack(1)
            .await
            .unwrap()
            .tag("pullstack:idle-since")
            .is_none()
    );
}

#[tokio::test]
async fn a_push_wakes_an_idle_environment() {
    let config =
        "preview:\n  idle:\n    scale_after: 2s\n    delete_after: 1h\nresync:\n  interval: 1s\n";
    let mut world = World::new("pushwake", config).await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Asleep").await;
    wait_desired_count(&world, 1, "0").await;

    let sha = world.push(1, "wake").await;
    world.wait_stack_at(1, &sha).await;
    wait_desired_count(&world, 1, "1").await;
    world.wait_comment(1, "Ready").await;
}

#[tokio::test]
async fn kept_and_exempt_environments_stay_up() {
    let config = "preview:\n  idle:\n    scale_after: 2s\n    delete_after: 1h\n    exempt: [feature-3]\n\
                  resync:\n  interval: 1s\n";
    let mut world = World::new("kept", config).await;
    world.start().await;
    world.open_pr(1).await;
    world.open_pr(2).await;
    world.open_pr(3).await;
    world.label(2, "pullstack:keep", WRITER).await;
    for number in 1..=3 {
        world.wait_comment(number, "Ready").await;
    }
    // PR 1 goes to sleep; the resync passes that did it also saw PRs 2 and 3.
    world.wait_comment(1, "Asleep").await;
    wait_desired_count(&world, 1, "0").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for number in [2, 3] {
        assert_eq!(desired_count(&world, number).await.as_deref(), Some("1"));
        assert!(world.sticky(number).unwrap().body.contains("Ready"));
    }
}

#[tokio::test]
async fn a_long_idle_environment_is_deleted_and_a_push_brings_it_back() {
    let config =
        "preview:\n  idle:\n    scale_after: 2s\n    delete_after: 4s\nresync:\n  interval: 1s\n";
    let mut world = World::new("expire", config).await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    let removed = world.wait_comment(1, "Removed").await;
    assert!(
        removed.body.contains("without a push or activity"),
        "{}",
        removed.body
    );
    world.wait_stack_gone(1).await;
    // Later resyncs leave it deleted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(world.stack(1).await.is_none());

    let sha = world.push(1, "back").await;
    world.wait_stack_at(1, &sha).await;
    world.wait_comment(1, "Ready").await;
}

#[tokio::test]
async fn waking_needs_triage_and_says_so() {
    let config = "preview:\n  idle:\n    scale_after: 1h\n";
    let mut world = World::new("wakerole", config).await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.comment(1, support::READER, "/pullstack wake").await;
    eventually(
        "a refusal naming the permission",
        Duration::from_secs(30),
        || async {
            world
                .bot_comments(1)
                .iter()
                .any(|c| c.body.contains("`/pullstack wake` needs triage permission"))
        },
    )
    .await;
}
