//! Lifecycle benchmark against moto: pullstack versus the script a team
//! would otherwise write (awscli create-stack / wait / describe-stacks /
//! delete-stack / wait), then 50 pull requests opened at once.
//!
//!   scripts/moto.sh start 5055 && PULLSTACK_TEST_MOTO=http://127.0.0.1:5055 cargo bench --bench lifecycle
//!
//! Against real GitHub, 50 PRs at once are paced by the 80 content-creating
//! requests a minute (`BENCH_WRITES=80`): the comments take the turns first,
//! one per PR whose stack is done by the first look, and the Deployments
//! follow. By default the pacing is lifted to measure pullstack itself.
//!
//! pullstack runs with its default polling (a poll at once, the next after
//! 50ms) unless
//! BENCH_POLL is set (e.g. `BENCH_POLL=2s`, the default before).
//! BENCH_GAP pauses before each lifecycle (e.g. `BENCH_GAP=10s` with
//! `BENCH_WRITES=80`: the pacer's burst refills, as between real PRs).
//! AWS calls are read from pullstack's own `/metrics` counter; the script's from `aws
//! --debug`. The floor is the same five calls from boto3 in one process.

// The end-to-end harness, of which a benchmark uses a part.
#[path = "../tests/e2e/support/mod.rs"]
#[allow(dead_code)]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::World;

const LIFECYCLES: u64 = 10;
const AT_ONCE: u64 = 50;

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

async fn aws_calls(world: &World) -> u64 {
    world.aws_requests().await.values().sum()
}

async fn pullstack_lifecycles(world: &World) {
    let (mut ready, mut removed, mut calls) = (Vec::new(), Vec::new(), Vec::new());
    // A pause before each lifecycle (`BENCH_GAP`, e.g. `10s`): PRs that do
    // not come back to back, so the write pacer's burst has refilled.
    let gap = std::env::var("BENCH_GAP")
        .ok()
        .and_then(|g| humantime::parse_duration(&g).ok())
        .unwrap_or_default();
    for n in 1..=LIFECYCLES {
        tokio::time::sleep(gap).await;
        let before = aws_calls(world).await;
        let start = Instant::now();
        world.open_pr(n).await;
        world.wait_comment(n, "Ready").await;
        ready.push(start.elapsed());
        let start = Instant::now();
        world.close(n, true).await;
        world.wait_comment(n, "Removed").await;
        removed.push(start.elapsed());
        calls.push(aws_calls(world).await - before);
    }
    println!("pullstack, {LIFECYCLES} lifecycles:");
    println!(
        "  median opened delivery -> ready comment:   {:?}",
        median(ready)
    );
    println!(
        "  median closed delivery -> removed comment: {:?}",
        median(removed)
    );
    println!("  AWS calls per lifecycle: {calls:?} (includes the image check per deploy)");
}

/// The preview template with no optional parts, as the scripts send it.
fn preview_template() -> String {
    pullstack::domain::template::render(
        pullstack::domain::template::PREVIEW,
        &Default::default(),
        &Default::default(),
        &Default::default(),
    )
    .unwrap()
}

fn script_lifecycles(world: &World) {
    let aws = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/aws");
    let template = preview_template();
    let dir = tempfile::tempdir().unwrap();
    let template_path = dir.path().join("preview.json");
    std::fs::write(&template_path, template).unwrap();
    let endpoint = support::moto_endpoint();
    let run = |args: &[&str]| -> (String, u64) {
        let output = Command::new(aws)
            .args([
                "--debug",
                "--endpoint-url",
                &endpoint,
                "--region",
                "us-east-1",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .expect("run awscli");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        let calls = String::from_utf8_lossy(&output.stderr)
            .matches("Making request for OperationModel")
            .count();
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            calls as u64,
        )
    };
    let (mut ready, mut removed, mut calls) = (Vec::new(), Vec::new(), Vec::new());
    for n in 1..=LIFECYCLES {
        let name = format!("{}-script-{n}", world.app);
        let image = format!("example/app:{n}");
        let body = format!("file://{}", template_path.display());
        let params = [
            format!(
                "ParameterKey=SharedStackName,ParameterValue={}-shared",
                world.app
            ),
            format!("ParameterKey=EnvironmentName,ParameterValue=script-{n}"),
            format!("ParameterKey=Image,ParameterValue={image}"),
        ];
        let mut count = 0;
        let start = Instant::now();
        let mut args = vec![
            "cloudformation",
            "create-stack",
            "--stack-name",
            &name,
            "--template-body",
            &body,
            "--parameters",
        ];
        args.extend(params.iter().map(String::as_str));
        count += run(&args).1;
        count += run(&[
            "cloudformation",
            "wait",
            "stack-create-complete",
            "--stack-name",
            &name,
        ])
        .1;
        count += run(&[
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            &name,
            "--query",
            "Stacks[0].Outputs",
        ])
        .1;
        ready.push(start.elapsed());
        let start = Instant::now();
        count += run(&["cloudformation", "delete-stack", "--stack-name", &name]).1;
        count += run(&[
            "cloudformation",
            "wait",
            "stack-delete-complete",
            "--stack-name",
            &name,
        ])
        .1;
        removed.push(start.elapsed());
        calls.push(count);
    }
    println!("awscli script, {LIFECYCLES} lifecycles:");
    println!("  median create -> outputs read: {:?}", median(ready));
    println!("  median delete -> deleted:      {:?}", median(removed));
    println!("  AWS calls per lifecycle: {calls:?}");
}

/// The five calls of a lifecycle (create, describe until complete, read
/// the outputs, delete, describe until gone) from boto3 in one process, the
/// least any tool can take on this moto.
fn boto3_floor(world: &World) {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    let template = preview_template();
    let script = r#"
import json, statistics, sys, time, boto3
endpoint, app, template = sys.argv[1], sys.argv[2], sys.stdin.read()
cf = boto3.client("cloudformation", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
took = []
for n in range(10):
    name = f"{app}-floor-{n}"
    params = [{"ParameterKey": "SharedStackName", "ParameterValue": f"{app}-shared"},
              {"ParameterKey": "EnvironmentName", "ParameterValue": f"floor-{n}"},
              {"ParameterKey": "Image", "ParameterValue": f"example/app:{n}"}]
    start = time.perf_counter()
    cf.create_stack(StackName=name, TemplateBody=template, Parameters=params)
    while cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"].endswith("IN_PROGRESS"):
        pass
    cf.describe_stacks(StackName=name)["Stacks"][0].get("Outputs")
    cf.delete_stack(StackName=name)
    try:
        while cf.describe_stacks(StackName=name)["Stacks"]:
            pass
    except cf.exceptions.ClientError:
        pass
    took.append(time.perf_counter() - start)
print(f"boto3, 10 lifecycles of five calls: median {statistics.median(took):.3f}s")
"#;
    let mut child = Command::new(python)
        .args(["-c", script, &support::moto_endpoint(), &world.app])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(template.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    print!("{}", String::from_utf8_lossy(&output.stdout));
}

async fn many_at_once(world: &World) {
    let first = 1000;
    let before = aws_calls(world).await;
    let start = Instant::now();
    for n in first..first + AT_ONCE {
        world.open_pr(n).await;
    }
    // At GitHub's pace the last is ready minutes after the first.
    let ready = |n: u64| {
        world
            .sticky(n)
            .is_some_and(|c| c.body.contains("**Ready**"))
    };
    support::eventually("all ready", Duration::from_secs(900), || async {
        (first..first + AT_ONCE).all(ready)
    })
    .await;
    let elapsed = start.elapsed();
    let failed = (first..first + AT_ONCE)
        .filter(|n| world.sticky(*n).is_some_and(|c| c.body.contains("failed")))
        .count();
    println!(
        "{AT_ONCE} PRs opened at once: all ready after {elapsed:?}; failed: {failed}; AWS calls: {}",
        aws_calls(world).await - before
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut world = World::new("bench", "").await;
        let poll = std::env::var("BENCH_POLL").unwrap_or_else(|_| "50ms".into());
        world.config_yaml = world
            .config_yaml
            .replace("poll_initial: 100ms", &format!("poll_initial: {poll}"))
            .replace("poll_max: 500ms", "poll_max: 30s");
        // The fake has no write limit: by default pullstack's own pacing is
        // lifted to measure pullstack itself; BENCH_WRITES=80 measures it
        // at GitHub's figure.
        let writes = std::env::var("BENCH_WRITES").unwrap_or_else(|_| "100000".into());
        world.config_yaml = support::merge_yaml(
            &world.config_yaml,
            &format!("github:\n  writes_per_minute: {writes}\n"),
        );
        println!("pullstack github.writes_per_minute: {writes}");
        world.start().await;
        println!("pullstack poll_initial: {poll}");
        pullstack_lifecycles(&world).await;
        script_lifecycles(&world);
        boto3_floor(&world);
        many_at_once(&world).await;
    });
}
