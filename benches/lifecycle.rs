//! Lifecycle benchmark against moto: pullstack versus the script a team
//! would otherwise write (awscli create-stack / wait / describe-stacks /
//! delete-stack / wait), then 50 pull requests opened at once.
//!
//!   scripts/moto.sh start 5055 && PULLSTACK_TEST_MOTO=http://127.0.0.1:5055 cargo bench --bench lifecycle
//!
//! Against real GitHub, 50 PRs at once are paced by the 80 content-creating
//! requests a minute (about 7 per PR: comment, Deployment and its statuses,
//! commit statuses), so about 4.5 minutes; this measures pullstack itself.
//!
//! pullstack runs with its default polling (first poll after 2s) unless
//! BENCH_POLL is set (e.g. `BENCH_POLL=100ms`). AWS calls are read from
//! pullstack's own `/metrics` counter; the script's from `aws --debug`.

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
    for n in 1..=LIFECYCLES {
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

fn script_lifecycles(world: &World) {
    let aws = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/aws");
    let template = pullstack::domain::template::render(
        pullstack::domain::template::PREVIEW,
        &Default::default(),
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
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

async fn many_at_once(world: &World) {
    let first = 1000;
    let before = aws_calls(world).await;
    let start = Instant::now();
    for n in first..first + AT_ONCE {
        world.open_pr(n).await;
    }
    for n in first..first + AT_ONCE {
        world.wait_comment(n, "Ready").await;
    }
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
        let poll = std::env::var("BENCH_POLL").unwrap_or_else(|_| "2s".into());
        world.config_yaml = world
            .config_yaml
            .replace("poll_initial: 100ms", &format!("poll_initial: {poll}"))
            .replace("poll_max: 500ms", "poll_max: 30s");
        // GitHub's 80 writes a minute would dominate 50 PRs at once (about 7
        // writes each): the fake has no such limit, so measure pullstack itself.
        world.config_yaml =
            support::merge_yaml(&world.config_yaml, "github:\n  writes_per_minute: 100000\n");
        world.start().await;
        println!("pullstack poll_initial: {poll}");
        pullstack_lifecycles(&world).await;
        script_lifecycles(&world);
        many_at_once(&world).await;
    });
}
