//! The gates before each shift of a production release: its checks
//! (`production.checks`) and the gate hooks (`production.gates`).
//!
//! The production pass finds a shift due ([`rollout::due`]) and asks here;
//! the gates job (`Job::ReleaseGates`) runs the checks and calls the
//! hooks beside the passes, outside their cap, so a slow check or hook
//! never holds a worker; then it wakes the pass, which takes the answer
//! and shifts, holds, or rolls back. What was asked and found lives in
//! memory: a restart asks again, and runs again the checks the release
//! log does not record as passed at that weight.

use super::{Production, Reporter};
use crate::config::{Check, Strategy};
use crate::domain::checks::{self as table, Outcome};
use crate::domain::gates::{self, Answer, HookBody, SIGNATURE_HEADER};
use crate::domain::rollout::{self, Due};
use crate::github::checks::Reported;
use crate::reconcile::checks::{Target, run_all};
use crate::reconcile::{Action, Ctx, Job, Result};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The most bytes of a gate's answer read.
const ANSWER_BYTES: usize = 4096;

/// What the gates of one step are asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asked {
    pub due: Due,
    /// The released commit.
    pub sha: String,
    /// The weights after the step.
    pub weights: BTreeMap<String, u8>,
    /// Where the checks go: the candidate alone, or production.
    pub url: String,
    /// The release's Deployment.
    pub deployment: Option<u64>,
    /// The checks cannot run: with Route53, before the very first release
    /// nothing serves production to check.
    pub no_checks: bool,
}

/// What the gates of a step found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether this run's checks passed (false when none ran).
    pub checked: bool,
    pub answer: Answer,
}

#[derive(Default)]
struct State {
    /// Asked and not yet answered.
    asked: Option<Asked>,
    /// Answered, not yet taken by the pass.
    done: Option<(Due, Verdict)>,
    /// The hold last shown on the Deployment, so a gate that keeps
    /// holding is not shown again at every poll.
    shown: Option<String>,
}

/// The gates' requests and answers. Lost on restart, which asks again.
#[derive(Default)]
pub struct ReleaseGates {
    state: Mutex<State>,
    /// The token cannot write check runs: results go out as commit statuses.
    as_status: AtomicBool,
}

impl ReleaseGates {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("release gates lock")
    }

    /// The answer for `due`, taken, if it came.
    pub fn answer(&self, due: &Due) -> Option<Verdict> {
        let mut state = self.state();
        let (answered, _) = state.done.as_ref()?;
        if answered != due {
            state.done = None;
            return None;
        }
        state.done.take().map(|(_, verdict)| verdict)
    }

    /// Asks the gates about `asked`; false when it is already asked.
    pub fn ask(&self, asked: Asked) -> bool {
        let mut state = self.state();
        if state.asked.as_ref().is_some_and(|a| a.due == asked.due) {
            return false;
        }
        state.asked = Some(asked);
        true
    }

    /// Whether `why` is a hold not shown yet (and now it is).
    pub fn show(&self, why: &str) -> bool {
        let mut state = self.state();
        if state.shown.as_deref() == Some(why) {
            return false;
        }
        state.shown = Some(why.to_owned());
        true
    }

    /// The release moved on: the next hold is news.
    pub fn moved_on(&self) {
        self.state().shown = None;
    }

    fn asked(&self) -> Option<Asked> {
        self.state().asked.clone()
    }

    fn answered(&self, due: &Due, verdict: Verdict) {
        let mut state = self.state();
        if state.asked.as_ref().is_some_and(|a| a.due == *due) {
            state.asked = None;
        }
        state.done = Some((due.clone(), verdict));
    }
}

/// Whether any gate stands before the shifts of a release.
pub fn any(ctx: &Ctx) -> bool {
    let production = &ctx.config.production;
    !production.checks.is_empty() || !production.gates.is_empty()
}

/// Where the checks before `due` go: before the release's first traffic
/// the test route, which reaches the candidate alone (`strategy: alb`);
/// Route53 has none, so there, as after every bake, production.
pub fn target(ctx: &Ctx, due: &Due) -> String {
    let production = &ctx.config.production;
    if due.from == 0 && production.strategy == Strategy::Alb {
        return format!("https://next.{}", production.domain);
    }
    super::url(&ctx.config)
}

/// The gates job: runs the checks (unless they passed at this weight) and
/// calls the hooks for what the pass asked, then wakes the pass.
pub async fn run(ctx: &Ctx) -> Result<Action> {
    let Some(asked) = ctx.release_gates.asked() else {
        return Ok(Action::done());
    };
    let checks = &ctx.config.production.checks;
    let mut checked = false;
    if !asked.due.checked && !asked.no_checks && !checks.is_empty() {
        let outcomes = run_checks(ctx, &asked, checks).await?;
        if let Some(why) = gates::checks_failed(&outcomes) {
            let verdict = Verdict {
                checked: false,
                answer: Answer::Fail(why),
            };
            ctx.release_gates.answered(&asked.due, verdict);
            return Ok(Action::done().waking([Job::Production]));
        }
        checked = true;
        let reporter = Reporter::github(&ctx.forge, &ctx.config);
        let n = outcomes.len();
        let why = format!("{n} of {n} checks passed before {}%", asked.due.to);
        reporter.note(asked.deployment, &why).await?;
    }
    let answer = call_hooks(ctx, &asked).await;
    ctx.release_gates
        .answered(&asked.due, Verdict { checked, answer });
    Ok(Action::done().waking([Job::Production]))
}

/// Runs the checks and reports them as a Check Run on the released commit
/// (one per run), or as a commit status with a token that cannot.
async fn run_checks(ctx: &Ctx, asked: &Asked, checks: &[Check]) -> Result<Vec<Outcome>> {
    let reported = Reported::start(
        &ctx.forge,
        &ctx.release_gates.as_status,
        &ctx.config.production.checks_name,
        &asked.sha,
        &asked.url,
    )
    .await?;
    let base = ctx.checks_origin.as_deref().unwrap_or(&asked.url);
    // Production is public: its checks need no bypass.
    let target = Target { base, bypass: None };
    let outcomes = run_all(&target, checks).await;
    let passed = outcomes.iter().all(Outcome::passed);
    let (title, summary) = table::summary(&asked.url, &outcomes);
    let due = &asked.due;
    let title = format!("{title} before {}%", due.to);
    let summary = format!(
        "Release `{}`, step {}: from {}% to {}% of traffic.\n\n{summary}",
        due.release, due.step, due.from, due.to
    );
    reported.conclude(passed, title, summary).await?;
    tracing::info!(
        release = due.release,
        to = due.to,
        passed,
        "production checks concluded"
    );
    Ok(outcomes)
}

/// Calls every gate hook in turn; the first that does not pass answers.
async fn call_hooks(ctx: &Ctx, asked: &Asked) -> Answer {
    let production = &ctx.config.production;
    if production.gates.is_empty() {
        return Answer::Pass;
    }
    let Some(key) = &ctx.gate_key else {
        return Answer::Hold(format!(
            "held: no key to sign the gate hooks with; set {}",
            crate::settings::vars::GATE_SECRET
        ));
    };
    let body = HookBody {
        release: &asked.due.release,
        step: asked.due.step,
        percent: asked.due.to,
        weights: &asked.weights,
        repository: &ctx.config.repository,
        sha: &asked.sha,
    };
    let body = serde_json::to_vec(&body).expect("the hook body serializes");
    let signature = gates::signature(key.expose_secret().as_bytes(), &body);
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(production.gates_timeout)
        .build()
    {
        Ok(client) => client,
        Err(err) => return Answer::Hold(format!("held: no HTTP client: {err}")),
    };
    for url in &production.gates {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let reply = call(&client, url, &body, &signature, production.gates_timeout).await;
        let answer = gates::answer(&host, reply);
        tracing::info!(
            gate = host,
            step = asked.due.step,
            ?answer,
            "gate hook answered"
        );
        if answer != Answer::Pass {
            return answer;
        }
    }
    Answer::Pass
}

/// One gate's status and the start of its body, or why none came.
async fn call(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    signature: &str,
    timeout: Duration,
) -> std::result::Result<(u16, String), String> {
    let no_answer = || {
        format!(
            "did not answer within {}",
            humantime::format_duration(timeout)
        )
    };
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body.to_vec())
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(err) if err.is_timeout() => return Err(no_answer()),
        Err(_) => return Err("could not be reached".to_owned()),
    };
    let status = response.status().as_u16();
    let mut text = Vec::new();
    while text.len() < ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) if err.is_timeout() => return Err(no_answer()),
            Err(_) => break,
        }
    }
    text.truncate(ANSWER_BYTES);
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

/// Before a due shift: asks the gates, or carries out their answer.
/// `Ok(Some(log))` is the shift's go-ahead, with what to add to its log.
pub(super) async fn before_shift(
    ctx: &Ctx,
    prod: &Production<'_>,
    observed: &super::Observed,
    due: &Due,
    weights: &BTreeMap<String, u8>,
) -> Result<Gated> {
    let view = &observed.view;
    let Some(verdict) = ctx.release_gates.answer(due) else {
        let sha = (view.stacks.iter())
            .find(|s| s.name == due.release)
            .map(|s| s.sha.clone())
            .unwrap_or_default();
        let asked = Asked {
            due: due.clone(),
            sha,
            weights: weights.clone(),
            url: target(ctx, due),
            deployment: view.log.deployment,
            no_checks: due.from == 0
                && ctx.config.production.strategy == Strategy::Route53
                && view.live().is_none(),
        };
        let wake = ctx.release_gates.ask(asked);
        return Ok(Gated::Waiting { wake });
    };
    match verdict.answer {
        Answer::Pass => {
            ctx.release_gates.moved_on();
            Ok(Gated::Go {
                checked: verdict.checked,
            })
        }
        Answer::Hold(why) => {
            if verdict.checked {
                // Recorded, so asking again does not run them again.
                let mut log = view.log.clone();
                log.checks_passed(due.from);
                prod.apply(observed, &view.weights, &log).await?;
            }
            if ctx.release_gates.show(&why) {
                prod.reporter.held(view.log.deployment, &why).await?;
            }
            tracing::info!(release = due.release, why, "release held by a gate");
            Ok(Gated::Held)
        }
        Answer::Fail(why) => {
            ctx.release_gates.moved_on();
            // With traffic on it, the release is rolled back as an alarm
            // rolls it back; before any, it is stopped where it is.
            if due.from > 0
                && let Ok(plan) = prod.rollback_plan(observed, None)
            {
                prod.roll_back(observed, plan, &why).await?;
                return Ok(Gated::Refused);
            }
            let Some(rollout::Action::Fail {
                weights,
                log,
                stack,
            }) = rollout::stop(view)
            else {
                return Ok(Gated::Refused);
            };
            prod.apply(observed, &weights, &log).await?;
            tracing::warn!(stack, why, "release stopped by its gates");
            prod.reporter.stopped(view, &stack, &why).await?;
            Ok(Gated::Refused)
        }
    }
}

/// Where a due shift stands with its gates.
pub(super) enum Gated {
    /// Asked; `wake` when the gates job must be woken to answer.
    Waiting { wake: bool },
    /// Held: ask again at the next poll.
    Held,
    /// Rolled back or stopped.
    Refused,
    /// Take the shift; `checked` when its checks ran and passed.
    Go { checked: bool },
}
