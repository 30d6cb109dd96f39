//! One server for many repositories, run as several replicas sharing one
//! SQS FIFO queue and one DynamoDB lease (`repositories:` with
//! `queue.backend: sqs`), against moto and the GitHub fake: each
//! repository's work reaches its own reconciler on whichever replica
//! receives it, a replica that dies after its 202 loses nothing, and one
//! lease for the whole server changes hands when its holder dies.

use crate::repos::{add, bot_comments, open_pr, org, pr_payload};
use crate::support::fault_proxy::Outcome;
use crate::support::github_fake::{FakePr, fake_sha};
use crate::support::replicas::{self, sqs_config};
use crate::support::{SECRET, WAIT, WRITER, World, eventually, payloads};
use pullstack::reconcile::lease::Claim;
use std::time::{Duration, Instant};

/// The lease (and a held message) outlives a dead replica this long.
const LEASE_TTL: Duration = Duration::from_secs(8);

/// Posts `body` as a comment on `repo`'s PR `number` and delivers it.
async fn comment(world: &World, repo: &str, number: u64, body: &str) {
    let id = world.github.add_comment(repo, number, WRITER, body);
    let (status, answer) = world
        .deliver("issue_comment", world.comment_payload_on(repo, number, id))
        .await;
    assert_eq!(status, 202, "{answer}");
}

/// Waits until pullstack has a comment on `repo`'s PR `number` holding
/// `text`.
async fn wait_bot_comment(world: &World, repo: &str, number: u64, text: &str) {
    eventually(&format!("{repo}#{number} says {text:?}"), WAIT, || async {
        bot_comments(world, repo, number)
            .iter()
            .any(|c| c.contains(text))
    })
    .await;
}

/// Attack: two replicas of a server for many repositories each take
/// deliveries. Were messages not to carry their repository, or groups and
/// deduplication ids not kept apart per repository, one repository's PR 1
/// would be run under the other's config, dropped as a duplicate, or run
/// twice at once (two comments, a CreateStack refused with
/// AlreadyExistsException).
#[tokio::test]
async fn two_replicas_serve_two_repositories_from_one_queue() {
    let mut world = org("hubsqs", &sqs_config(LEASE_TTL)).await;
    let app = world.app.clone();
    let web = add(&world, "web", &format!("app: {app}-web\n"));
    let api = add(&world, "api", &format!("app: {app}-api\n"));
    world.github.add_installation(1, &[&web, &api]);
    let (proxy, aws) = replicas::counted(&world).await;
    world.start_with(aws.clone()).await;
    world.start_replica(1, aws).await;

    // The same PR numbers in both repositories; deliveries alternate
    // between the replicas.
    let mut opened = Vec::new();
    for (repo, name) in [(&web, "web"), (&api, "api")] {
        for number in 1..=2 {
            let (sha, answer) = open_pr(&world, repo, number).await;
            assert_eq!(answer["status"], "queued", "{answer}");
            opened.push((repo.clone(), name, number, sha));
        }
    }
    for (repo, name, number, sha) in &opened {
        let stack = (world)
            .wait_named_stack_at(&format!("{app}-{name}-pr-{number}"), sha)
            .await;
        assert_eq!(stack.tag("pullstack:repo"), Some(repo.as_str()));
    }
    world.settle_shared(WAIT * 2).await;
    for (repo, _, number, sha) in &opened {
        let comments = bot_comments(&world, repo, *number);
        assert_eq!(comments.len(), 1, "{repo}#{number}: {comments:#?}");
        assert!(
            comments[0].contains("Ready"),
            "{repo}#{number}: {comments:?}"
        );
        assert!(comments[0].contains(&sha[..7]), "{repo}#{number}");
    }
    let refused_creates = (proxy.calls().iter())
        .filter(|c| c.operation == "CreateStack")
        .filter(|c| matches!(c.outcome, Some(Outcome::Forwarded(status)) if status >= 400))
        .count();
    assert_eq!(
        refused_creates, 0,
        "CreateStack refused (AlreadyExistsException): two replicas created one stack"
    );
    // Both replicas worked on messages.
    assert!(proxy.count("sqs", "DeleteMessageBatch") + proxy.count("sqs", "DeleteMessage") > 0);
}

/// Attack: a replica of a server for many repositories answers 202 and
/// dies before it works on the delivery. Had it kept the delivery in its
/// memory until the repository's config was read, the delivery (and a
/// command no resync replays) would be lost; its jobs are in SQS before
/// the 202, and another replica runs them.
#[tokio::test]
async fn a_hub_replica_killed_right_after_202_loses_nothing() {
    let mut world = org("hubcrash", &sqs_config(LEASE_TTL)).await;
    let app = world.app.clone();
    let web = add(&world, "web", &format!("app: {app}-web\n"));
    world.github.add_installation(1, &[&web]);
    // Replica 0 takes deliveries but never gets to receive work: its
    // ReceiveMessage calls are held until it is killed.
    let (proxy, held) = replicas::receives_held(&world).await;
    world.start_with(held).await;
    let (sha, answer) = open_pr(&world, &web, 1).await;
    assert_eq!(answer["status"], "queued", "{answer}");
    comment(&world, &web, 1, "/pullstack help").await;
    world.kill_server(0);
    assert!(bot_comments(&world, &web, 1).is_empty(), "nothing done yet");

    world.start_replica(1, world.aws.clone()).await;
    world
        .wait_named_stack_at(&format!("{app}-web-pr-1"), &sha)
        .await;
    // The help command is answered only from its message: a resync does
    // not replay commands.
    wait_bot_comment(&world, &web, 1, "pullstack commands").await;
    wait_bot_comment(&world, &web, 1, "Ready").await;
    world.settle_shared(WAIT).await;
    // The sticky comment and one reply: the work was done once.
    assert_eq!(bot_comments(&world, &web, 1).len(), 2);
    assert!(proxy.count("sqs", "ReceiveMessage") >= 1);
}

/// Attack: the replica holding the periodic work of a server for many
/// repositories dies. With a lease per repository, or none, each
/// repository's resync would stop or run on every replica; the server's one
/// lease passes to another replica within `lease_ttl` (of the clock), and
/// the new holder resyncs every repository.
#[tokio::test]
async fn the_servers_one_lease_changes_hands_within_lease_ttl() {
    let lease_ttl = Duration::from_secs(60);
    let mut world = org("hublease", &sqs_config(lease_ttl)).await;
    let app = world.app.clone();
    let web = add(&world, "web", &format!("app: {app}-web\n"));
    let api = add(&world, "api", &format!("app: {app}-api\n"));
    world.github.add_installation(1, &[&web]);
    world.github.add_installation(2, &[&api]);
    world.start().await;
    eventually("the first server holds the lease", WAIT, || async {
        world.lease_holders() == [0]
    })
    .await;
    world.start_replica(1, world.aws.clone()).await;
    world.settle_shared(WAIT).await;
    let (leases, table) = (world.aws.leases.clone(), world.config().lease_table());
    let now = world.clock.now();
    let holder = leases.holder(&table, Claim::SERVER, now).await.unwrap();
    let first = holder.expect("the server's lease is held").holder;
    for repo in [&web, &api] {
        let key = Claim::key_for(repo);
        assert!(
            leases.holder(&table, &key, now).await.unwrap().is_none(),
            "{repo} has a lease of its own"
        );
    }

    let config_reads = |world: &World| {
        let requests = world.github.requests();
        [&web, &api].map(|repo| {
            let path = format!("/repos/{repo}/contents/.pullstack.yaml?ref=main");
            requests.iter().filter(|r| r.path == path).count()
        })
    };
    let before = config_reads(&world);
    world.kill_server(0);
    let killed = Instant::now();
    world.advance(lease_ttl);
    eventually("the replica takes the lease", WAIT, || async {
        world.lease_holders() == [1]
    })
    .await;
    // Tries come every quarter of lease_ttl of the clock; the jump woke
    // the replica's wait.
    assert!(killed.elapsed() < lease_ttl / 4, "{:?}", killed.elapsed());
    let now = world.clock.now();
    let holder = leases.holder(&table, Claim::SERVER, now).await.unwrap();
    assert_ne!(holder.expect("held").holder, first);
    // The new holder resyncs both repositories: it reads each config.
    eventually("the new holder resyncs every repository", WAIT, || async {
        let after = config_reads(&world);
        after[0] > before[0] && after[1] > before[1]
    })
    .await;
    world.settle_shared(WAIT).await;
}

/// Attack: the `installation_repositories` delivery that adds a repository
/// reaches one replica only (or is lost). A replica that had not listed
/// the repository again would answer its deliveries 202 `ignored`, or
/// delete the messages another replica sent for it; each lists the
/// installations again when a repository matching the globs is unknown.
#[tokio::test]
async fn replicas_take_a_repository_added_after_they_listed_theirs() {
    let mut world = org("hubadd", &sqs_config(LEASE_TTL)).await;
    let app = world.app.clone();
    let web = add(&world, "web", &format!("app: {app}-web\n"));
    let api = add(&world, "api", &format!("app: {app}-api\n"));
    world.github.add_installation(1, &[&web]);
    // Replica 0 takes the delivery but never receives work; replica 1
    // receives the message.
    let (_proxy, held) = replicas::receives_held(&world).await;
    world.start_with(held).await;
    world.start_replica(1, world.aws.clone()).await;
    // Both have listed the installations, and the lease holder has
    // resynced: the list is not read again for `resync.interval`.
    eventually("the first server holds the lease", WAIT, || async {
        world.lease_holders() == [0]
    })
    .await;
    world.settle_shared(WAIT).await;
    world.github.add_installation(2, &[&api]);

    let sha = fake_sha(&format!("{api}-1-open"));
    world.push_image(&sha).await;
    let pr = FakePr {
        number: 1,
        title: "Change 1".to_owned(),
        head_sha: sha.clone(),
        head_ref: "feature-1".to_owned(),
        head_repo: api.clone(),
        user: WRITER.to_owned(),
        ..FakePr::default()
    };
    world.github.upsert_pr(&api, pr.clone());
    let body = pr_payload(&api, &pr, "opened");
    let headers = payloads::delivery_headers("pull_request", SECRET.as_bytes(), &body);
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhook", world.url()))
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 202);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "queued", "{answer}");

    world
        .wait_named_stack_at(&format!("{app}-api-pr-1"), &sha)
        .await;
    wait_bot_comment(&world, &api, 1, "Ready").await;
    world.kill_server(0);
    world.settle_shared(WAIT).await;
    assert_eq!(bot_comments(&world, &api, 1).len(), 1);
}
