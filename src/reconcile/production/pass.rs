//! The server's production pass: observe, apply the commands given on PRs,
//! watch the alarms during a shift, then let the planner choose the next
//! action and carry it out.

use super::gates::{self, Gated};
use super::{Observed, Production, Reporter, alb};
use crate::config::Strategy;
use crate::domain::commands::Command;
use crate::domain::naming::short_sha;
use crate::domain::release::{Ignored, Schedule, TOTAL, written_directive};
use crate::domain::rollout::{self, Action as Step, Due, Log, Policy};
use crate::reconcile::context::STEADY_POLL;
use crate::reconcile::gate::{self, Roles, Ruling, Verdict};
use crate::reconcile::spec::{self, Spec};
use crate::reconcile::{Action, Ctx, Error, Given, Intent, Job, Result};
use std::time::Duration;

pub async fn pass(ctx: &Ctx, intents: &[Intent]) -> Result<Action> {
    let config = &ctx.config.production;
    if !config.enabled {
        return Ok(Action::done());
    }
    let prod = Production {
        config: &ctx.config,
        aws: &ctx.aws,
        clock: &ctx.clock,
        reporter: Reporter::github(&ctx.forge, &ctx.config),
    };
    let branch = match &config.branch {
        Some(branch) => branch.clone(),
        None => ctx.forge.default_branch().await?,
    };
    let head = ctx.forge.branch_head(&branch).await?;
    if config.strategy == Strategy::Alb {
        // Releases go on the production load balancer: it comes first.
        let shared = ctx.shared().await?;
        match alb::ensure(&ctx.aws, &ctx.config, &shared.stack_name).await? {
            alb::State::Ready(_) => {}
            alb::State::Busy => return Ok(Action::after(ctx.poll_delay(STEADY_POLL))),
            alb::State::Switching { edge, records, log } => {
                return super::switch::step(ctx, &prod, &edge, &records, log.as_deref()).await;
            }
        }
    }
    let mut observed = prod.observe(head.clone()).await?;
    super::switch::refuse_back(&ctx.config, &observed)?;
    // Commands that act go first, then the alarm watch and the plan; the
    // answers to refused commands wait until all of that is done, so no
    // number of commenters can delay a rollback.
    let mut roles = Roles::default();
    let mut refused = Vec::new();
    for intent in intents {
        let Intent::Command {
            command, comment, ..
        } = intent
        else {
            continue;
        };
        let accepted = match gate::judge(ctx, command.required_role(), comment, &mut roles).await? {
            Ruling::Refuse(role) => {
                refused.push((*command, comment, role));
                false
            }
            Ruling::Answered(verdict) => verdict == Verdict::Allowed,
            Ruling::Allow(_) => {
                gate::accept(ctx, comment).await?;
                true
            }
        };
        if accepted && run(ctx, &prod, &observed, *command, comment).await? {
            // Commands change state: observe again before the next.
            observed = prod.observe(head.clone()).await?;
        }
    }
    let next = plan(ctx, &prod, &observed).await?;
    for (command, comment, role) in refused {
        gate::refuse(ctx, command, comment, role).await?;
    }
    Ok(next)
}

/// The alarm watch, then the planner's next step.
async fn plan(ctx: &Ctx, prod: &Production<'_>, observed: &Observed) -> Result<Action> {
    let config = &ctx.config.production;
    if let Some(next) = watch_alarms(ctx, prod, observed).await? {
        return Ok(next);
    }
    let policy = Policy {
        keep: config.keep,
        window: config.window,
        poll: ctx.config.queue.poll_max,
    };
    let schedule = Schedule::from_percents(&config.steps, config.bake)
        .map_err(|err| Error::user(format!("`production.steps` cannot be used: {err}")))?;
    let step = rollout::plan(&observed.view, &policy, &schedule);
    tracing::debug!(?step, "production");
    let due = gates::any(ctx)
        .then(|| rollout::due(&observed.view, &step, &schedule))
        .flatten();
    if let Some(due) = due {
        // The checks before the step reach the candidate where it is now.
        prod.sync_test_route(observed, &observed.view).await?;
        return gated(ctx, prod, observed, &due, step).await;
    }
    // The test route follows the candidate as the step leaves it.
    let mut after = observed.view.clone();
    if let Step::Track { log, .. } = &step {
        after.log = log.clone();
    }
    if let Step::Shift { weights, log, .. } | Step::Fail { weights, log, .. } = &step {
        after.weights = weights.clone();
        after.log = log.clone();
    }
    prod.sync_test_route(observed, &after).await?;
    carry_out(ctx, prod, observed, step).await
}

/// A shift due, once its gates answer: taken, held, or refused.
async fn gated(
    ctx: &Ctx,
    prod: &Production<'_>,
    observed: &Observed,
    due: &Due,
    step: Step,
) -> Result<Action> {
    let Step::Shift {
        weights,
        mut log,
        percent,
    } = step
    else {
        return carry_out(ctx, prod, observed, step).await;
    };
    let poll = Action::after(ctx.poll_delay(STEADY_POLL));
    match gates::before_shift(ctx, prod, observed, due, &weights).await? {
        Gated::Waiting { wake: true } => Ok(poll.waking([Job::ReleaseGates])),
        Gated::Waiting { wake: false } | Gated::Held => Ok(poll),
        Gated::Refused => Ok(Action::after(ctx.config.queue.poll_max)),
        Gated::Go { checked } => {
            if checked {
                log.checks_passed(due.from);
            }
            let step = Step::Shift {
                weights,
                log,
                percent,
            };
            carry_out(ctx, prod, observed, step).await
        }
    }
}

async fn carry_out(
    ctx: &Ctx,
    prod: &Production<'_>,
    observed: &Observed,
    step: Step,
) -> Result<Action> {
    // Production waits on health gates and bakes, not on one operation's
    // start: it polls at the steady pace.
    let poll = Action::after(ctx.poll_delay(STEADY_POLL));
    match step {
        Step::Create { sha, stack } => {
            create_release(ctx, observed.edge.as_ref(), &sha, &stack).await
        }
        Step::Track { mut log, stack } => {
            let sha = observed
                .view
                .head
                .as_ref()
                .map(|(sha, _)| sha.clone())
                .unwrap_or_default();
            let before = &observed.view.log;
            let replaced = before
                .release
                .as_ref()
                .filter(|old| log.is_failed(old) && !before.is_failed(old));
            if let Some(replaced) = replaced {
                prod.reporter
                    .replaced(&observed.view, replaced, &stack)
                    .await?;
            }
            let ignored = follow_directive(ctx, &sha, &stack, &mut log).await?;
            let image = observed
                .stacks
                .iter()
                .find(|s| s.name == stack)
                .and_then(|s| s.parameters.get("Image"))
                .map(String::as_str);
            log.deployment = prod
                .reporter
                .started(&sha, &stack, image, ignored.as_ref())
                .await?;
            prod.apply(observed, &observed.view.weights, &log).await?;
            tracing::info!(stack, image, "release started");
            Ok(poll)
        }
        Step::Shift {
            weights,
            log,
            percent,
        } => {
            prod.apply(observed, &weights, &log).await?;
            prod.reporter.shifted(&log, percent).await?;
            tracing::info!(release = ?log.release, percent, "traffic shifted");
            let bake = log
                .schedule
                .iter()
                .find(|s| s.percent == percent)
                .map_or(ctx.config.production.bake, |s| s.bake);
            let poll_max = ctx.config.queue.poll_max;
            Ok(Action::after(
                bake.min(poll_max).max(Duration::from_millis(50)),
            ))
        }
        Step::Fail {
            weights,
            log,
            stack,
        } => {
            prod.apply(observed, &weights, &log).await?;
            prod.reporter.failed(&observed.view, &stack).await?;
            tracing::warn!(stack, "release failed");
            Ok(poll)
        }
        Step::Delete { stack } => {
            prod.delete(observed, &stack).await?;
            tracing::info!(stack, "previous production stack deleted (retention)");
            Ok(poll)
        }
        Step::Wait(delay) => Ok(Action::after(delay)),
        Step::Idle => {
            prod.remove_leftovers(observed).await?;
            Ok(Action::done())
        }
    }
}

/// Sets the release's schedule from its merged PR's title directive, when
/// whoever merged the PR may change it; otherwise records that it was
/// ignored and returns why.
async fn follow_directive(
    ctx: &Ctx,
    sha: &str,
    stack: &str,
    log: &mut Log,
) -> Result<Option<Ignored>> {
    let Some(pr) = ctx.forge.pulls_for_commit(sha).await?.into_iter().next() else {
        return Ok(None);
    };
    let Some((written, directive)) = written_directive(&pr.title) else {
        return Ok(None);
    };
    // The commit's PR list does not say who merged: the PR itself does.
    let merger = ctx
        .forge
        .pull_request(pr.number)
        .await?
        .and_then(|pr| pr.merged_by)
        .map(|user| user.login);
    let role = match &merger {
        Some(login) => ctx.forge.role(login).await?,
        None => None,
    };
    if let Some(ignored) = Ignored::rule(stack, written, merger.as_deref(), role) {
        tracing::warn!(
            stack,
            pr = pr.number,
            "{ignored}; the configured steps apply"
        );
        log.ignore(ignored.clone());
        return Ok(Some(ignored));
    }
    match directive.schedule(ctx.config.production.bake) {
        Ok(schedule) => log.schedule = schedule.steps,
        Err(err) => tracing::warn!(err, "ignoring the title's schedule"),
    }
    Ok(None)
}

async fn create_release(
    ctx: &Ctx,
    edge: Option<&alb::ProdEdge>,
    sha: &str,
    stack: &str,
) -> Result<Action> {
    let shared = ctx.shared().await?;
    // Pinned to the digest the tag names now: a tag pushed again later
    // changes neither this release nor a rollback to it.
    let Some(digest) = ctx.aws.images.digest(&shared.repository_name, sha).await? else {
        tracing::info!(commit = short_sha(sha), "waiting for the release image");
        return Ok(Action::after(ctx.config.queue.poll_max));
    };
    let request = super::release_request(
        &ctx.config,
        sha,
        shared.image_at(&digest),
        spec::tag_time(ctx.clock.now()),
        edge.is_some(),
    );
    let mut spec = Spec::build(&ctx.config, &shared, request)?;
    if let Some(edge) = edge {
        spec.place(&alb::place(&ctx.aws, edge).await?)?;
    }
    ctx.aws.stacks.create(&spec.deploy(stack)).await?;
    tracing::info!(stack, digest, "production stack created");
    Ok(Action::after(ctx.poll_delay(Duration::ZERO)))
}

/// During a shift, an alarm in ALARM rolls traffic back at once.
async fn watch_alarms(
    ctx: &Ctx,
    prod: &Production<'_>,
    observed: &Observed,
) -> Result<Option<Action>> {
    let view = &observed.view;
    let Some(release) = view.log.release.as_deref() else {
        return Ok(None);
    };
    let weight = view.weights.get(release).copied().unwrap_or(0);
    if weight == 0 || weight >= TOTAL || view.log.is_failed(release) {
        return Ok(None);
    }
    let alarms = &ctx.config.production.alarms;
    let firing = ctx.aws.health.alarms_firing(alarms).await?;
    if firing.is_empty() {
        return Ok(None);
    }
    let reason = format!("alarm {} is in ALARM", firing.join(", "));
    let plan = prod.rollback_plan(observed, None)?;
    prod.roll_back(observed, plan, &reason).await?;
    Ok(Some(Action::after(ctx.config.queue.poll_max)))
}

/// Carries out an accepted `/pullstack promote` or `/pullstack rollback`,
/// and says what it did. False when the command was already carried out.
async fn run(
    ctx: &Ctx,
    prod: &Production<'_>,
    observed: &Observed,
    command: Command,
    given: &Given,
) -> Result<bool> {
    // Carried out once: a retry of this pass must not roll back twice.
    if ctx.acknowledged.get(given.comment_id) == Some(Verdict::Done) {
        return Ok(false);
    }
    let by = format!("@{}", given.author);
    let reply = match command {
        Command::Rollback => match prod.rollback_plan(observed, None) {
            Ok(plan) => {
                let (from, to) = (plan.from.clone().unwrap_or_default(), plan.to.clone());
                prod.roll_back(observed, plan, &format!("requested by {by}"))
                    .await?;
                format!("Rolled production back from `{from}` to `{to}`.")
            }
            Err(err) => format!("Cannot roll back: {err:#}."),
        },
        Command::Promote => match prod.promote_plan(observed) {
            Ok(plan) => {
                let release = plan.to.clone();
                prod.promote(observed, plan, &by).await?;
                format!("Promoted `{release}` to 100% of production traffic.")
            }
            Err(_) => "Nothing to promote: no healthy release is in flight.".to_owned(),
        },
        _ => return Ok(false),
    };
    ctx.acknowledged.put(given.comment_id, Verdict::Done);
    ctx.forge.create_comment(given.issue, &reply).await?;
    Ok(true)
}
