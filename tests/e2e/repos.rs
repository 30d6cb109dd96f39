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
pub(crate) async fn org(prefix: &str, extra: &str) -> World {
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
pub(crate) fn add(world: &World, name: &str, config: &str) -> String {
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
pub(crate) async fn open_pr(world: &World, repo: &str, number: u64) -> (String, serde_json::Value) {
    open_pr_changing(world, repo, number, None).await
}

/// [`open_pr`], whose head commit writes `config` as `.pullstack.yaml`.
async fn open_pr_changing(
    world: &World,
    repo: &str,
    number: u64,
    config: Option<&str>,
) -> (String, serde_json::Value) {
    let sha = fake_sha(&format!("{repo}-{number}-open"));
    world.push_image(&sha).await;
    if let Some(config) = config {
        world.github.set_file(repo, &sha, ".pullstack.yaml", config);
    }
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

pub(crate) fn pr_payload(repo: &str, pr: &FakePr, action: &str) -> Vec<u8> {
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
pub(crate) fn bot_comments(world: &World, repo: &str, number: u64) -> Vec<String> {
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
            ".pullstack.yaml:1:1: app: \"{app}-one\" is already the app of {}",
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
    let left = world.aws.stacks.describe(&stack).await.unwrap().unwrap();
    assert_eq!(left.status.as_str(), "CREATE_COMPLETE");
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

#[tokio::test]
async fn a_pr_that_changes_the_config_gets_a_pullstack_config_check_run() {
    let mut world = org("orgchk", "").await;
    let app = world.app.clone();
    let repo = add(&world, "web", &format!("app: {app}-web\n"));
    world.start().await;

    let broken = format!("app: {app}-web\npreview:\n  port: lots\n");
    let (sha, _) = open_pr_changing(&world, &repo, 1, Some(&broken)).await;
    world.settle().await;
    let runs = world.github.check_runs(&repo, &sha);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run.name, "pullstack/config");
    assert_eq!(
        (run.status.as_str(), run.conclusion.as_deref()),
        ("completed", Some("failure"))
    );
    let summary = run.summary.as_deref().unwrap();
    assert!(
        summary.contains(".pullstack.yaml:3:9: preview.port: invalid type"),
        "{summary}"
    );
    assert_eq!(run.annotations.len(), 1);
    let note = &run.annotations[0];
    assert_eq!(
        (
            note.path.as_str(),
            note.start_line,
            note.start_column,
            note.annotation_level.as_str()
        ),
        (".pullstack.yaml", 3, Some(9), "failure")
    );
    assert!(
        note.message.starts_with("preview.port: invalid type"),
        "{}",
        note.message
    );
    // Until it is merged, the PR's environment runs under the default branch's config.
    world
        .wait_named_stack_at(&format!("{app}-web-pr-1"), &sha)
        .await;
    // Checked once per commit, however often the PR is looked at.
    let pr = world.github.pr(&repo, 1).unwrap();
    world
        .deliver("pull_request", pr_payload(&repo, &pr, "synchronize"))
        .await;
    world.settle().await;
    assert_eq!(world.github.check_runs(&repo, &sha).len(), 1);

    // A valid change passes; one that asks past the server's ceilings does not.
    let valid = format!("app: {app}-web\npreview:\n  port: 3000\n");
    let (sha, _) = open_pr_changing(&world, &repo, 2, Some(&valid)).await;
    let too_big = format!("app: {app}-web\npreview:\n  memory: \"65536\"\n");
    let (big_sha, _) = open_pr_changing(&world, &repo, 3, Some(&too_big)).await;
    // A PR that leaves the file alone gets no check.
    let (plain_sha, _) = open_pr(&world, &repo, 4).await;
    world.settle().await;
    let runs = world.github.check_runs(&repo, &sha);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].conclusion.as_deref(), Some("success"));
    assert!(runs[0].annotations.is_empty());
    let runs = world.github.check_runs(&repo, &big_sha);
    assert_eq!(runs[0].conclusion.as_deref(), Some("failure"));
    let note = &runs[0].annotations[0];
    assert_eq!((note.start_line, note.start_column), (3, Some(3)));
    assert!(
        note.message.contains("allow.memory: 2048"),
        "{}",
        note.message
    );
    assert!(world.github.check_runs(&repo, &plain_sha).is_empty());
}

/// The Check Runs port against the fake, which checks bodies as GitHub
/// does: more than 50 annotations go in batches, and what GitHub refuses
/// the fake refuses too.
#[tokio::test]
async fn check_runs_are_written_as_github_takes_them() {
    use pullstack::domain::naming::RepoName;
    use pullstack::github::checks::{Annotation, CheckRun, CheckStatus, Conclusion, Level, Output};
    use pullstack::github::client::{Auth, Forge};
    let github = crate::support::github_fake::GitHubFake::start().await;
    github.add_repo("octo/checks", "main");
    let repo = RepoName::parse("octo/checks").unwrap();
    // An App installation's token: GitHub refuses check runs to a
    // personal one (`ghp_`), and so does the fake.
    let auth = Auth::Token("ghs_test".to_owned().into());
    let forge = Forge::connect(&github.url(), repo, auth, 6000)
        .await
        .unwrap();
    let sha = fake_sha("checked");
    let notes = (1..=120)
        .map(|n| Annotation::at("a.yaml", n, 2, Level::Warning, format!("note {n}")))
        .collect();
    let mut run = CheckRun {
        name: "pullstack/checks".into(),
        head_sha: sha.clone(),
        status: CheckStatus::InProgress,
        conclusion: None,
        output: Some(Output {
            title: "Checking".into(),
            summary: "120 notes".into(),
            annotations: notes,
        }),
    };
    let id = forge.create_check_run(&run).await.unwrap();
    let stored = github.check_runs("octo/checks", &sha);
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].annotations.len(), stored[0].requests), (120, 3));
    assert_eq!(stored[0].status, "in_progress");
    run.status = CheckStatus::Completed;
    run.conclusion = Some(Conclusion::Success);
    run.output = None;
    forge.update_check_run(id, &run).await.unwrap();
    let listed = forge.check_runs(&sha, "pullstack/checks").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id, listed[0].status),
        (id, CheckStatus::Completed)
    );
    assert_eq!(listed[0].conclusion, Some(Conclusion::Success));
    assert!(forge.check_runs(&sha, "other").await.unwrap().is_empty());

    // What GitHub refuses with 422.
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        let request = http
            .post(format!("{}repos/octo/checks/check-runs", github.url()))
            .header("authorization", "token ghs_test")
            .json(&body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let note = |level: &str| serde_json::json!({ "path": "a", "start_line": 1, "end_line": 1, "annotation_level": level, "message": "m" });
    let output = |notes: Vec<serde_json::Value>| serde_json::json!({ "title": "t", "summary": "s", "annotations": notes });
    assert_eq!(
        post(serde_json::json!({ "head_sha": sha })).await,
        422,
        "no name"
    );
    assert_eq!(
        post(serde_json::json!({ "name": "x" })).await,
        422,
        "no head_sha"
    );
    let base = |extra: serde_json::Value| {
        let mut body = serde_json::json!({ "name": "x", "head_sha": sha });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    assert_eq!(
        post(base(serde_json::json!({ "status": "done" }))).await,
        422
    );
    assert_eq!(
        post(base(serde_json::json!({ "status": "completed" }))).await,
        422
    );
    assert_eq!(
        post(base(serde_json::json!({ "conclusion": "passed" }))).await,
        422
    );
    let fifty_one = output((0..51).map(|_| note("notice")).collect());
    assert_eq!(
        post(base(serde_json::json!({ "output": fifty_one }))).await,
        422
    );
    let bad_level = output(vec![note("error")]);
    assert_eq!(
        post(base(serde_json::json!({ "output": bad_level }))).await,
        422
    );
    let span = serde_json::json!({ "path": "a", "start_line": 1, "end_line": 2, "start_column": 1,
        "annotation_level": "notice", "message": "m" });
    assert_eq!(
        post(base(serde_json::json!({ "output": output(vec![span]) }))).await,
        422
    );
    let no_summary = serde_json::json!({ "title": "t" });
    assert_eq!(
        post(base(serde_json::json!({ "output": no_summary }))).await,
        422
    );
    let fifty = output((0..50).map(|_| note("failure")).collect());
    let ok = base(serde_json::json!({ "conclusion": "failure", "output": fifty }));
    assert_eq!(post(ok).await, 201);
}

/// Attack: one installation's repository opens pull requests faster than
/// GitHub's write limit lets it comment; another installation's pull
/// request must not wait behind them, since GitHub counts its limits per
/// installation.
#[tokio::test]
async fn a_noisy_installation_does_not_hold_back_anothers_writes() {
    // A write every 7.5 s after the first: the noisy one's line is long.
    let mut world = org("orgpace", "github:\n  writes_per_minute: 8\n").await;
    let app = world.app.clone();
    let noisy = add(&world, "noisy", &format!("app: {app}-noisy\n"));
    let quiet = add(&world, "quiet", &format!("app: {app}-quiet\n"));
    world.github.add_installation(1, &[&noisy]);
    world.github.add_installation(2, &[&quiet]);
    world.start().await;
    let mut shas = Vec::new();
    for number in 1..=4 {
        shas.push(open_pr(&world, &noisy, number).await.0);
    }
    for (number, sha) in (1..=4).zip(&shas) {
        world
            .wait_named_stack_at(&format!("{app}-noisy-pr-{number}"), sha)
            .await;
    }
    let commented = |repo: &str, number: u64| !bot_comments(&world, repo, number).is_empty();
    assert!(
        !commented(&noisy, 4),
        "the noisy repository's last comment must still be waiting for its turn"
    );

    open_pr(&world, &quiet, 1).await;
    crate::support::eventually(
        "the quiet repository's comment",
        crate::support::WAIT,
        || async { commented(&quiet, 1) },
    )
    .await;
    let posts: Vec<String> = (world.github.requests().into_iter())
        .filter(|r| r.method == "POST" && r.path.ends_with("/comments"))
        .map(|r| r.path)
        .collect();
    let at = |path: String| posts.iter().position(|p| *p == path);
    let quiet_at = at(format!("/repos/{quiet}/issues/1/comments")).unwrap();
    let noisy_last = at(format!("/repos/{noisy}/issues/4/comments"));
    assert!(
        noisy_last.is_none_or(|noisy| quiet_at < noisy),
        "the quiet installation's comment waited behind the noisy one's: {posts:#?}"
    );
}

/// A team checks its `.pullstack.yaml` before pushing it, against the
/// server's config, and gets the error the Check Run would show.
#[test]
fn config_check_reads_a_repository_file_over_the_server_config() {
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("pullstack.yaml");
    std::fs::write(
        &server,
        "app: platform\nrepositories: [acme/*]\nallow:\n  cpu: 512\n",
    )
    .unwrap();
    let own = dir.path().join(".pullstack.yaml");
    std::fs::write(&own, "app: web\npreview:\n  cpu: \"1024\"\n").unwrap();
    let check = |repo: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pullstack"))
            .args(["config", "check", own.to_str().unwrap(), "--server"])
            .args([server.to_str().unwrap(), "--repository", repo])
            .output()
            .unwrap()
    };
    let output = check("acme/web");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "{}:3:3: preview.cpu: 1024 is more than this server allows (allow.cpu: 512)",
            own.display()
        )
    );
    std::fs::write(&own, "app: web\npreview:\n  cpu: \"512\"\n").unwrap();
    let output = check("acme/web");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ok (app web, repository acme/web)"),
        "{stdout}"
    );
    // The server's own config names what it serves.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pullstack"))
        .args(["config", "check", server.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ok (app platform, repository acme/*)"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in every repository this server serves"),
        "{stderr}"
    );
}
