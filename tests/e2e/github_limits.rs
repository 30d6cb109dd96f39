//! GitHub's limits, kept for the whole client: a secondary rate limit's
//! `Retry-After` holds every request of every worker, reads and writes.

use crate::support::World;
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
