//! The smoke checks job: runs `preview.checks` against a ready preview and
//! reports them as a Check Run on its commit.
//!
//! A pass that sees a commit become ready leaves (commit, URL) here and
//! wakes the environment's checks job (`Job::Checks`), which runs beside
//! the passes, outside their cap, as the record job does: a slow preview
//! never holds a worker that a deploy needs. A newer commit's request
//! replaces an older one not yet run. Checks only report: a failed one
//! leaves the environment as it is.

use crate::config::Check;
use crate::domain::checks::{self, Outcome};
use crate::domain::naming::EnvKey;
use crate::github::checks::{CheckRun, CheckStatus, Conclusion, Output};
use crate::github::client::{ForgeError, StatusState};
use crate::reconcile::{Action, Ctx, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many checks of one run are in flight at once.
const CONCURRENCY: usize = 4;

/// How long one run's checks may take in all.
const DEADLINE: Duration = Duration::from_secs(120);

/// The most bytes of a body read: enough for a match, bounded for memory.
const BODY_BYTES: usize = 256 * 1024;

/// A run asked for: the commit and the preview URL it was ready at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub sha: String,
    pub url: String,
}

/// Runs waiting for each environment's checks job, and whether the token
/// was found unable to write check runs. Lost on restart: the Check Run
/// then stays as it was, and the next deploy runs them again; the first
/// run finds out about the token again.
#[derive(Default)]
pub struct SmokeRuns {
    wanted: Mutex<HashMap<EnvKey, Wanted>>,
    /// Results go out as commit statuses instead.
    as_status: AtomicBool,
}

impl SmokeRuns {
    /// Asks for a run at `wanted`, replacing one not yet started.
    pub fn put(&self, key: &EnvKey, wanted: Wanted) {
        self.wanted
            .lock()
            .expect("smoke runs lock")
            .insert(key.clone(), wanted);
    }

    fn take(&self, key: &EnvKey) -> Option<Wanted> {
        self.wanted.lock().expect("smoke runs lock").remove(key)
    }
}

/// The checks job of one environment.
pub async fn run(ctx: &Ctx, key: &EnvKey) -> Result<Action> {
    let Some(wanted) = ctx.smoke_runs.take(key) else {
        return Ok(Action::done());
    };
    let preview = &ctx.config.preview;
    if preview.checks.is_empty() {
        return Ok(Action::done());
    }
    let name = preview.checks_name.clone();
    let started = CheckRun {
        name: name.clone(),
        head_sha: wanted.sha.clone(),
        status: CheckStatus::InProgress,
        conclusion: None,
        output: None,
    };
    let fallback = ctx.smoke_runs.as_status.load(Ordering::Relaxed);
    let id = if fallback {
        None
    } else {
        match ctx.forge.create_check_run(&started).await {
            Ok(id) => Some(id),
            Err(err) if cannot_write_check_runs(&err) => {
                tracing::warn!(
                    "this token cannot write check runs; smoke checks are reported as \
                     commit statuses from now on"
                );
                ctx.smoke_runs.as_status.store(true, Ordering::Relaxed);
                None
            }
            Err(err) => {
                ctx.smoke_runs.put(key, wanted);
                return Err(err.into());
            }
        }
    };
    let sha = &wanted.sha;
    if id.is_none() {
        let why = "smoke checks running";
        let posted = ctx
            .forge
            .commit_status(sha, &name, StatusState::Pending, None, why);
        if let Err(err) = posted.await {
            ctx.smoke_runs.put(key, wanted);
            return Err(err.into());
        }
    }
    let base = ctx.checks_origin.as_deref().unwrap_or(&wanted.url);
    let outcomes = run_all(base, &preview.checks).await;
    let (title, summary) = checks::summary(&wanted.url, &outcomes);
    let passed = outcomes.iter().all(Outcome::passed);
    let Some(id) = id else {
        let state = if passed {
            StatusState::Success
        } else {
            StatusState::Failure
        };
        let url = Some(wanted.url.as_str());
        ctx.forge
            .commit_status(sha, &name, state, url, &title)
            .await?;
        tracing::info!(env = %key, passed, "smoke checks concluded (commit status)");
        return Ok(Action::done());
    };
    let done = CheckRun {
        status: CheckStatus::Completed,
        conclusion: Some(if passed {
            Conclusion::Success
        } else {
            Conclusion::Failure
        }),
        output: Some(Output {
            title,
            summary,
            annotations: Vec::new(),
        }),
        ..started
    };
    ctx.forge.update_check_run(id, &done).await?;
    tracing::info!(env = %key, passed, "smoke checks concluded");
    Ok(Action::done())
}

/// Runs `checks` against `base`, a few at a time, within the deadline; a
/// check the deadline cut short fails as timed out.
pub async fn run_all(base: &str, checks: &[Check]) -> Vec<Outcome> {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            let why = format!("no HTTP client: {err}");
            return checks
                .iter()
                .map(|c| failed(c, Duration::ZERO, &why))
                .collect();
        }
    };
    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut running = tokio::task::JoinSet::new();
    for (index, check) in checks.iter().enumerate() {
        let (client, gate, check) = (client.clone(), gate.clone(), check.clone());
        let target = format!("{}{}", base.trim_end_matches('/'), check.path);
        running.spawn(async move {
            let _turn = gate.acquire_owned().await;
            (index, one(&client, &target, &check).await)
        });
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; checks.len()];
    let all = async {
        while let Some(joined) = running.join_next().await {
            if let Ok((index, outcome)) = joined {
                outcomes[index] = Some(outcome);
            }
        }
    };
    let _ = tokio::time::timeout(DEADLINE, all).await;
    running.abort_all();
    let why = format!(
        "not finished within the run's {}s deadline",
        DEADLINE.as_secs()
    );
    outcomes
        .into_iter()
        .zip(checks)
        .map(|(o, c)| o.unwrap_or_else(|| failed(c, DEADLINE, &why)))
        .collect()
}

/// Whether GitHub refused a check run because of who is asking: a
/// personal token gets 403 "Resource not accessible by personal access
/// token", and some setups answer the Checks API with 404.
pub(crate) fn cannot_write_check_runs(err: &ForgeError) -> bool {
    match err {
        ForgeError::NotFound => true,
        ForgeError::Refused {
            status: 403,
            message,
        } => message.contains("not accessible by personal access token"),
        _ => false,
    }
}

fn failed(check: &Check, took: Duration, why: &str) -> Outcome {
    Outcome {
        name: check.name.clone(),
        took,
        status: None,
        excerpt: String::new(),
        failure: Some(why.to_owned()),
    }
}

/// One check: its request, its answer, and what was wrong with it.
async fn one(client: &reqwest::Client, target: &str, check: &Check) -> Outcome {
    let started = tokio::time::Instant::now();
    let answer = tokio::time::timeout(check.timeout, async {
        let mut response = client
            .request(check.method.as_reqwest(), target)
            .send()
            .await?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < BODY_BYTES {
            match response.chunk().await? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body.truncate(BODY_BYTES);
        Ok::<_, reqwest::Error>((status, String::from_utf8_lossy(&body).into_owned()))
    })
    .await;
    let took = started.elapsed();
    let (status, body) = match answer {
        Err(_) => {
            let why = format!("no answer within {}s", check.timeout.as_secs_f64());
            return failed(check, took, &why);
        }
        Ok(Err(err)) => {
            // The error's chain, without the URL (a private preview's name
            // is not a secret, but the table has it once already).
            let why = format!("request failed: {}", err.without_url());
            return failed(check, took, &why);
        }
        Ok(Ok(answer)) => answer,
    };
    let mismatch = || {
        if let Some(wanted) = check.body_contains.as_ref().filter(|w| !body.contains(*w)) {
            return Some(format!("the body does not contain {wanted:?}"));
        }
        let pattern = check
            .body_matches
            .as_ref()
            .filter(|p| !p.0.is_match(&body))?;
        Some(format!("the body does not match /{}/", pattern.0.as_str()))
    };
    let failure = if status != check.expect_status {
        Some(format!(
            "expected status {}, got {status}",
            check.expect_status
        ))
    } else {
        mismatch()
    };
    Outcome {
        name: check.name.clone(),
        took,
        status: Some(status),
        excerpt: checks::cut(&body, checks::EXCERPT_CHARS),
        failure,
    }
}
