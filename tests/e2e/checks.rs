//! Smoke checks after a ready deploy, reported as a Check Run: against a
//! local HTTP server the test controls (the previews' own names do not
//! resolve), through `POST /webhook`, moto and the GitHub fake.

use crate::support::edge::{edge_yaml, zone};
use crate::support::{World, capture_logs, merge_yaml};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::{Arc, Mutex};

/// A local stand-in for the preview; returns its origin.
async fn preview_app() -> String {
    let app = axum::Router::new()
        .route("/", get(|| async { "<title>Home</title>" }))
        .route(
            "/teapot",
            get(|| async { (StatusCode::IM_A_TEAPOT, "short and stout") }),
        )
        .route(
            "/slow",
            // Never answers: the check's own timeout must end it.
            get(std::future::pending::<&str>),
        )
        .route(
            "/hostile",
            get(|| async { "x | </code> <img src=x> [a](http://evil) @octocat\n| ## row |" }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

/// The test App's private key: the Checks API is for Apps.
fn app_key() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-app-key.pem"
    ))
    .unwrap()
}

async fn world(prefix: &str, checks: &str) -> World {
    world_as(prefix, checks, Some(app_key())).await
}

/// A world authenticated by `app_key`, or by a personal token without one.
async fn world_as(prefix: &str, checks: &str, app_key: Option<String>) -> World {
    let mut world = World::new(prefix, "").await;
    world.app_key = app_key;
    world.config_yaml = world.config_yaml.replace(
        "ready_check: false",
        &format!("ready_check: false\n  checks:\n{checks}"),
    );
    world.checks_origin = Some(preview_app().await);
    world.start().await;
    world
}

#[tokio::test]
async fn passing_checks_conclude_a_successful_check_run() {
    let checks = "    - name: home\n      path: /\n      body_contains: \"<title>\"\n\
                  \x20   - name: teapot\n      path: /teapot\n      expect_status: 418\n\
                  \x20     body_matches: \"^short\"\n";
    let world = world("checkok", checks).await;
    let sha = world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    let runs = world.github.check_runs(&world.repo, &sha);
    let [run] = &runs[..] else {
        panic!("one check run: {runs:?}")
    };
    assert_eq!(run.name, "pullstack/checks");
    assert_eq!(
        (run.status.as_str(), run.conclusion.as_deref()),
        ("completed", Some("success"))
    );
    assert_eq!(run.requests, 2, "created in progress, then concluded");
    assert_eq!(run.title.as_deref(), Some("2 of 2 checks passed"));
    let summary = run.summary.as_deref().unwrap();
    assert!(summary.contains("| home | passed |"), "{summary}");
    assert!(
        summary.contains("| 418 | <code>short and stout</code> |"),
        "{summary}"
    );
}

#[tokio::test]
async fn a_wrong_status_a_body_mismatch_and_a_timeout_fail_the_check_run() {
    let checks = "    - name: status\n      path: /teapot\n\
                  \x20   - name: body\n      path: /\n      body_matches: \"^<h1>\"\n\
                  \x20   - name: slow\n      path: /slow\n      timeout: 1s\n";
    let world = world("checkfail", checks).await;
    let sha = world.open_pr(2).await;
    world.wait_comment(2, "Ready").await;
    world.settle().await;
    let runs = world.github.check_runs(&world.repo, &sha);
    let [run] = &runs[..] else {
        panic!("one check run: {runs:?}")
    };
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert_eq!(run.title.as_deref(), Some("3 of 3 checks failed"));
    let summary = run.summary.as_deref().unwrap();
    assert!(
        summary.contains("expected status 200, got 418"),
        "{summary}"
    );
    assert!(summary.contains("does not match"), "{summary}");
    assert!(summary.contains("no answer within 1s"), "{summary}");
    // A failed check leaves the environment up.
    assert!(world.stack(2).await.is_some());
}

// Attack: the PR's code serves a body built to break out of the summary
// table, inject Markdown or HTML, and mention people.
#[tokio::test]
async fn a_hostile_body_is_escaped_in_the_summary() {
    let checks = "    - name: hostile\n      path: /hostile\n";
    let world = world("checkesc", checks).await;
    let sha = world.open_pr(3).await;
    world.wait_comment(3, "Ready").await;
    world.settle().await;
    let runs = world.github.check_runs(&world.repo, &sha);
    let summary = runs[0].summary.clone().unwrap();
    assert_eq!(summary.matches("</code>").count(), 1, "{summary}");
    for bad in ["@octocat", "<img", "[a]("] {
        assert!(!summary.contains(bad), "{bad} in {summary}");
    }
    assert!(summary.contains("&#64;octocat"), "{summary}");
}

#[tokio::test]
async fn a_personal_token_falls_back_to_a_commit_status() {
    let checks = "    - name: status\n      path: /teapot\n";
    let world = world_as("checkpat", checks, None).await;
    let sha = world.open_pr(4).await;
    world.wait_comment(4, "Ready").await;
    world.settle().await;
    assert!(world.github.check_runs(&world.repo, &sha).is_empty());
    let statuses: Vec<_> = (world.github.statuses(&world.repo, &sha).into_iter())
        .filter(|s| s.context == "pullstack/checks")
        .collect();
    let states: Vec<_> = statuses.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["pending", "failure"], "{statuses:?}");
    let last = statuses.last().unwrap();
    assert_eq!(last.description.as_deref(), Some("1 of 1 checks failed"));

    // Remembered: the next commit goes straight to the commit status.
    let refused = || {
        (world.github.requests().into_iter())
            .filter(|r| r.path.contains("/check-runs"))
            .count()
    };
    let before = refused();
    let next = world.push(4, "second").await;
    world.wait_comment(4, &next[..7]).await;
    world.settle().await;
    assert_eq!(refused(), before, "no second try at a check run");
    let states: Vec<_> = (world.github.statuses(&world.repo, &next).into_iter())
        .filter(|s| s.context == "pullstack/checks")
        .map(|s| s.state)
        .collect();
    assert_eq!(states, ["pending", "failure"]);
}

/// A private preview's stand-in: `/` answers 200 only with the bypass
/// header set to `value` (403 otherwise, as the access rules would),
/// `/echo` answers with the header's value, and `/away` redirects to
/// `elsewhere`. Returns its origin.
async fn private_app(value: String, elsewhere: String) -> String {
    let app = axum::Router::new()
        .route(
            "/",
            get(move |headers: HeaderMap| async move {
                match headers.get("x-pullstack-bypass") {
                    Some(got) if got.as_bytes() == value.as_bytes() => (StatusCode::OK, "welcome"),
                    _ => (StatusCode::FORBIDDEN, "sign in first"),
                }
            }),
        )
        .route(
            "/echo",
            get(|headers: HeaderMap| async move {
                let got = headers.get("x-pullstack-bypass").cloned();
                format!("you sent {:?}", got.map(|v| v.to_str().unwrap().to_owned()))
            }),
        )
        .route(
            "/away",
            get(move || async move { axum::response::Redirect::to(&format!("{elsewhere}/")) }),
        );
    serve(app).await
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

/// Another origin, which records the bypass headers it was sent.
async fn elsewhere() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/",
        get(move |headers: HeaderMap| async move {
            if let Some(v) = headers.get("x-pullstack-bypass") {
                kept.lock().unwrap().push(v.to_str().unwrap().to_owned());
            }
            "elsewhere"
        }),
    );
    (serve(app).await, seen)
}

/// A world whose previews are private on the shared edge, with the
/// bypass secret `secret(app)` (a partial ARN, without the suffix AWS
/// adds, and short: moto checks the 128-character limit of the header
/// condition's value on the unresolved reference) and these `checks`.
async fn private_world(prefix: &str, checks: &str, secret: impl FnOnce(&str) -> String) -> World {
    let zone = zone(prefix).await;
    let mut world = World::new(prefix, &edge_yaml(&zone, "")).await;
    world.app_key = Some(app_key());
    let arn = secret(&world.app);
    world.config_yaml = merge_yaml(
        &world.config_yaml,
        &format!(
            "preview:\n  access:\n    allow_cidrs: [203.0.113.0/24]\n    bypass_secret_arn: {arn}\n"
        ),
    );
    world.config_yaml = world.config_yaml.replace(
        "ready_check: false",
        &format!("ready_check: false\n  checks:\n{checks}"),
    );
    world
}

/// The partial ARN of the app's access secret `name`.
fn secret_arn(app: &str, name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:pullstack/{app}/access/{name}")
}

// Attack: the bypass value lets anyone past a private preview's sign-in.
// It must reach the preview and nothing else: not the Check Run, not a
// comment, not the server's logs, not another origin the preview
// redirects to, not an excerpt of a body that echoes it back.
#[tokio::test]
async fn a_private_preview_gets_the_bypass_header_and_its_value_leaks_nowhere() {
    let logs = capture_logs();
    let checks = "    - name: home\n      path: /\n      body_contains: welcome\n\
                  \x20   - name: echo\n      path: /echo\n\
                  \x20   - name: away\n      path: /away\n      expect_status: 303\n";
    let mut world = private_world("chkbyp", checks, |app| secret_arn(app, "ci")).await;
    let value = format!("bypass-{:016x}", rand::random::<u64>());
    let secrets = aws_sdk_secretsmanager::Client::new(&world.sdk);
    secrets
        .create_secret()
        .name(format!("pullstack/{}/access/ci", world.app))
        .secret_string(&value)
        .send()
        .await
        .expect("create the bypass secret");
    let (other, seen) = elsewhere().await;
    world.checks_origin = Some(private_app(value.clone(), other).await);
    world.start().await;
    let sha = world.open_pr(5).await;
    world.wait_comment(5, "Ready").await;
    world.settle().await;

    let runs = world.github.check_runs(&world.repo, &sha);
    let [run] = &runs[..] else {
        panic!("one check run: {runs:?}")
    };
    let summary = run.summary.as_deref().unwrap();
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{summary}");
    assert!(summary.contains("<code>welcome</code>"), "{summary}");
    // The echo is masked, not cut to a prefix of the value.
    assert!(
        summary.contains("you sent Some&#40;&#34;&#42;&#42;&#42;&#34;&#41;"),
        "{summary}"
    );
    assert!(seen.lock().unwrap().is_empty(), "the header went elsewhere");
    let everything = format!(
        "{run:?}\n{:?}\n{:?}",
        world.github.requests(),
        world.bot_comments(5)
    );
    assert!(!everything.contains(&value), "the value reached GitHub");
    let logged = logs.text();
    assert!(logged.contains("smoke checks concluded"), "logs captured");
    assert!(!logged.contains(&value), "the value was logged");
}

#[tokio::test]
async fn an_unreadable_bypass_secret_fails_the_run_and_names_it() {
    let checks = "    - name: home\n      path: /\n";
    let mut world = private_world("chkno", checks, |app| secret_arn(app, "x")).await;
    let arn = secret_arn(&world.app, "x");
    let (other, _) = elsewhere().await;
    world.checks_origin = Some(private_app("unused".into(), other).await);
    world.start().await;
    let sha = world.open_pr(6).await;
    world.wait_comment(6, "Ready").await;
    world.settle().await;
    let runs = world.github.check_runs(&world.repo, &sha);
    let [run] = &runs[..] else {
        panic!("one check run: {runs:?}")
    };
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    let summary = run.summary.as_deref().unwrap();
    let named =
        pullstack::domain::checks::escape(&format!("the bypass secret {arn} could not be read"));
    assert!(summary.contains(&named), "{summary}");
    // The environment stays up.
    assert!(world.stack(6).await.is_some());
}

/// A private preview's stand-in behind a sign-in: `/` answers 200 with
/// the bypass header set to `value`, and otherwise redirects (302) to
/// `signin`, as the load balancer's login rule does. Counts the requests
/// that got past.
async fn signed_in_app(value: String, signin: String) -> (String, Arc<Mutex<u32>>) {
    let passed = Arc::new(Mutex::new(0));
    let counted = passed.clone();
    let app = axum::Router::new().route(
        "/",
        get(move |headers: HeaderMap| async move {
            match headers.get("x-pullstack-bypass") {
                Some(got) if got.as_bytes() == value.as_bytes() => {
                    *counted.lock().unwrap() += 1;
                    (StatusCode::OK, "welcome").into_response()
                }
                _ => {
                    let to = [(header::LOCATION, format!("{signin}/"))];
                    (StatusCode::FOUND, to).into_response()
                }
            }
        }),
    );
    (serve(app).await, passed)
}

// Attack: the bypass value lets anyone past a private preview's sign-in.
// The ready probe must carry it to the preview, so the preview is ready
// only once the app itself answers, and must not follow the sign-in
// redirect with it to another origin (whose page answers 200 and would
// pass for the app), nor show it in a comment or a log.
#[tokio::test]
async fn a_private_preview_is_ready_once_its_probe_gets_past_sign_in_with_the_bypass() {
    let logs = capture_logs();
    let checks = "    - name: home\n      path: /\n";
    let mut world = private_world("chkrdy", checks, |app| secret_arn(app, "ci")).await;
    world.config_yaml = world
        .config_yaml
        .replace("ready_check: false", "ready_check: true");
    let value = format!("bypass-{:016x}", rand::random::<u64>());
    let secret = format!("pullstack/{}/access/ci", world.app);
    let secrets = aws_sdk_secretsmanager::Client::new(&world.sdk);
    secrets
        .create_secret()
        .name(&secret)
        .secret_string("an-old-value")
        .send()
        .await
        .expect("create the bypass secret");
    let (signin, seen) = elsewhere().await;
    let (origin, passed) = signed_in_app(value.clone(), signin).await;
    world.checks_origin = Some(origin);
    world.start().await;
    world.open_pr(7).await;

    // The secret still holds a value the preview does not take: the probe
    // stops at the redirect to sign-in.
    world.wait_comment(7, "waiting for the app to answer").await;
    assert_eq!(*passed.lock().unwrap(), 0);

    // The value the preview takes: the next probe (polls run in real
    // time) reads it and gets in.
    secrets
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(&value)
        .send()
        .await
        .expect("rotate the bypass secret");
    world.wait_comment(7, "Ready").await;
    world.settle().await;
    assert!(*passed.lock().unwrap() >= 1, "the app saw the header");
    assert!(
        seen.lock().unwrap().is_empty(),
        "the header went to sign-in"
    );
    let everything = format!("{:?}\n{:?}", world.github.requests(), world.bot_comments(7));
    assert!(!everything.contains(&value), "the value reached GitHub");
    let logged = logs.text();
    assert!(logged.contains("environment ready"), "logs captured");
    assert!(!logged.contains(&value), "the value was logged");
}

/// A `check_run` "rerequested" delivery for pullstack's run `name` at
/// `sha` on PR `number`, created by App `app_id`, shaped as GitHub
/// documents it (there is no recorded sample among the fixtures).
fn check_run_payload(world: &World, name: &str, sha: &str, number: u64, app_id: u64) -> Vec<u8> {
    serde_json::json!({
        "action": "rerequested",
        "check_run": {
            "id": 1, "name": name, "head_sha": sha,
            "status": "completed", "conclusion": "failure",
            "app": {"id": app_id, "slug": "pullstack"},
            "check_suite": {"id": 2, "head_sha": sha},
            "pull_requests": [{
                "number": number,
                "head": {"ref": "feature", "sha": sha},
                "base": {"ref": "main", "sha": "0".repeat(40)}
            }]
        },
        "repository": {"full_name": world.repo},
        "sender": {"login": crate::support::WRITER},
        "installation": {"id": 1}
    })
    .to_string()
    .into_bytes()
}

/// The check runs named `pullstack/checks` at `sha`, oldest first.
fn runs(world: &World, sha: &str) -> Vec<crate::support::github_fake::FakeCheckRun> {
    world.github.check_runs(&world.repo, sha)
}

#[tokio::test]
async fn the_re_run_button_runs_the_checks_again_at_the_ready_commit() {
    let checks = "    - name: home\n      path: /\n";
    let world = world("checkrerun", checks).await;
    let sha = world.open_pr(7).await;
    world.wait_comment(7, "Ready").await;
    world.settle().await;
    assert_eq!(runs(&world, &sha).len(), 1);

    let (status, _) = world
        .deliver(
            "check_run",
            check_run_payload(&world, "pullstack/checks", &sha, 7, 29_310),
        )
        .await;
    assert_eq!(status, 202);
    world.settle().await;
    let again = runs(&world, &sha);
    assert_eq!(again.len(), 2, "a new run for the re-run: {again:?}");
    assert_eq!(again[1].conclusion.as_deref(), Some("success"));

    // A commit that is no longer the ready one: its run stays as it was.
    let next = world.push(7, "second").await;
    world.wait_comment(7, &next[..7]).await;
    world.settle().await;
    let (status, _) = world
        .deliver(
            "check_run",
            check_run_payload(&world, "pullstack/checks", &sha, 7, 29_310),
        )
        .await;
    assert_eq!(status, 202);
    world.settle().await;
    assert_eq!(
        runs(&world, &sha).len(),
        2,
        "the old commit was not checked"
    );
    assert_eq!(runs(&world, &next).len(), 1);
}

// Attack: a re-run of another App's check run, or of a run with another
// name, must not make pullstack run anything.
#[tokio::test]
async fn a_re_run_of_another_apps_or_names_run_is_ignored() {
    let checks = "    - name: home\n      path: /\n";
    let world = world("checkother", checks).await;
    let sha = world.open_pr(8).await;
    world.wait_comment(8, "Ready").await;
    world.settle().await;
    for payload in [
        check_run_payload(&world, "pullstack/checks", &sha, 8, 4242),
        check_run_payload(&world, "ci/tests", &sha, 8, 29_310),
    ] {
        let (status, answer) = world.deliver("check_run", payload).await;
        assert_eq!(status, 202);
        assert_eq!(answer["status"], "ignored", "{answer}");
    }
    // pullstack's own, last: exactly one new run, so the others made none.
    let ours = check_run_payload(&world, "pullstack/checks", &sha, 8, 29_310);
    assert_eq!(world.deliver("check_run", ours).await.0, 202);
    world.settle().await;
    assert_eq!(runs(&world, &sha).len(), 2);
}

#[tokio::test]
async fn the_check_command_runs_them_again_for_writers_only() {
    let checks = "    - name: home\n      path: /\n";
    let world = world("checkcmd", checks).await;
    let sha = world.open_pr(9).await;
    world.wait_comment(9, "Ready").await;
    world.settle().await;

    let refused = world
        .comment(9, crate::support::READER, "/pullstack check")
        .await;
    world.settle().await;
    assert_eq!(world.github.reactions(&world.repo, refused), ["-1"]);
    assert_eq!(runs(&world, &sha).len(), 1, "a reader runs nothing");

    let allowed = world
        .comment(9, crate::support::WRITER, "/pullstack check")
        .await;
    world.settle().await;
    assert_eq!(world.github.reactions(&world.repo, allowed), ["eyes"]);
    let again = runs(&world, &sha);
    assert_eq!(again.len(), 2, "{again:?}");
    assert_eq!(again[1].conclusion.as_deref(), Some("success"));
}

#[tokio::test]
async fn the_check_command_says_when_there_is_nothing_to_run() {
    let mut world = World::new("checknone", "").await;
    world.start().await;
    let sha = world.open_pr(10).await;
    world.wait_comment(10, "Ready").await;
    world.settle().await;
    world
        .comment(10, crate::support::WRITER, "/pullstack check")
        .await;
    let reply = world.next_comment(10).await;
    assert!(
        reply.body.contains("no smoke checks (`preview.checks`"),
        "{}",
        reply.body
    );
    assert!(runs(&world, &sha).is_empty());
}

/// Task checks: moto cannot run a task (`RunTask` with awsvpc answers 500,
/// and tasks never stop on their own), so these script `RunTask`,
/// `DescribeTasks` and `StopTask` with aws-smithy-mocks on the real ECS
/// client; every other call (the stacks, CloudWatch Logs) goes to moto.
mod tasks {
    use super::app_key;
    use crate::support::World;
    use crate::support::mocks::{self, Scripted};
    use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
    use aws_sdk_ecs::operation::run_task::RunTaskOutput;
    use aws_sdk_ecs::operation::stop_task::StopTaskOutput;
    use aws_sdk_ecs::types::{Container, Task, TaskStopCode};
    use aws_smithy_mocks::{Rule, mock};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    const TASK_ID: &str = "6b6b6b6b6b6b4c4c4c4c4c4c3d3d3d3d";

    fn task_arn() -> String {
        format!("arn:aws:ecs:us-east-1:123456789012:task/cluster/{TASK_ID}")
    }

    /// The exit code the scripted task stopped with; `None` while it runs.
    type Exit = Arc<Mutex<Option<i32>>>;

    /// A RunTask's container override: its command and its environment.
    #[derive(Clone, Debug, Default)]
    struct Asked {
        command: Vec<String>,
        env: BTreeMap<String, String>,
    }

    struct ScriptedTask {
        exit: Exit,
        asked: Arc<Mutex<Vec<Asked>>>,
        run: Rule,
        describe: Rule,
        stop: Rule,
    }

    impl ScriptedTask {
        fn new(exit: Option<i32>) -> ScriptedTask {
            let exit: Exit = Arc::new(Mutex::new(exit));
            let asked = Arc::new(Mutex::new(Vec::new()));
            let kept = asked.clone();
            let run = mock!(aws_sdk_ecs::Client::run_task)
                .match_requests(move |r| {
                    let Some(o) = r.overrides().and_then(|o| o.container_overrides().first())
                    else {
                        return false;
                    };
                    kept.lock().unwrap().push(Asked {
                        command: o.command().to_vec(),
                        env: (o.environment().iter())
                            .map(|kv| {
                                let name = kv.name().unwrap_or_default().to_owned();
                                (name, kv.value().unwrap_or_default().to_owned())
                            })
                            .collect(),
                    });
                    o.name() == Some("app") && r.task_definition().is_some_and(|t| !t.is_empty())
                })
                .then_output(|| {
                    let task = Task::builder().task_arn(task_arn()).last_status("PENDING");
                    RunTaskOutput::builder().tasks(task.build()).build()
                });
            let now = exit.clone();
            let describe = mock!(aws_sdk_ecs::Client::describe_tasks)
                .match_requests(|r| r.tasks().iter().any(|t| t.ends_with(TASK_ID)))
                .then_output(move || {
                    let task = Task::builder().task_arn(task_arn());
                    let container = Container::builder().name("app");
                    let task = match *now.lock().unwrap() {
                        None => task
                            .last_status("RUNNING")
                            .containers(container.last_status("RUNNING").build()),
                        Some(code) => task
                            .last_status("STOPPED")
                            .stopped_reason("Essential container in task exited")
                            .stop_code(TaskStopCode::EssentialContainerExited)
                            .containers(container.last_status("STOPPED").exit_code(code).build()),
                    };
                    DescribeTasksOutput::builder().tasks(task.build()).build()
                });
            let stopped = exit.clone();
            let stop = mock!(aws_sdk_ecs::Client::stop_task)
                .match_requests(|r| r.task() == Some(task_arn().as_str()))
                .then_output(move || {
                    *stopped.lock().unwrap() = Some(143);
                    StopTaskOutput::builder().build()
                });
            ScriptedTask {
                exit,
                asked,
                run,
                describe,
                stop,
            }
        }

        fn asked(&self) -> Vec<Asked> {
            self.asked.lock().unwrap().clone()
        }
    }

    /// A world whose previews have `checks`, its ECS answering as `task`.
    async fn world(prefix: &str, checks: &str, task: &ScriptedTask) -> World {
        let mut world = World::new(prefix, "").await;
        world.app_key = Some(app_key());
        world.config_yaml = world.config_yaml.replace(
            "ready_check: false",
            &format!("ready_check: false\n  checks:\n{checks}"),
        );
        world.checks_origin = Some(super::preview_app().await);
        let scripted = Scripted {
            ecs: vec![&task.run, &task.describe, &task.stop],
            ..Scripted::default()
        };
        world.start_with(mocks::aws(&world.sdk, &scripted)).await;
        world
    }

    const E2E: &str = "    - name: home\n      path: /\n\
                       \x20   - name: e2e\n      task:\n        command: [npm, run, e2e]\n";

    /// The one check run at `sha`, once concluded.
    fn concluded(world: &World, sha: &str) -> crate::support::github_fake::FakeCheckRun {
        let runs = world.github.check_runs(&world.repo, sha);
        let [run] = &runs[..] else {
            panic!("one check run: {runs:?}")
        };
        assert_eq!(run.status, "completed", "{run:?}");
        run.clone()
    }

    #[tokio::test]
    async fn a_task_check_that_exits_0_passes_and_gets_the_preview_url() {
        let task = ScriptedTask::new(Some(0));
        let world = world("tchkok", E2E, &task).await;
        let sha = world.open_pr(11).await;
        world.wait_comment(11, "Ready").await;
        world.settle().await;
        let run = concluded(&world, &sha);
        let summary = run.summary.as_deref().unwrap();
        assert_eq!(run.conclusion.as_deref(), Some("success"), "{summary}");
        assert_eq!(run.title.as_deref(), Some("2 of 2 checks passed"));
        assert!(summary.contains("| e2e | passed |"), "{summary}");

        let asked = task.asked();
        let [asked] = &asked[..] else {
            panic!("one RunTask: {asked:?}")
        };
        assert_eq!(asked.command, ["npm", "run", "e2e"]);
        let url = &asked.env["PREVIEW_URL"];
        assert!(url.starts_with("http"), "{url}");
        let comment = world.sticky(11).unwrap().body;
        assert!(comment.contains(url.as_str()), "the preview's URL: {url}");
        assert!(
            !asked.env.contains_key("PULLSTACK_BYPASS_SECRET_ARN"),
            "a public preview has no bypass"
        );
        assert_eq!(task.stop.num_calls(), 0);
    }

    // Attack: the bypass value lets anyone past a private preview's
    // sign-in; a container override's environment is shown to anyone who
    // may call DescribeTasks, so only the secret's ARN may go there.
    #[tokio::test]
    async fn a_private_previews_task_gets_the_bypass_secrets_arn_not_its_value() {
        let task = ScriptedTask::new(Some(0));
        let checks = "    - name: e2e\n      task:\n        command: [npm, run, e2e]\n";
        let mut world =
            super::private_world("tchkbyp", checks, |app| super::secret_arn(app, "ci")).await;
        let value = format!("bypass-{:016x}", rand::random::<u64>());
        aws_sdk_secretsmanager::Client::new(&world.sdk)
            .create_secret()
            .name(format!("pullstack/{}/access/ci", world.app))
            .secret_string(&value)
            .send()
            .await
            .expect("create the bypass secret");
        let scripted = Scripted {
            ecs: vec![&task.run, &task.describe, &task.stop],
            ..Scripted::default()
        };
        world.start_with(mocks::aws(&world.sdk, &scripted)).await;
        let sha = world.open_pr(14).await;
        world.wait_comment(14, "Ready").await;
        world.settle().await;
        assert_eq!(
            concluded(&world, &sha).conclusion.as_deref(),
            Some("success")
        );
        let asked = task.asked();
        let env = &asked[0].env;
        assert_eq!(env["PULLSTACK_BYPASS_HEADER"], "X-Pullstack-Bypass");
        assert_eq!(
            env["PULLSTACK_BYPASS_SECRET_ARN"],
            super::secret_arn(&world.app, "ci")
        );
        assert!(env.contains_key("PREVIEW_URL"));
        assert!(
            !format!("{asked:?}").contains(&value),
            "the value was passed"
        );
    }

    #[tokio::test]
    async fn a_task_check_that_exits_1_fails_with_its_code_and_last_log_lines() {
        let task = ScriptedTask::new(Some(1));
        let mut world = World::new("tchkfail", "").await;
        let group = mocks::shared_output(&world, "LogGroupName").await;
        let mut lines: Vec<String> = (1..=60).map(|i| format!("spec {i} ran")).collect();
        // Attack: a test command that prints its connection string would put
        // the database password on a Check Run anyone can read.
        lines.insert(40, "using postgres://app:hunter2@db.internal/app".into());
        lines.push("FAIL <b>login</b> @octocat".into());
        let stream = format!("pr-12/app/{TASK_ID}");
        mocks::put_logs(&world.sdk, &group, &stream, &lines).await;
        world.app_key = Some(app_key());
        world.config_yaml = world.config_yaml.replace(
            "ready_check: false",
            "ready_check: false\n  checks:\n    - name: e2e\n      task:\n        command: [npm, run, e2e]\n",
        );
        let scripted = Scripted {
            ecs: vec![&task.run, &task.describe, &task.stop],
            ..Scripted::default()
        };
        world.start_with(mocks::aws(&world.sdk, &scripted)).await;
        let sha = world.open_pr(12).await;
        world.wait_comment(12, "Ready").await;
        world.settle().await;

        let run = concluded(&world, &sha);
        let summary = run.summary.as_deref().unwrap();
        assert_eq!(run.conclusion.as_deref(), Some("failure"), "{summary}");
        let why = pullstack::domain::checks::escape(
            "`task` (`npm run e2e`) exited with code 1. \
             ECS's stop reason: Essential container in task exited.",
        );
        assert!(summary.contains(&why), "{summary}");
        assert!(
            summary.contains("<details><summary>e2e: its last 50 log lines</summary>"),
            "{summary}"
        );
        assert!(summary.contains("\nspec 60 ran\n"), "{summary}");
        assert!(
            summary.contains("<pre>spec 13 ran\n"),
            "the last 50: {summary}"
        );
        assert!(!summary.contains("spec 12 ran"), "only 50: {summary}");
        assert!(!summary.contains("hunter2"), "the password is masked");
        assert!(!summary.contains("<b>") && !summary.contains("@octocat"));
        // A failed check leaves the environment up.
        assert!(world.stack(12).await.is_some());
    }

    #[tokio::test]
    async fn a_task_check_past_its_timeout_is_stopped_and_fails() {
        let task = ScriptedTask::new(None);
        let checks = "    - name: e2e\n      task:\n        command: [npm, run, e2e]\n\
                      \x20       timeout: 10m\n";
        let world = world("tchktime", checks, &task).await;
        let sha = world.open_pr(13).await;
        world.wait_comment(13, "Ready").await;
        crate::support::eventually("the task described", crate::support::WAIT, || async {
            task.describe.num_calls() >= 1
        })
        .await;
        let runs = world.github.check_runs(&world.repo, &sha);
        assert_eq!(runs[0].status, "in_progress", "{runs:?}");
        assert_eq!(task.stop.num_calls(), 0);
        assert!(task.exit.lock().unwrap().is_none());

        world.advance(Duration::from_secs(11 * 60));
        world.settle().await;
        let run = concluded(&world, &sha);
        let summary = run.summary.as_deref().unwrap();
        assert_eq!(run.conclusion.as_deref(), Some("failure"), "{summary}");
        assert!(
            summary.contains("did not finish within 10m 00s, so it was stopped"),
            "{summary}"
        );
        assert_eq!(task.asked().len(), 1, "one task started");
        assert!(task.stop.num_calls() >= 1, "the task was stopped");
        assert_eq!(
            task.exit.lock().unwrap().as_ref(),
            Some(&143),
            "stopped by StopTask"
        );
    }
}
