//! The smoke checks job: runs `preview.checks` against a ready preview and
//! reports them as a Check Run on its commit.
//!
//! A pass that sees a commit become ready leaves (commit, URL) here and
//! wakes the environment's checks job (`Job::Checks`), which runs beside
//! the passes, outside their cap, as the record job does: a slow preview
//! never holds a worker that a deploy needs. A newer commit's request
//! replaces an older one not yet run. Checks only report: a failed one
//! leaves the environment as it is. The HTTP checks run in
//! [`crate::reconcile::checks`], which production releases share; the
//! task checks in [`super::task_check`], beside them.

use super::task_check;
use crate::config::Check;
use crate::domain::checks::{self, Outcome};
use crate::domain::naming::EnvKey;
use crate::github::checks::Reported;
use crate::reconcile::checks::{Bypass, Target, all_failed, run_all};
use crate::reconcile::{Action, Ctx, Result};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

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
    let started = Reported::start(
        &ctx.forge,
        &ctx.smoke_runs.as_status,
        &preview.checks_name,
        &wanted.sha,
        &wanted.url,
    );
    let reported = match started.await {
        Ok(reported) => reported,
        Err(err) => {
            ctx.smoke_runs.put(key, wanted.clone());
            return Err(err.into());
        }
    };
    // Boxed: the task checks' polling makes a large future, and every
    // job's future is as large as the largest kind.
    let outcomes = Box::pin(run_checks(ctx, key, &wanted)).await;
    let (title, summary) = checks::summary(&wanted.url, &outcomes);
    let passed = outcomes.iter().all(Outcome::passed);
    reported.conclude(passed, title, summary).await?;
    tracing::info!(env = %key, passed, "smoke checks concluded");
    Ok(Action::done())
}

/// Runs the HTTP checks and the task checks side by side; their
/// outcomes in the config's order.
async fn run_checks(ctx: &Ctx, key: &EnvKey, wanted: &Wanted) -> Vec<Outcome> {
    let checks = &ctx.config.preview.checks;
    let http: Vec<Check> = (checks.iter())
        .filter(|c| c.task.is_none())
        .cloned()
        .collect();
    let http_run = async {
        if http.is_empty() {
            return Vec::new();
        }
        let base = ctx.checks_origin.as_deref().unwrap_or(&wanted.url);
        match read_bypass(ctx).await {
            Ok(bypass) => {
                let target = Target {
                    base,
                    bypass: bypass.as_ref(),
                };
                run_all(&target, &http).await
            }
            Err(why) => all_failed(&http, &why),
        }
    };
    // A task runs in AWS, next to the preview: it gets its real URL.
    let task_run = task_check::run_all(ctx, key, &wanted.url, checks);
    let (http, tasks) = tokio::join!(http_run, task_run);
    let mut by_name: HashMap<String, Outcome> = (http.into_iter().chain(tasks))
        .map(|o| (o.name.clone(), o))
        .collect();
    (checks.iter())
        .filter_map(|c| by_name.remove(&c.name))
        .collect()
}

/// A private preview's bypass, read now so a rotated value is used at
/// once; `None` for a preview without one.
pub(super) async fn read_bypass(ctx: &Ctx) -> std::result::Result<Option<Bypass>, String> {
    let access = &ctx.config.preview.access;
    if !access.has_bypass() {
        return Ok(None);
    }
    let read = Bypass::read(
        &ctx.aws.secrets,
        &access.bypass_header,
        &access.bypass_secret_arn,
    );
    read.await.map(Some)
}
