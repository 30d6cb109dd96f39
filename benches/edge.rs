//! AWS calls on the preview edge, in both modes, against moto: per preview
//! lifecycle (open to ready, close to removed), for 50 pull requests
//! opened at once, and per placement on a shared edge that already holds
//! 200 previews, read from pullstack's own `/metrics` counter
//! (`src/aws/metered.rs`).
//!
//!   scripts/moto.sh start 5055 && PULLSTACK_TEST_MOTO=http://127.0.0.1:5055 cargo test --bench edge [-- dedicated|shared|placement]
//!
//! (`cargo test` builds it unoptimised: the figures are calls, not speed.)
//!
//! Shared mode's first preview also creates the edge shard; the figures
//! after it are the steady state. moto answers at once, so the times say
//! little about AWS (see the README's time-to-URL model); the calls do.

// The end-to-end harness, of which a benchmark uses a part.
#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{World, edge};

const LIFECYCLES: u64 = 5;
const AT_ONCE: u64 = 50;

type Calls = BTreeMap<(String, String), u64>;

fn diff(after: &Calls, before: &Calls) -> Calls {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn show(calls: &Calls) -> String {
    calls
        .iter()
        .map(|((service, op), n)| format!("{service}:{op}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A world on the shared edge (or on its own load balancers, in
/// `mode`), with GitHub writes unpaced.
async fn world(prefix: &str, mode: &str) -> World {
    let zone = edge::zone(prefix).await;
    let config = edge::edge_yaml(
        &zone,
        &format!("  mode: {mode}\ngithub:\n  writes_per_minute: 100000\n"),
    );
    World::new(prefix, &config).await
}

async fn measure(mode: &str) {
    let mut world = world(&format!("bench-{mode}"), mode).await;
    world.start().await;
    println!("edge.mode: {mode}");
    for n in 1..=LIFECYCLES {
        let before = world.aws_requests().await;
        world.open_pr(n).await;
        world.wait_comment(n, "Ready").await;
        world.settle().await;
        let opened = world.aws_requests().await;
        world.close(n, true).await;
        world.wait_comment(n, "Removed").await;
        world.settle().await;
        let closed = world.aws_requests().await;
        let (open, close) = (diff(&opened, &before), diff(&closed, &opened));
        println!(
            "  lifecycle {n}: {} calls to ready, {} to removed",
            open.values().sum::<u64>(),
            close.values().sum::<u64>()
        );
        println!("    open:  {}", show(&open));
        println!("    close: {}", show(&close));
    }
    let first = 1000;
    let before = world.aws_requests().await;
    let start = Instant::now();
    for n in first..first + AT_ONCE {
        world.open_pr(n).await;
    }
    support::eventually("all ready", Duration::from_secs(900), || async {
        (first..first + AT_ONCE).all(|n| {
            world
                .sticky(n)
                .is_some_and(|c| c.body.contains("**Ready**"))
        })
    })
    .await;
    world.settle_within(Duration::from_secs(300)).await;
    let calls = diff(&world.aws_requests().await, &before);
    println!(
        "  {AT_ONCE} PRs opened at once: all ready after {:?}; {} AWS calls ({:.1} per PR)",
        start.elapsed(),
        calls.values().sum::<u64>(),
        calls.values().sum::<u64>() as f64 / AT_ONCE as f64
    );
    println!("    {}", show(&calls));
    for n in first..first + AT_ONCE {
        world.close(n, true).await;
    }
    world.settle_within(Duration::from_secs(300)).await;
}

/// Previews on the edge before the placements measured.
const HELD: u64 = 200;
/// Placements measured, one at a time.
const PLACEMENTS: u64 = 10;

/// The calls one more preview costs, open to ready, on a shared edge that
/// holds [`HELD`] previews: placement reads what is on the edge, so its
/// share grows with the previews there unless it is kept.
async fn placement() {
    let mut world = world("bench-place", "shared").await;
    world.start().await;
    for n in 1..=HELD {
        world.open_pr(n).await;
    }
    support::eventually("all ready", Duration::from_secs(1800), || async {
        (1..=HELD).all(|n| {
            world
                .sticky(n)
                .is_some_and(|c| c.body.contains("**Ready**"))
        })
    })
    .await;
    world.settle_within(Duration::from_secs(600)).await;
    let before = world.aws_requests().await;
    for n in HELD + 1..=HELD + PLACEMENTS {
        world.open_pr(n).await;
        world.wait_comment(n, "Ready").await;
        world.settle().await;
    }
    let calls = diff(&world.aws_requests().await, &before);
    let per = |service: &str, op: &str| {
        calls
            .get(&(service.to_owned(), op.to_owned()))
            .copied()
            .unwrap_or(0) as f64
            / PLACEMENTS as f64
    };
    println!(
        "placement with {HELD} previews on the shared edge ({PLACEMENTS} more opened one by one):"
    );
    println!(
        "  per preview, open to ready: {:.1} AWS calls; CloudFormation DescribeStacks {:.1}, \
         ELB DescribeRules {:.1}",
        calls.values().sum::<u64>() as f64 / PLACEMENTS as f64,
        per("CloudFormation", "DescribeStacks"),
        per("Elastic Load Balancing v2", "DescribeRules"),
    );
    println!("    {}", show(&calls));
    for n in 1..=HELD + PLACEMENTS {
        world.close(n, true).await;
    }
    world.settle_within(Duration::from_secs(600)).await;
}

fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let runs = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for mode in ["dedicated", "shared"] {
            if runs(mode) {
                measure(mode).await;
            }
        }
        if runs("placement") {
            placement().await;
        }
    });
}
