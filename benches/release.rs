//! Production release benchmark against moto: Route53 calls per canary
//! release (0% → 10% → 50% → 100%), and the time from a rollback command to
//! restored weights, from a PR comment and from `pullstack prod rollback`,
//! and from a comment given while a read-only user floods the PR with
//! `/pullstack rollback` comments (at GitHub's default 80 writes a minute).
//!
//!   scripts/moto.sh start 5055 && PULLSTACK_TEST_MOTO=http://127.0.0.1:5055 cargo bench --bench release

// The end-to-end harness, of which a benchmark uses a part.
#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::production::*;

const ROUNDS: u64 = 5;

async fn route53_calls(world: &support::World) -> BTreeMap<String, u64> {
    world
        .aws_requests()
        .await
        .into_iter()
        .filter(|((service, _), _)| service == "Route 53")
        .map(|((_, operation), count)| (operation, count))
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Polls Route53 until `stack` has all the traffic; returns when it did.
async fn until_all_on(world: &support::World, stack: &str) -> Instant {
    loop {
        if weights(world).await.get(stack) == Some(&100) {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (mut world, _) = production_world("rbench", "").await;
        // GitHub's own figure, so that answers to the flood queue as they would.
        world.config_yaml =
            support::merge_yaml(&world.config_yaml, "github:\n  writes_per_minute: 80\n");
        world.start().await;
        let first = first_release(&world).await;
        let before = route53_calls(&world).await;
        let mut sha = merge(&world, 2, "Canary release").await;
        wait_released(&world, &sha).await;
        let after = route53_calls(&world).await;
        println!("Route53 calls for one canary release (0/10/50/100, bake 300ms, poll 500ms):");
        for (op, n) in &after {
            println!("  {op}: {}", n - before.get(op).copied().unwrap_or(0));
        }

        // Every rollback goes back to the first release: it stays the
        // rollback target, since each rolled-back release is never promoted.
        let target = release_name(&world, &first);
        let mut by_comment = Vec::new();
        let mut by_cli = Vec::new();
        for round in 0..ROUNDS {
            let start = Instant::now();
            world.comment(2, support::MAINTAINER, "/pullstack rollback").await;
            by_comment.push(until_all_on(&world, &target).await - start);

            sha = merge(&world, 10 + round, "[hotfix] again").await;
            wait_released(&world, &sha).await;
            world.stop().await;
            let path = std::env::temp_dir().join(format!("{}-bench.yaml", world.app));
            std::fs::write(&path, &world.config_yaml).unwrap();
            let start = Instant::now();
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_pullstack"))
                .args(["prod", "rollback", "--yes", "--config", path.to_str().unwrap()])
                .env("AWS_ENDPOINT_URL", support::moto_endpoint())
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .output()
                .unwrap();
            by_cli.push(start.elapsed());
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            assert_eq!(weights(&world).await.get(&target), Some(&100));
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
                world.comment(2, support::READER, "/pullstack rollback").await;
            }
            let start = Instant::now();
            world.comment(2, support::MAINTAINER, "/pullstack rollback").await;
            under_flood.push(until_all_on(&world, &target).await - start);
            sha = merge(&world, 200 + round, "[hotfix] after the flood").await;
            wait_released(&world, &sha).await;
        }
        println!("rollback, {ROUNDS} rounds:");
        println!(
            "  /pullstack rollback after 60 refused ones from a reader -> weights restored: median {:?} (all {:?})",
            median(under_flood.clone()),
            under_flood
        );
        println!("  /pullstack rollback comment delivered -> weights restored: median {:?} (all {:?})", median(by_comment.clone()), by_comment);
        println!("  pullstack prod rollback --yes (whole process, incl. AWS config load): median {:?} (all {:?})", median(by_cli.clone()), by_cli);
    });
}
