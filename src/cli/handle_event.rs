//! `pullstack handle-event`: one GitHub Actions event, reconciled to the end
//! in this process, for teams that run pullstack without a server.
//!
//! The event is parsed and routed exactly as a webhook delivery is; each job
//! then runs through the same reconciler `serve` uses, polled in a loop here
//! instead of by the queue. Every step is idempotent, so a run that times
//! out or is cancelled is picked up by the next event.

use crate::aws::Aws;
use crate::aws::stacks::{Phase, Stack, tag};
use crate::config::Config;
use crate::domain::naming::{EnvKey, short_sha};
use crate::github::client::{Forge, ForgeError};
use crate::github::events::{self, Event};
use crate::reconcile::queue::{self, Next, Reconcile};
use crate::reconcile::{Controller, Intent, Job};
use anyhow::{Context, bail};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The login GitHub shows for what an Actions `GITHUB_TOKEN` writes.
pub const ACTIONS_LOGIN: &str = "github-actions[bot]";

/// Failures in a row after which a job is given up.
const ATTEMPTS: u32 = 5;

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

/// What an event asks for.
#[derive(Debug, PartialEq)]
enum Routed {
    Jobs(Vec<(Job, Vec<Intent>)>),
    Nothing(String),
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
        Routed::Jobs(jobs) => jobs,
        Routed::Nothing(reason) => {
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
    let controller = Controller::new(config.clone(), forge, Aws::from_env().await);
    // A resync queues every environment it finds: collect them here and run
    // them after it, one at a time.
    let (queue, mut inbox) = queue::inbox();
    controller.attach(queue);

    let primary = jobs.iter().find_map(|(job, _)| match job {
        Job::Env(key) => Some(key.clone()),
        _ => None,
    });
    let deadline = Instant::now() + args.timeout;
    let mut pending = jobs;
    let mut finished = HashSet::new();
    let mut failed = 0;
    while !pending.is_empty() {
        let (job, intents) = pending.remove(0);
        let title = format!("pullstack: {}", label(&job));
        let group = actions.then(|| Group::open(&title));
        let result = run_job(&controller, &job, intents, deadline, args.timeout).await;
        drop(group);
        let result = match (&result, &job) {
            (Ok(()), Job::Env(key)) => settled(&controller, key).await,
            _ => result,
        };
        if let Err(err) = result {
            failed += 1;
            let message = format!("{}: {err:#}", label(&job));
            if actions {
                eprintln!("::error title=pullstack::{}", escape_data(&message));
            }
            eprintln!("error: {message}");
            if Instant::now() >= deadline && !pending.is_empty() {
                failed += pending.len();
                eprintln!("error: out of time; {} more job(s) not run", pending.len());
                break;
            }
        }
        finished.insert(job);
        for (job, intents) in inbox.take() {
            if finished.contains(&job) && intents.is_empty() {
                continue;
            }
            merge(&mut pending, job, intents);
        }
    }

    if let Some(key) = primary {
        let stack_name = key.stack_name(&config.app);
        let stack = controller.aws.stacks.describe(&stack_name).await?;
        let outputs = outputs(&key, &stack_name, stack.as_ref());
        println!("{}", summary(&key, &stack_name, stack.as_ref()));
        if let Some(file) = actions.then(|| std::env::var_os("GITHUB_OUTPUT")).flatten() {
            write_outputs(Path::new(&file), &outputs)
                .context("cannot write the step's outputs to GITHUB_OUTPUT")?;
        }
    }
    Ok(if failed == 0 {
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
fn route(config: &Config, name: &str, body: &[u8]) -> anyhow::Result<Routed> {
    // Workflow-only triggers: a scheduled or manual run looks at everything,
    // as the server's periodic resync does.
    if matches!(name, "schedule" | "workflow_dispatch") {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).context("not valid JSON")?;
        return Ok(Routed::Jobs(vec![(Job::Resync, Vec::new())]));
    }
    let event = events::parse(name, body)?;
    let router = crate::server::router(config)?;
    let jobs = match &event {
        Event::Ignored { reason } => return Ok(Routed::Nothing(reason.clone())),
        Event::Ping | Event::Installation { .. } => Vec::new(),
        event => router.jobs(event),
    };
    if jobs.is_empty() {
        return Ok(Routed::Nothing(format!(
            "it asks nothing of {}'s environments",
            config.repository
        )));
    }
    let mut merged = Vec::new();
    for (job, intent) in jobs {
        merge(&mut merged, job, intent.into_iter().collect());
    }
    Ok(Routed::Jobs(merged))
}

/// Adds `job` to `pending`, or its intents to the same job already there.
fn merge(pending: &mut Vec<(Job, Vec<Intent>)>, job: Job, intents: Vec<Intent>) {
    match pending.iter_mut().find(|(j, _)| *j == job) {
        Some((_, existing)) => existing.extend(intents),
        None => pending.push((job, intents)),
    }
}

/// Pins pullstack's login when told, or when an Actions token cannot tell.
async fn identify(forge: Forge, login: Option<String>, actions: bool) -> anyhow::Result<Forge> {
    if let Some(login) = login {
        return Ok(forge.with_identity(login));
    }
    if !actions {
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

/// Reconciles `job` until it converges, retrying failures with backoff.
async fn run_job(
    controller: &Controller,
    job: &Job,
    mut intents: Vec<Intent>,
    deadline: Instant,
    timeout: Duration,
) -> anyhow::Result<()> {
    let retry = &controller.config.queue;
    let mut failures = 0;
    loop {
        let outcome = controller
            .reconcile(job.clone(), std::mem::take(&mut intents))
            .await;
        let delay = match outcome {
            Ok(Next::Done) => return Ok(()),
            // A resync asks to run again at the next interval; one pass is
            // all an event needs.
            Ok(Next::After(_)) if *job == Job::Resync => return Ok(()),
            Ok(Next::After(delay)) => {
                failures = 0;
                delay
            }
            Err(err) if failures + 1 >= ATTEMPTS => {
                return Err(err.context(format!("failed {ATTEMPTS} times in a row")));
            }
            Err(err) => {
                failures += 1;
                let delay = queue::backoff(failures, retry.retry_initial, retry.retry_max);
                tracing::warn!(
                    attempt = failures,
                    retry_in = ?delay,
                    error = format!("{err:#}"),
                    "reconcile failed; will retry"
                );
                delay
            }
        };
        if Instant::now() + delay > deadline {
            bail!(
                "not finished within {}; the work goes on in AWS and the next event picks it up",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(delay).await;
    }
}

/// After a converged pass: a stack left in a failed state fails the step.
async fn settled(controller: &Controller, key: &EnvKey) -> anyhow::Result<()> {
    let name = key.stack_name(&controller.config.app);
    match controller.aws.stacks.describe(&name).await? {
        Some(stack) if stack.phase() != Phase::Stable => bail!(
            "the deploy failed: stack {name} is {}; the pull request's comment says why",
            stack.status.as_str()
        ),
        _ => Ok(()),
    }
}

fn label(job: &Job) -> String {
    match job {
        Job::Env(key) => key.to_string(),
        Job::Resync => "every open pull request and owned stack".to_owned(),
        Job::Production => "production".to_owned(),
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
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(Path::new("t.yaml"), "app: demo\nrepository: octo/app\n").unwrap()
    }

    #[test]
    fn unknown_events_are_errors_naming_the_known_ones() {
        let err = known("frobnicate").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("\"frobnicate\""), "{text}");
        assert!(text.contains("pull_request, issue_comment"), "{text}");
    }

    #[test]
    fn a_bad_payload_is_an_error() {
        assert!(route(&config(), "pull_request", b"not json").is_err());
        assert!(route(&config(), "schedule", b"not json").is_err());
        assert!(route(&config(), "pull_request", b"{}").is_err());
    }

    #[test]
    fn ignored_actions_have_nothing_to_do() {
        let body = br#"{"ref": "v1", "ref_type": "tag", "repository": {"full_name": "octo/app"}}"#;
        assert!(matches!(
            route(&config(), "delete", body).unwrap(),
            Routed::Nothing(_)
        ));
    }

    #[test]
    fn schedule_and_manual_runs_resync() {
        assert_eq!(
            route(&config(), "schedule", br#"{"schedule": "17 * * * *"}"#).unwrap(),
            Routed::Jobs(vec![(Job::Resync, Vec::new())])
        );
    }

    #[test]
    fn merge_keeps_one_entry_per_job() {
        let mut pending = Vec::new();
        merge(&mut pending, Job::Env(EnvKey::Pr(1)), Vec::new());
        merge(&mut pending, Job::Production, Vec::new());
        merge(
            &mut pending,
            Job::Env(EnvKey::Pr(1)),
            vec![Intent::ApproveLabel { by: "a".into() }],
        );
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].1.len(), 1);
    }

    #[test]
    fn a_resync_fills_the_inbox_once_per_job() {
        let (queue, mut inbox) = queue::inbox::<Job, Intent>();
        queue.push(Job::Env(EnvKey::Pr(1)), None);
        queue.push(Job::Production, None);
        queue.later(Job::Env(EnvKey::Pr(1)), Duration::from_secs(60));
        queue.push(
            Job::Env(EnvKey::Pr(1)),
            Some(Intent::ApproveLabel { by: "a".into() }),
        );
        let taken = inbox.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].0, Job::Env(EnvKey::Pr(1)));
        assert_eq!(taken[0].1.len(), 1);
        assert!(inbox.take().is_empty());
    }

    #[test]
    fn outputs_cannot_inject_entries() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out");
        write_outputs(&file, &[("url", "x\nstack-name=evil".into())]).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let delimiter = header.strip_prefix("url<<").unwrap();
        assert_eq!(lines.next(), Some("x"));
        assert_eq!(lines.next(), Some("stack-name=evil"));
        assert_eq!(lines.next(), Some(delimiter));
    }

    #[test]
    fn only_the_integration_refusal_means_an_actions_token() {
        let refused = |message: &str| ForgeError::Refused {
            status: 403,
            message: message.into(),
        };
        assert!(is_installation_token(&refused(
            "Resource not accessible by integration"
        )));
        assert!(!is_installation_token(&refused(
            "API rate limit exceeded for installation ID 1."
        )));
        assert!(!is_installation_token(&ForgeError::NotFound));
    }

    #[test]
    fn command_messages_are_escaped() {
        assert_eq!(escape_data("a\n::x%"), "a%0A::x%25");
    }
}
