//! Chaos: seeded random pull request lifecycles (open, push, commands,
//! close, reopen, merge) while AWS fails (the fault proxy in front of moto:
//! throttling, server errors, dropped connections, CreateStack and
//! DeleteStack done but their answers lost), GitHub fails (the fake: server
//! errors, secondary rate limits with `Retry-After`, dropped connections)
//! and the server is killed and started again, losing the webhooks sent
//! while it is down. Then, with the faults off, at most two resyncs must
//! bring every invariant back.
//!
//! Each run prints its seed; `PULLSTACK_CHAOS_SEED=<seed>` replays it (the
//! same steps and faults; the interleaving of workers still varies).

use crate::support::fault_proxy::FaultProxy;
use crate::support::github_fake::{Chaos, FakePr, fake_sha};
use crate::support::{WAIT, WRITER, World, eventually, moto_endpoint};
use chrono::{DateTime, Utc};
use pullstack::aws::Aws;
use pullstack::aws::stacks::tag;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Pull requests the run plays with.
const PRS: u64 = 6;
/// Steps of the run: an action on a PR, a crash or a start.
const STEPS: usize = 44;
/// Crashes at most.
const CRASHES: usize = 3;
/// GitHub's write budget: the default. A run asks for more writes than
/// this, so a burst (on start, or after a restart) would show.
const WRITES_PER_MINUTE: usize = 80;
/// Share of AWS calls the proxy fails.
const AWS_FAULTS: f64 = 0.2;
/// Share of GitHub calls the fake fails.
const GITHUB_FAULTS: f64 = 0.1;
/// How long the work left at the end may take: the writes it still needs
/// are paced at `WRITES_PER_MINUTE`.
const DRAIN: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    Unopened,
    Open,
    Closed,
    Merged,
}

/// Attack: faults on every side, crashes mid-operation and lost webhooks
/// leave leaked or missing stacks, stale or duplicate comments, live
/// Deployments of closed PRs or replaced commits, or bursts of GitHub writes
/// over the limit.
#[tokio::test]
async fn seeded_lifecycles_under_faults_and_crashes_keep_the_invariants() {
    let seed = std::env::var("PULLSTACK_CHAOS_SEED")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().expect("PULLSTACK_CHAOS_SEED is a number"))
        .unwrap_or_else(rand::random);
    println!("chaos seed {seed}: replay with PULLSTACK_CHAOS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let config = format!("github:\n  writes_per_minute: {WRITES_PER_MINUTE}\n");
    let mut world = World::new("chaos", &config).await;
    let proxy = FaultProxy::start(&moto_endpoint()).await;
    let aws = Aws::from_config(&proxy.sdk_config(&world.sdk, 4, Duration::from_millis(20)));
    world.start_with(aws.clone()).await;
    proxy.set_chaos(Some((seed, AWS_FAULTS)));
    world.github.set_chaos(Some(Chaos {
        seed: seed.rotate_left(17),
        rate: GITHUB_FAULTS,
        retry_after: 1,
    }));

    let mut lives: BTreeMap<u64, Life> = (1..=PRS).map(|n| (n, Life::Unopened)).collect();
    let (mut up, mut crashes, mut commits) = (true, 0, 0);
    for step in 0..STEPS {
        if up && crashes < CRASHES && rng.random_bool(0.08) {
            println!("step {step}: kill");
            world.kill();
            up = false;
            crashes += 1;
            continue;
        }
        if !up && rng.random_bool(0.4) {
            println!("step {step}: start");
            world.start_with(aws.clone()).await;
            up = true;
            continue;
        }
        // A merged PR is done with: act on the others.
        let active: Vec<u64> = (lives.iter())
            .filter(|(_, life)| **life != Life::Merged)
            .map(|(n, _)| *n)
            .collect();
        let Some(&n) = active.get(rng.random_range(0..active.len().max(1))) else {
            break;
        };
        let life = lives[&n];
        let roll = rng.random_range(0..100);
        let next = match life {
            Life::Unopened => {
                commits += 1;
                open(&world, n, commits, up).await;
                Life::Open
            }
            Life::Open if roll < 45 => {
                commits += 1;
                push(&world, n, commits, up).await;
                Life::Open
            }
            Life::Open if roll < 65 => {
                let body = ["/pullstack redeploy", "/pullstack help"][rng.random_range(0..2)];
                command(&world, n, body, up).await;
                Life::Open
            }
            Life::Open if roll < 92 => {
                close(&world, n, false, up).await;
                Life::Closed
            }
            Life::Open => {
                close(&world, n, true, up).await;
                Life::Merged
            }
            Life::Closed => {
                reopen(&world, n, up).await;
                Life::Open
            }
            Life::Merged => Life::Merged,
        };
        println!(
            "step {step}: PR #{n} {life:?} -> {next:?}{}",
            if up { "" } else { " (webhook lost)" }
        );
        lives.insert(n, next);
        // Sometimes the server gets a few more AWS calls in (or runs out of
        // work) first, so that the next crash or event lands mid-way
        // through an operation rather than always at its start.
        if up && rng.random_bool(0.5) {
            let target = proxy.calls().len() + rng.random_range(1..6);
            tokio::select! {
                () = world.settle() => {}
                () = eventually("more AWS calls", WAIT, || async {
                    proxy.calls().len() >= target
                }) => {}
            }
        }
    }

    // Quiescence: faults off, the server up, at most two resyncs.
    proxy.set_chaos(None);
    world.github.set_chaos(None);
    if !up {
        world.start_with(aws.clone()).await;
    }
    for round in 1..=2 {
        // Retries and polls waiting for a deadline are due now.
        world.advance(Duration::from_secs(5));
        world.resync_within(DRAIN).await;
        // What the resync started (a stack update, say) ends through polls.
        let problems = settled_breaches(&world, &lives).await;
        if problems.is_empty() {
            break;
        }
        assert!(
            round < 2,
            "seed {seed}: invariants broken after two resyncs:\n{}",
            problems.join("\n")
        );
        println!("after resync {round}:\n{}", problems.join("\n"));
    }
    let busiest = busiest_minute(&world);
    let requests = world.github.requests();
    println!(
        "GitHub requests {}, writes {}, busiest minute {busiest} writes; AWS calls {}",
        requests.len(),
        requests.iter().filter(|r| r.method != "GET").count(),
        proxy.calls().len()
    );
    assert!(
        busiest <= WRITES_PER_MINUTE,
        "seed {seed}: {busiest} GitHub writes in one minute, over {WRITES_PER_MINUTE}"
    );
}

fn new_pr(world: &World, n: u64, sha: &str) -> FakePr {
    FakePr {
        number: n,
        title: format!("Change {n}"),
        head_sha: sha.to_owned(),
        head_ref: format!("feature-{n}"),
        head_repo: world.repo.clone(),
        user: WRITER.to_owned(),
        ..FakePr::default()
    }
}

/// Stores `pr` in the fake and, when the server is up, delivers `action`.
async fn update(world: &World, pr: FakePr, action: &str, up: bool) {
    world.github.upsert_pr(&world.repo, pr.clone());
    if !up {
        return;
    }
    let (status, _) = world.send_pr(action, &pr, None).await;
    assert_eq!(status, 202, "{action} on PR #{}", pr.number);
}

pub async fn open(world: &World, n: u64, commit: u32, up: bool) {
    let sha = fake_sha(&format!("{}-{n}-{commit}", world.app));
    world.push_image(&sha).await;
    update(world, new_pr(world, n, &sha), "opened", up).await;
}

pub async fn push(world: &World, n: u64, commit: u32, up: bool) {
    let sha = fake_sha(&format!("{}-{n}-{commit}", world.app));
    world.push_image(&sha).await;
    let pr = FakePr {
        head_sha: sha,
        ..world.pr(n)
    };
    update(world, pr, "synchronize", up).await;
}

pub async fn command(world: &World, n: u64, body: &str, up: bool) {
    let id = world.github.add_comment(&world.repo, n, WRITER, body);
    if up {
        let (status, _) = world
            .deliver("issue_comment", world.comment_payload(n, id))
            .await;
        assert_eq!(status, 202, "{body} on PR #{n}");
    }
}

pub async fn close(world: &World, n: u64, merged: bool, up: bool) {
    let pr = FakePr {
        state: "closed".into(),
        merged,
        ..world.pr(n)
    };
    update(world, pr, "closed", up).await;
}

pub async fn reopen(world: &World, n: u64, up: bool) {
    let pr = FakePr {
        state: "open".into(),
        ..world.pr(n)
    };
    update(world, pr, "reopened", up).await;
}

/// The breaches of the invariants once they stop changing for the better:
/// none of the checks switched on, or the same ones for `WAIT`. Returns
/// those of the checks switched on, and of those switched off.
pub async fn settled_breaches(world: &World, lives: &BTreeMap<u64, Life>) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        poll.tick().await;
        world.assert_alive();
        let problems = breaches(world, lives).await;
        if problems.is_empty() || tokio::time::Instant::now() > deadline {
            return problems;
        }
    }
}

/// Every invariant that does not hold, in words.
async fn breaches(world: &World, lives: &BTreeMap<u64, Life>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut report = |problem: String| problems.push(problem);
    let stacks = world
        .aws
        .stacks
        .list_tagged(tag::REPO, &world.repo)
        .await
        .expect("list stacks");
    let by_name: BTreeMap<&str, _> = stacks.iter().map(|s| (s.name.as_str(), s)).collect();
    let deployments = world.github.deployments(&world.repo);
    let mut expected_stacks = BTreeSet::new();
    for (&n, &life) in lives {
        let head = world.github.pr(&world.repo, n).map(|pr| pr.head_sha);
        let name = world.stack_name(n);
        let stickies: Vec<_> = world
            .bot_comments(n)
            .into_iter()
            .filter(|c| {
                c.body
                    .starts_with(&format!("<!-- pullstack:state {{\"env\":\"pr-{n}\""))
            })
            .collect();
        if stickies.len() > 1 {
            report(format!("PR #{n}: {} sticky comments", stickies.len()));
        }
        let sticky = stickies.first().map(|c| c.body.as_str()).unwrap_or("");
        let environment = format!("pr-{n}");
        let live = |state: &str| matches!(state, "in_progress" | "success" | "queued" | "pending");
        let own: Vec<_> = deployments
            .iter()
            .filter(|d| d.environment == environment)
            .collect();
        match (life, head) {
            (Life::Open, Some(head)) => {
                expected_stacks.insert(name.clone());
                match by_name.get(name.as_str()) {
                    None => report(format!("PR #{n} is open but has no stack")),
                    Some(stack) => {
                        let status = stack.status.as_str();
                        if !status.ends_with("_COMPLETE") || status.contains("ROLLBACK") {
                            report(format!("PR #{n}: stack {name} is {status}"));
                        }
                        if stack.tag(tag::COMMIT) != Some(head.as_str()) {
                            report(format!("PR #{n}: stack not at the head {head}"));
                        }
                    }
                }
                let short = &head[..7];
                if !(sticky.contains("**Ready**") && sticky.contains(&format!("`{short}`"))) {
                    report(format!(
                        "PR #{n} is open at {short} but its comment says: {}",
                        headline(sticky)
                    ));
                }
                for d in own.iter().filter(|d| d.sha != head) {
                    if let Some(state) = d.statuses.last().map(|s| s.state.as_str())
                        && live(state)
                    {
                        report(format!(
                            "PR #{n}: Deployment {} of replaced {} is {state}",
                            d.id,
                            &d.sha[..7]
                        ));
                    }
                }
            }
            (Life::Closed | Life::Merged, _) => {
                let had_stack = by_name.contains_key(name.as_str());
                if had_stack {
                    report(format!("PR #{n} is closed but its stack {name} is left"));
                }
                if !sticky.is_empty() && !sticky.contains("**Removed**") {
                    report(format!(
                        "PR #{n} is closed but its comment says: {}",
                        headline(sticky)
                    ));
                }
                for d in &own {
                    if let Some(state) = d.statuses.last().map(|s| s.state.as_str())
                        && live(state)
                    {
                        report(format!(
                            "PR #{n} is closed but Deployment {} is {state}",
                            d.id
                        ));
                    }
                }
            }
            (Life::Unopened, _) | (Life::Open, None) => {}
        }
    }
    for stack in &stacks {
        if stack.tag(tag::ROLE) == Some("preview") && !expected_stacks.contains(&stack.name) {
            report(format!("stack {} is leaked", stack.name));
        }
    }
    let mut seen: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for d in &deployments {
        if let Some(first) = seen.insert((d.sha.as_str(), d.environment.as_str()), d.id) {
            report(format!(
                "Deployments {first} and {} are both of {} to {}",
                d.id,
                &d.sha[..7],
                d.environment
            ));
        }
    }
    problems
}

/// The state line of a sticky comment.
fn headline(body: &str) -> &str {
    body.lines()
        .find(|l| l.starts_with(|c: char| !c.is_ascii()))
        .unwrap_or(if body.is_empty() {
            "(no comment)"
        } else {
            body
        })
}

/// The most GitHub writes (anything but GET) received in any 60 s window.
fn busiest_minute(world: &World) -> usize {
    let writes: Vec<DateTime<Utc>> = world
        .github
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.at)
        .collect();
    let minute = chrono::Duration::seconds(60);
    writes
        .iter()
        .map(|&from| {
            writes
                .iter()
                .filter(|&&at| at >= from && at < from + minute)
                .count()
        })
        .max()
        .unwrap_or(0)
}
