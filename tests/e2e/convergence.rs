//! What GitHub shows converges as AWS does, at few writes: Deployments of
//! replaced commits and closed PRs are retired, a Deployment is found again
//! rather than made twice, and a lifecycle costs a handful of writes.

use crate::support::World;
use crate::support::github_fake::RecordedRequest;

/// The writes among GitHub requests.
fn writes(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Deployments of PR `number`'s environment still shown as live.
fn live_deployments(world: &World, number: u64) -> Vec<(String, String)> {
    let environment = format!("pr-{number}");
    world
        .github
        .deployments(&world.repo)
        .into_iter()
        .filter(|d| d.environment == environment)
        .filter_map(|d| {
            let state = d.statuses.last().map(|s| s.state.clone());
            let live = matches!(
                state.as_deref(),
                None | Some("success" | "in_progress" | "queued" | "pending")
            );
            live.then(|| (d.sha.clone(), state.unwrap_or_default()))
        })
        .collect()
}

#[tokio::test]
async fn a_lifecycle_costs_a_handful_of_writes() {
    let mut world = World::new("writes", "").await;
    world.start().await;
    world.settle().await;
    let before = world.github.requests().len();
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.close(1, true).await;
    world.wait_comment(1, "Removed").await;
    world.settle().await;
    let requests = world.github.requests()[before..].to_vec();
    let writes = writes(&requests);
    println!(
        "one lifecycle: {} GitHub requests, {} writes:\n  {}",
        requests.len(),
        writes.len(),
        writes.join("\n  ")
    );
    assert!(writes.len() <= 6, "{writes:#?}");
    assert!(live_deployments(&world, 1).is_empty());
}

/// Creates a Deployment on the fake directly, as another process would.
async fn deploy_directly(world: &World, sha: &str, environment: &str, state: &str) -> u64 {
    let http = reqwest::Client::new();
    let base = format!("{}repos/{}", world.github.url(), world.repo);
    let post = |path: String, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .header("authorization", "token ghp_test_token")
            .header("user-agent", "test")
            .json(&body)
            .send()
    };
    let created: serde_json::Value = post(
        "/deployments".into(),
        serde_json::json!({ "ref": sha, "environment": environment,
            "transient_environment": true, "required_contexts": [] }),
    )
    .await
    .expect("create a Deployment")
    .json()
    .await
    .expect("JSON");
    let id = created["id"].as_u64().expect("an id");
    post(
        format!("/deployments/{id}/statuses"),
        serde_json::json!({ "state": state }),
    )
    .await
    .expect("a Deployment status");
    id
}

// Found in a chaos run: GitHub deactivates earlier Deployments only of
// non-transient environments, and previews are transient, so every
// replaced commit's Deployment stayed live.
#[tokio::test]
async fn deployments_of_replaced_commits_and_closed_prs_are_retired() {
    let mut world = World::new("retire", "").await;
    world.start().await;
    let first = world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    let second = world.push(1, "second").await;
    world.wait_stack_at(1, &second).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    assert_eq!(
        live_deployments(&world, 1),
        [(second.clone(), "success".to_owned())],
        "{first}'s Deployment is retired"
    );
    world.close(1, true).await;
    world.wait_comment(1, "Removed").await;
    world.settle().await;
    assert_eq!(live_deployments(&world, 1), []);
}

// Found in a chaos run: a commit deployed again (a force-push back to it)
// brings its retired Deployment back to success, and a process that
// remembered that Deployment as retired skipped it when the next commit
// replaced it, leaving two live Deployments.
#[tokio::test]
async fn a_deployment_brought_back_is_retired_again() {
    let mut world = World::new("revive", "").await;
    world.start().await;
    let first = world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    let second = world.push(1, "second").await;
    world.wait_stack_at(1, &second).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    world.push_sha(1, &first).await;
    world.wait_stack_at(1, &first).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    assert_eq!(
        live_deployments(&world, 1),
        [(first.clone(), "success".to_owned())]
    );
    let third = world.push(1, "third").await;
    world.wait_stack_at(1, &third).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    assert_eq!(
        live_deployments(&world, 1),
        [(third.clone(), "success".to_owned())],
        "{first}'s Deployment is retired again"
    );
}

// Found in a chaos run: a pass that created a Deployment and stopped before
// remembering it (a kill, a refused write) left it in progress for good,
// and the next pass made a second one for the same commit.
#[tokio::test]
async fn a_deployment_a_stopped_pass_made_is_found_again_not_made_twice() {
    let mut world = World::new("orphan", "").await;
    world.start().await;
    let sha = crate::support::github_fake::fake_sha(&format!("{}-orphan", world.app));
    world.push_image(&sha).await;
    deploy_directly(&world, &sha, "pr-1", "in_progress").await;
    world.open_pr_at(1, &sha, &world.repo.clone()).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    let ours: Vec<_> = world
        .github
        .deployments(&world.repo)
        .into_iter()
        .filter(|d| d.environment == "pr-1" && d.sha == sha)
        .collect();
    assert_eq!(ours.len(), 1, "{ours:#?}");
    assert_eq!(ours[0].statuses.last().unwrap().state, "success");
}

// Found in a chaos run: each waiting PR re-edited its comment every 30 s
// to say how long it had waited.
#[tokio::test]
async fn waiting_for_an_image_costs_no_writes() {
    let config = "preview:\n  image_timeout: 2h\n";
    let mut world = World::new("waitcost", config).await;
    world.start().await;
    let sha = crate::support::github_fake::fake_sha(&format!("{}-late", world.app));
    world.open_pr_at(1, &sha, &world.repo.clone()).await;
    world.wait_comment(1, "Waiting for the image").await;
    world.settle().await;
    let before = writes(&world.github.requests()).len();
    for _ in 0..10 {
        world.advance(std::time::Duration::from_secs(6 * 60));
        world.resync().await;
    }
    let spent = writes(&world.github.requests()).len() - before;
    assert_eq!(spent, 0, "an hour of waiting wrote to GitHub");
    world.push_image(&sha).await;
    world.resync().await;
    world.wait_comment(1, "Ready").await;
}

// Found in a chaos run: a stop between DELETE_COMPLETE and the final
// comment (or a close while pullstack was down) left the PR saying "Ready"
// with its Deployment live through every later resync, which lists only
// open PRs and live stacks. (moto's ListStacks gives no DeletionTime, which
// pullstack then takes as recent.)
#[tokio::test]
async fn a_pr_closed_while_pullstack_was_down_still_gets_its_final_word() {
    let mut world = World::new("healed", "").await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    world.kill();

    // While it is down, the PR closes and its stack goes.
    world.close(1, false).await;
    let cloudformation = aws_sdk_cloudformation::Client::new(&world.sdk);
    cloudformation
        .delete_stack()
        .stack_name(world.stack_name(1))
        .send()
        .await
        .expect("DeleteStack");
    world.wait_stack_gone(1).await;

    world.start().await;
    world.wait_comment(1, "Removed").await;
    world.settle().await;
    assert_eq!(live_deployments(&world, 1), []);
}
