//! The gates before each shift of a production release, end to end:
//! `production.checks` and the gate hooks (`production.gates`), against a
//! local HTTP server the test controls (the release's names do not
//! resolve), through `POST /webhook`, moto and the GitHub fake.

use crate::support::production::*;
use crate::support::{World, eventually};
use aws_sdk_elasticloadbalancingv2::operation::modify_rule::ModifyRuleInput;
use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsInput;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use pullstack::aws::forward::Forward;
use pullstack::aws::traffic::Traffic;
use sha2::Sha256;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "gate-signing-key";
const BAKE: Duration = Duration::from_secs(600);

/// What the gate answers.
const PASS: u8 = 0;
const HOLD: u8 = 1;
const HANG: u8 = 2;

/// The stand-in for production, the test route and the gate.
#[derive(Default)]
struct Target {
    /// The status `/health` answers.
    health: AtomicU16,
    /// How the gate answers: [`PASS`], [`HOLD`] or [`HANG`].
    gate: AtomicU8,
    /// Each gate request's body, and whether its signature verified.
    calls: Mutex<Vec<(serde_json::Value, bool)>>,
}

impl Target {
    fn calls(&self) -> Vec<(serde_json::Value, bool)> {
        self.calls.lock().unwrap().clone()
    }
}

async fn health(State(target): State<Arc<Target>>) -> StatusCode {
    StatusCode::from_u16(target.health.load(Ordering::SeqCst)).unwrap()
}

async fn gate(
    State(target): State<Arc<Target>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let signed = headers
        .get("x-pullstack-signature-256")
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    target.calls.lock().unwrap().push((json, signed));
    if !signed {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    match target.gate.load(Ordering::SeqCst) {
        PASS => (StatusCode::OK, "go".into()),
        HOLD => (StatusCode::SERVICE_UNAVAILABLE, "not yet".into()),
        _ => std::future::pending().await,
    }
}

/// Serves the target; returns it and its origin.
async fn serve() -> (Arc<Target>, String) {
    let target = Arc::new(Target::default());
    target.health.store(200, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/health", get(health))
        .route("/gate", post(gate))
        .with_state(target.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (target, origin)
}

const CHECKS: &str = "  checks:\n    - name: health\n      path: /health\n";

/// A production world whose releases' checks and gate (if `gate`) go to
/// a server the test controls, with the App's key so check runs are
/// written, and a 10 minute bake the test moves through.
async fn world(prefix: &str, extra: &str, gate: bool) -> (World, Arc<Target>, String) {
    let (target, origin) = serve().await;
    let mut extra = extra.to_owned();
    if gate {
        extra.push_str(&format!(
            "  gates:\n    - {origin}/gate\n  gates_timeout: 1s\n"
        ));
    }
    let (mut world, zone) = production_world(prefix, &extra).await;
    world.config_yaml = world.config_yaml.replace("bake: 300ms", "bake: 10m");
    world.checks_origin = Some(origin);
    world.gate_key = Some(KEY.to_owned());
    world.app_key = Some(
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/test-app-key.pem"
        ))
        .unwrap(),
    );
    (world, target, zone)
}

/// Counts the ModifyRule requests on the production rule alone (the test
/// route's rule moves too when a candidate goes).
#[derive(Clone, Debug, Default)]
struct ProductionModifies {
    rule: Arc<Mutex<String>>,
    count: Arc<AtomicUsize>,
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for ProductionModifies {
    fn name(&self) -> &'static str {
        "ProductionModifies"
    }

    fn read_before_execution(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(input) = context.input().downcast_ref::<ModifyRuleInput>()
            && input.rule_arn() == Some(self.rule.lock().unwrap().as_str())
        {
            self.count.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A first release, then a second at 10% after its first step's gates.
async fn second_at_10(world: &World) -> (String, String) {
    let first = first_release(world).await;
    let second = merge(world, 2, "Second").await;
    wait_weight(world, &release_name(world, &second), 10).await;
    world.settle().await;
    (first, second)
}

#[tokio::test]
async fn passing_checks_let_the_canary_continue_with_a_check_run_per_step() {
    let (mut world, _, _) = world("gatepass", &format!("  strategy: alb\n{CHECKS}"), false).await;
    world.start().await;
    let (_, second) = second_at_10(&world).await;
    let new = release_name(&world, &second);
    for then in [50, 100] {
        world.advance(BAKE);
        wait_weight(&world, &new, then).await;
    }
    wait_released(&world, &second).await;
    assert_eq!(steps(&world, &second), CANARY, "no step skipped or held");
    let runs = world.github.check_runs(&world.repo, &second);
    let titles: Vec<_> = runs.iter().map(|r| r.title.clone().unwrap()).collect();
    assert_eq!(
        titles,
        [
            "1 of 1 checks passed before 10%",
            "1 of 1 checks passed before 50%",
            "1 of 1 checks passed before 100%",
        ]
    );
    for run in &runs {
        assert_eq!(run.name, "pullstack/production-checks");
        assert_eq!(run.conclusion.as_deref(), Some("success"));
    }
    // Before its first traffic the candidate is checked on the test route,
    // afterwards production.
    let domain = world.config().production.domain;
    let summary = |n: usize| runs[n].summary.clone().unwrap();
    assert!(
        summary(0).contains(&format!("next.{domain}")),
        "{}",
        summary(0)
    );
    assert!(!summary(1).contains("next."), "{}", summary(1));
    let passed = statuses(&world, &second);
    assert!(
        passed.contains(&"in_progress: 1 of 1 checks passed before 50%".to_owned()),
        "{passed:?}"
    );
}

// Attack on availability: a release that breaks production after its
// first step must lose its traffic at once, in a single move.
#[tokio::test]
async fn a_failed_check_after_a_bake_rolls_back_in_one_modify_rule() {
    let (mut world, target, _) =
        world("gatefail", &format!("  strategy: alb\n{CHECKS}"), false).await;
    let counter = ProductionModifies::default();
    let mut aws = pullstack::aws::Aws::from_config(&world.sdk);
    let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(&world.sdk)
        .interceptor(counter.clone())
        .build();
    aws.forward = Forward::new(aws_sdk_elasticloadbalancingv2::Client::from_conf(elb));
    world.start_with(aws).await;
    let (first, second) = second_at_10(&world).await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    *counter.rule.lock().unwrap() = production_rules(&world).await.unwrap().0;

    target.health.store(500, Ordering::SeqCst);
    world.advance(BAKE);
    wait_weight(&world, &old, 100).await;
    world.settle().await;
    assert_eq!(counter.count.load(Ordering::SeqCst), 1, "one ModifyRule");
    assert!(!weights(&world).await.contains_key(&new));
    let reason = "check health failed: expected status 200, got 500";
    assert_rollback_recorded(&world, 2, &second, &first, reason);
    let runs = world.github.check_runs(&world.repo, &second);
    let last = runs.last().unwrap();
    assert_eq!(last.conclusion.as_deref(), Some("failure"));
    assert_eq!(
        last.title.as_deref(),
        Some("1 of 1 checks failed before 50%")
    );
}

#[tokio::test]
async fn a_failed_check_rolls_route53_back_in_one_change_batch() {
    let (mut world, target, _) = world("gatefail53", CHECKS, false).await;
    let counter = Count::<ChangeResourceRecordSetsInput>::default();
    let mut aws = pullstack::aws::Aws::from_config(&world.sdk);
    let route53 = aws_sdk_route53::config::Builder::from(&world.sdk)
        .interceptor(counter.clone())
        .build();
    aws.traffic = Traffic::new(aws_sdk_route53::Client::from_conf(route53));
    world.start_with(aws).await;
    let (first, second) = second_at_10(&world).await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    assert!(
        world.github.check_runs(&world.repo, &first).is_empty(),
        "before the first release nothing serves production to check"
    );

    let before = counter.get();
    target.health.store(503, Ordering::SeqCst);
    world.advance(BAKE);
    wait_weight(&world, &old, 100).await;
    world.settle().await;
    assert_eq!(counter.get() - before, 1, "one change batch");
    assert_eq!(weights(&world).await[&new], 0);
    let reason = "check health failed: expected status 200, got 503";
    assert_rollback_recorded(&world, 2, &second, &first, reason);
}

#[tokio::test]
async fn a_failed_check_before_the_first_step_stops_the_release_without_traffic() {
    let (mut world, target, _) =
        world("gatestop", &format!("  strategy: alb\n{CHECKS}"), false).await;
    world.start().await;
    let first = first_release(&world).await;
    target.health.store(404, Ordering::SeqCst);
    let second = merge(&world, 2, "Second").await;
    let new = release_name(&world, &second);
    let stopped = "⛔ **Production release stopped**";
    eventually("the release stopped", LONG, || async {
        world
            .bot_comments(2)
            .iter()
            .any(|c| c.body.starts_with(stopped))
    })
    .await;
    world.settle().await;
    let w = weights(&world).await;
    assert_eq!(w.get(&release_name(&world, &first)), Some(&100));
    assert!(!w.contains_key(&new), "{w:?}");
    let recorded = statuses(&world, &second);
    assert_eq!(
        recorded.last().map(String::as_str),
        Some(
            "failure: stopped before any traffic: check health failed: expected status 200, got 404"
        ),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn a_gate_that_holds_then_continues_and_every_call_is_signed() {
    let (mut world, target, _) = world("gatehold", "  strategy: alb\n", true).await;
    world.start().await;
    let first = first_release(&world).await;
    target.gate.store(HOLD, Ordering::SeqCst);
    let second = merge(&world, 2, "Second").await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    let held = "in_progress: held by gate 127.0.0.1: HTTP 503 not yet";
    eventually("the hold on the Deployment", LONG, || async {
        statuses(&world, &second).iter().any(|s| s == held)
    })
    .await;
    assert_eq!(weights(&world).await[&new], 0, "held before any traffic");

    target.gate.store(PASS, Ordering::SeqCst);
    wait_weight(&world, &new, 10).await;
    world.settle().await;
    let shown = statuses(&world, &second);
    assert_eq!(
        shown.iter().filter(|s| *s == held).count(),
        1,
        "a hold is shown once: {shown:?}"
    );
    let calls = target.calls();
    assert!(calls.iter().all(|(_, signed)| *signed), "{calls:?}");
    let (body, _) = calls.last().unwrap();
    assert_eq!(body["release"], new.as_str());
    assert_eq!(
        (body["step"].as_u64(), body["percent"].as_u64()),
        (Some(1), Some(10))
    );
    assert_eq!(body["weights"][&old], 90);
    assert_eq!(body["weights"][&new], 10);
    assert_eq!(body["repository"], world.repo.as_str());
    assert_eq!(body["sha"], second.as_str());
}

#[tokio::test]
async fn a_gate_that_does_not_answer_rolls_back() {
    let (mut world, target, _) = world("gatehang", "  strategy: alb\n", true).await;
    world.start().await;
    let (first, second) = second_at_10(&world).await;
    let old = release_name(&world, &first);
    target.gate.store(HANG, Ordering::SeqCst);
    world.advance(BAKE);
    wait_weight(&world, &old, 100).await;
    world.settle().await;
    let reason = "gate 127.0.0.1 did not answer within 1s";
    assert_rollback_recorded(&world, 2, &second, &first, reason);
}

// A restart while a release waits on its gates asks them again, and runs
// again only the checks the release log does not record as passed. Two
// worker threads: the CLI runs as a blocking child process while this
// runtime serves the GitHub fake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_asks_the_gates_again_but_keeps_passed_checks() {
    let (mut world, target, _) =
        world("gaterestart", &format!("  strategy: alb\n{CHECKS}"), true).await;
    world.start().await;
    first_release(&world).await;
    target.gate.store(HOLD, Ordering::SeqCst);
    let second = merge(&world, 2, "Second").await;
    let new = release_name(&world, &second);
    eventually("the hold", LONG, || async {
        statuses(&world, &second)
            .iter()
            .any(|s| s.contains("held by gate"))
    })
    .await;
    world.kill();
    let runs = world.github.check_runs(&world.repo, &second).len();
    assert_eq!(runs, 1, "checked once before the hold");
    let history = Cli::new(&world).run(&["prod", "history", "-o", "json"]);
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(history["in_flight"], new.as_str());
    assert_eq!(
        history["checks_passed_at"],
        serde_json::json!([0]),
        "the log records the step whose checks passed"
    );
    world.start().await;
    target.gate.store(PASS, Ordering::SeqCst);
    wait_weight(&world, &new, 10).await;
    world.settle().await;
    assert_eq!(
        world.github.check_runs(&world.repo, &second).len(),
        runs,
        "the passed checks were not run again"
    );
}
