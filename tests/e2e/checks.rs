//! Smoke checks after a ready deploy, reported as a Check Run: against a
//! local HTTP server the test controls (the previews' own names do not
//! resolve), through `POST /webhook`, moto and the GitHub fake.

use crate::support::World;
use axum::http::StatusCode;
use axum::routing::get;

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
