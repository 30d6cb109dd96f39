//! `pullstack prod`: watch, promote, pause, resume and roll back production.
//!
//! Every command reads the same state the server does (stacks, Route53
//! weights, the release log) and runs the same operations, so the CLI and
//! the server never disagree: a promotion or rollback made here is recorded
//! on the `production` Deployment and the merged PR as the server records
//! it, and the server's next pass picks it up.

use crate::aws::Aws;
use crate::clock::Clock;
use crate::domain::rollout::ProdPhase;
use crate::github::client::Forge;
use crate::reconcile::production::{Observed, Production, Reporter};
use crate::settings::SecretError;
use anyhow::bail;
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t, global = true)]
    output: Output,
    /// GitHub API base URL, where promotions and rollbacks are recorded
    /// (with `PULLSTACK_GITHUB_TOKEN` or the GitHub App's variables).
    #[arg(
        long,
        env = "PULLSTACK_GITHUB_API_URL",
        default_value = "https://api.github.com",
        global = true
    )]
    github_api_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
enum Output {
    #[default]
    Human,
    Json,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Production stacks with their weights, health, age and commit.
    Status,
    /// Releases promoted and rolled back, newest first.
    History,
    /// Finish the release in flight now (all traffic to it).
    Promote {
        #[arg(long)]
        yes: bool,
    },
    /// Stop shifting traffic; the current weights stay.
    Pause,
    /// Continue a paused release.
    Resume,
    /// Move all traffic back to the previous release, or to `--to`.
    Rollback {
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Serialize)]
struct StackRow {
    stack: String,
    weight: u8,
    health: &'static str,
    age_seconds: i64,
    commit: String,
    role: &'static str,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    if !config.production.enabled {
        bail!(
            "{}: production releases are not enabled (production.enabled)",
            args.config.config.display()
        );
    }
    let aws = Aws::from_env()
        .await
        .with_cloudformation_role(config.shared.cloudformation_role_arn.clone());
    let clock = Clock::system();
    let forge = forge(&config, &args.github_api_url, &args.command).await?;
    let reporter = match &forge {
        Some(forge) => Reporter::github(forge, &config),
        None => Reporter::log_only(&config),
    };
    let prod = Production {
        config: &config,
        aws: &aws,
        clock: &clock,
        reporter,
    };
    let observed = prod.observe(None).await?;
    match args.command {
        Command::Status => status(&observed, args.output),
        Command::History => history(&observed, args.output),
        Command::Pause | Command::Resume => {
            let mut log = observed.view.log.clone();
            log.paused = matches!(args.command, Command::Pause);
            prod.apply(&observed, &observed.view.weights, &log).await?;
            println!(
                "production release {}",
                if log.paused { "paused" } else { "resumed" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Promote { yes } => {
            let plan = prod.promote_plan(&observed)?;
            let release = plan.to.clone();
            confirm(yes, &format!("Send all production traffic to {release}?"))?;
            prod.promote(&observed, plan, "`pullstack prod promote`")
                .await?;
            report(args.output, "promoted", &release, None)
        }
        Command::Rollback { to, yes } => {
            let plan = prod.rollback_plan(&observed, to.as_deref())?;
            let (from, to) = (plan.from.clone().unwrap_or_default(), plan.to.clone());
            confirm(
                yes,
                &format!("Move all production traffic from {from} to {to}?"),
            )?;
            let started = std::time::Instant::now();
            prod.roll_back(&observed, plan, "requested with `pullstack prod rollback`")
                .await?;
            tracing::info!(took = ?started.elapsed(), "rollback applied");
            report(args.output, "rolled back", &to, Some(&from))
        }
    }
}

/// The GitHub client promotions and rollbacks are recorded with; none
/// without credentials, or for commands that change nothing on GitHub.
async fn forge(
    config: &crate::config::Config,
    api_url: &str,
    command: &Command,
) -> anyhow::Result<Option<Forge>> {
    if !matches!(command, Command::Promote { .. } | Command::Rollback { .. }) {
        return Ok(None);
    }
    match crate::settings::github_auth() {
        Ok(auth) => Ok(Some(crate::server::forge(config, api_url, auth).await?)),
        Err(SecretError::NoGitHubAuth) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

fn rows(observed: &Observed) -> Vec<StackRow> {
    let view = &observed.view;
    let live = view.live();
    let mut stacks: Vec<_> = view.stacks.iter().collect();
    stacks.sort_by_key(|s| std::cmp::Reverse(s.created));
    stacks
        .into_iter()
        .map(|s| StackRow {
            stack: s.name.clone(),
            weight: view.weights.get(&s.name).copied().unwrap_or(0),
            health: match s.phase {
                ProdPhase::Busy => "deploying",
                ProdPhase::Ready { healthy: true } => "healthy",
                ProdPhase::Ready { healthy: false } => "unhealthy",
                ProdPhase::Failed => "failed",
            },
            age_seconds: (view.now - s.created).num_seconds(),
            commit: crate::domain::naming::short_sha(&s.sha).to_owned(),
            role: if Some(&s.name) == live.as_ref() {
                "live"
            } else if view.log.release.as_ref() == Some(&s.name) && !view.log.is_failed(&s.name) {
                "release"
            } else if view.log.is_failed(&s.name) {
                "rolled back"
            } else {
                "previous"
            },
        })
        .collect()
}

fn status(observed: &Observed, output: Output) -> anyhow::Result<ExitCode> {
    let rows = rows(observed);
    let log = &observed.view.log;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({ "stacks": rows, "release": log.release, "paused": log.paused })
        ),
        Output::Human => {
            println!(
                "{:<32} {:>6}  {:<10} {:>8}  {:<8} ROLE",
                "STACK", "WEIGHT", "HEALTH", "AGE", "COMMIT"
            );
            for r in &rows {
                let age = crate::domain::comment::human(std::time::Duration::from_secs(
                    r.age_seconds.max(0) as u64,
                ));
                println!(
                    "{:<32} {:>6}  {:<10} {:>8}  {:<8} {}",
                    r.stack, r.weight, r.health, age, r.commit, r.role
                );
            }
            if log.paused {
                println!("\nThe release is paused: `pullstack prod resume` continues it.");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn history(observed: &Observed, output: Output) -> anyhow::Result<ExitCode> {
    let log = &observed.view.log;
    let mut events: Vec<(&str, &String)> = log.promoted.iter().map(|s| ("promoted", s)).collect();
    events.extend(
        log.failed
            .iter()
            .map(|s| ("rolled back, failed or replaced", s)),
    );
    let in_flight = log
        .release
        .as_ref()
        .filter(|r| !log.promoted.contains(r) && !log.is_failed(r));
    events.extend(in_flight.map(|s| ("in flight", s)));
    match output {
        Output::Json => {
            let ignored: Vec<_> = log
                .ignored
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "stack": i.stack,
                        "directive": i.directive,
                        "merged_by": i.by,
                        "role": i.role,
                        "note": i.to_string(),
                    })
                })
                .collect();
            let history = serde_json::json!({
                "promoted": log.promoted,
                "rolled_back": log.failed,
                "in_flight": in_flight,
                // The weights at which the release in flight passed its checks.
                "checks_passed_at": in_flight.map(|_| &log.checked),
                "ignored_directives": ignored,
            });
            println!("{history}");
        }
        Output::Human => {
            for (what, stack) in events.iter().rev() {
                if Some(*stack) == in_flight && !log.checked.is_empty() {
                    let at: Vec<String> = log.checked.iter().map(|w| format!("{w}%")).collect();
                    println!("{stack:<32} {what:<22} checks passed at {}", at.join(", "));
                    continue;
                }
                match log.ignored(stack) {
                    Some(ignored) => println!("{stack:<32} {what:<22} {ignored}"),
                    None => println!("{stack:<32} {what}"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(output: Output, what: &str, to: &str, from: Option<&str>) -> anyhow::Result<ExitCode> {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({ "action": what, "to": to, "from": from })
        ),
        Output::Human => match from {
            Some(from) => println!("{what}: all production traffic moved from {from} to {to}"),
            None => println!("{what}: all production traffic on {to}"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on a terminal; refuses without `--yes` when there is none.
fn confirm(yes: bool, question: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question} Refusing without --yes (standard input is not a terminal)");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("y") || answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        bail!("cancelled")
    }
}
