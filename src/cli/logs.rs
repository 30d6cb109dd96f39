//! `pullstack logs <pr-number|branch> [--follow] [--since 10m]`: an
//! environment's task logs in the terminal, from the shared log group's
//! streams under the environment's prefix.

use crate::aws::Aws;
use crate::aws::shared::Shared;
use crate::aws::tasks::LogEvent;
use crate::domain::logs;
use crate::domain::naming::EnvKey;
use anyhow::Context;
use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

/// How often `--follow` looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// The environment: a PR number (`42`, `#42` or `pr-42`) or a branch name.
    target: String,
    /// Keep printing new lines as they come, until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// How far back to start, e.g. `30s`, `10m`, `2h`.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    since: Duration,
}

/// The environment `target` names: a PR number, else a branch.
pub fn env_key(target: &str) -> EnvKey {
    let number = target
        .strip_prefix('#')
        .or_else(|| target.strip_prefix("pr-"))
        .unwrap_or(target);
    let is_number = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    match number.parse::<u64>() {
        Ok(n) if is_number && n > 0 => EnvKey::Pr(n),
        _ => EnvKey::Branch(target.to_owned()),
    }
}

/// One printed line: time, task id, message.
fn line(event: &LogEvent) -> String {
    let at = chrono::DateTime::from_timestamp_millis(event.timestamp_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    let task = event.stream.rsplit('/').next().unwrap_or_default();
    let task: String = task.chars().take(8).collect();
    format!("{at} {task} {}", event.message.trim_end())
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let aws = Aws::from_env().await;
    let shared = Shared::load(&aws.stacks, &config.shared_stack_name()).await?;
    let key = env_key(&args.target);
    let prefix = logs::stream_prefix(&key.slug());
    let since = chrono::Duration::from_std(args.since).context("--since is too long")?;
    let mut from = (chrono::Utc::now() - since).timestamp_millis();
    // Events at the newest time already printed: a later read starts at
    // that time again, so none written in the same millisecond is lost.
    let mut printed: HashSet<(String, i64, String)> = HashSet::new();
    let mut any = false;
    loop {
        let mut token = None;
        loop {
            let (events, next) = aws
                .tasks
                .events(&shared.log_group, &prefix, from, token.take())
                .await
                .with_context(|| format!("reading the logs of {key}"))?;
            for event in events {
                let id = (
                    event.stream.clone(),
                    event.timestamp_ms,
                    event.message.clone(),
                );
                if printed.contains(&id) {
                    continue;
                }
                println!("{}", line(&event));
                any = true;
                if event.timestamp_ms > from {
                    from = event.timestamp_ms;
                    printed.retain(|(_, at, _)| *at >= from);
                }
                if event.timestamp_ms >= from {
                    printed.insert(id);
                }
            }
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        if !args.follow {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    if !any && !args.follow {
        eprintln!(
            "no log lines for {key} since {} ago (streams {prefix}* in {})",
            humantime::format_duration(args.since),
            shared.log_group
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_pr_or_a_branch() {
        assert_eq!(env_key("42"), EnvKey::Pr(42));
        assert_eq!(env_key("#42"), EnvKey::Pr(42));
        assert_eq!(env_key("pr-42"), EnvKey::Pr(42));
        assert_eq!(env_key("release/1.2"), EnvKey::Branch("release/1.2".into()));
        assert_eq!(env_key("pr-x"), EnvKey::Branch("pr-x".into()));
        assert_eq!(env_key("0"), EnvKey::Branch("0".into()));
        assert_eq!(env_key("+7"), EnvKey::Branch("+7".into()));
    }

    #[test]
    fn a_line_has_time_task_and_message() {
        let event = LogEvent {
            stream: "pr-7/app/0f1e2d3c4b5a".into(),
            timestamp_ms: 1_700_000_000_123,
            message: "listening on :8080\n".into(),
        };
        assert_eq!(
            line(&event),
            "2023-11-14T22:13:20.123Z 0f1e2d3c listening on :8080"
        );
    }
}
