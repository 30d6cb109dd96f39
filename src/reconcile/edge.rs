//! The preview edge in shared mode: a pool of HTTPS load balancers (edge
//! shard stacks, `<app>-edge-<n>`, from `templates/edge.yaml`) on which each
//! preview stack adds one host rule.
//!
//! Placement (a shard and a rule priority, or two adjacent ones for a
//! preview with an automation bypass) happens under one lock per
//! process, held until the CreateStack or UpdateStack that claims it has
//! returned. What is on the edge (the rules on every shard's listener and
//! the `RulePriority` of every preview stack placed on it) is read from
//! AWS on first use, then kept under that lock: each placement adds its
//! claim, so placing a preview lists neither the stacks nor the rules.
//! The pool is read again whenever the kept view cannot place a preview
//! (a shard to wait for or to add), after a conflict or a failed claim,
//! and by every release and resync, which also frees what was removed.
//! With the shared queue (`queue.backend: sqs`), where replicas place
//! previews too, every placement reads the pool instead.
//! Two reconciles in this process therefore never take the same priority,
//! and a restart forgets nothing, since the stacks hold their placement and
//! the view is rebuilt from them. A conflict with another process (ELB's
//! `PriorityInUse`) is retried at another priority. The decisions are in
//! [`crate::domain::edge`].

use super::{Ctx, Error, Result};
use crate::aws::edge::Rule;
use crate::aws::stacks::{Deploy, Phase, Stack, tag};
use crate::config::Backend;
use crate::domain::edge::{self, Choice, Shard};
use crate::domain::naming::EnvKey;
use crate::domain::template;
use crate::reconcile::Job;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// The `pullstack:role` of edge shard stacks.
pub const ROLE: &str = "edge";

/// Where a preview stack is placed on the edge: its parameters in shared mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub listener: String,
    pub priority: u32,
    /// The bypass rule's priority, just before `priority`, when the
    /// preview has one.
    pub bypass_priority: Option<u32>,
    pub security_group: String,
    pub dns_name: String,
    pub zone_id: String,
}

impl Placement {
    /// The placement a preview stack already holds, if it is on the edge.
    pub fn of(stack: &Stack) -> Option<Placement> {
        let get = |key: &str| stack.parameters.get(key).filter(|v| !v.is_empty()).cloned();
        Some(Placement {
            listener: get("ListenerArn")?,
            priority: get("RulePriority")?.parse().ok()?,
            bypass_priority: get("BypassRulePriority")
                .and_then(|p| p.parse().ok())
                .filter(|p| *p != 0),
            security_group: get("EdgeSecurityGroupId")?,
            dns_name: get("EdgeDnsName")?,
            zone_id: get("EdgeHostedZoneId")?,
        })
    }

    /// The priorities it holds on its listener.
    pub fn priorities(&self) -> impl Iterator<Item = u32> + '_ {
        self.bypass_priority.into_iter().chain([self.priority])
    }

    /// The preview template's parameters for it.
    pub fn parameters(&self) -> [(&'static str, String); 6] {
        [
            ("ListenerArn", self.listener.clone()),
            ("RulePriority", self.priority.to_string()),
            (
                "BypassRulePriority",
                self.bypass_priority.unwrap_or(0).to_string(),
            ),
            ("EdgeSecurityGroupId", self.security_group.clone()),
            ("EdgeDnsName", self.dns_name.clone()),
            ("EdgeHostedZoneId", self.zone_id.clone()),
        ]
    }
}

/// What placing a preview came to.
pub enum Placed<'a> {
    /// Here; keep the claim until the stack call that makes it returns.
    At(Placement, Claim<'a>),
    /// Every shard is full and a new one is being created, for `elapsed`.
    Waiting { elapsed: Duration },
    /// Every shard is full and the region's load balancer quota leaves no
    /// room for another: `position` in the line of previews waiting for
    /// room (1 = next), and why, in the user's words.
    NoRoom { position: usize, reason: String },
}

/// A placement being made: the edge stays locked until it is dropped.
pub struct Claim<'a>(tokio::sync::MutexGuard<'a, Option<View>>);

impl Claim<'_> {
    /// The stack call did not take the placement (another process holds
    /// the priority, or the call failed): the pool is read from AWS again
    /// before the next placement.
    pub fn failed(&mut self) {
        *self.0 = None;
    }
}

/// The edge's shared state in this process.
#[derive(Default)]
pub struct EdgePool {
    /// Held while placing; keeps the pool as last read and placed since
    /// (`None`: read it from AWS).
    lock: tokio::sync::Mutex<Option<View>>,
    /// Previews per listener as last read (bypass rules not counted), for
    /// the cost estimate.
    loads: Mutex<BTreeMap<String, usize>>,
    /// Environments whose stack this process is deleting, so their
    /// removal releases their place on the edge once.
    deleting: Mutex<BTreeSet<EnvKey>>,
    /// Previews waiting for room under the load balancer quota, and since
    /// when: oldest first.
    no_room: Mutex<BTreeMap<EnvKey, DateTime<Utc>>>,
}

/// One shard's stack and what is on it.
struct ShardState {
    shard: Shard,
    stack: Stack,
    rules: Vec<Rule>,
}

/// The pool as read from AWS, with the placements made since.
pub struct View {
    shards: Vec<ShardState>,
    /// Every edge stack's number, whatever its state.
    numbers: BTreeSet<u32>,
    /// Listener and priority of every live preview stack on the edge.
    claimed: BTreeSet<(String, u32)>,
    /// Why a shard's create failed (it is being deleted), in the user's
    /// words.
    failed: Option<String>,
}

impl EdgePool {
    /// A shard and priority for preview `key` (new, or moving to the edge;
    /// waiting since `since`), avoiding `avoid` (priorities another
    /// process was found to hold). Adds a shard when all are full and the
    /// load balancer quota has room.
    pub async fn place(
        &self,
        ctx: &Ctx,
        key: &EnvKey,
        since: DateTime<Utc>,
        avoid: &[(String, u32)],
    ) -> Result<Placed<'_>> {
        let mut guard = self.lock.lock().await;
        if ctx.config.queue.backend == Backend::Sqs {
            // Replicas place previews too, and a view kept here would not
            // see their claims (or the shards they remove): every
            // placement reads the pool, as the shared queue's replicas
            // must agree.
            *guard = None;
        }
        let bypass = ctx.config.preview.access.has_bypass();
        let width = if bypass { 2 } else { 1 };
        let limit = ctx.config.edge.rules_per_alb;
        let mut fresh = guard.is_none();
        if fresh {
            *guard = Some(self.view(ctx).await?);
        }
        let mut choice = choose(guard.as_ref().expect("a view"), avoid, limit, width);
        if !fresh && !matches!(choice, Choice::On { .. }) {
            // The kept view has no room: what AWS holds decides whether to
            // wait for a shard or add one.
            *guard = Some(self.view(ctx).await?);
            choice = choose(guard.as_ref().expect("a view"), avoid, limit, width);
            fresh = true;
        }
        let view = guard.as_mut().expect("a view");
        match choice {
            Choice::On { number, priority } => {
                let state = view
                    .shards
                    .iter_mut()
                    .find(|s| s.shard.number == number)
                    .expect("placed on a shard of the view");
                let output = |key: &str| -> Result<String> {
                    state.stack.output(key).map(str::to_owned).ok_or_else(|| {
                        anyhow::anyhow!("edge stack {} has no {key} output", state.stack.name)
                            .into()
                    })
                };
                // The bypass rule comes just before the login rule.
                let placement = Placement {
                    listener: output("ListenerArn")?,
                    priority: priority + width - 1,
                    bypass_priority: bypass.then_some(priority),
                    security_group: output("SecurityGroupId")?,
                    dns_name: output("LoadBalancerDnsName")?,
                    zone_id: output("LoadBalancerHostedZoneId")?,
                };
                // Claimed from now on: the next placement keeps off it.
                for taken in placement.priorities() {
                    state.shard.taken.insert(taken);
                    view.claimed.insert((placement.listener.clone(), taken));
                }
                // The preview placed counts from now on.
                let mut loads = self.loads.lock().expect("edge loads");
                *loads.entry(placement.listener.clone()).or_default() += 1;
                drop(loads);
                self.no_room.lock().expect("edge line").remove(key);
                Ok(Placed::At(placement, Claim(guard)))
            }
            // A shard that cannot be created is the config's to fix: said
            // once, not added again on every pass.
            Choice::Wait { .. } | Choice::Add { .. } if view.failed.is_some() => {
                let failed = view.failed.clone().unwrap_or_default();
                // Said once: the next pass reads the pool again.
                *guard = None;
                Err(Error::user(failed))
            }
            Choice::Wait { number } => {
                let state = view.shards.iter().find(|s| s.shard.number == number);
                let elapsed = state
                    .and_then(|s| s.stack.operation_started)
                    .map(|t| ctx.clock.since(t))
                    .unwrap_or_default();
                Ok(Placed::Waiting { elapsed })
            }
            Choice::Add { .. } => {
                debug_assert!(fresh, "a shard is added from what AWS holds");
                // A shard is a load balancer: past the quota, CloudFormation
                // would fail half-way, so the preview waits for room.
                if let Some(full) = ctx.admissions.load_balancers_full(ctx).await? {
                    let position = {
                        let mut line = self.no_room.lock().expect("edge line");
                        line.entry(key.clone()).or_insert(since);
                        let mut order: Vec<_> = line.iter().collect();
                        order.sort_by_key(|(key, since)| (**since, (*key).clone()));
                        order.iter().position(|(k, _)| *k == key).unwrap_or(0) + 1
                    };
                    tracing::warn!(
                        env = %key,
                        used = full.used,
                        limit = full.limit,
                        "every edge shard is full and the load balancer quota is reached"
                    );
                    return Ok(Placed::NoRoom {
                        position,
                        reason: no_room(full),
                    });
                }
                let number = (1..)
                    .find(|n| !view.numbers.contains(n))
                    .expect("a free shard number");
                // The new shard is in no view yet: the next placement reads
                // the pool.
                *guard = None;
                self.add(ctx, number).await?;
                Ok(Placed::Waiting {
                    elapsed: Duration::ZERO,
                })
            }
        }
    }

    /// After a preview's stack is gone: removes any rule for its `host`
    /// that the delete left on a shard (and the target groups it forwarded
    /// to), then the shards left empty beside others. The pool is kept as
    /// read then, without the removed shards.
    pub async fn release(&self, ctx: &Ctx, host: &str) -> Result<()> {
        let mut guard = self.lock.lock().await;
        // Until this is done, what is kept may name a shard going away.
        *guard = None;
        let mut view = self.view(ctx).await?;
        let mut groups = BTreeSet::new();
        for state in &mut view.shards {
            let Some(listener) = state.stack.output("ListenerArn").map(str::to_owned) else {
                continue;
            };
            let left: Vec<Rule> = state
                .rules
                .iter()
                .filter(|r| r.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
                .filter(|r| !view.claimed.contains(&(listener.clone(), r.priority)))
                .cloned()
                .collect();
            for rule in left {
                tracing::warn!(
                    host,
                    rule = rule.arn,
                    "removing a rule its deleted stack left on the edge"
                );
                ctx.aws.edge.delete_rule(&rule.arn).await?;
                groups.extend(rule.target_groups.iter().cloned());
                state.shard.taken.remove(&rule.priority);
            }
        }
        // After every rule: a preview's bypass rule and its own forward to
        // the same group, which cannot go while a rule uses it.
        for group in &groups {
            ctx.aws.edge.delete_target_group(group).await?;
        }
        self.remove_surplus(ctx, &mut view).await?;
        *guard = Some(view);
        Ok(())
    }

    /// Removes the shards left empty beside others, and reads the pool
    /// again for the placements after it (the resync's part: it heals what
    /// the kept view missed, such as previews another process removed).
    pub async fn prune(&self, ctx: &Ctx) -> Result<()> {
        let mut guard = self.lock.lock().await;
        *guard = None;
        let mut view = self.view(ctx).await?;
        self.remove_surplus(ctx, &mut view).await?;
        *guard = Some(view);
        Ok(())
    }

    /// Drops what is kept of the pool: another process placed a preview
    /// this one did not see, so the next placement reads AWS.
    pub async fn forget(&self) {
        *self.lock.lock().await = None;
    }

    /// `key` no longer waits for room on the edge (its environment
    /// ended). Returns the previews that do, to look again: a rule was
    /// freed.
    pub fn freed(&self, key: &EnvKey) -> Vec<Job> {
        let mut line = self.no_room.lock().expect("edge line");
        line.remove(key);
        line.keys().cloned().map(Job::Env).collect()
    }

    /// This process started deleting `key`'s stack.
    pub fn deleting(&self, key: &EnvKey) {
        self.deleting
            .lock()
            .expect("edge deletions")
            .insert(key.clone());
    }

    /// Whether this process deleted `key`'s stack since it last asked.
    pub fn deleted(&self, key: &EnvKey) -> bool {
        self.deleting.lock().expect("edge deletions").remove(key)
    }

    /// Previews on the shard behind `listener`, as last read.
    pub fn load(&self, listener: &str) -> Option<usize> {
        self.loads
            .lock()
            .expect("edge loads")
            .get(listener)
            .copied()
    }

    /// Deletes the surplus shards of `view`, and takes them out of it.
    async fn remove_surplus(&self, ctx: &Ctx, view: &mut View) -> Result<()> {
        let shards: Vec<Shard> = view.shards.iter().map(|s| s.shard.clone()).collect();
        for number in edge::surplus(&shards) {
            let name = shard_name(&ctx.config.app, number);
            tracing::info!(stack = name, "removing an empty edge shard");
            ctx.aws.stacks.delete(&name).await?;
            view.shards.retain(|s| s.shard.number != number);
        }
        Ok(())
    }

    /// Starts creating shard `number`.
    async fn add(&self, ctx: &Ctx, number: u32) -> Result<()> {
        let config = &ctx.config;
        let shared = ctx.shared().await?;
        let name = shard_name(&config.app, number);
        let parameters = BTreeMap::from([
            ("SharedStackName".to_owned(), shared.stack_name.clone()),
            ("DnsZone".to_owned(), config.preview.dns_zone.clone()),
            (
                "HostedZoneId".to_owned(),
                config.preview.hosted_zone_id.clone(),
            ),
            (
                "CertificateArn".to_owned(),
                config.edge.certificate_arn.clone(),
            ),
        ]);
        let yaml: serde_json::Value =
            serde_yaml::from_str(template::EDGE).map_err(Error::internal)?;
        let body = template::decide(&yaml.to_string(), &parameters).map_err(Error::internal)?;
        let tags = BTreeMap::from([
            (tag::MANAGED.to_owned(), "true".to_owned()),
            (tag::REPO.to_owned(), config.repository.clone()),
            (tag::ROLE.to_owned(), ROLE.to_owned()),
        ]);
        tracing::info!(stack = name, "adding an edge shard: the others are full");
        ctx.aws
            .stacks
            .create(&Deploy {
                name: &name,
                template_body: &body,
                parameters: &parameters,
                tags: &tags,
            })
            .await?;
        Ok(())
    }

    /// Reads the pool: the app's edge stacks, the rules on each ready
    /// one's listener and the placements of the live preview stacks. A
    /// shard whose create failed is deleted, and why is kept for the PR
    /// that would need it.
    async fn view(&self, ctx: &Ctx) -> Result<View> {
        let config = &ctx.config;
        let prefix = format!("{}-edge-", config.app);
        let stacks = ctx
            .aws
            .stacks
            .list_tagged(tag::REPO, &config.repository)
            .await?;
        let mut claimed = BTreeSet::new();
        // Bypass rules: a second rule of a preview, not another preview.
        let mut bypasses = BTreeSet::new();
        let mut edges = Vec::new();
        let mut numbers = BTreeSet::new();
        for stack in stacks {
            if stack.tag(tag::MANAGED) != Some("true") {
                continue;
            }
            match stack.tag(tag::ROLE) {
                Some(ROLE) => {
                    let number = stack
                        .name
                        .strip_prefix(&prefix)
                        .and_then(|n| n.parse().ok());
                    if let Some(number) = number {
                        numbers.insert(number);
                        edges.push((number, stack));
                    }
                }
                Some("preview") => {
                    if let Some(placement) = Placement::of(&stack) {
                        if let Some(bypass) = placement.bypass_priority {
                            bypasses.insert((placement.listener.clone(), bypass));
                        }
                        for priority in placement.priorities() {
                            claimed.insert((placement.listener.clone(), priority));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut shards = Vec::new();
        let mut failed = None;
        for (number, stack) in edges {
            match stack.phase() {
                Phase::Stable | Phase::UpdateRolledBack => {
                    let Some(listener) = stack.output("ListenerArn").map(str::to_owned) else {
                        continue;
                    };
                    let rules = ctx.aws.edge.rules(&listener).await?;
                    let mut taken: BTreeSet<u32> = rules.iter().map(|r| r.priority).collect();
                    taken.extend(
                        claimed
                            .iter()
                            .filter(|(l, _)| *l == listener)
                            .map(|(_, p)| *p),
                    );
                    shards.push(ShardState {
                        shard: Shard {
                            number,
                            ready: true,
                            taken,
                        },
                        stack,
                        rules,
                    });
                }
                Phase::InProgress => shards.push(ShardState {
                    shard: Shard {
                        number,
                        ready: false,
                        taken: BTreeSet::new(),
                    },
                    stack,
                    rules: Vec::new(),
                }),
                Phase::Dead => {
                    let reason = ctx
                        .aws
                        .stacks
                        .failures(&stack.name, 3)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .map(|f| format!("{} {}: {}", f.resource_type, f.logical_id, f.reason))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let reason = if reason.is_empty() {
                        stack.status_reason.clone().unwrap_or_default()
                    } else {
                        reason
                    };
                    tracing::warn!(
                        stack = stack.name,
                        reason,
                        "an edge shard failed; deleting it"
                    );
                    ctx.aws.stacks.delete(&stack.name).await?;
                    failed = Some(format!(
                        "The load balancer for previews ({}) could not be created: {reason}. \
                         Check `edge.certificate_arn`, `preview.dns_zone` and \
                         `preview.hosted_zone_id` in the config, then push or comment \
                         `/pullstack redeploy`.",
                        stack.name
                    ));
                }
                // Going away (or stuck going): neither usable nor to wait for.
                Phase::Deleting | Phase::DeleteFailed | Phase::RollbackFailed => {}
            }
        }
        let mut loads = self.loads.lock().expect("edge loads");
        loads.clear();
        for state in &shards {
            if let Some(listener) = state.stack.output("ListenerArn") {
                let extra = bypasses.iter().filter(|(l, _)| l == listener).count();
                loads.insert(
                    listener.to_owned(),
                    state.shard.load().saturating_sub(extra),
                );
            }
        }
        drop(loads);
        Ok(View {
            shards,
            numbers,
            claimed,
            failed,
        })
    }
}

/// The choice for a preview of `width` rules on the pool `view`, keeping
/// off `avoid`.
fn choose(view: &View, avoid: &[(String, u32)], limit: u32, width: u32) -> Choice {
    let shards: Vec<Shard> = view
        .shards
        .iter()
        .map(|s| {
            let mut shard = s.shard.clone();
            if let Some(listener) = s.stack.output("ListenerArn") {
                shard
                    .taken
                    .extend(avoid.iter().filter(|(l, _)| l == listener).map(|(_, p)| *p));
            }
            shard
        })
        .collect();
    edge::place(&shards, limit, width)
}

/// What a preview waiting for room under the load balancer quota says.
fn no_room(full: crate::aws::quotas::Usage) -> String {
    format!(
        "every load balancer for previews is full, and this region's Application Load \
         Balancer quota is reached ({} of {} in use), so no other can be added. To make room, \
         ask AWS for a higher \"Application Load Balancers per Region\" quota (Service Quotas \
         code L-53DA6B97), delete load balancers nobody uses, or keep fewer previews open \
         (`preview.limits`, `edge.rules_per_alb`)",
        full.used, full.limit
    )
}

/// The name of edge shard `number`.
pub fn shard_name(app: &str, number: u32) -> String {
    format!("{app}-edge-{number}")
}
