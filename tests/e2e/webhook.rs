//! `POST /webhook` end to end: signatures, bad input, redeliveries, every
//! real fixture payload, and the sticky comment across restarts.

use crate::support;
use crate::support::{World, eventually, payloads};
use std::time::Duration;

/// Waits for the start-up resync to finish its GitHub calls, then returns
/// the fake's request count.
async fn settled_request_count(world: &World) -> usize {
    world.settle().await;
    world.github.request_count()
}

#[tokio::test]
async fn bad_deliveries_are_rejected_without_touching_github() {
    let mut world = World::new("reject", "").await;
    world.start().await;
    let before = settled_request_count(&world).await;
    let body = payloads::fixture("rust-lang-bors/pull-request-opened.json");

    let mut headers = payloads::delivery_headers("pull_request", support::SECRET.as_bytes(), &body);
    headers.retain(|(name, _)| *name != "x-hub-signature-256");
    let (status, reply) = world.post(headers, body.clone()).await;
    assert_eq!(status, 401, "missing signature: {reply}");

    let headers = payloads::delivery_headers("pull_request", b"wrong secret", &body);
    let (status, _) = world.post(headers, body.clone()).await;
    assert_eq!(status, 401, "bad signature");

    let huge = payloads::pad_to(body.clone(), 26 * 1024 * 1024);
    let (status, _) = world.deliver("pull_request", huge).await;
    assert_eq!(status, 413, "oversized body");

    let (status, reply) = world
        .deliver("pull_request", b"{\"action\": \"opened\",".to_vec())
        .await;
    assert_eq!(status, 400, "malformed JSON");
    assert!(
        reply["reason"].as_str().unwrap().contains("not valid JSON"),
        "{reply}"
    );

    let (status, reply) = world
        .deliver("pull_request", b"{\"action\": \"opened\"}".to_vec())
        .await;
    assert_eq!(status, 400, "payload not matching its event");
    assert!(
        reply["reason"].as_str().unwrap().contains("does not match"),
        "{reply}"
    );

    world.settle().await;
    assert_eq!(
        world.github.request_count(),
        before,
        "no GitHub call for rejected deliveries"
    );
}

#[tokio::test]
async fn ping_and_unknown_events() {
    let mut world = World::new("ping", "").await;
    world.start().await;
    let (status, reply) = world
        .deliver("ping", payloads::fixture("ping/payload.json"))
        .await;
    assert_eq!((status, reply["status"].as_str()), (200, Some("pong")));
    let (status, reply) = world.deliver("star", b"{}".to_vec()).await;
    assert_eq!((status, reply["status"].as_str()), (202, Some("ignored")));
}

/// Every real payload either parses (and is queued) or is cleanly ignored:
/// never a 400 or a 5xx.
#[tokio::test]
async fn every_fixture_payload_is_accepted_or_ignored() {
    let mut world = World::new("fixtures", "").await;
    world.start().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut seen = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let folder = dir.file_name().unwrap().to_str().unwrap();
            let name = file.file_name().unwrap().to_str().unwrap();
            let event = match folder {
                "rust-lang-bors" if name.starts_with("pull-request") => "pull_request",
                "rust-lang-bors" if name.starts_with("issue-comment") => "issue_comment",
                "rust-lang-bors" => "push",
                other => other,
            };
            let body = std::fs::read(&file).unwrap();
            let parsed = pullstack::github::events::parse(event, &body);
            assert!(parsed.is_ok(), "{folder}/{name}: {parsed:?}");
            let (status, reply) = world.deliver(event, body).await;
            assert!(
                matches!(status, 200 | 202),
                "{folder}/{name}: {status} {reply}"
            );
            seen += 1;
        }
    }
    assert!(seen >= 60, "only {seen} fixtures found");
}

#[tokio::test]
async fn a_redelivery_does_nothing_twice() {
    let mut world = World::new("redeliver", "").await;
    world.start().await;
    world
        .open_pr_at(4, &support::github_fake::fake_sha("r"), &world.repo.clone())
        .await;
    let id = world
        .github
        .add_comment(&world.repo, 4, support::WRITER, "/pullstack help");
    let body = payloads::issue_comment(
        &world.repo,
        4,
        id,
        support::WRITER,
        "MEMBER",
        "/pullstack help",
        true,
    );
    let headers = payloads::delivery_headers("issue_comment", support::SECRET.as_bytes(), &body);
    let (first, _) = world.post(headers.clone(), body.clone()).await;
    let (second, reply) = world.post(headers, body).await;
    assert_eq!((first, second), (202, 202));
    assert_eq!(reply["status"], "duplicate");
    let helps = || {
        world
            .bot_comments(4)
            .into_iter()
            .filter(|c| c.body.contains("pullstack commands"))
            .count()
    };
    eventually("help reply", Duration::from_secs(10), || async {
        helps() == 1
    })
    .await;
    world.settle().await;
    assert_eq!(helps(), 1, "the redelivery must not answer again");
}

/// Five events for one PR leave exactly one pullstack comment, edited in
/// place, even with the server restarted between events.
#[tokio::test]
async fn one_sticky_comment_across_events_and_restarts() {
    let mut world = World::new("sticky", "").await;
    world.start().await;
    let first = world.open_pr(8).await;
    world.wait_comment(8, &first[..7]).await;
    world.wait_comment(8, "Ready").await;

    for round in 0..4 {
        world.stop().await;
        world.start().await;
        if round == 2 {
            world
                .comment(8, support::WRITER, "/pullstack redeploy")
                .await;
            eventually("redeploy acknowledged", Duration::from_secs(10), || async {
                world
                    .github
                    .requests()
                    .iter()
                    .any(|r| r.path.contains("/reactions"))
            })
            .await;
        } else {
            let sha = world.push(8, &format!("round-{round}")).await;
            world.wait_comment(8, &sha[..7]).await;
        }
        world.wait_comment(8, "Ready").await;
    }
    let sticky: Vec<_> = world
        .bot_comments(8)
        .into_iter()
        .filter(|c| c.body.starts_with("<!-- pullstack:state"))
        .collect();
    assert_eq!(sticky.len(), 1, "exactly one sticky comment: {sticky:#?}");
    // Each push's commit reaches the comment by an edit.
    assert!(
        sticky[0].edits >= 3,
        "edited in place: {} edits",
        sticky[0].edits
    );
}
