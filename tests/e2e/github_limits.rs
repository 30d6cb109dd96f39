//! GitHub's limits, kept for the whole client: a secondary rate limit's
//! `Retry-After` holds every request of every worker, reads and writes.

use crate::support::{self, World};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Attack: GitHub answers a secondary rate limit with `Retry-After`, and
/// pullstack keeps asking before it ends: the failed pass is retried by the
/// queue's own backoff (100 ms here), and the other worker never heard.
#[tokio::test]
async fn a_secondary_rate_limit_holds_every_request_until_retry_after() {
    let mut world = World::new("retryafter", "").await;
    world.start().await;
    let retry_after = Duration::from_secs(2);
    world.github.secondary_limit_next(1, retry_after.as_secs());
    // Two PRs at once: two workers call GitHub.
    world.open_pr(1).await;
    world.open_pr(2).await;
    world.wait_comment(1, "Ready").await;
    world.wait_comment(2, "Ready").await;

    let requests = world.github.requests();
    let limited = requests
        .iter()
        .find(|r| r.status == 403)
        .expect("a request met the rate limit");
    // Requests already on their way when the answer came may land just after it.
    let in_flight = chrono::Duration::milliseconds(250);
    let until = limited.at + chrono::Duration::from_std(retry_after).unwrap();
    let early: Vec<(DateTime<Utc>, &str)> = requests
        .iter()
        .filter(|r| r.at > limited.at + in_flight && r.at < until)
        .map(|r| (r.at, r.path.as_str()))
        .collect();
    assert!(
        early.is_empty(),
        "requests within Retry-After of the 403 at {}: {early:#?}",
        limited.at
    );
    let after = requests.iter().filter(|r| r.at >= until).count();
    assert!(after > 0, "the work went on after the pause");
    assert_eq!(
        requests.iter().filter(|r| r.status == 403).count(),
        1,
        "no second rate limit"
    );
}

/// Attack: pull requests opened together at GitHub's write pace. Each PR's
/// "Ready" waits for its turn behind other PRs' Deployments and statuses,
/// and each comment is written twice (deploying, then ready), so the last
/// PR shows "Ready" long after its stack was.
#[tokio::test]
async fn comments_take_their_turns_before_deployments() {
    let mut world = World::new("turns", "").await;
    // A write every 1.5 s: every PR asks before the first turn is over.
    world.config_yaml =
        support::merge_yaml(&world.config_yaml, "github:\n  writes_per_minute: 40\n");
    world.start().await;
    let prs = 1..=4;
    for n in prs.clone() {
        world.open_pr(n).await;
    }
    for n in prs.clone() {
        world.wait_comment(n, "Ready").await;
    }
    let writes: Vec<String> = world
        .github
        .requests()
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PATCH"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let comments = writes.iter().filter(|w| w.contains("/comments")).count();
    assert_eq!(comments, 4, "one write per PR's comment: {writes:#?}");
    let last_comment = writes
        .iter()
        .rposition(|w| w.contains("/comments"))
        .expect("comments were written");
    let records: Vec<_> = writes[..last_comment]
        .iter()
        .filter(|w| w.contains("/deployments") || w.contains("/statuses"))
        .collect();
    assert!(
        records.is_empty(),
        "bookkeeping went before a comment: {writes:#?}"
    );
    // The bookkeeping follows: every PR gets its Deployment.
    world.settle().await;
    let deployments = world.github.deployments(&world.repo);
    for n in prs {
        let environment = format!("pr-{n}");
        let states: Vec<_> = deployments
            .iter()
            .filter(|d| d.environment == environment)
            .flat_map(|d| d.statuses.iter().map(|s| s.state.clone()))
            .collect();
        assert_eq!(states, ["success"], "{environment}");
    }
}
