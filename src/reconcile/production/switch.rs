//! Switching a live installation from `production.strategy: route53` to
//! `alb` with no moment unserved, on the production passes that follow the
//! config change, before any release step:
//!
//! 1. the production load balancer is made ([`alb::ensure`]);
//! 2. each release stack a rollback could reach is bridged, one update at
//!    a time: it keeps its own load balancer (which its weighted record
//!    points at) and gains a target group on the production listener;
//! 3. the production rule forwards to them with the records' weights, and
//!    its tags take the release log;
//! 4. one change batch puts all of the name's weight on the load
//!    balancer's record and the releases' records at 0;
//! 5. the records left at 0 and the log beside them go ([`alb::ensure`]
//!    again), and releases carry on on the load balancer.
//!
//! Every step reads where the last one left AWS, so a restart anywhere
//! finishes the switch. Switching back is refused ([`refuse_back`]).

use super::alb::{self, ProdEdge};
use super::{Observed, Production, Stored, release_request, targets};
use crate::aws::stacks::{Phase, Stack, tag};
use crate::aws::traffic::{Batch, Weighted};
use crate::config::{Config, Strategy};
use crate::domain::release::TOTAL;
use crate::domain::rollout::{self, Log, Medium, View};
use crate::reconcile::context::STEADY_POLL;
use crate::reconcile::edge::Placement;
use crate::reconcile::spec::{self, Spec};
use crate::reconcile::{Action, Ctx, Error, Result};
use anyhow::{Context, anyhow};
use std::collections::BTreeMap;
use std::time::Duration;

/// The next switch step, with the production load balancer ready and the
/// name's weighted `records` still holding traffic, `log` beside them.
pub async fn step(
    ctx: &Ctx,
    prod: &Production<'_>,
    edge: &ProdEdge,
    records: &[Weighted],
    log: Option<&str>,
) -> Result<Action> {
    let wait = Action::after(ctx.poll_delay(STEADY_POLL));
    let log: Log = log
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    let weights: BTreeMap<String, u8> = records
        .iter()
        .filter(|r| r.stack != edge.stack)
        .map(|r| (r.stack.clone(), r.weight))
        .collect();
    let stacks = prod.release_stacks().await?;
    for stack in &stacks {
        if on_edge(stack, edge) {
            continue;
        }
        let held = weights.get(&stack.name).is_some_and(|w| *w > 0);
        match stack.phase() {
            Phase::InProgress => {
                tracing::info!(stack = stack.name, "switch to alb: waiting for the stack");
                return Ok(wait);
            }
            Phase::Stable => {}
            phase if held => {
                return Err(Error::internal(anyhow!(
                    "switch to alb: release stack {} holds production traffic but is {phase:?}; \
                     see its CloudFormation events",
                    stack.name
                )));
            }
            _ => continue,
        }
        // A failed release never gets traffic again: it need not follow.
        if !held && log.is_failed(&stack.name) {
            continue;
        }
        let placement = alb::place(&ctx.aws, edge).await?;
        bridge(ctx, stack, &placement).await?;
        tracing::info!(
            stack = stack.name,
            priority = placement.priority,
            "switch to alb: the release joins the production load balancer"
        );
        return Ok(wait);
    }

    let kept = rollout::kept(Medium::Forward, &weights, &log);
    let wanted = targets(&stacks, &kept);
    let total: u32 = wanted.iter().map(|(_, w)| u32::from(*w)).sum();
    if total != u32::from(TOTAL) {
        // A record whose stack is gone: pointing the name at this forward
        // would drop its share.
        return Err(Error::internal(anyhow!(
            "switch to alb: the production rule would forward {total}% of traffic \
             ({kept:?}); the name stays on the Route53 records"
        )));
    }
    let forwarding = ctx.aws.forward.read(&edge.rule, &edge.next_rule).await?;
    let stored: Option<Stored> = forwarding
        .log
        .as_deref()
        .and_then(|l| serde_json::from_str(l).ok());
    let mut actual = forwarding.targets.clone();
    actual.sort();
    if actual != wanted || stored.is_none_or(|s| s.log != log) {
        let observed = Observed {
            view: View {
                stacks: Vec::new(),
                weights: weights.clone(),
                log: log.clone(),
                head: None,
                now: ctx.clock.now(),
            },
            stacks,
            records: Vec::new(),
            edge: Some(edge.clone()),
            test_route: Vec::new(),
        };
        prod.apply(&observed, &weights, &log).await?;
        tracing::info!(
            ?kept,
            "switch to alb: the production rule forwards to the live releases"
        );
    }

    // One batch: every resolver sees either the records or the load
    // balancer holding all the weight, never a share of nothing.
    let mut upsert: Vec<Weighted> = records
        .iter()
        .filter(|r| r.stack != edge.stack && r.weight > 0)
        .map(|r| Weighted {
            weight: 0,
            ..r.clone()
        })
        .collect();
    upsert.push(edge.name_record());
    let production = &ctx.config.production;
    ctx.aws
        .traffic
        .apply(
            &production.hosted_zone_id,
            &production.domain,
            &Batch {
                upsert,
                ..Batch::default()
            },
        )
        .await?;
    tracing::info!(
        domain = production.domain,
        "switch to alb: the production name points at its load balancer"
    );
    Ok(Action::after(ctx.poll_delay(Duration::ZERO)))
}

/// Whether the stack's target group is on the production listener already:
/// made there, or bridged.
fn on_edge(stack: &Stack, edge: &ProdEdge) -> bool {
    ["ListenerArn", "BridgeListenerArn"]
        .iter()
        .any(|key| stack.parameters.get(*key) == Some(&edge.listener))
}

/// Updates a release stack to bridged mode: the same commit and image
/// (pinned by digest), the config's current production settings.
async fn bridge(ctx: &Ctx, stack: &Stack, placement: &Placement) -> Result<()> {
    let shared = ctx.shared().await?;
    let sha = stack
        .tag(tag::COMMIT)
        .with_context(|| format!("release stack {} has no commit tag", stack.name))?;
    let image = stack
        .parameters
        .get("Image")
        .with_context(|| format!("release stack {} has no Image parameter", stack.name))?;
    let created_at = stack
        .tag(tag::CREATED_AT)
        .map_or_else(|| spec::tag_time(ctx.clock.now()), str::to_owned);
    let request = release_request(&ctx.config, sha, image.clone(), created_at, true);
    let mut spec = Spec::build(&ctx.config, &shared, request)?;
    spec.bridge(placement)?;
    ctx.aws.stacks.update(&spec.deploy(&stack.name)).await?;
    Ok(())
}

/// With `strategy: route53`, refuses to act on a name that points at the
/// production load balancer: its releases have no records of their own to
/// move traffic with, so nothing is changed.
pub fn refuse_back(config: &Config, observed: &Observed) -> Result<()> {
    if config.production.strategy != Strategy::Route53 {
        return Ok(());
    }
    let edge = alb::stack_name(&config.app);
    if observed
        .records
        .iter()
        .any(|r| r.stack == edge && r.weight > 0)
    {
        return Err(Error::user(format!(
            "`production.strategy: route53`, but the production name points at the production \
             load balancer `{edge}` (`strategy: alb`): switching back to Route53 records is not \
             supported, so nothing was changed. Set `strategy: alb` again."
        )));
    }
    Ok(())
}
