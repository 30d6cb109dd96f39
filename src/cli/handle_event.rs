//! `pullstack handle-event`: one GitHub Actions event, reconciled to the end
//! in this process, for teams that run pullstack without a server.
//!
//! The event is parsed and routed exactly as a webhook delivery is, and its
//! jobs run through the same queue and reconciler `serve` uses, until the
//! queue is quiet. Every step is idempotent, so a run that times out or is
//! cancelled is picked up by the next event.

use crate::aws::Aws;
use crate::aws::stacks::{Phase, Stack, tag};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::naming::{EnvKey, short_sha};
use crate::github::client::{Forge, ForgeError};
use crate::github::events;
use crate::reconcile::queue::Reconcile;
use crate::reconcile::routing::Route;
use crate::reconcile::{Action, Ctx, Error, Intent, Job, Mode, queue};
use anyhow::{Context, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The login GitHub shows for what an Actions `GITHUB_TOKEN` writes.
pub const ACTIONS_LOGIN: &str = "github-actions[bot]";

/// Events a workflow can hand over. Any other name is a mistake in the
/// workflow's triggers, not something to ignore quietly.
const EVENTS: &[&str] = &[
    "pull_request",
    "issue_comment",
    "push",
    "delete",
    "workflow_run",
    "check_suite",
    "schedule",
    "workflow_dispatch",
];

/// Credentials come from the environment as for `serve`
/// (`PULLSTACK_GITHUB_TOKEN`, or in Actions `GITHUB_TOKEN`).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigFile,
    /// The event's name; Actions sets `GITHUB_EVENT_NAME`.
    #[arg(long, env = "GITHUB_EVENT_NAME")]
    event_name: Option<String>,
    /// The file holding the event's payload; Actions sets `GITHUB_EVENT_PATH`.
    #[arg(long, env = "GITHUB_EVENT_PATH")]
    event_path: Option<PathBuf>,
    /// Give up after this long; the next event picks up where this one left.
    #[arg(long, env = "PULLSTACK_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// GitHub API base URL [default: `GITHUB_API_URL`, else https://api.github.com].
    #[arg(long, env = "PULLSTACK_GITHUB_API_URL")]
    github_api_url: Option<String>,
    /// The login pullstack's comments are written by [default: asked from
    /// GitHub; in Actions, `github-actions[bot]` for a token that cannot say].
    #[arg(long, env = "PULLSTACK_GITHUB_LOGIN")]
    github_login: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config.load()?;
    let name = non_empty(args.event_name).context(
        "GITHUB_EVENT_NAME is not set: run handle-event in a GitHub Actions workflow, \
         or give --event-name and --event-path",
    )?;
    let path = non_empty(args.event_path.map(|p| p.to_string_lossy().into_owned())).context(
        "GITHUB_EVENT_PATH is not set: run handle-event in a GitHub Actions workflow, \
         or give --event-name and --event-path",
    )?;
    known(&name)?;
    let body = std::fs::read(&path)
        .with_context(|| format!("cannot read the {name} event's payload from {path}"))?;
    let jobs = match route(&config, &name, &body)
        .with_context(|| format!("the {name} event's payload in {path}"))?
    {
        Route::Jobs(jobs) => jobs,
        Route::Pong => {
            println!("nothing to do for this {name} event");
            return Ok(ExitCode::SUCCESS);
        }
        Route::Ignored(reason) => {
            println!("nothing to do for this {name} event: {reason}");
            return Ok(ExitCode::SUCCESS);
        }
    };

    let actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    let api_url = non_empty(args.github_api_url)
        .or_else(|| non_empty(std::env::var("GITHUB_API_URL").ok()))
        .unwrap_or_else(|| "https://api.github.com".to_owned());
    let auth = crate::settings::github_auth()?;
    let forge = crate::server::forge(&config, &api_url, auth).await?;
    let forge = identify(forge, non_empty(args.github_login), actions).await?;
    let config = Arc::new(config);
    let clock = Clock::system();
    let aws = Aws::from_env().await;
    let mut ctx = Ctx::new(
        config.clone(),
        forge,
        aws,
        clock.clone(),
        Mode::OneShot,
        crate::settings::seal()?,
    );
    ctx.gate_key = crate::settings::gate_key(&config.production.gates)?;
    let ctx = Arc::new(ctx);
    let primary = jobs.iter().find_map(|(job, _)| match job {
        Job::Env(key) => Some(key.clone()),
        _ => None,
    });

    // One worker, so each pass's log group reads in order.
    let limits = queue::Limits {
        workers: 1,
        ..crate::server::limits(&config)
    };
    let shutdown = CancellationToken::new();
    let grouped = Arc::new(Grouped {
        ctx: ctx.clone(),
        actions,
    });
    let (work, dispatcher) = queue::start(grouped, limits, clock, shutdown.clone(), Duration::ZERO);
    for (job, intent) in jobs {
        work.push(job, intent);
    }
    let finished = tokio::time::timeout(args.timeout, work.quiet()).await;
    shutdown.cancel();
    let _ = dispatcher.await;

    let mut errors: Vec<String> = ctx
        .abandoned
        .lock()
        .expect("abandoned lock")
        .iter()
        .map(|(job, why)| format!("{job}: {why}"))
        .collect();
    if finished.is_err() {
        errors.push(format!(
            "not finished within {}; the work goes on in AWS and the next event picks it up",
            humantime::format_duration(args.timeout)
        ));
    }
    if let Some(key) = &primary
        && errors.is_empty()
        && let Err(err) = settled(&ctx, key).await
    {
        errors.push(format!("{key}: {err:#}"));
    }
    for message in &errors {
        if actions {
            eprintln!("::error title=pullstack::{}", escape_data(message));
        }
        eprintln!("error: {message}");
    }

    if let Some(key) = primary {
        let stack_name = key.stack_name(&config.app);
        let stack = ctx.aws.stacks.describe(&stack_name).await?;
        let outputs = outputs(&key, &stack_name, stack.as_ref());
        println!("{}", summary(&key, &stack_name, stack.as_ref()));
        if let Some(file) = actions.then(|| std::env::var_os("GITHUB_OUTPUT")).flatten() {
            write_outputs(Path::new(&file), &outputs)
                .context("cannot write the step's outputs to GITHUB_OUTPUT")?;
        }
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn known(name: &str) -> anyhow::Result<()> {
    if !EVENTS.contains(&name) {
        bail!(
            "pullstack does not handle {name:?} events; trigger the workflow on {}",
            EVENTS.join(", ")
        );
    }
    Ok(())
}

/// Parses and routes a known event; no GitHub or AWS call is made.
fn route(config: &Config, name: &str, body: &[u8]) -> anyhow::Result<Route> {
    // Workflow-only triggers: a scheduled or manual run looks at everything,
    // as the server's periodic resync does.
    if matches!(name, "schedule" | "workflow_dispatch") {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).context("not valid JSON")?;
        return Ok(Route::Jobs(vec![(Job::Resync, None)]));
    }
    let event = events::parse(name, body)?;
    // No App id to compare a re-run's with: its name decides.
    Ok(crate::server::router(config, None)?.route(&event))
}

/// Pins pullstack's login when told, or when an Actions token cannot tell.
async fn identify(forge: Forge, login: Option<String>, actions: bool) -> anyhow::Result<Forge> {
    if let Some(login) = login {
        return Ok(forge.with_identity(login));
    }
    if !actions {
        forge.introduce().await?;
        return Ok(forge);
    }
    match forge.identity().await {
        Ok(_) => Ok(forge),
        Err(err) if is_installation_token(&err) => {
            tracing::info!(
                login = ACTIONS_LOGIN,
                "the token cannot read /user; taking it for the Actions GITHUB_TOKEN"
            );
            Ok(forge.with_identity(ACTIONS_LOGIN))
        }
        Err(err) => Err(err).context(
            "asking GitHub which login pullstack writes as (set PULLSTACK_GITHUB_LOGIN to skip)",
        ),
    }
}

/// An Actions `GITHUB_TOKEN` is an installation token: GitHub refuses it
/// `GET /user` with this message (a rate limit is a 403 too, and is not it).
fn is_installation_token(err: &ForgeError) -> bool {
    matches!(err, ForgeError::Refused { status: 403, message }
        if message.contains("not accessible by integration"))
}

/// After a converged pass: a stack left in a failed state fails the step.
async fn settled(ctx: &Ctx, key: &EnvKey) -> anyhow::Result<()> {
    let name = key.stack_name(&ctx.config.app);
    match ctx.aws.stacks.describe(&name).await? {
        Some(stack) if stack.phase() != Phase::Stable => bail!(
            "the deploy failed: stack {name} is {}; the pull request's comment says why",
            stack.status.as_str()
        ),
        _ => Ok(()),
    }
}

/// The step's outputs for the environment the event was about.
fn outputs(key: &EnvKey, stack_name: &str, stack: Option<&Stack>) -> Vec<(&'static str, String)> {
    let stable = stack.filter(|s| s.phase() == Phase::Stable);
    let get = |f: &dyn Fn(&Stack) -> Option<&str>| {
        stable.and_then(f).map(str::to_owned).unwrap_or_default()
    };
    vec![
        ("url", get(&|s| s.output("Url"))),
        ("stack-name", stack_name.to_owned()),
        ("environment", key.deployment_environment()),
        ("commit", get(&|s| s.tag(tag::COMMIT))),
        (
            "stack-status",
            stack
                .map(|s| s.status.as_str().to_owned())
                .unwrap_or_default(),
        ),
    ]
}

fn summary(key: &EnvKey, stack_name: &str, stack: Option<&Stack>) -> String {
    match stack {
        None => format!("{key}: no environment (stack {stack_name} does not exist)"),
        Some(s) if s.phase() == Phase::Stable => format!(
            "{key}: {} (stack {stack_name}, commit {})",
            s.output("Url").unwrap_or("no URL"),
            short_sha(s.tag(tag::COMMIT).unwrap_or_default())
        ),
        Some(s) => format!("{key}: stack {stack_name} is {}", s.status.as_str()),
    }
}

/// Appends `name=value` pairs to a `GITHUB_OUTPUT` file. Each value gets a
/// random delimiter, so no value can end its own entry and add another.
fn write_outputs(file: &Path, outputs: &[(&str, String)]) -> std::io::Result<()> {
    let mut text = String::new();
    for (name, value) in outputs {
        let delimiter = format!("ghadelimiter_{:032x}", rand::random::<u128>());
        text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?
        .write_all(text.as_bytes())
}

/// The reconciler, with each pass's log in a group of its own under Actions.
struct Grouped {
    ctx: Arc<Ctx>,
    actions: bool,
}

impl Reconcile for Grouped {
    type Key = Job;
    type Intent = Intent;
    type Error = Error;

    async fn reconcile(
        &self,
        job: Job,
        intents: &[Intent],
        failures: u32,
    ) -> Result<Action, Error> {
        let _group = self
            .actions
            .then(|| Group::open(&format!("pullstack: {job}")));
        self.ctx.reconcile(job, intents, failures).await
    }

    fn error_policy(&self, job: &Job, error: &Error, failures: u32) -> queue::OnError {
        self.ctx.error_policy(job, error, failures)
    }
}

/// A collapsed group in the Actions log. Workflow commands are off inside
/// it, so untrusted text that reaches the logs (a branch name, a comment)
/// cannot issue one.
struct Group {
    token: String,
}

impl Group {
    fn open(title: &str) -> Group {
        let token = format!("{:032x}", rand::random::<u128>());
        // stderr, where the logs go, so the markers stay in order with them.
        eprintln!("::group::{}", escape_data(title));
        eprintln!("::stop-commands::{token}");
        Group { token }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        eprintln!("::{}::", self.token);
        eprintln!("::endgroup::");
    }
}

/// Escapes a workflow command's message, as the Actions toolkit does.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests;
