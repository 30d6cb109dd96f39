//! The SQS backend against moto, compared with the memory backend: how many
//! deliveries a second one server accepts, how long from a 202 to the
//! start of its reconcile with 1, 2 and 3 replicas, and the AWS calls SQS
//! and DynamoDB add to a PR's lifecycle.
//!
//!   scripts/test.sh --bench replicas      (a debug build, as the tests)
//!
//! A reconcile's start is its first GitHub request about the PR (the fake
//! records when each arrived); one that starts before the 202 is read
//! counts as 0. Replicas receive without long polls
//! (`receive_wait: 0s`, as moto needs): an empty receive is followed by a
//! 100 ms pause, which bounds the wait for a message that finds every
//! replica paused.

// The end-to-end harness, of which a benchmark uses a part.
#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code)]
mod support;

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::fault_proxy::FaultProxy;
use support::github_fake::{FakePr, fake_sha};
use support::{WRITER, World, moto_endpoint};

/// Deliveries sent to measure acceptance, and how many are in flight.
const DELIVERIES: u64 = 300;
const CONCURRENCY: usize = 16;
/// Deliveries timed from 202 to the reconcile's start, per replica count.
const TIMED: u64 = 40;
/// Lifecycles (open, ready, close, removed) whose AWS calls are counted.
const LIFECYCLES: u64 = 5;

const SQS: &str = "queue:\n  backend: sqs\n  sqs:\n    lease_ttl: 3s\n    receive_wait: 0s\n";

fn percentile(values: &mut [Duration], p: f64) -> Duration {
    values.sort();
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

/// A PR the fake does not know: its reconcile finds nothing to do, so the
/// figures are the queue's, not the stacks'.
fn unknown_pr(world: &World, number: u64) -> Vec<u8> {
    let pr = FakePr {
        number,
        title: format!("Change {number}"),
        head_sha: fake_sha(&format!("{number}")),
        head_ref: format!("feature-{number}"),
        head_repo: world.repo.clone(),
        user: WRITER.to_owned(),
        ..FakePr::default()
    };
    world.pr_payload("synchronize", &pr, None)
}

async fn accepted_per_second(label: &str, extra: &str) {
    let mut world = World::new("bench-accept", extra).await;
    world.start().await;
    let world = &world;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut next = 0;
    let mut in_flight = tokio::task::JoinSet::new();
    let mut refused = 0;
    while next < DELIVERIES || !in_flight.is_empty() {
        while next < DELIVERIES && in_flight.len() < CONCURRENCY {
            next += 1;
            let body = unknown_pr(world, 1000 + next % 50);
            let headers = support::payloads::delivery_headers(
                "pull_request",
                support::SECRET.as_bytes(),
                &body,
            );
            let url = format!("{}/webhook", world.url());
            let client = client.clone();
            in_flight.spawn(async move {
                let mut request = client.post(url).body(body);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                request.send().await.map(|r| r.status().as_u16())
            });
        }
        if let Some(done) = in_flight.join_next().await
            && done.unwrap().ok() != Some(202)
        {
            refused += 1;
        }
    }
    let took = started.elapsed();
    println!(
        "  {label:<7} {:>7.0} deliveries/s accepted ({DELIVERIES} in {took:.2?}, {CONCURRENCY} at once, {refused} not 202)",
        DELIVERIES as f64 / took.as_secs_f64()
    );
}

/// When the first GitHub request about PR `number` arrived.
fn first_request(world: &World, number: u64) -> Option<DateTime<Utc>> {
    let marks = [format!("/pulls/{number}"), format!("/issues/{number}")];
    world
        .github
        .requests()
        .into_iter()
        .filter(|r| {
            marks.iter().any(|mark| {
                r.path.find(mark.as_str()).is_some_and(|at| {
                    let rest = &r.path[at + mark.len()..];
                    rest.is_empty() || rest.starts_with(['/', '?'])
                })
            })
        })
        .map(|r| r.at)
        .min()
}

async fn latency(label: &str, extra: &str, replicas: usize) {
    let mut world = World::new("bench-latency", extra).await;
    world.start().await;
    for n in 1..replicas {
        world.start_replica(n, world.aws.clone()).await;
    }
    let mut sent = BTreeMap::new();
    for n in 1..=TIMED {
        let body = unknown_pr(&world, n);
        let (status, _) = world.deliver("pull_request", body).await;
        assert_eq!(status, 202);
        sent.insert(n, Utc::now());
        // About 20 deliveries a second.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut waits = Vec::new();
    for (n, at) in &sent {
        let started = loop {
            if let Some(first) = first_request(&world, *n) {
                break first;
            }
            assert!(Instant::now() < deadline, "PR {n} never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        waits.push((started - *at).to_std().unwrap_or_default());
    }
    println!(
        "  {label:<22} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
        percentile(&mut waits, 0.5),
        percentile(&mut waits, 0.99),
        percentile(&mut waits, 1.0)
    );
}

async fn lifecycle_calls(label: &str, extra: &str) -> BTreeMap<String, usize> {
    let mut world = World::new("bench-calls", extra).await;
    let proxy = FaultProxy::start(&moto_endpoint()).await;
    let aws = pullstack::aws::Aws::from_config(&proxy.sdk_config(
        &world.sdk,
        3,
        Duration::from_millis(20),
    ));
    world.start_with(aws).await;
    world.settle().await;
    let before = proxy.calls().len();
    let started = Instant::now();
    for n in 1..=LIFECYCLES {
        world.open_pr(n).await;
        world.wait_comment(n, "Ready").await;
        world.close(n, true).await;
        world.wait_comment(n, "Removed").await;
    }
    let took = started.elapsed();
    let mut by = BTreeMap::new();
    for call in &proxy.calls()[before..] {
        let key = match (call.service.as_str(), call.operation.as_str()) {
            ("sqs", "ReceiveMessage") => "sqs ReceiveMessage".to_owned(),
            (service, _) => service.to_owned(),
        };
        *by.entry(key).or_insert(0) += 1;
    }
    let per: Vec<String> = (by.iter())
        .map(|(k, v)| format!("{k} {:.1}", *v as f64 / LIFECYCLES as f64))
        .collect();
    println!(
        "  {label:<7} per lifecycle: {} ({LIFECYCLES} lifecycles in {took:.1?})",
        per.join(", ")
    );
    by
}

#[tokio::main]
async fn main() {
    println!("Deliveries accepted, one server:");
    accepted_per_second("memory", "").await;
    accepted_per_second("sqs", SQS).await;

    println!("202 -> reconcile start, {TIMED} deliveries at 20/s:");
    latency("memory, 1 server", "", 1).await;
    for replicas in 1..=3 {
        latency(&format!("sqs, {replicas} replica(s)"), SQS, replicas).await;
    }

    println!("AWS calls per PR lifecycle (open -> Ready -> close -> Removed), one server:");
    let memory = lifecycle_calls("memory", "").await;
    let sqs = lifecycle_calls("sqs", SQS).await;
    let extra = |key: &str| {
        (sqs.get(key).copied().unwrap_or(0) as f64 - memory.get(key).copied().unwrap_or(0) as f64)
            / LIFECYCLES as f64
    };
    println!(
        "  sqs adds per lifecycle: SQS {:.1} (+ {:.1} ReceiveMessage, which long polls make ~3 a minute per idle replica), DynamoDB {:.1} (the lease: 4 per lease_ttl per replica, whatever the load)",
        extra("sqs"),
        extra("sqs ReceiveMessage"),
        extra("dynamodb")
    );
}
