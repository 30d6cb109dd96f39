//! What the periodic resync costs with 500 environments: AWS and GitHub
//! calls per pass, and wall time against moto.
//!
//!   scripts/moto.sh start 5066 && PULLSTACK_TEST_MOTO=http://127.0.0.1:5066 cargo bench --bench resync
//!
//! Use a moto of its own: the bench leaves 500 stacks behind. BENCH_ENVS
//! changes the count.
//!
//! 1. 500 open PRs (images pushed) exist before pullstack starts; its first
//!    resync creates every environment. Timed until all 500 say "Ready".
//! 2. A warm resync (triggered by a `workflow_run` delivery) with nothing
//!    changed: what the steady state costs every `resync.interval`.
//! 3. A cold resync: pullstack restarted, so nothing is cached.
//!
//! AWS calls come from pullstack's `/metrics`; GitHub calls from the fake's
//! request log.

// The end-to-end harness, of which a benchmark uses a part.
#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::github_fake::{FakePr, fake_sha};
use support::{World, payloads};

async fn metric(world: &World, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", world.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `resyncs` resyncs ran and the queue is empty.
async fn settle(world: &World, resyncs: f64) {
    loop {
        let done = metric(world, "pullstack_resyncs_total").await >= resyncs
            && metric(world, "pullstack_queue_pending").await == 0.0
            && metric(world, "pullstack_queue_running").await == 0.0;
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn github_calls(world: &World, from: usize) -> BTreeMap<String, usize> {
    let mut by_kind = BTreeMap::new();
    for r in &world.github.requests()[from..] {
        let path = r.path.split('?').next().unwrap_or_default();
        let kind = path
            .split('/')
            .map(|segment| {
                if segment.chars().all(|c| c.is_ascii_digit()) && !segment.is_empty() {
                    "{n}"
                } else if segment.len() == 40 && segment.chars().all(|c| c.is_ascii_hexdigit()) {
                    "{sha}"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
            .replace(&world.repo, "{repo}");
        *by_kind.entry(format!("{} {kind}", r.method)).or_insert(0) += 1;
    }
    by_kind
}

fn diff(
    after: &BTreeMap<(String, String), u64>,
    before: &BTreeMap<(String, String), u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                format!("{} {}", k.0, k.1),
                v - before.get(k).copied().unwrap_or(0),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Calls so far and when, to measure a pass from.
struct Mark {
    aws: BTreeMap<(String, String), u64>,
    github: usize,
    at: Instant,
}

async fn mark(world: &World) -> Mark {
    Mark {
        aws: world.aws_requests().await,
        github: world.github.request_count(),
        at: Instant::now(),
    }
}

async fn report(world: &World, label: &str, resyncs: f64, mark: Mark) {
    settle(world, resyncs).await;
    let took = mark.at.elapsed();
    let aws = diff(&world.aws_requests().await, &mark.aws);
    let github = github_calls(world, mark.github);
    println!("{label}: {took:.2?}");
    println!("  AWS calls: {} {aws:?}", aws.values().sum::<u64>());
    println!(
        "  GitHub calls: {} {github:?}",
        github.values().sum::<usize>()
    );
}

fn main() {
    let envs: u64 = std::env::var("BENCH_ENVS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = "github:\n  writes_per_minute: 1000000\nresync:\n  interval: 1h\n\
                      queue:\n  workers: 32\n  poll_initial: 200ms\n  poll_max: 1s\n";
        let mut world = World::new("resync", config).await;
        for n in 1..=envs {
            let sha = fake_sha(&format!("{}-{n}", world.app));
            world.push_image(&sha).await;
            world.github.upsert_pr(
                &world.repo,
                FakePr {
                    number: n,
                    title: format!("Change {n}"),
                    state: "open".into(),
                    head_sha: sha,
                    head_ref: format!("feature-{n}"),
                    base_ref: "main".into(),
                    user: support::WRITER.into(),
                    ..FakePr::default()
                },
            );
        }
        println!("{envs} open PRs with images; starting pullstack");

        let start = Instant::now();
        let first = Mark {
            aws: BTreeMap::new(),
            github: world.github.request_count(),
            at: Instant::now(),
        };
        world.start().await;
        // Stacks still being created are polled later, outside the queue.
        let ready = || {
            (1..=envs)
                .filter(|n| world.sticky(*n).is_some_and(|c| c.body.contains("Ready")))
                .count() as u64
        };
        while ready() < envs && start.elapsed() < Duration::from_secs(1200) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!(
            "  {} of {envs} ready after {:.2?}",
            ready(),
            start.elapsed()
        );
        report(
            &world,
            "first resync, creating every environment",
            1.0,
            first,
        )
        .await;

        let resyncs = metric(&world, "pullstack_resyncs_total").await;
        let warm = mark(&world).await;
        let body =
            payloads::workflow_run_completed(&world.repo, &"0".repeat(40), "main", "success");
        world.deliver("workflow_run", body).await;
        report(&world, "warm resync, nothing changed", resyncs + 1.0, warm).await;

        let resyncs = metric(&world, "pullstack_resyncs_total").await;
        // The metrics outlive the restart: they belong to the process.
        let cold = mark(&world).await;
        world.stop().await;
        world.start().await;
        report(&world, "cold resync, after a restart", resyncs + 1.0, cold).await;
        world.stop().await;
    });
}
