//! Idle environments, end to end: scaled to zero, woken, kept, deleted and
//! brought back, with the periodic resync applying the rules against moto
//! and the GitHub fake. The periods are the defaults (a day, a week); the
//! tests move the server's clock past them instead of waiting.

use crate::support;
use crate::support::{WAIT, WRITER, World, eventually};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

async fn desired_count(world: &World, number: u64) -> Option<String> {
    world
        .stack(number)
        .await
        .and_then(|s| s.parameters.get("DesiredCount").cloned())
}

async fn wait_desired_count(world: &World, number: u64, count: &str) {
    let what = format!("PR #{number}'s stack at {count} tasks");
    eventually(&what, WAIT, || async {
        world.stack(number).await.is_some_and(|s| {
            s.parameters.get("DesiredCount").map(String::as_str) == Some(count)
                && s.status.as_str().ends_with("_COMPLETE")
        })
    })
    .await;
}

/// Opens PR 1, waits until it is ready, then moves the clock past the
/// default day without activity until it is scaled to zero.
async fn put_to_sleep_once_ready(world: &World) {
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.advance(DAY + HOUR);
    world.wait_comment(1, "Asleep").await;
    wait_desired_count(world, 1, "0").await;
}

#[tokio::test]
async fn an_idle_environment_sleeps_and_wakes_on_command() {
    let mut world = World::new("sleep", "").await;
    world.start().await;
    world.open_pr(1).await;
    let ready = world.wait_comment(1, "Ready").await;
    assert!(ready.body.contains("Estimated cost: ~$"), "{}", ready.body);
    assert_eq!(desired_count(&world, 1).await.as_deref(), Some("1"));

    // An hour short of the default day: still up.
    world.advance(DAY - HOUR);
    world.resync().await;
    assert_eq!(desired_count(&world, 1).await.as_deref(), Some("1"));
    world.advance(2 * HOUR);
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
    let mut world = World::new("pushwake", "").await;
    world.start().await;
    put_to_sleep_once_ready(&world).await;

    let sha = world.push(1, "wake").await;
    world.wait_stack_at(1, &sha).await;
    wait_desired_count(&world, 1, "1").await;
    world.wait_comment(1, "Ready").await;
}

#[tokio::test]
async fn kept_and_exempt_environments_stay_up() {
    let config = "preview:\n  idle:\n    exempt: [feature-3]\n";
    let mut world = World::new("kept", config).await;
    world.start().await;
    world.open_pr(1).await;
    world.open_pr(2).await;
    world.open_pr(3).await;
    world.label(2, "pullstack:keep", WRITER).await;
    for number in 1..=3 {
        world.wait_comment(number, "Ready").await;
    }
    world.advance(DAY + HOUR);
    // PR 1 goes to sleep; the resync that did it also looked at PRs 2 and 3.
    world.wait_comment(1, "Asleep").await;
    wait_desired_count(&world, 1, "0").await;
    world.resync().await;
    for number in [2, 3] {
        assert_eq!(desired_count(&world, number).await.as_deref(), Some("1"));
        assert!(world.sticky(number).unwrap().body.contains("Ready"));
    }
}

#[tokio::test]
async fn a_long_idle_environment_is_deleted_and_a_push_brings_it_back() {
    let mut world = World::new("expire", "").await;
    world.start().await;
    put_to_sleep_once_ready(&world).await;
    // The default week after it fell asleep.
    world.advance(7 * DAY);
    let removed = world.wait_comment(1, "Removed").await;
    assert!(
        removed.body.contains("without a push or activity"),
        "{}",
        removed.body
    );
    world.wait_stack_gone(1).await;
    // Later resyncs leave it deleted.
    world.resync().await;
    world.resync().await;
    assert!(world.stack(1).await.is_none());

    let sha = world.push(1, "back").await;
    world.wait_stack_at(1, &sha).await;
    world.wait_comment(1, "Ready").await;
}

#[tokio::test]
async fn waking_needs_triage() {
    let config = "preview:\n  idle:\n    scale_after: 1h\n";
    let mut world = World::new("wakerole", config).await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    // A reader is refused with a reaction; anyone can comment on a public
    // repository, so refusals to readers cost no comment.
    let refused = world.comment(1, support::READER, "/pullstack wake").await;
    world.settle().await;
    assert_eq!(world.github.reactions(&world.repo, refused), ["-1"]);
    world.assert_no_more_comments(1).await;

    let allowed = world.comment(1, support::TRIAGER, "/pullstack wake").await;
    world.settle().await;
    assert_eq!(world.github.reactions(&world.repo, allowed), ["eyes"]);
    world.assert_no_more_comments(1).await;
}
