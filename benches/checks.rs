//! Smoke checks against moto and the GitHub fake: the time from a
//! preview's "Ready" comment to its concluded Check Run, for three HTTP
//! checks against a local server, and the AWS and GitHub calls in between.
//!
//!   scripts/moto.sh start 5055 && PULLSTACK_TEST_MOTO=http://127.0.0.1:5055 cargo test --bench checks
//!
//! (`cargo test` builds it unoptimised. The local server answers at once,
//! so the time is pullstack's own: queueing the checks job, two GitHub
//! writes and three requests.)

// The end-to-end harness, of which a benchmark uses a part.
#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use support::World;

const RUNS: u64 = 5;

fn app_key() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/test-app-key.pem"
    ))
    .unwrap()
}

async fn preview_app() -> String {
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "<title>Home</title>" }))
        .route(
            "/api/health",
            axum::routing::get(|| async { "{\"version\": \"1.2\"}" }),
        )
        .route("/about", axum::routing::get(|| async { "about us" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

#[tokio::main]
async fn main() {
    let checks = "  checks:\n    - name: home\n      path: /\n      body_contains: \"<title>\"\n\
                  \x20   - name: health\n      path: /api/health\n      body_matches: \"version\"\n\
                  \x20   - name: about\n      path: /about\n";
    let mut world = World::new("bench-checks", "github:\n  writes_per_minute: 100000\n").await;
    world.config_yaml = world.config_yaml.replace(
        "ready_check: false",
        &format!("ready_check: false\n{checks}"),
    );
    world.app_key = Some(app_key());
    world.checks_origin = Some(preview_app().await);
    world.start().await;
    for n in 1..=RUNS {
        let sha = world.open_pr(n).await;
        let ready = world.wait_comment(n, "Ready").await;
        let aws_before = world.aws_requests().await;
        world.settle().await;
        let aws_after = world.aws_requests().await;
        let runs = world.github.check_runs(&world.repo, &sha);
        let [run] = &runs[..] else {
            panic!("one check run: {runs:?}")
        };
        assert_eq!(run.conclusion.as_deref(), Some("success"));
        let took = run.updated_at - ready.updated_at;
        let aws: u64 = aws_after
            .iter()
            .map(|(k, v)| v - aws_before.get(k).copied().unwrap_or(0))
            .sum();
        let mut github: BTreeMap<String, u64> = BTreeMap::new();
        for r in world.github.requests() {
            if r.path.contains("/check-runs") && r.at >= ready.updated_at && r.at <= run.updated_at
            {
                let route = if r.method == "POST" {
                    "create"
                } else {
                    "update"
                };
                *github.entry(format!("{} {route}", r.method)).or_default() += 1;
            }
        }
        println!(
            "run {n}: Ready to concluded Check Run {} ms; AWS calls {aws}; GitHub check-run calls {github:?}",
            took.num_milliseconds()
        );
    }
}
