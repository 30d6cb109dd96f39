//! A pull request's preview environment, end to end: webhooks in, the real
//! AWS SDK against moto and octocrab against the GitHub fake out.

use crate::support;
use crate::support::github_fake::fake_sha;
use crate::support::{World, eventually};
use std::time::Duration;

/// The stack's parameters, read with the SDK directly.
async fn parameter(world: &World, number: u64, key: &str) -> String {
    let client = aws_sdk_cloudformation::Client::new(&world.sdk);
    let out = client
        .describe_stacks()
        .stack_name(world.stack_name(number))
        .send()
        .await
        .unwrap();
    let stack = &out.stacks()[0];
    stack
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some(key))
        .and_then(|p| p.parameter_value())
        .unwrap_or_default()
        .to_owned()
}

/// The stack-level statuses of every operation, oldest first.
async fn stack_statuses(world: &World, number: u64) -> Vec<String> {
    let client = aws_sdk_cloudformation::Client::new(&world.sdk);
    let name = world.stack_name(number);
    let out = client
        .describe_stack_events()
        .stack_name(&name)
        .send()
        .await
        .unwrap();
    let mut statuses: Vec<String> = out
        .stack_events()
        .iter()
        .filter(|e| e.logical_resource_id() == Some(name.as_str()))
        .filter_map(|e| e.resource_status().map(|s| s.as_str().to_owned()))
        .collect();
    statuses.reverse();
    statuses
}

#[tokio::test]
async fn open_creates_a_stack_and_reports_it() {
    let mut world = World::new("open", "").await;
    world.start().await;
    let sha = world.open_pr(1).await;

    let stack = world.wait_stack_at(1, &sha).await;
    assert_eq!(stack.status.as_str(), "CREATE_COMPLETE");
    let image = parameter(&world, 1, "Image").await;
    assert!(image.ends_with(&format!("/{}:{sha}", world.app)), "{image}");
    for (key, value) in [
        ("pullstack:managed", "true"),
        ("pullstack:repo", world.repo.as_str()),
        ("pullstack:env", "pr/1"),
        ("pullstack:pr", "1"),
        ("pullstack:role", "preview"),
    ] {
        assert_eq!(stack.tag(key), Some(value), "tag {key}");
    }
    assert!(stack.tag("pullstack:created-at").is_some());

    // The configured variable was rendered for this PR into the task definition.
    let ecs = aws_sdk_ecs::Client::new(&world.sdk);
    let task = stack
        .output("TaskDefinitionArn")
        .expect("TaskDefinitionArn output");
    let described = ecs
        .describe_task_definition()
        .task_definition(task)
        .send()
        .await
        .unwrap();
    let container = &described.task_definition().unwrap().container_definitions()[0];
    let pr_var = container
        .environment()
        .iter()
        .find(|kv| kv.name() == Some("PR"));
    assert_eq!(pr_var.and_then(|kv| kv.value()), Some("1"));

    let url = stack.output("Url").expect("Url output").to_owned();
    let comment = world.wait_comment(1, "Ready").await;
    assert!(comment.body.contains(&url), "{}", comment.body);
    assert!(comment.body.contains(&sha[..7]));
    assert_eq!(world.bot_comments(1).len(), 1);

    // The comment is written first; the Deployment's outcome in the same pass.
    world.settle().await;
    let deployments = world.github.deployments(&world.repo);
    assert_eq!(deployments.len(), 1);
    let deployment = &deployments[0];
    assert_eq!(
        (deployment.sha.as_str(), deployment.environment.as_str()),
        (sha.as_str(), "pr-1")
    );
    assert!(deployment.transient);
    let last = deployment.statuses.last().unwrap();
    assert_eq!(
        (last.state.as_str(), last.environment_url.as_str()),
        ("success", url.as_str())
    );

    // /metrics counts the AWS requests made, by service and operation.
    let requests = world.aws_requests().await;
    let create = ("CloudFormation".to_owned(), "CreateStack".to_owned());
    assert!(
        requests.get(&create).is_some_and(|n| *n >= 1),
        "{requests:?}"
    );

    // The Deployment says it is ready; no commit status repeats it.
    assert_eq!(world.github.statuses(&world.repo, &sha), []);
}

#[tokio::test]
async fn a_push_updates_the_same_stack_and_comment() {
    let mut world = World::new("sync", "").await;
    world.start().await;
    let first = world.open_pr(2).await;
    world.wait_stack_at(2, &first).await;
    let comment = world.wait_comment(2, "Ready").await;

    let second = world.push(2, "second").await;
    world.wait_stack_at(2, &second).await;
    let edited = world.wait_comment(2, &second[..7]).await;
    world.wait_comment(2, "Ready").await;
    assert_eq!(edited.id, comment.id, "the same comment is edited");
    assert_eq!(world.bot_comments(2).len(), 1);
    assert!(parameter(&world, 2, "Image").await.ends_with(&second));
    assert_eq!(
        stack_statuses(&world, 2).await.last().unwrap(),
        "UPDATE_COMPLETE"
    );
}

#[tokio::test]
async fn three_quick_pushes_deploy_the_last_commit() {
    let mut world = World::new("quick", "").await;
    world.start().await;
    let first = world.open_pr(3).await;
    world.wait_stack_at(3, &first).await;
    world.wait_comment(3, "Ready").await;

    let mut shas = Vec::new();
    for n in 0..3 {
        let sha = fake_sha(&format!("{}-quick-{n}", world.app));
        world.push_image(&sha).await;
        shas.push(sha);
    }
    for sha in &shas {
        world.push_sha(3, sha).await;
    }
    let last = shas.last().unwrap();
    world.wait_stack_at(3, last).await;
    world.wait_comment(3, &format!("at `{}`", &last[..7])).await;
    world.wait_comment(3, "Ready").await;

    // Operations never overlap: each IN_PROGRESS is completed before the next.
    let statuses = stack_statuses(&world, 3).await;
    let mut open = false;
    for status in &statuses {
        if status.ends_with("_IN_PROGRESS") && !status.contains("CLEANUP") {
            assert!(!open, "two stack operations at once: {statuses:?}");
            open = true;
        } else if status.ends_with("_COMPLETE") {
            open = false;
        }
    }
    // Coalesced: the later pushes arrive while the first is being handled.
    let updates = statuses
        .iter()
        .filter(|s| *s == "UPDATE_IN_PROGRESS")
        .count();
    assert!(
        updates <= 2,
        "three pushes caused {updates} updates: {statuses:?}"
    );
}

#[tokio::test]
async fn close_removes_everything_and_reopen_recreates() {
    let mut world = World::new("close", "").await;
    world.start().await;
    let sha = world.open_pr(4).await;
    world.wait_stack_at(4, &sha).await;
    world.wait_comment(4, "Ready").await;

    world.close(4, true).await;
    world.wait_stack_gone(4).await;
    let comment = world.wait_comment(4, "Removed").await;
    assert!(comment.body.contains("was closed"), "{}", comment.body);
    assert!(
        comment
            .body
            .contains("AWS::ElasticLoadBalancingV2::LoadBalancer"),
        "lists what was removed: {}",
        comment.body
    );
    // The comment is written first; the Deployment closed in the same pass.
    world.settle().await;
    let deployment = world.github.deployments(&world.repo).pop().unwrap();
    assert_eq!(deployment.statuses.last().unwrap().state, "inactive");

    world.reopen(4).await;
    world.wait_stack_at(4, &sha).await;
    world.wait_comment(4, "Ready").await;
    assert_eq!(world.bot_comments(4).len(), 1);
}

#[tokio::test]
async fn resync_deletes_the_stack_of_a_close_that_was_never_delivered() {
    let mut world = World::new("resync", "").await;
    world.config_yaml = world.config_yaml.replace("interval: 1h", "interval: 300ms");
    world.start().await;
    let sha = world.open_pr(5).await;
    world.wait_stack_at(5, &sha).await;
    world.wait_comment(5, "Ready").await;

    world.close(5, false).await;
    world.wait_stack_gone(5).await;
    world.wait_comment(5, "Removed").await;
}

#[tokio::test]
async fn a_server_killed_mid_create_converges_after_restart() {
    let mut world = World::new("crash", "").await;
    world.start().await;
    let sha = world.open_pr(6).await;
    // Kill as soon as the stack exists: the deploy is under way, unreported.
    eventually("create started", Duration::from_secs(10), || async {
        world.stack(6).await.is_some()
    })
    .await;
    world.kill();
    world.start().await;
    world.wait_stack_at(6, &sha).await;
    world.wait_comment(6, "Ready").await;
    assert_eq!(
        world.bot_comments(6).len(),
        1,
        "one comment after the crash"
    );
    world.settle().await;
    let deployments = world.github.deployments(&world.repo);
    assert!(
        deployments
            .iter()
            .any(|d| d.statuses.last().is_some_and(|s| s.state == "success"))
    );
}

#[tokio::test]
async fn a_fork_waits_for_a_writer_and_each_commit_needs_approval() {
    let mut world = World::new("fork", "").await;
    world.start().await;
    let sha = fake_sha(&format!("{}-fork", world.app));
    world.push_image(&sha).await;
    world.open_pr_at(7, &sha, "mallory/fork").await;
    let comment = world.wait_comment(7, "Waiting for approval").await;
    assert!(comment.body.contains("/pullstack deploy"));
    assert!(world.stack(7).await.is_none());

    // A reader cannot approve, and a triager neither; only the triager
    // is told why in a comment.
    let by_reader = world.comment(7, support::READER, "/pullstack deploy").await;
    world.settle().await;
    assert_eq!(world.github.reactions(&world.repo, by_reader), ["-1"]);
    world
        .comment(7, support::TRIAGER, "/pullstack deploy")
        .await;
    let refusal = world.next_comment(7).await;
    assert!(
        refusal.body.contains("needs write permission"),
        "{}",
        refusal.body
    );
    assert!(world.stack(7).await.is_none());

    world.comment(7, support::WRITER, "/pullstack deploy").await;
    world.wait_stack_at(7, &sha).await;
    world.wait_comment(7, "Ready").await;

    // A new push is not deployed until approved again, here by label.
    let next = fake_sha(&format!("{}-fork-2", world.app));
    world.push_image(&next).await;
    world.push_sha(7, &next).await;
    world.wait_comment(7, "Waiting for approval").await;
    world.settle().await;
    assert_eq!(
        world.stack(7).await.unwrap().tag("pullstack:commit"),
        Some(sha.as_str())
    );

    world.label(7, "pullstack:approved", support::WRITER).await;
    world.wait_stack_at(7, &next).await;
    world.wait_comment(7, "Ready").await;
}

#[tokio::test]
async fn commands_destroy_redeploy_and_help() {
    let mut world = World::new("cmds", "").await;
    world.start().await;
    // The start-up resync reads every stack on the shared moto, which
    // takes seconds in a full run: it ends before the commands begin.
    world.settle().await;
    let sha = world.open_pr(9).await;
    world.wait_stack_at(9, &sha).await;
    world.wait_comment(9, "Ready").await;

    world
        .comment(9, support::WRITER, "/pullstack destroy")
        .await;
    world.wait_stack_gone(9).await;
    world.wait_comment(9, "destroy` was given").await;

    world
        .comment(9, support::WRITER, "/pullstack redeploy")
        .await;
    world.wait_stack_at(9, &sha).await;
    world.wait_comment(9, "Ready").await;

    world
        .comment(
            9,
            support::WRITER,
            "```\n/pullstack destroy\n```\n/pullstack redeplyo",
        )
        .await;
    // The comment's pass has run once the queue is idle.
    world.settle().await;
    assert!(
        (world.bot_comments(9).iter())
            .any(|c| c.body.contains("Did you mean `/pullstack redeploy`?")),
        "{:#?}",
        world.bot_comments(9)
    );
    assert!(
        world.stack(9).await.is_some(),
        "a command in a code block is ignored"
    );
}

#[tokio::test]
async fn a_missing_image_is_waited_for() {
    let mut world = World::new("image", "").await;
    world.start().await;
    let sha = fake_sha(&format!("{}-late", world.app));
    world.open_pr_at(10, &sha, &world.repo.clone()).await;
    let comment = world.wait_comment(10, "Waiting for the image").await;
    assert!(
        comment.body.contains(&format!(":{sha}")),
        "{}",
        comment.body
    );
    assert!(world.stack(10).await.is_none());

    world.push_image(&sha).await;
    world.wait_stack_at(10, &sha).await;
    world.wait_comment(10, "Ready").await;
}

#[tokio::test]
async fn an_image_that_never_comes_is_given_up_on() {
    let mut world = World::new("noimage", "").await;
    world.config_yaml = world.config_yaml.replace(
        "ready_check: false",
        "ready_check: false\n  image_timeout: 1s",
    );
    world.start().await;
    let sha = fake_sha(&format!("{}-never", world.app));
    world.open_pr_at(11, &sha, &world.repo.clone()).await;
    let comment = world.wait_comment(11, "No image").await;
    assert!(
        comment.body.contains("did not appear within"),
        "{}",
        comment.body
    );
    // The status follows the comment.
    eventually("failure status", Duration::from_secs(10), || async {
        world
            .github
            .statuses(&world.repo, &sha)
            .pop()
            .is_some_and(|s| s.state == "failure")
    })
    .await;
    assert!(world.stack(11).await.is_none());
}

#[tokio::test]
async fn resync_looks_closer_only_at_environments_whose_listing_changed() {
    let mut world = World::new("warm", "").await;
    world.start().await;
    world.open_pr(1).await;
    world.open_pr(2).await;
    world.wait_comment(1, "Ready").await;
    world.wait_comment(2, "Ready").await;
    // Nothing from before the mark is still queued or running.
    world.settle().await;
    let mark = world.github.request_count();

    // Three pushes to PR 2 whose webhooks never arrived, each found by a
    // resync of its own.
    for n in 0..3 {
        let missed = fake_sha(&format!("warm-missed-push-{n}"));
        world.push_image(&missed).await;
        let mut pr = world.pr(2);
        pr.head_sha = missed.clone();
        world.github.upsert_pr(&world.repo, pr);
        let body =
            support::payloads::workflow_run_completed(&world.repo, &missed, "feature-2", "success");
        world.deliver("workflow_run", body).await;
        world.wait_stack_at(2, &missed).await;
        world.wait_comment(2, "Ready").await;
    }
    let reads = |path: &str| {
        world.github.requests()[mark..]
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(path))
            .count()
    };
    let (one, two) = (format!("/pulls/{}", 1), format!("/pulls/{}", 2));
    assert_eq!(reads(&one), 0, "PR 1 is unchanged in the listing");
    assert!(reads(&two) >= 3, "PR 2's head moved three times");
}

/// With production releases off (the default), `/pullstack rollback` is
/// answered rather than ignored, and help lists only what applies.
#[tokio::test]
async fn production_commands_are_answered_when_production_is_off() {
    let mut world = World::new("noprod", "").await;
    world.start().await;
    world.open_pr(4).await;
    world.wait_comment(4, "Ready").await;
    world
        .comment(4, support::MAINTAINER, "/pullstack rollback")
        .await;
    let reply = world.next_comment(4).await;
    assert!(
        reply
            .body
            .contains("production releases, which are not enabled"),
        "{}",
        reply.body
    );
    world.comment(4, support::WRITER, "/pullstack help").await;
    let help = world.next_comment(4).await;
    assert!(
        help.body.contains("/pullstack redeploy") && !help.body.contains("/pullstack promote"),
        "{}",
        help.body
    );
    world.assert_no_more_comments(4).await;
}

/// A stack that is complete by the time it is first looked at is seen at
/// once, after its create and after its delete: the first poll does not
/// wait `poll_initial` (an hour here, so a wait would never end).
#[tokio::test]
async fn a_stack_already_complete_is_seen_without_waiting() {
    let mut world = World::new("atonce", "").await;
    world.config_yaml = world
        .config_yaml
        .replace("poll_initial: 100ms", "poll_initial: 1h");
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.close(1, true).await;
    world.wait_comment(1, "Removed").await;
    assert!(world.stack(1).await.is_none());
}

/// The `stack` bucket counts of `pullstack_deploy_phase_seconds` up to `le`.
async fn stack_phases_up_to(world: &World, le: &str) -> u64 {
    let metrics = world.metrics().await;
    let line = format!("pullstack_deploy_phase_seconds_bucket{{phase=\"stack\",le=\"{le}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// A stack operation that takes 40 s (CreateStack held at a fault proxy
/// while the clock moves on) is timed as such on `/metrics`, where a team
/// reads its own time to URL.
#[tokio::test]
async fn metrics_time_each_phase_of_a_deploy() {
    use crate::support::fault_proxy::FaultProxy;
    use pullstack::aws::Aws;
    let mut world = World::new("phases", "").await;
    let proxy = FaultProxy::start(&support::moto_endpoint()).await;
    proxy.hold("CreateStack");
    let sdk = proxy.sdk_config(&world.sdk, 2, Duration::from_millis(10));
    world.start_with(Aws::from_config(&sdk)).await;
    // Other tests share the process-wide recorder: count this one's sample.
    let before = (
        stack_phases_up_to(&world, "30").await,
        stack_phases_up_to(&world, "60").await,
    );

    world.open_pr(1).await;
    eventually("CreateStack held", support::WAIT, || async {
        proxy.calls().iter().any(|c| c.operation == "CreateStack")
    })
    .await;
    world.advance(Duration::from_secs(40));
    proxy.release();
    let comment = world.wait_comment(1, "Ready").await;
    assert!(comment.body.contains("deployed in 40s"), "{}", comment.body);

    let after = (
        stack_phases_up_to(&world, "30").await,
        stack_phases_up_to(&world, "60").await,
    );
    // Samples of other tests land in both buckets or in neither.
    let between = |(up_to_30, up_to_60): (u64, u64)| up_to_60 - up_to_30;
    assert!(
        between(after) > between(before),
        "no stack phase between 30 and 60 s: {before:?} then {after:?}"
    );
}
