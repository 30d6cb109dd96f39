//! `pullstack bootstrap`: create or update the shared stack, with live
//! progress, and say so plainly when nothing changed. With
//! `queue.backend: sqs`, also the SQS FIFO queue, its dead-letter queue and
//! the DynamoDB lease table; with `production.strategy: alb`, also the
//! production load balancer (the stack a release would otherwise make).

use crate::aws::Aws;
use crate::aws::stacks::{Deploy, Phase, Stacks, Started, tag};
use crate::config::{Backend, Config, Strategy};
use crate::domain::template;
use crate::reconcile::production::alb;
use anyhow::{Context, bail};
use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// Give up waiting after this long (the stack operation goes on).
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// How a stack ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Created or updated, and complete.
    Changed,
    /// It already matched: nothing was sent.
    UpToDate,
    /// The operation ended in this status.
    Failed(String),
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let aws = Aws::from_env()
        .await
        .with_cloudformation_role(config.shared.cloudformation_role_arn.clone());
    for line in shared_queue(&aws, &config).await? {
        println!("{line}");
    }
    let name = config.shared_stack_name();
    let shared = &config.shared;
    let parameters = BTreeMap::from([
        ("AppName".to_owned(), config.app.clone()),
        ("HostedZoneName".to_owned(), shared.hosted_zone.clone()),
        (
            "ReplicationRegions".to_owned(),
            shared.replicate_to.join(","),
        ),
        (
            "LogRetentionDays".to_owned(),
            shared.log_retention_days.to_string(),
        ),
        ("PruneImages".to_owned(), config.images.prune.to_string()),
        (
            "ImageTagMutability".to_owned(),
            if config.images.mutable_tags {
                "MUTABLE"
            } else {
                "IMMUTABLE"
            }
            .to_owned(),
        ),
    ]);
    let tags = BTreeMap::from([
        (tag::MANAGED.to_owned(), "true".to_owned()),
        (tag::REPO.to_owned(), config.repository.clone()),
        (tag::ROLE.to_owned(), "shared".to_owned()),
    ]);
    let body: serde_json::Value =
        serde_yaml::from_str(template::SHARED).context("templates/shared.yaml")?;
    let body = body.to_string();
    let deploy = Deploy {
        name: &name,
        template_body: &body,
        parameters: &parameters,
        tags: &tags,
    };
    if let Outcome::Failed(_) = converge(&aws, "shared stack", &deploy, args.timeout).await? {
        return Ok(ExitCode::FAILURE);
    }
    match production_edge(&aws, &config, args.timeout).await? {
        Some(Outcome::Failed(_)) => Ok(ExitCode::FAILURE),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// With `production.strategy: alb` (and production enabled), creates or
/// updates the production load balancer's stack, as the first release
/// would make it, and points the production name at it; `None` otherwise.
/// While releases still hold traffic through Route53 weighted records,
/// the name stays on them: `pullstack serve` moves them over.
pub async fn production_edge(
    aws: &Aws,
    config: &Config,
    timeout: Duration,
) -> anyhow::Result<Option<Outcome>> {
    let production = &config.production;
    if !production.enabled || production.strategy != Strategy::Alb {
        return Ok(None);
    }
    let shared = config.shared_stack_name();
    let spec = alb::StackSpec::new(config, &shared)?;
    let outcome = converge(
        aws,
        "production load balancer stack",
        &spec.deploy(),
        timeout,
    )
    .await?;
    if let Outcome::Failed(_) = outcome {
        return Ok(Some(outcome));
    }
    match alb::ensure(aws, config, &shared).await? {
        alb::State::Ready(edge) => println!(
            "Production name {} points at {}.",
            production.domain,
            edge.dns_name.trim_end_matches('.')
        ),
        alb::State::Busy => bail!("the production load balancer's stack is busy again"),
        alb::State::Switching { .. } => println!(
            "Production traffic is still on Route53 weighted records: `pullstack serve` \
             moves the live releases onto the load balancer, then the name, with no gap \
             (README, \"Switching an installation\")."
        ),
    }
    Ok(Some(outcome))
}

/// Creates or updates the stack `deploy` describes (`what` names it in
/// messages) and follows it until it settles; says so when nothing changed.
async fn converge(
    aws: &Aws,
    what: &str,
    deploy: &Deploy<'_>,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let name = deploy.name;
    let existing = aws.stacks.describe(name).await?;
    let seen: HashSet<String> = match &existing {
        Some(_) => aws
            .stacks
            .recent_events(name)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect(),
        None => HashSet::new(),
    };
    let title = capitalized(what);
    match existing.as_ref().map(|s| s.phase()) {
        None => {
            println!("Creating {what} {name}…");
            aws.stacks.create(deploy).await?;
        }
        Some(Phase::Stable | Phase::UpdateRolledBack) => {
            let stack = existing.as_ref().expect("matched Some");
            if Stacks::unchanged(stack, deploy)
                || aws.stacks.update(deploy).await? == Started::NoChange
            {
                println!("{title} {name} is up to date: nothing changed.");
                print_outputs(aws, name).await?;
                return Ok(Outcome::UpToDate);
            }
            println!("Updating {what} {name}…");
        }
        Some(Phase::InProgress) => {
            println!("{title} {name} has an operation in progress; following it…")
        }
        Some(phase) => bail!(
            "{what} {name} is in state {} ({phase:?}); fix or delete it, then run bootstrap again",
            existing
                .map(|s| s.status.as_str().to_owned())
                .unwrap_or_default()
        ),
    }
    follow(aws, &title, name, seen, timeout).await
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Creates the SQS FIFO queue, its dead-letter queue and the lease table
/// when `config` uses the SQS backend, keeping any that exist; says what
/// there is, a line each.
pub async fn shared_queue(aws: &Aws, config: &Config) -> anyhow::Result<Vec<String>> {
    if config.queue.backend != Backend::Sqs {
        return Ok(Vec::new());
    }
    let queue = config.sqs_queue();
    // A URL names the queue by its last segment.
    let name = queue.rsplit('/').next().unwrap_or(&queue);
    let lease_ttl = config.queue.sqs.lease_ttl;
    let (url, dlq) = (aws.sqs.create(name, lease_ttl).await)
        .with_context(|| format!("creating the SQS queue {name}"))?;
    let table = config.lease_table();
    (aws.leases.create_table(&table).await)
        .with_context(|| format!("creating the DynamoDB table {table}"))?;
    Ok(vec![
        format!("Work queue:        {url}"),
        format!("Dead-letter queue: {dlq}"),
        format!("Lease table:       {table}"),
    ])
}

/// Prints resource events as they happen until the stack settles.
async fn follow(
    aws: &Aws,
    what: &str,
    name: &str,
    mut seen: HashSet<String>,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        for event in aws.stacks.recent_events(name).await? {
            if seen.insert(event.id.clone()) {
                let reason = event.reason.map(|r| format!("  {r}")).unwrap_or_default();
                println!(
                    "{}  {:<40} {:<45} {}{reason}",
                    event.at.format("%H:%M:%S"),
                    event.logical_id,
                    event.resource_type,
                    event.status
                );
            }
        }
        let stack = aws
            .stacks
            .describe(name)
            .await?
            .with_context(|| format!("{name} disappeared"))?;
        match stack.phase() {
            Phase::InProgress => {}
            Phase::Stable => {
                println!(
                    "\n{what} {name}: {} in {:.0?}.",
                    stack.status.as_str(),
                    started.elapsed()
                );
                print_outputs(aws, name).await?;
                return Ok(Outcome::Changed);
            }
            _ => {
                let status = stack.status.as_str().to_owned();
                eprintln!("\n{what} {name} ended in {status}.");
                return Ok(Outcome::Failed(status));
            }
        }
        if started.elapsed() > timeout {
            bail!("gave up waiting after {timeout:?}; the operation continues in CloudFormation");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

async fn print_outputs(aws: &Aws, name: &str) -> anyhow::Result<()> {
    if let Some(stack) = aws.stacks.describe(name).await? {
        for (key, value) in &stack.outputs {
            println!("  {key:<20} {value}");
        }
    }
    Ok(())
}
