//! Many repositories, one server: `repositories:` serves every repository
//! of the GitHub App's installations that matches a glob, each under its
//! own `.pullstack.yaml` read from its default branch.

use crate::support::github_fake::{FakePr, fake_sha};
use crate::support::payloads::{self, PrPayload};
use crate::support::{WRITER, World};

/// The test App's private key.
fn app_key() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-app-key.pem"
    ))
    .unwrap()
}

/// A world whose server serves `octo/<app>-*` through the test App, with
/// `extra` server settings; repositories are added with [`add`].
async fn org(prefix: &str, extra: &str) -> World {
    let mut world = World::new(prefix, extra).await;
    world.app_key = Some(app_key());
    let single = format!("repository: {}\n", world.repo);
    let many = format!("repositories:\n- octo/{}-*\n", world.app);
    assert!(world.config_yaml.contains(&single));
    world.config_yaml = world.config_yaml.replace(&single, &many);
    world
}

/// Adds repository `octo/<app>-<name>` with `.pullstack.yaml` on `main`;
/// returns its full name.
fn add(world: &World, name: &str, config: &str) -> String {
    let repo = format!("octo/{}-{name}", world.app);
    add_named(world, &repo, config);
    repo
}

fn add_named(world: &World, repo: &str, config: &str) {
    world.github.add_repo(repo, "main");
    world.github.set_permission(repo, WRITER, "write");
    world
        .github
        .set_file(repo, "main", ".pullstack.yaml", config);
}

/// Opens PR `number` on `repo` with its image pushed; returns the head sha
/// and the delivery's answer.
async fn open_pr(world: &World, repo: &str, number: u64) -> (String, serde_json::Value) {
    let sha = fake_sha(&format!("{repo}-{number}-open"));
    world.push_image(&sha).await;
    let pr = FakePr {
        number,
        title: format!("Change {number}"),
        head_sha: sha.clone(),
        head_ref: format!("feature-{number}"),
        head_repo: repo.to_owned(),
        user: WRITER.to_owned(),
        ..FakePr::default()
    };
    world.github.upsert_pr(repo, pr.clone());
    let (status, answer) = world
        .deliver("pull_request", pr_payload(repo, &pr, "opened"))
        .await;
    assert_eq!(status, 202, "{answer}");
    (sha, answer)
}

fn pr_payload(repo: &str, pr: &FakePr, action: &str) -> Vec<u8> {
    payloads::pull_request(&PrPayload {
        action,
        repo,
        number: pr.number,
        head_sha: &pr.head_sha,
        head_ref: &pr.head_ref,
        head_repo: &pr.head_repo,
        base_ref: &pr.base_ref,
        title: &pr.title,
        merged: pr.merged,
        labels: &[],
        sender: &pr.user,
        label: None,
    })
}

/// The value of variable `name` in stack `stack`'s task definition.
async fn task_env(world: &World, stack: &str, name: &str) -> Option<String> {
    let stack = world.aws.stacks.describe(stack).await.unwrap()?;
    let task = stack.output("TaskDefinitionArn")?.to_owned();
    let ecs = aws_sdk_ecs::Client::new(&world.sdk);
    let described = ecs
        .describe_task_definition()
        .task_definition(task)
        .send()
        .await
        .unwrap();
    let container = &described.task_definition()?.container_definitions()[0];
    (container.environment().iter())
        .find(|kv| kv.name() == Some(name))
        .and_then(|kv| kv.value().map(str::to_owned))
}

/// pullstack's comments on `repo`'s PR `number`.
fn bot_comments(world: &World, repo: &str, number: u64) -> Vec<String> {
    (world.github.comments(repo, number).into_iter())
        .filter(|c| c.user == "pullstack[bot]")
        .map(|c| c.body)
        .collect()
}

/// How many times `repo`'s `.pullstack.yaml` was parsed, from `/metrics`.
async fn parses(world: &World, repo: &str) -> u64 {
    let metrics = world.metrics().await;
    let line = format!("pullstack_repo_config_parses_total{{repo=\"{repo}\"}} ");
    (metrics.lines())
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn two_repositories_each_get_stacks_and_comments_under_their_own_config() {
    let mut world = org("org", "").await;
    let app = world.app.clone();
    let web = add(
        &world,
        "web",
        &format!("app: {app}-web\npreview:\n  env:\n    MODE: web\n"),
    );
    let api = add(
        &world,
        "api",
        &format!("app: {app}-api\npreview:\n  port: 3000\n  env:\n    MODE: api\n"),
    );
    // Each in an installation of its own (two organisations, one App).
    world.github.add_installation(1, &[&web]);
    world.github.add_installation(2, &[&api]);
    world.start().await;

    // The same PR number in each repository: two environments, two apps.
    let (web_sha, _) = open_pr(&world, &web, 1).await;
    let (api_sha, _) = open_pr(&world, &api, 1).await;
    let web_stack = format!("{app}-web-pr-1");
    let api_stack = format!("{app}-api-pr-1");
    let stack = world.wait_named_stack_at(&web_stack, &web_sha).await;
    assert_eq!(stack.tag("pullstack:repo"), Some(web.as_str()));
    let stack = world.wait_named_stack_at(&api_stack, &api_sha).await;
    assert_eq!(stack.tag("pullstack:repo"), Some(api.as_str()));
    assert_eq!(
        task_env(&world, &web_stack, "MODE").await.as_deref(),
        Some("web")
    );
    assert_eq!(
        task_env(&world, &api_stack, "MODE").await.as_deref(),
        Some("api")
    );
    world.settle().await;
    for (repo, sha) in [(&web, &web_sha), (&api, &api_sha)] {
        let comments = bot_comments(&world, repo, 1);
        assert_eq!(comments.len(), 1, "{repo}: {comments:#?}");
        assert!(comments[0].contains("Ready"), "{repo}: {}", comments[0]);
        assert!(comments[0].contains(&sha[..7]), "{repo}: {}", comments[0]);
    }
    // Each repository's Deployment is on its own repository.
    assert_eq!(world.github.deployments(&web).len(), 1);
    assert_eq!(world.github.deployments(&api).len(), 1);

    // The config is read again for each delivery, and parsed again only
    // when its blob changes.
    let before = parses(&world, &web).await;
    assert_eq!(before, 1);
    let pr = world.github.pr(&web, 1).unwrap();
    let (status, _) = world
        .deliver("pull_request", pr_payload(&web, &pr, "edited"))
        .await;
    assert_eq!(status, 202);
    world.settle().await;
    let contents = format!("/repos/{web}/contents/.pullstack.yaml?ref=main");
    let reads = (world.github.requests().iter())
        .filter(|r| r.path == contents)
        .count();
    assert!(reads >= 2, "{reads} reads");
    assert_eq!(parses(&world, &web).await, 1);
    world.github.commit_file(
        &web,
        "main",
        ".pullstack.yaml",
        &format!("app: {app}-web\npreview:\n  env:\n    MODE: web2\n"),
    );
    let (status, _) = world
        .deliver("pull_request", pr_payload(&web, &pr, "edited"))
        .await;
    assert_eq!(status, 202);
    world.settle().await;
    assert_eq!(parses(&world, &web).await, 2);
}

/// Attack: a repository of someone else's, or one the operator did not
/// list, sends deliveries to the organisation's server; none may start
/// work or read that repository.
#[tokio::test]
async fn a_repository_outside_the_globs_is_ignored() {
    let mut world = org("orgout", "").await;
    let app = world.app.clone();
    let outside = format!("elsewhere/{app}-web");
    add_named(&world, &outside, &format!("app: {app}-out\n"));
    world.start().await;
    let (_, answer) = open_pr(&world, &outside, 1).await;
    assert_eq!(answer["status"], "ignored", "{answer}");
    let reason = answer["reason"].as_str().unwrap();
    assert!(reason.contains(&outside), "{reason}");
    world.settle().await;
    assert!(
        !(world.github.requests().iter()).any(|r| r.path.contains(&outside)),
        "the repository outside the globs was read"
    );
    assert!(bot_comments(&world, &outside, 1).is_empty());
    let stack = format!("{app}-out-pr-1");
    assert!(world.aws.stacks.describe(&stack).await.unwrap().is_none());
}

/// Attack: a repository's team asks for more than the operator allows
/// (bigger tasks than the account's budget) in its own `.pullstack.yaml`.
#[tokio::test]
async fn a_repository_asking_for_more_than_the_server_allows_is_refused_on_its_prs() {
    let mut world = org("orgcap", "allow:\n  cpu: 512\n").await;
    let app = world.app.clone();
    let big = add(
        &world,
        "big",
        &format!("app: {app}-big\npreview:\n  cpu: \"2048\"\n"),
    );
    world.start().await;
    open_pr(&world, &big, 1).await;
    world.settle().await;
    let comments = bot_comments(&world, &big, 1);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains(
            ".pullstack.yaml:3:3: preview.cpu: 2048 is more than this server allows (allow.cpu: 512)"
        ),
        "{}",
        comments[0]
    );
    let stack = format!("{app}-big-pr-1");
    assert!(world.aws.stacks.describe(&stack).await.unwrap().is_none());
}

/// Attack: a repository takes another's app name, so its stacks would be
/// named as the other's and its reconciler would delete them.
#[tokio::test]
async fn a_second_repository_with_the_same_app_name_is_refused() {
    let mut world = org("orgdup", "").await;
    let app = world.app.clone();
    let first = add(&world, "first", &format!("app: {app}-one\n"));
    world.start().await;
    let (sha, _) = open_pr(&world, &first, 1).await;
    world
        .wait_named_stack_at(&format!("{app}-one-pr-1"), &sha)
        .await;
    let copy = add(&world, "copy", &format!("app: {app}-one\n"));
    // The App is given the new repository.
    let body = serde_json::json!({
        "action": "added",
        "installation": { "id": 1, "account": { "login": "octo" } },
        "repositories_added": [{ "full_name": copy }],
    });
    let (status, _) = world
        .deliver(
            "installation_repositories",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(status, 202);
    world.settle().await;
    open_pr(&world, &copy, 1).await;
    world.settle().await;
    let comments = bot_comments(&world, &copy, 1);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains(&format!(
            "app \"{app}-one\" is already the app of {}",
            first.to_lowercase()
        )),
        "{}",
        comments[0]
    );
    // The first repository's environment is untouched.
    world
        .wait_named_stack_at(&format!("{app}-one-pr-1"), &sha)
        .await;
}

#[tokio::test]
async fn a_broken_config_on_the_default_branch_leaves_environments_alone_and_says_so_once() {
    let mut world = org("orgbrk", "").await;
    let app = world.app.clone();
    let repo = add(&world, "web", &format!("app: {app}-web\n"));
    world.start().await;
    let (sha, _) = open_pr(&world, &repo, 1).await;
    let stack = format!("{app}-web-pr-1");
    world.wait_named_stack_at(&stack, &sha).await;
    world.settle().await;

    let broken = format!("app: {app}-web\npreview:\n  port: lots\n");
    world
        .github
        .commit_file(&repo, "main", ".pullstack.yaml", &broken);
    let (_, answer) = open_pr(&world, &repo, 2).await;
    assert_eq!(answer["status"], "queued");
    world.settle().await;
    let comments = bot_comments(&world, &repo, 2);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains(".pullstack.yaml:3:9: preview.port: invalid type"),
        "{}",
        comments[0]
    );
    assert!(comments[0].contains("leaves this repository's environments as they are"));
    // Said once, however often the PR is pushed to.
    let pr = world.github.pr(&repo, 2).unwrap();
    world
        .deliver("pull_request", pr_payload(&repo, &pr, "synchronize"))
        .await;
    world.settle().await;
    assert_eq!(bot_comments(&world, &repo, 2).len(), 1);
    // PR 1 is closed meanwhile: its environment stays until the config is fixed.
    let mut closed = world.github.pr(&repo, 1).unwrap();
    closed.state = "closed".into();
    world.github.upsert_pr(&repo, closed.clone());
    world
        .deliver("pull_request", pr_payload(&repo, &closed, "closed"))
        .await;
    world.settle().await;
    assert!(world.aws.stacks.describe(&stack).await.unwrap().is_some());
    assert!(
        world
            .aws
            .stacks
            .describe(&format!("{app}-web-pr-2"))
            .await
            .unwrap()
            .is_none()
    );

    // Fixed: the repository runs again and catches up.
    world.github.commit_file(
        &repo,
        "main",
        ".pullstack.yaml",
        &format!("app: {app}-web\n"),
    );
    world
        .deliver("pull_request", pr_payload(&repo, &pr, "synchronize"))
        .await;
    world
        .wait_named_stack_at(&format!("{app}-web-pr-2"), &pr.head_sha)
        .await;
    world.wait_named_stack_gone(&stack).await;
}
