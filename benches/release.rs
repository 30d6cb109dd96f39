//! Production release benchmark against moto, for both traffic strategies
//! (`production.strategy: route53` and `alb`) in the same run: AWS calls per
//! canary release (0% → 10% → 50% → 100%), and the time from a rollback
//! command to restored weights, with the AWS calls it took, from a PR
//! comment and from `pullstack prod rollback --yes`, and from a comment
//! given while a read-only user floods the PR with `/pullstack rollback`
//! comments (at GitHub's default 80 writes a minute). The server's calls
//! are its own metrics; the CLI's go through a counting proxy.
//!
//!   scripts/moto.sh start 5055 && PULLSTACK_TEST_MOTO=http://127.0.0.1:5055 cargo bench --bench release

// The end-to-end harness, of which a benchmark uses a part.
#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::fault_proxy::FaultProxy;
use support::production::*;

const ROUNDS: u64 = 5;

/// Every AWS call the server made so far, by "service operation".
async fn calls(world: &support::World) -> BTreeMap<String, u64> {
    world
        .aws_requests()
        .await
        .into_iter()
        .map(|((service, operation), count)| (format!("{service} {operation}"), count))
        .collect()
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Polls the weights until `stack` has all the traffic; returns when it did.
async fn until_all_on(world: &support::World, stack: &str) -> Instant {
    loop {
        if weights(world).await.get(stack) == Some(&100) {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The calls of each round, once when every round made the same.
fn rounds(all: Vec<String>) -> String {
    if all.windows(2).all(|w| w[0] == w[1]) {
        format!("{}, every round", all[0])
    } else {
        format!("by round: {}", all.join(" | "))
    }
}

fn show(calls: &BTreeMap<String, u64>) -> String {
    let total: u64 = calls.values().sum();
    let list: Vec<String> = calls.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("{total} ({})", list.join(", "))
}

async fn strategy(name: &str) {
    let extra = format!("  strategy: {name}\n");
    let (mut world, _) = production_world(&format!("rb{name}"), &extra).await;
    // GitHub's own figure, so that answers to the flood queue as they would.
    world.config_yaml =
        support::merge_yaml(&world.config_yaml, "github:\n  writes_per_minute: 80\n");
    world.start().await;
    let first = first_release(&world).await;
    world.settle().await;
    let before = calls(&world).await;
    let mut sha = merge(&world, 2, "Canary release").await;
    wait_released(&world, &sha).await;
    world.settle().await;
    let traffic: BTreeMap<String, u64> = delta(&before, &calls(&world).await)
        .into_iter()
        .filter(|(k, _)| k.starts_with("Route 53") || k.starts_with("Elastic Load Balancing"))
        .collect();
    println!("strategy: {name}");
    println!(
        "  traffic calls for one canary release (0/10/50/100, bake 300ms): {}",
        show(&traffic)
    );

    // Every rollback goes back to the first release: it stays the
    // rollback target, since each rolled-back release is never promoted.
    let target = release_name(&world, &first);
    let mut by_comment = Vec::new();
    let mut comment_calls = Vec::new();
    let mut by_cli = Vec::new();
    let mut cli_calls = Vec::new();
    for round in 0..ROUNDS {
        world.settle().await;
        let before = calls(&world).await;
        let start = Instant::now();
        world
            .comment(2, support::MAINTAINER, "/pullstack rollback")
            .await;
        by_comment.push(until_all_on(&world, &target).await - start);
        world.settle().await;
        comment_calls.push(show(&delta(&before, &calls(&world).await)));

        sha = merge(&world, 10 + round, "[hotfix] again").await;
        wait_released(&world, &sha).await;
        world.stop().await;
        let path = std::env::temp_dir().join(format!("{}-bench.yaml", world.app));
        std::fs::write(&path, &world.config_yaml).unwrap();
        let proxy = FaultProxy::start(&support::moto_endpoint()).await;
        let start = Instant::now();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pullstack"))
            .args([
                "prod",
                "rollback",
                "--yes",
                "--config",
                path.to_str().unwrap(),
            ])
            .env("AWS_ENDPOINT_URL", proxy.url())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .await
            .unwrap();
        by_cli.push(start.elapsed());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(weights(&world).await.get(&target), Some(&100));
        let mut cli = BTreeMap::new();
        for call in proxy.calls() {
            *cli.entry(format!("{} {}", call.service, call.operation))
                .or_insert(0) += 1;
        }
        cli_calls.push(show(&cli));
        world.start().await;
        sha = merge(&world, 100 + round, "[hotfix] and again").await;
        wait_released(&world, &sha).await;
    }
    // A read-only user floods the merged PR with refused rollbacks, then
    // a maintainer rolls back for real.
    let mut under_flood = Vec::new();
    for round in 0..ROUNDS {
        let flood = 60;
        for _ in 0..flood {
            world
                .comment(2, support::READER, "/pullstack rollback")
                .await;
        }
        let start = Instant::now();
        world
            .comment(2, support::MAINTAINER, "/pullstack rollback")
            .await;
        under_flood.push(until_all_on(&world, &target).await - start);
        sha = merge(&world, 200 + round, "[hotfix] after the flood").await;
        wait_released(&world, &sha).await;
    }
    println!("  rollback, {ROUNDS} rounds:");
    println!(
        "    /pullstack rollback comment delivered -> weights restored: median {:?} (all {:?})",
        median(by_comment.clone()),
        by_comment
    );
    println!(
        "      AWS calls of that pass (server metrics): {}",
        rounds(comment_calls)
    );
    println!(
        "    pullstack prod rollback --yes (whole process, incl. AWS config load): median {:?} (all {:?})",
        median(by_cli.clone()),
        by_cli
    );
    println!(
        "      AWS calls of the process (counting proxy): {}",
        rounds(cli_calls)
    );
    println!(
        "    /pullstack rollback after 60 refused ones from a reader -> weights restored: median {:?} (all {:?})",
        median(under_flood.clone()),
        under_flood
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        strategy("route53").await;
        strategy("alb").await;
    });
}
