//! An environment's logs: the comment's link to its streams in the
//! CloudWatch console, and `pullstack logs` printing them in the terminal,
//! read from moto's CloudWatch Logs (no mocks).

use crate::support::World;
use crate::support::mocks;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

fn pullstack_logs(config: &std::path::Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pullstack"));
    command
        .arg("logs")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PULLSTACK_CONFIG", config)
        .env("AWS_ENDPOINT_URL", crate::support::moto_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn logs_prints_the_environment_s_streams_and_follows_them() {
    let world = World::new("logs", "").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pullstack.yaml");
    std::fs::write(&config, &world.config_yaml).unwrap();
    let group = mocks::shared_output(&world, "LogGroupName").await;
    let first = ["booting".to_owned(), "listening on :8080".to_owned()];
    mocks::put_logs(&world.sdk, &group, "pr-7/app/aaaa1111bbbb", &first).await;
    // PR #70's streams share the first characters, not the prefix.
    let other = ["not pr 7".to_owned()];
    mocks::put_logs(&world.sdk, &group, "pr-70/app/cccc2222dddd", &other).await;

    let out = pullstack_logs(&config, &["7", "--since", "10m"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" aaaa1111 booting\n"), "{text}");
    assert!(text.contains(" aaaa1111 listening on :8080\n"), "{text}");
    assert!(
        text.find("booting") < text.find("listening"),
        "in order: {text}"
    );
    assert!(!text.contains("not pr 7"), "{text}");

    // --follow prints what arrives later, from a task started later too.
    let mut child = pullstack_logs(&config, &["pr-7", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a line within 30 s")
            .unwrap()
            .expect("pullstack logs still runs")
    };
    assert!(next().await.ends_with("booting"));
    assert!(next().await.ends_with("listening on :8080"));
    let later = ["migrations done".to_owned()];
    mocks::put_logs(&world.sdk, &group, "pr-7/app/eeee3333ffff", &later).await;
    let line = next().await;
    assert!(line.ends_with(" eeee3333 migrations done"), "{line}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn logs_of_an_unknown_environment_say_so() {
    let world = World::new("nologs", "").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pullstack.yaml");
    std::fs::write(&config, &world.config_yaml).unwrap();
    let out = pullstack_logs(&config, &["release/9"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no log lines for branch release/9"), "{err}");
}

#[tokio::test]
async fn the_comment_links_to_the_log_streams_in_the_region() {
    let mut world = World::new("loglink", "").await;
    world.start().await;
    let sha = world.open_pr(3).await;
    world.wait_stack_at(3, &sha).await;
    let comment = world.wait_comment(3, "Ready").await;
    let group = mocks::shared_output(&world, "LogGroupName").await;
    let escaped = group.replace('/', "$252F");
    let url = format!(
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1\
         #logsV2:log-groups/log-group/{escaped}/log-events$3FlogStreamNameFilter$3Dpr-3$252F"
    );
    assert!(comment.body.contains(&url), "{}", comment.body);
    assert!(
        comment.body.contains("`pullstack logs pr-3`"),
        "{}",
        comment.body
    );
}
