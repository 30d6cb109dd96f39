//! `pullstack handle-event` as a GitHub Actions step runs it: the binary,
//! the event's payload in a file, moto for AWS and the GitHub fake. Each run
//! finishes its reconcile before it exits, so nothing here waits on a clock.

use crate::support;
use crate::support::github_fake::{FakePr, GitHubFake, fake_sha};
use crate::support::payloads::{self, PrPayload};
use crate::support::{BOT, WRITER, World};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// One run's files: the config, the event payload and `GITHUB_OUTPUT`.
struct Step {
    dir: tempfile::TempDir,
    /// More environment for the run.
    env: Vec<(&'static str, &'static str)>,
}

impl Step {
    fn new(config_yaml: &str) -> Step {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pullstack.yaml"), config_yaml).unwrap();
        Step {
            dir,
            env: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `pullstack handle-event` for `event` with its payload at `event_path`.
    async fn run(&self, github: &str, event: &str, event_path: &Path) -> Output {
        let output = self.path("github_output");
        let config = self.path("pullstack.yaml");
        let moto = support::moto_endpoint();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pullstack"))
            .arg("handle-event")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event)
            .env("GITHUB_EVENT_PATH", event_path)
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_API_URL", github)
            .env("GITHUB_TOKEN", "ghs_actions_token")
            .env("PULLSTACK_CONFIG", &config)
            .env("AWS_ENDPOINT_URL", &moto)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .envs(self.env.iter().copied())
            .output()
            .await
            .expect("run pullstack handle-event")
    }

    /// Writes `body` as the event payload and runs handle-event on it.
    async fn deliver(&self, github: &str, event: &str, body: &[u8]) -> Output {
        let path = self.path("event.json");
        std::fs::write(&path, body).unwrap();
        self.run(github, event, &path).await
    }

    /// The step outputs written so far (the last value of each name wins).
    fn outputs(&self) -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(self.path("github_output")).unwrap_or_default();
        let mut outputs = BTreeMap::new();
        let mut lines = text.lines();
        while let Some(header) = lines.next() {
            let (name, delimiter) = header.split_once("<<").expect("name<<delimiter");
            let value: Vec<&str> = lines.by_ref().take_while(|l| *l != delimiter).collect();
            outputs.insert(name.to_owned(), value.join("\n"));
        }
        outputs
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn pr_payload(world: &World, action: &str, pr: &FakePr) -> Vec<u8> {
    payloads::pull_request(&PrPayload {
        action,
        repo: &world.repo,
        number: pr.number,
        head_sha: &pr.head_sha,
        head_ref: &pr.head_ref,
        head_repo: &world.repo,
        base_ref: &pr.base_ref,
        title: &pr.title,
        merged: pr.merged,
        labels: &[],
        sender: &pr.user,
        label: None,
    })
}

/// Opened: the stack is up, and the PR has its comment, Deployment and
/// commit status, and the step its outputs. Closed: the stack is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_deploys_and_closed_tears_down() {
    let world = World::new("hev", "").await;
    let step = Step::new(&world.config_yaml);
    let sha = fake_sha(&format!("{}-7", world.app));
    world.push_image(&sha).await;
    let mut pr = FakePr {
        number: 7,
        title: "Change 7".into(),
        head_sha: sha.clone(),
        head_ref: "feature-7".into(),
        user: WRITER.into(),
        ..FakePr::default()
    };
    world.github.upsert_pr(&world.repo, pr.clone());

    let opened = step
        .deliver(
            &world.github.url(),
            "pull_request",
            &pr_payload(&world, "opened", &pr),
        )
        .await;
    assert!(opened.status.success(), "{}", stderr(&opened));
    let err = stderr(&opened);
    assert!(err.contains("::group::pullstack: PR #7"), "{err}");
    assert!(err.contains("::endgroup::"), "{err}");

    let stack = world.stack(7).await.expect("the stack exists");
    assert_eq!(stack.status.as_str(), "CREATE_COMPLETE");
    assert_eq!(stack.tag("pullstack:commit"), Some(sha.as_str()));
    let url = stack.output("Url").expect("the stack has a URL").to_owned();

    let sticky = world.sticky(7).expect("the sticky comment");
    assert_eq!(sticky.user, BOT);
    assert!(sticky.body.contains("Ready"), "{}", sticky.body);
    assert!(sticky.body.contains(&url), "{}", sticky.body);
    let deployments = world.github.deployments(&world.repo);
    assert!(
        deployments.iter().any(|d| d.environment == "pr-7"
            && d.sha == sha
            && d.statuses.last().is_some_and(|s| s.state == "success")),
        "{deployments:?}"
    );

    let outputs = step.outputs();
    assert_eq!(outputs.get("url"), Some(&url), "{outputs:?}");
    assert_eq!(outputs.get("stack-name"), Some(&world.stack_name(7)));
    assert_eq!(outputs.get("environment").map(String::as_str), Some("pr-7"));
    assert_eq!(outputs.get("commit"), Some(&sha));
    assert!(stdout(&opened).contains(&url), "{}", stdout(&opened));

    pr.state = "closed".into();
    world.github.upsert_pr(&world.repo, pr.clone());
    let closed = step
        .deliver(
            &world.github.url(),
            "pull_request",
            &pr_payload(&world, "closed", &pr),
        )
        .await;
    assert!(closed.status.success(), "{}", stderr(&closed));
    assert!(world.stack(7).await.is_none(), "the stack is deleted");
    let sticky = world.sticky(7).expect("the sticky comment");
    assert!(sticky.body.contains("Removed"), "{}", sticky.body);
    assert_eq!(world.bot_comments(7).len(), 1, "edited in place, not added");
    let outputs = step.outputs();
    assert_eq!(outputs.get("url").map(String::as_str), Some(""));
    assert_eq!(outputs.get("stack-name"), Some(&world.stack_name(7)));
}

/// A manual run looks at every open pull request, as the server's resync
/// does, and deploys the one that has no environment yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_resyncs_every_open_pull_request() {
    let world = World::new("hevrs", "").await;
    let step = Step::new(&world.config_yaml);
    let sha = fake_sha(&format!("{}-5", world.app));
    world.push_image(&sha).await;
    world.github.upsert_pr(
        &world.repo,
        FakePr {
            number: 5,
            head_sha: sha.clone(),
            head_ref: "feature-5".into(),
            user: WRITER.into(),
            ..FakePr::default()
        },
    );
    let run = step
        .deliver(
            &world.github.url(),
            "workflow_dispatch",
            b"{\"inputs\": {}}",
        )
        .await;
    assert!(run.status.success(), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("::group::pullstack: every open pull request and owned stack")
            && err.contains("::group::pullstack: PR #5"),
        "{err}"
    );
    let stack = world.stack(5).await.expect("the stack exists");
    assert_eq!(stack.tag("pullstack:commit"), Some(sha.as_str()));
    assert!(world.sticky(5).is_some_and(|c| c.body.contains("Ready")));
}

/// A pinned login (`PULLSTACK_GITHUB_LOGIN`) is not asked from GitHub: an
/// Actions token could not answer `GET /user`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_login_is_not_asked_for() {
    let world = World::new("hevid", "").await;
    let mut step = Step::new(&world.config_yaml);
    step.env.push(("PULLSTACK_GITHUB_LOGIN", BOT));
    let pr = FakePr {
        number: 3,
        state: "closed".into(),
        user: WRITER.into(),
        ..FakePr::default()
    };
    world.github.upsert_pr(&world.repo, pr.clone());
    let run = step
        .deliver(
            &world.github.url(),
            "pull_request",
            &pr_payload(&world, "closed", &pr),
        )
        .await;
    assert!(run.status.success(), "{}", stderr(&run));
    let requests = world.github.requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| r.path != "/user"), "{requests:?}");
}

/// Mistakes in the workflow fail the step before any GitHub call; an event
/// that asks for nothing succeeds without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_before_calling_github() {
    let github = GitHubFake::start().await;
    github.add_repo("octo/app", "main");
    let step = Step::new("app: demo\nrepository: octo/app\n");

    let missing = step
        .run(&github.url(), "pull_request", &step.path("nope.json"))
        .await;
    assert_eq!(missing.status.code(), Some(1));
    let err = stderr(&missing);
    assert!(
        err.contains("cannot read the pull_request event's payload from")
            && err.contains("nope.json"),
        "{err}"
    );

    let body = payloads::fixture("rust-lang-bors/pull-request-opened.json");
    let unknown = step.deliver(&github.url(), "frobnicate", &body).await;
    assert_eq!(unknown.status.code(), Some(1));
    let err = stderr(&unknown);
    assert!(
        err.contains("pullstack does not handle \"frobnicate\" events"),
        "{err}"
    );

    let broken = step
        .deliver(&github.url(), "pull_request", b"{\"action\": ")
        .await;
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stderr(&broken).contains("not valid JSON"),
        "{}",
        stderr(&broken)
    );

    let assigned = payloads::fixture("pull_request/assigned.payload.json");
    let ignored = step.deliver(&github.url(), "pull_request", &assigned).await;
    assert!(ignored.status.success(), "{}", stderr(&ignored));
    assert!(
        stdout(&ignored).contains("nothing to do"),
        "{}",
        stdout(&ignored)
    );

    assert_eq!(github.request_count(), 0, "{:?}", github.requests());
}
