//! Several `pullstack serve` replicas sharing one SQS FIFO queue and one
//! DynamoDB lease (`queue.backend: sqs`), against moto: what a replica
//! answered 202 for survives its death, a queue that cannot take a delivery
//! is answered 503, and replicas getting deliveries round-robin while one is
//! killed keep every environment right.
//!
//! The seeded run prints its seed; `PULLSTACK_REPLICAS_SEED=<seed>` replays
//! its steps (the interleaving of replicas still varies).

use crate::chaos::{self, Life};
use crate::support::fault_proxy::{FaultProxy, Outcome};
use crate::support::github_fake::{FakePr, fake_sha};
use crate::support::replicas::{self, sqs_config};
use crate::support::{SECRET, WAIT, WRITER, World, eventually, moto_endpoint, payloads};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The lease (and a held message) outlives a dead replica this long.
const LEASE_TTL: Duration = Duration::from_secs(8);

/// Attack: a replica answers 202 and dies before it works on the delivery.
/// With the work queue in its memory, the delivery (and a command no
/// resync replays) would be lost; from SQS another replica takes it.
#[tokio::test]
async fn a_replica_killed_right_after_202_loses_nothing() {
    let mut world = World::new("crash202", &sqs_config(LEASE_TTL)).await;
    // Replica 0 takes deliveries but never gets to receive work: its
    // ReceiveMessage calls are held until it is killed.
    let (proxy, held) = replicas::receives_held(&world).await;
    world.start_with(held).await;
    let sha = world.open_pr(1).await;
    world.comment(1, WRITER, "/pullstack help").await;
    world.kill_server(0);
    assert_eq!(
        world.github.comments(&world.repo, 1).len(),
        1,
        "nothing done yet"
    );

    world.start_replica(1, world.aws.clone()).await;
    world.wait_stack_at(1, &sha).await;
    world.wait_comment(1, "Ready").await;
    let reply = world.next_comment(1).await;
    assert!(
        reply.body.contains("pullstack commands"),
        "the help command came through: {}",
        reply.body
    );
    world.settle_shared(WAIT).await;
    // The sticky comment and one reply: the work was done once.
    assert_eq!(world.bot_comments(1).len(), 2);
    // The killed replica did try to receive: its calls were held.
    assert!(proxy.count("sqs", "ReceiveMessage") >= 1);
}

/// Attack: SQS is unreachable when a delivery arrives. Answering 202 would
/// acknowledge work that is then lost; a 503 makes GitHub show a failed
/// delivery, and its redelivery (same delivery id) is taken once SQS is back.
#[tokio::test]
async fn a_delivery_sqs_cannot_take_is_refused_and_its_redelivery_taken() {
    let mut world = World::new("sqs503", &sqs_config(LEASE_TTL)).await;
    world.start().await;
    let config = world.config();
    let sqs = aws_sdk_sqs::Client::new(&world.sdk);
    let url = (sqs
        .get_queue_url()
        .queue_name(config.sqs_queue())
        .send()
        .await)
        .unwrap()
        .queue_url
        .unwrap();
    sqs.delete_queue().queue_url(&url).send().await.unwrap();

    let sha = fake_sha(&format!("{}-1-open", world.app));
    world.push_image(&sha).await;
    let pr = FakePr {
        number: 1,
        title: "Change 1".into(),
        head_sha: sha.clone(),
        head_ref: "feature-1".into(),
        head_repo: world.repo.clone(),
        user: WRITER.to_owned(),
        ..FakePr::default()
    };
    world.github.upsert_pr(&world.repo, pr.clone());
    let body = world.pr_payload("opened", &pr, None);
    let headers = payloads::delivery_headers("pull_request", SECRET.as_bytes(), &body);
    let (status, answer) = world.post(headers.clone(), body.clone()).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["status"], "unavailable");

    pullstack::cli::bootstrap::shared_queue(&world.aws, &config)
        .await
        .unwrap();
    let (status, answer) = world.post(headers.clone(), body.clone()).await;
    assert_eq!((status, &answer["status"]), (202, &"queued".into()));
    world.wait_stack_at(1, &sha).await;
    world.wait_comment(1, "Ready").await;
    world.settle_shared(WAIT).await;
}

/// What the SQS backend relies on, as moto serves it: a FIFO group held
/// back while one of its messages is in flight, a repeated deduplication
/// id dropped, visibility changed, and a held lease refused.
#[tokio::test]
async fn moto_serves_what_the_shared_queue_relies_on() {
    let world = World::new("motofacts", &sqs_config(LEASE_TTL)).await;
    let config = world.config();
    let queue = world.aws.sqs.open(&config.sqs_queue()).await.unwrap();
    let minute = Duration::from_secs(60);
    queue.send("pr-1", "a", "first").await.unwrap();
    queue.send("pr-1", "b", "second").await.unwrap();
    queue.send("pr-1", "a", "first again").await.unwrap();
    let first = queue.receive(1, Duration::ZERO, minute).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].body, "first");
    // "second" is visible, but its group has a message in flight.
    assert!(
        queue
            .receive(10, Duration::ZERO, minute)
            .await
            .unwrap()
            .is_empty()
    );
    queue.send("pr-2", "c", "other group").await.unwrap();
    let other = queue.receive(10, Duration::ZERO, minute).await.unwrap();
    assert_eq!(
        other.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["other group"]
    );
    let receipts = [first[0].receipt.clone()];
    queue.extend(&receipts, minute).await.unwrap();
    queue.extend(&receipts, Duration::ZERO).await.unwrap();
    let again = queue.receive(1, Duration::ZERO, minute).await.unwrap();
    assert_eq!(
        again[0].body, "first",
        "visible again once its visibility is 0"
    );
    queue.delete(&[again[0].receipt.clone()]).await.unwrap();
    let next = queue.receive(10, Duration::ZERO, minute).await.unwrap();
    // The repeated deduplication id was dropped: "first again" never comes.
    assert_eq!(
        next.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["second"]
    );

    let leases = &world.aws.leases;
    let table = config.lease_table();
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::seconds(30);
    assert!(leases.hold(&table, "k", "a", now, until).await.unwrap());
    assert!(!leases.hold(&table, "k", "b", now, until).await.unwrap());
    assert!(
        leases.hold(&table, "k", "a", now, until).await.unwrap(),
        "renewed"
    );
    let later = until + chrono::Duration::seconds(1);
    assert!(
        leases.hold(&table, "k", "b", later, later).await.unwrap(),
        "expired"
    );
    let held = leases.holder(&table, "k", now).await.unwrap().unwrap();
    assert_eq!(held.holder, "b");
}

/// PRs the seeded run plays with.
const PRS: u64 = 8;
/// Steps of the seeded run.
const STEPS: usize = 40;
/// Replicas; deliveries go round-robin over those running.
const REPLICAS: usize = 3;

/// Attack: replicas that share work could run one environment twice at
/// once (two CreateStack calls, one failing with AlreadyExistsException),
/// post two comments, or leak a stack when the replica holding a
/// message or the lease dies; the lease could stay with a dead replica.
#[tokio::test]
async fn three_replicas_with_one_killed_twice_keep_every_environment_right() {
    let seed = std::env::var("PULLSTACK_REPLICAS_SEED")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .expect("PULLSTACK_REPLICAS_SEED is a number")
        })
        .unwrap_or_else(rand::random);
    println!("replicas seed {seed}: replay with PULLSTACK_REPLICAS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut world = World::new("replicas", &sqs_config(LEASE_TTL)).await;
    let (proxy, aws) = replicas::counted(&world).await;
    world.start_with(aws.clone()).await;
    for n in 1..REPLICAS {
        world.start_replica(n, aws.clone()).await;
    }
    let mut lives: BTreeMap<u64, Life> = (1..=PRS).map(|n| (n, Life::Unopened)).collect();
    let kill_at = [STEPS / 4, STEPS * 2 / 3];
    let mut killed: Option<usize> = None;
    let mut commits = 0;
    let mut handovers = Vec::new();
    for step in 0..STEPS {
        if kill_at.contains(&step) {
            let (victim, took) = kill_the_lease_holder(&mut world).await;
            println!(
                "step {step}: killed replica {victim}, the lease holder; handed over in {took:?}"
            );
            handovers.push(took);
            killed = Some(victim);
            continue;
        }
        if let Some(victim) = killed
            && rng.random_bool(0.3)
        {
            println!("step {step}: replica {victim} starts again");
            start_again(&mut world, victim, aws.clone()).await;
            killed = None;
        }
        let active: Vec<u64> = (lives.iter())
            .filter(|(_, life)| **life != Life::Merged)
            .map(|(n, _)| *n)
            .collect();
        let n = active[rng.random_range(0..active.len())];
        let life = lives[&n];
        let roll = rng.random_range(0..100);
        let next = match life {
            Life::Unopened => {
                commits += 1;
                chaos::open(&world, n, commits, true).await;
                Life::Open
            }
            Life::Open if roll < 50 => {
                commits += 1;
                chaos::push(&world, n, commits, true).await;
                Life::Open
            }
            Life::Open if roll < 65 => {
                chaos::command(&world, n, "/pullstack redeploy", true).await;
                Life::Open
            }
            Life::Open if roll < 90 => {
                chaos::close(&world, n, false, true).await;
                Life::Closed
            }
            Life::Open => {
                chaos::close(&world, n, true, true).await;
                Life::Merged
            }
            Life::Closed => {
                chaos::reopen(&world, n, true).await;
                Life::Open
            }
            Life::Merged => Life::Merged,
        };
        println!("step {step}: PR #{n} {life:?} -> {next:?}");
        lives.insert(n, next);
        if rng.random_bool(0.5) {
            let target = proxy.calls().len() + rng.random_range(1..8);
            eventually("more AWS calls", WAIT, || async {
                proxy.calls().len() >= target
            })
            .await;
        }
    }
    if let Some(victim) = killed {
        start_again(&mut world, victim, aws.clone()).await;
    }
    // No resync: what converges, converges from the queue.
    world.settle_shared(Duration::from_secs(120)).await;
    let problems = chaos::settled_breaches(&world, &lives).await;
    assert!(
        problems.is_empty(),
        "seed {seed}: invariants broken:\n{}",
        problems.join("\n")
    );
    for n in 1..=PRS {
        // The sticky comment, at most: `redeploy` is answered with a
        // reaction, so any other comment is one posted twice.
        let comments = world.bot_comments(n);
        assert!(
            comments.len() <= 1,
            "seed {seed}: PR #{n} has {} comments from pullstack",
            comments.len()
        );
    }
    let refused_creates = (proxy.calls().iter())
        .filter(|c| c.operation == "CreateStack")
        .filter(|c| matches!(c.outcome, Some(Outcome::Forwarded(status)) if status >= 400))
        .count();
    assert_eq!(
        refused_creates, 0,
        "seed {seed}: CreateStack refused (AlreadyExistsException): two replicas created one stack"
    );
    for took in &handovers {
        assert!(
            *took <= LEASE_TTL,
            "seed {seed}: the lease took {took:?} to change hands, over {LEASE_TTL:?}"
        );
    }
    let calls = proxy.calls();
    let count = |service: &str| calls.iter().filter(|c| c.service == service).count();
    println!(
        "AWS calls: {} in all; SQS {}, DynamoDB {}, CloudFormation {}",
        calls.len(),
        count("sqs"),
        count("dynamodb"),
        count("cloudformation")
    );
}

/// Starts server `index` again.
async fn start_again(world: &mut World, index: usize, aws: pullstack::aws::Aws) {
    match index {
        0 => world.start_with(aws).await,
        n => world.start_replica(n, aws).await,
    }
}

/// Kills the replica holding the lease; returns it and how long (real
/// time, from the kill) until another replica held the lease.
async fn kill_the_lease_holder(world: &mut World) -> (usize, Duration) {
    eventually("a replica holds the lease", WAIT, || async {
        world.lease_holders().len() == 1
    })
    .await;
    let victim = world.lease_holders()[0];
    world.kill_server(victim);
    let killed = Instant::now();
    eventually("another replica takes the lease", WAIT, || async {
        !world.lease_holders().is_empty()
    })
    .await;
    let took = killed.elapsed();
    assert_ne!(world.lease_holders(), vec![victim]);
    (victim, took)
}

/// `/metrics` says how deep the shared queue is and who holds the lease.
#[tokio::test]
async fn metrics_show_the_queue_depth_and_the_lease_holder() {
    let mut world = World::new("sqsmetrics", &sqs_config(LEASE_TTL)).await;
    // Deliveries stay in the queue: the server's receives are held.
    let (_proxy, aws) = replicas::receives_held(&world).await;
    world.start_with(aws).await;
    eventually("the server holds the lease", WAIT, || async {
        world.lease_holders() == [0]
    })
    .await;
    // The first resync, which the lease started, has run.
    world.settle().await;
    world.open_pr(1).await;
    world.open_pr(2).await;

    let config = world.config();
    let holder = (world.aws.leases)
        .holder(
            &config.lease_table(),
            &format!("periodic/{}", world.repo),
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .expect("a holder")
        .holder;
    let metrics = world.metrics().await;
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
            .to_owned()
    };
    assert_eq!(
        line("pullstack_sqs_messages{state=\"visible\"}"),
        "pullstack_sqs_messages{state=\"visible\"} 2"
    );
    assert_eq!(
        line(&format!("pullstack_lease_holder{{holder=\"{holder}\"}}")),
        format!("pullstack_lease_holder{{holder=\"{holder}\"}} 1")
    );
}

/// Attack: a replica dies holding the lease, and nothing else runs the
/// resync or the prune. The expiry is read on the clock, so moving the
/// clock past it hands the lease over at the next try, long before a
/// minute of real time.
#[tokio::test]
async fn a_dead_holders_lease_passes_on_when_its_expiry_passes() {
    let config = sqs_config(Duration::from_secs(60));
    let mut world = World::new("leaseclock", &config).await;
    world.start().await;
    eventually("the first server holds the lease", WAIT, || async {
        world.lease_holders() == [0]
    })
    .await;
    world.start_replica(1, world.aws.clone()).await;
    world.kill_server(0);
    let killed = Instant::now();
    world.advance(Duration::from_secs(60));
    eventually("the replica takes the lease", WAIT, || async {
        world.lease_holders() == [1]
    })
    .await;
    // Tries come every quarter of lease_ttl (15 s) of the clock; the jump
    // woke the replica's wait.
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "{:?}",
        killed.elapsed()
    );
}

/// Attack: replicas that each pace GitHub writes at the configured rate
/// together write N times too fast and meet GitHub's secondary limit. Each
/// answers a roll call in the table and paces its share; a dead replica
/// leaves the roll within lease_ttl, so the others take its share back.
#[tokio::test]
async fn replicas_answer_a_roll_call_and_a_dead_one_leaves_it() {
    let config = sqs_config(Duration::from_secs(60));
    let mut world = World::new("rollcall", &config).await;
    world.start().await;
    world.start_replica(1, world.aws.clone()).await;
    let (leases, clock) = (world.aws.leases.clone(), world.clock.clone());
    let table = world.config().lease_table();
    let present =
        || async { (leases.present_count(&table, clock.now()).await).expect("count the roll") };
    eventually("both replicas answer", WAIT, || async {
        present().await == 2
    })
    .await;

    world.kill_server(1);
    world.advance(Duration::from_secs(61));
    eventually("the dead replica leaves the roll", WAIT, || async {
        present().await == 1
    })
    .await;
}

/// Attack: two replicas admit at once. Each counts the preview stacks
/// before the other's CreateStack lands, both see a free slot, and the
/// repository ends up past its limit. The shared slot (a DynamoDB lease
/// held from the count until CreateStack returns) makes the second wait,
/// count again and queue. The fault proxies hold replica 0's CreateStack
/// (and its receives, so the second PR goes to replica 1) to open the race
/// every time.
#[tokio::test]
async fn two_replicas_never_admit_past_the_limit_together() {
    let config = format!(
        "{}preview:\n  limits:\n    per_repository: 1\n",
        sqs_config(LEASE_TTL)
    );
    let mut world = World::new("admit2", &config).await;
    let proxied = |proxy: &FaultProxy| {
        pullstack::aws::Aws::from_config(&proxy.sdk_config(
            &world.sdk,
            3,
            Duration::from_millis(20),
        ))
    };
    let (first, second) = (
        FaultProxy::start(&moto_endpoint()).await,
        FaultProxy::start(&moto_endpoint()).await,
    );
    first.hold("CreateStack");
    let (first_aws, second_aws) = (proxied(&first), proxied(&second));
    world.start_with(first_aws).await;

    let sha1 = world.open_pr(1).await;
    eventually("replica 0 sends PR 1's CreateStack", WAIT, || async {
        first.count("cloudformation", "CreateStack") == 1
    })
    .await;
    // Replica 0 receives nothing more: its next receive waits.
    first.hold("ReceiveMessage");
    eventually("replica 0 waits on a receive", WAIT, || async {
        (first.calls().iter()).any(|c| c.operation == "ReceiveMessage" && c.outcome.is_none())
    })
    .await;
    world.start_replica(1, second_aws).await;
    let waits = || async {
        let metrics = world.metrics().await;
        metric_value(&metrics, "pullstack_admission_slot_waits_total")
    };
    let before = waits().await;
    world.open_pr(2).await;
    // Replica 1 either creates PR 2's stack (the race lost) or finds the
    // slot held.
    eventually("replica 1 reaches admission", WAIT, || async {
        second.count("cloudformation", "CreateStack") > 0 || waits().await > before
    })
    .await;
    first.release();

    world.wait_stack_at(1, &sha1).await;
    world.wait_comment(1, "Ready").await;
    world.wait_comment(2, "number 1 in line").await;
    world.settle_shared(WAIT).await;
    assert!(world.stack(2).await.is_none(), "PR 2 went past the limit");
    assert_eq!(second.count("cloudformation", "CreateStack"), 0);

    // Closing PR 1 wakes PR 2, whichever replica holds it.
    world.close(1, true).await;
    world.wait_stack_gone(1).await;
    world.wait_comment(2, "Ready").await;
    world.settle_shared(WAIT).await;
}

/// A counter's value in Prometheus text, 0 when absent. Replicas of one
/// test process share one recorder.
fn metric_value(metrics: &str, name: &str) -> f64 {
    (metrics.lines())
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// A long-lived PR on the shared queue: each ready outcome retires the
/// environment's older Deployments, and no replica trusts its memory of
/// which are retired, since another may have deployed one's commit again.
/// Reading each one's state on every outcome made a PR with n pushes cost
/// about n²/2 reads; a Deployment GitHub still lists as it was when found
/// retired is not read again.
#[tokio::test]
async fn retired_deployments_are_not_read_again_on_every_push() {
    const PUSHES: usize = 20;
    let mut world = World::new("retire", &sqs_config(LEASE_TTL)).await;
    world.start().await;
    let mut sha = world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle_shared(WAIT).await;
    for n in 0..PUSHES {
        sha = world.push(1, &format!("push-{n}")).await;
        world.wait_stack_at(1, &sha).await;
        world.wait_comment(1, &format!("`{}`", &sha[..7])).await;
        world.wait_comment(1, "Ready").await;
        world.settle_shared(WAIT).await;
    }
    let deployments = world.github.deployments(&world.repo);
    assert_eq!(deployments.len(), PUSHES + 1, "one Deployment a commit");
    let live: Vec<_> = (deployments.iter())
        .filter(|d| d.statuses.last().is_some_and(|s| s.state != "inactive"))
        .map(|d| d.sha.clone())
        .collect();
    assert_eq!(live, vec![sha], "only the head's Deployment is live");
    let reads = (world.github.requests().iter())
        .filter(|r| r.method == "GET" && r.path.contains("/statuses?"))
        .filter(|r| r.path.contains("/deployments/"))
        .count();
    println!("deployment state reads for {PUSHES} pushes: {reads}");
    // About two reads a Deployment (found live, then found retired), a
    // few more when pushes come within GitHub's one-second stamps; reading
    // all on every push came to 210.
    assert!(
        reads <= 4 * (PUSHES + 1),
        "{reads} reads of Deployment states for {} Deployments",
        PUSHES + 1
    );
}
