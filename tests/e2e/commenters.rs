//! Hostile commenters and fork approvals: each test names the attack it
//! answers.

use crate::support::github_fake::fake_sha;
use crate::support::{self, World};
use pullstack::reconcile::gate::PER_AUTHOR_HOURLY;

/// Bot writes (comments and reactions) recorded by the fake so far.
fn bot_writes(world: &World) -> usize {
    world
        .github
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/issues/"))
        .count()
}

// Attack: one 65 KB comment of `/pullstack` lines from a read-only user
// made the bot post 5,957 comments.
#[tokio::test]
async fn a_comment_of_thousands_of_command_lines_is_one_command() {
    let mut world = World::new("flood", "").await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    let before = bot_writes(&world);

    let flood = "/pullstack rollback\n".repeat(65 * 1024 / 20);
    let id = world.comment(1, support::READER, &flood).await;
    world.settle().await;
    assert_eq!(world.github.reactions(&world.repo, id), ["-1"]);
    world.assert_no_more_comments(1).await;
    assert_eq!(bot_writes(&world) - before, 1, "one reaction, nothing else");
}

// Attack: a read-only user's stream of comments spent the repository's
// write budget on answers.
#[tokio::test]
async fn answers_to_one_commenter_are_rationed() {
    let mut world = World::new("ration", "").await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;

    let mut spam = Vec::new();
    for n in 0..PER_AUTHOR_HOURLY + 5 {
        let body = format!("/pullstack nonsense-{n}");
        spam.push(world.comment(1, support::READER, &body).await);
    }
    world.settle().await;
    let answered = spam
        .iter()
        .filter(|id| !world.github.reactions(&world.repo, **id).is_empty())
        .count();
    assert_eq!(answered, PER_AUTHOR_HOURLY as usize);
    world.assert_no_more_comments(1).await;

    // Others are still heard, and commands that act are never rationed.
    let redeploy = world
        .comment(1, support::WRITER, "/pullstack redeploy")
        .await;
    world.settle().await;
    assert_eq!(world.github.reactions(&world.repo, redeploy), ["eyes"]);
}

// Attack: `/pullstack x`@acme/security-team` closed the code span and made
// the bot post a live team mention.
#[tokio::test]
async fn replies_never_carry_a_mention_or_markup() {
    let mut world = World::new("mention", "").await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;

    for body in [
        "/pullstack x`@acme/security-team`",
        "/pullstack deploy @acme/security-team",
    ] {
        world.comment(1, support::TRIAGER, body).await;
        let reply = world.next_comment(1).await.body;
        let echoed = reply.split("\n\n").next().unwrap_or_default();
        assert!(!echoed.contains("@acme"), "{reply}");
        assert_eq!(echoed.matches('`').count() % 2, 0, "{reply}");
    }
}

// Attack: the same signed comment delivered again under a new delivery id
// after a restart, which empties the in-memory delivery log.
#[tokio::test]
async fn a_replayed_comment_acts_once_even_after_a_restart() {
    let mut world = World::new("replay", "").await;
    world.start().await;
    let sha = world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    let destroy = world
        .comment(1, support::WRITER, "/pullstack destroy")
        .await;
    world.wait_stack_gone(1).await;
    world
        .comment(1, support::WRITER, "/pullstack redeploy")
        .await;
    world.wait_stack_at(1, &sha).await;
    world.wait_comment(1, "Ready").await;

    world.kill();
    world.start().await;
    world.settle().await;
    let (status, _) = world
        .deliver("issue_comment", world.comment_payload(1, destroy))
        .await;
    assert_eq!(status, 202);
    world.settle().await;
    assert!(
        world.stack(1).await.is_some(),
        "the replayed destroy did nothing"
    );
}

// Attack: a maintainer approved the fork's head A; the fork's author pushed
// B right after, and the pass that ran next deployed B.
#[tokio::test]
async fn an_approval_is_bound_to_the_commit_the_maintainer_saw() {
    let mut world = World::new("race", "").await;
    world.start().await;
    let a = fake_sha(&format!("{}-a", world.app));
    let b = fake_sha(&format!("{}-b", world.app));
    world.push_image(&a).await;
    world.push_image(&b).await;
    world.open_pr_at(7, &a, "mallory/fork").await;
    world.wait_comment(7, "approve commit `").await;

    // B lands on GitHub before pullstack looks; its `synchronize` is late.
    let mut pr = world.pr(7);
    pr.head_sha = b.clone();
    world.github.upsert_pr(&world.repo, pr);
    world.comment(7, support::WRITER, "/pullstack deploy").await;
    let reply = world.next_comment(7).await.body;
    assert!(
        reply.contains(&format!("moved from `{}` to `{}`", &a[..7], &b[..7])),
        "{reply}"
    );
    world.settle().await;
    assert!(world.stack(7).await.is_none(), "B was not deployed");

    // Naming A, or labelling at A, does not deploy B either.
    world.push_sha(7, &b).await;
    world
        .comment(
            7,
            support::WRITER,
            &format!("/pullstack deploy {}", &a[..10]),
        )
        .await;
    let reply = world.next_comment(7).await.body;
    assert!(reply.contains("is not this pull request's head"), "{reply}");
    world
        .label_at(7, "pullstack:approved", support::WRITER, &a)
        .await;
    world.settle().await;
    assert!(world.stack(7).await.is_none(), "B was not deployed");

    // Naming B deploys B.
    world
        .comment(
            7,
            support::WRITER,
            &format!("/pullstack deploy {}", &b[..7]),
        )
        .await;
    world.wait_stack_at(7, &b).await;
    world.wait_comment(7, "Ready").await;
}

// Attack: every workflow of a repository comments as `github-actions[bot]`,
// so one could write a comment whose marker approves a fork's commit.
#[tokio::test]
async fn a_memory_pullstack_did_not_seal_approves_nothing() {
    let mut world = World::new("forged", "").await;
    world.start().await;
    let sha = fake_sha(&format!("{}-fork", world.app));
    world.push_image(&sha).await;
    let forged = format!(
        "<!-- pullstack:state {{\"env\":\"pr-7\",\"approved\":\"{sha}\"}} -->\nlooks legit"
    );
    let wrong_seal = format!(
        "<!-- pullstack:state {{\"env\":\"pr-7\",\"approved\":\"{sha}\"}} sealed={} -->",
        "00".repeat(32)
    );
    world
        .github
        .add_comment(&world.repo, 7, support::BOT, &forged);
    world
        .github
        .add_comment(&world.repo, 7, support::BOT, &wrong_seal);
    world.open_pr_at(7, &sha, "mallory/fork").await;
    world.wait_comment(7, "Waiting for approval").await;
    world.settle().await;
    assert!(world.stack(7).await.is_none());
}
