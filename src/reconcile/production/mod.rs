//! Production releases, as single operations: observe the stacks, weights
//! and release log; apply weights; promote; roll back; delete past
//! retention. The server's pass ([`pass`]) and `pullstack prod` both use
//! these, with the same [`Reporter`], so one action is recorded on GitHub
//! the same way whoever starts it.
//!
//! The planner ([`crate::domain::rollout`]) decides; this module carries out.

pub mod alb;
pub mod gates;
pub(super) mod pass;
mod report;
mod switch;

pub use pass::pass;
pub use report::Reporter;

use crate::aws::Aws;
use crate::aws::stacks::{Phase, Stack, tag};
use crate::aws::traffic::{Batch, Weighted};
use crate::clock::Clock;
use crate::config::{Config, Gate, StackRole, Strategy};
use crate::domain::naming::{release_slug, release_stack_name};
use crate::domain::rollout::{self, Log, Medium, ProdPhase, ProdStack, View};
use crate::domain::template::Placeholders;
use crate::reconcile::spec::{Request, Sizing};
use alb::ProdEdge;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Production as observed: the planner's view plus what carrying out an
/// action needs (stack outputs, current records).
pub struct Observed {
    pub view: View,
    pub stacks: Vec<Stack>,
    /// `strategy: route53`: the weighted records.
    pub records: Vec<Weighted>,
    /// `strategy: alb`: the production load balancer.
    pub edge: Option<ProdEdge>,
    /// `strategy: alb`: the target groups the test route forwards to.
    pub test_route: Vec<String>,
}

/// What the production rule's tags hold (`strategy: alb`): the log, and
/// the weights it was written with. Tags and weights are two calls, tags
/// first: weights that differ from these are a move cut short, finished on
/// the next read.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    log: Log,
    weights: BTreeMap<String, u8>,
}

/// A move of all traffic to one stack, computed and not yet applied.
pub struct Move {
    weights: BTreeMap<String, u8>,
    log: Log,
    /// The stack losing its traffic (a rollback), if any.
    pub from: Option<String>,
    /// The stack getting all traffic.
    pub to: String,
}

/// Production operations, for the server and the CLI alike.
pub struct Production<'a> {
    pub config: &'a Config,
    pub aws: &'a Aws,
    pub clock: &'a Clock,
    pub reporter: Reporter<'a>,
}

/// What a release stack of `sha` running `image` is made of. `on_edge`: on
/// the production load balancer, where the stack's own rule on a name of
/// its own (`prod-<sha>.<domain>`) attaches its target group.
fn release_request<'a>(
    config: &'a Config,
    sha: &'a str,
    image: String,
    created_at: String,
    on_edge: bool,
) -> Request<'a> {
    let production = &config.production;
    Request {
        slug: release_slug(sha),
        sha,
        image,
        role: StackRole::Production,
        env_tag: "production".to_owned(),
        sizing: Sizing {
            cpu: &production.cpu,
            memory: &production.memory,
            desired_count: production.desired_count,
            capacity: production.capacity,
        },
        dns: on_edge.then(|| (format!("{}.{}", release_slug(sha), production.domain), "")),
        certificate_arn: &production.certificate_arn,
        placeholders: Placeholders {
            sha: sha.to_owned(),
            url: url(config),
            env: "production".into(),
            ..Default::default()
        },
        created_at,
        extra_env: Default::default(),
    }
}

/// The production URL, as Deployments and `{url}` show it.
pub fn url(config: &Config) -> String {
    format!("https://{}", config.production.domain)
}

impl Production<'_> {
    fn zone(&self) -> &str {
        &self.config.production.hosted_zone_id
    }

    fn domain(&self) -> &str {
        &self.config.production.domain
    }

    /// The release stacks pullstack manages for this repository.
    async fn release_stacks(&self) -> anyhow::Result<Vec<Stack>> {
        Ok(self
            .aws
            .stacks
            .list_tagged(tag::REPO, &self.config.repository)
            .await?
            .into_iter()
            .filter(|s| {
                s.tag(tag::ROLE) == Some("production") && s.tag(tag::MANAGED) == Some("true")
            })
            .collect())
    }

    /// Reads stacks, weights and the log. `head` is the release branch's head.
    pub async fn observe(&self, head: Option<String>) -> anyhow::Result<Observed> {
        let stacks = self.release_stacks().await?;
        let mut test_route = Vec::new();
        let (records, weights, log, edge) = match self.config.production.strategy {
            Strategy::Route53 => {
                let (records, log) = self.aws.traffic.read(self.zone(), self.domain()).await?;
                let log: Log = log
                    .and_then(|l| serde_json::from_str(&l).ok())
                    .unwrap_or_default();
                let weights = records
                    .iter()
                    .map(|r| (r.stack.clone(), r.weight))
                    .collect();
                (records, weights, log, None)
            }
            Strategy::Alb => {
                let (weights, log, edge, next) = self.observe_forward(&stacks).await?;
                test_route = next;
                (Vec::new(), weights, log, Some(edge))
            }
        };
        let now = self.clock.now();
        let mut prod = Vec::new();
        for stack in &stacks {
            prod.push(ProdStack {
                name: stack.name.clone(),
                sha: stack.tag(tag::COMMIT).unwrap_or_default().to_owned(),
                created: stack.tag_time(tag::CREATED_AT).unwrap_or(now),
                phase: self.phase(stack, log.release.as_deref()).await?,
            });
        }
        let head = head.map(|sha| {
            let name = release_stack_name(&self.config.app, &sha);
            (sha, name)
        });
        Ok(Observed {
            view: View {
                stacks: prod,
                weights,
                log,
                head,
                now,
            },
            stacks,
            records,
            edge,
            test_route,
        })
    }

    /// The production rule's weights (by stack name; a target group no
    /// stack owns any more by its ARN) and log, after finishing a move cut
    /// short between its two calls.
    async fn observe_forward(
        &self,
        stacks: &[Stack],
    ) -> anyhow::Result<(BTreeMap<String, u8>, Log, ProdEdge, Vec<String>)> {
        let edge = alb::describe(self.aws, self.config)
            .await?
            .context("the production load balancer (strategy: alb) is not ready yet")?;
        let forwarding = self.aws.forward.read(&edge.rule, &edge.next_rule).await?;
        let stored: Stored = forwarding
            .log
            .and_then(|l| serde_json::from_str(&l).ok())
            .unwrap_or_default();
        let name_of = |arn: &str| {
            stacks
                .iter()
                .find(|s| s.output("TargetGroupArn") == Some(arn))
                .map_or_else(|| arn.to_owned(), |s| s.name.clone())
        };
        let actual: BTreeMap<String, u8> = forwarding
            .targets
            .iter()
            .map(|(arn, weight)| (name_of(arn), *weight))
            .collect();
        let intended = targets(stacks, &stored.weights);
        let mut sorted = forwarding.targets.clone();
        sorted.sort();
        if stored.log != Log::default() && intended != sorted {
            tracing::warn!(
                ?actual,
                intended = ?stored.weights,
                "finishing a traffic move that was cut short"
            );
            let sticky = self.config.production.sticky;
            self.aws
                .forward
                .apply(&edge.rule, &intended, sticky, None)
                .await?;
            let weights = intended.iter().map(|(arn, w)| (name_of(arn), *w)).collect();
            return Ok((weights, stored.log, edge, forwarding.next));
        }
        Ok((actual, stored.log, edge, forwarding.next))
    }

    /// Points the test route (`next.<domain>`, `strategy: alb`) at the
    /// release candidate of `view`, or at nothing when there is none.
    pub async fn sync_test_route(&self, observed: &Observed, view: &View) -> anyhow::Result<()> {
        let Some(edge) = &observed.edge else {
            return Ok(());
        };
        let candidate = rollout::candidate(view).and_then(|name| {
            observed
                .stacks
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.output("TargetGroupArn"))
                .map(str::to_owned)
        });
        if observed.test_route == Vec::from_iter(candidate.clone()) {
            return Ok(());
        }
        self.aws
            .forward
            .point_next(&edge.next_rule, candidate.as_deref())
            .await?;
        tracing::info!(candidate, "test route updated");
        Ok(())
    }

    /// A stack's phase; the health gate is checked for the release in flight.
    async fn phase(&self, stack: &Stack, release: Option<&str>) -> anyhow::Result<ProdPhase> {
        let production = &self.config.production;
        Ok(match stack.phase() {
            Phase::InProgress => ProdPhase::Busy,
            Phase::Stable
                if Some(stack.name.as_str()) != release || production.gate == Gate::Stack =>
            {
                ProdPhase::Ready { healthy: true }
            }
            Phase::Stable => {
                let output = |k: &str| stack.output(k).unwrap_or_default().to_owned();
                let health = &self.aws.health;
                let healthy = health
                    .service_settled(&output("ClusterName"), &output("ServiceName"))
                    .await?
                    && health.targets_healthy(&output("TargetGroupArn")).await?;
                let age = stack
                    .operation_started
                    .map(|t| self.clock.since(t))
                    .unwrap_or_default();
                if !healthy && age > production.gate_timeout {
                    ProdPhase::Failed
                } else {
                    ProdPhase::Ready { healthy }
                }
            }
            _ => ProdPhase::Failed,
        })
    }

    /// Sets the weights and the log: one change batch on Route53; on the
    /// load balancer the log (tags) and then the weights (one ModifyRule).
    pub async fn apply(
        &self,
        observed: &Observed,
        weights: &BTreeMap<String, u8>,
        log: &Log,
    ) -> anyhow::Result<()> {
        if let Some(edge) = &observed.edge {
            let weights = rollout::kept(Medium::Forward, weights, log);
            let stored = serde_json::to_string(&Stored {
                log: log.clone(),
                weights: weights.clone(),
            })?;
            let targets = targets(&observed.stacks, &weights);
            self.aws
                .forward
                .apply(
                    &edge.rule,
                    &targets,
                    self.config.production.sticky,
                    Some(&stored),
                )
                .await?;
            return Ok(());
        }
        let mut upsert = Vec::new();
        let mut delete = Vec::new();
        for (name, weight) in weights {
            let current = observed.records.iter().find(|r| r.stack == *name);
            if current.is_some_and(|r| r.weight == *weight) {
                continue;
            }
            match observed.stacks.iter().find(|s| s.name == *name) {
                Some(stack) => {
                    let lb = stack
                        .output("LoadBalancerArn")
                        .context("stack has no LoadBalancerArn output")?;
                    let (dns_name, zone_id) = self.aws.health.alias_target(lb).await?;
                    upsert.push(Weighted {
                        stack: name.clone(),
                        weight: *weight,
                        dns_name,
                        zone_id,
                    });
                }
                // A record for a stack that no longer exists must go.
                None => delete.extend(current.cloned()),
            }
        }
        let log = serde_json::to_string(log)?;
        let batch = Batch {
            upsert,
            delete,
            log: Some(&log),
            forget_log: false,
        };
        self.aws
            .traffic
            .apply(self.zone(), self.domain(), &batch)
            .await?;
        Ok(())
    }

    /// Removes the rules deleted release stacks left on the production
    /// listener, and the target groups they forwarded to (`strategy: alb`).
    /// CloudFormation removes them with the stack; this heals a delete
    /// that did not, so nothing is left behind.
    pub async fn remove_leftovers(&self, observed: &Observed) -> anyhow::Result<()> {
        let Some(edge) = &observed.edge else {
            return Ok(());
        };
        let hosts: std::collections::BTreeSet<&str> = observed
            .stacks
            .iter()
            .filter_map(|s| s.parameters.get("DnsName").map(String::as_str))
            .collect();
        let in_use: std::collections::BTreeSet<&str> = observed
            .stacks
            .iter()
            .filter_map(|s| s.output("TargetGroupArn"))
            .chain(observed.test_route.iter().map(String::as_str))
            .chain(observed.view.weights.keys().map(String::as_str))
            .collect();
        for rule in self.aws.edge.rules(&edge.listener).await? {
            let ours = rule.arn == edge.rule || rule.arn == edge.next_rule;
            let owned = rule.hosts.iter().any(|h| hosts.contains(h.as_str()));
            let used = rule
                .target_groups
                .iter()
                .any(|t| in_use.contains(t.as_str()));
            if ours || owned || used {
                continue;
            }
            tracing::warn!(rule = rule.arn, hosts = ?rule.hosts, "removing a rule a deleted release left");
            self.aws.edge.delete_rule(&rule.arn).await?;
            for group in &rule.target_groups {
                self.aws.edge.delete_target_group(group).await?;
            }
        }
        Ok(())
    }

    /// Removes a stack's record (if any) and then the stack.
    pub async fn delete(&self, observed: &Observed, stack: &str) -> anyhow::Result<()> {
        if observed.edge.is_some() && observed.view.weights.contains_key(stack) {
            let mut weights = observed.view.weights.clone();
            weights.remove(stack);
            self.apply(observed, &weights, &observed.view.log).await?;
        }
        let record: Vec<Weighted> = observed
            .records
            .iter()
            .filter(|r| r.stack == stack)
            .cloned()
            .collect();
        if !record.is_empty() {
            let batch = Batch {
                upsert: vec![],
                delete: record,
                ..Batch::default()
            };
            self.aws
                .traffic
                .apply(self.zone(), self.domain(), &batch)
                .await?;
        }
        self.aws.stacks.delete(stack).await?;
        Ok(())
    }

    /// What rolling back to `to` (or to the previous release) would do.
    pub fn rollback_plan(&self, observed: &Observed, to: Option<&str>) -> anyhow::Result<Move> {
        let (weights, log, from, to) = rollout::rollback(&observed.view, to)
            .context("nothing to roll back to (is the target a healthy, existing stack?)")?;
        Ok(Move {
            weights,
            log,
            from: Some(from),
            to,
        })
    }

    /// Moves all traffic back in one batch and records why.
    pub async fn roll_back(
        &self,
        observed: &Observed,
        plan: Move,
        reason: &str,
    ) -> anyhow::Result<()> {
        self.apply(observed, &plan.weights, &plan.log).await?;
        let from = plan.from.unwrap_or_default();
        tracing::warn!(from, to = plan.to, reason, "rolled back");
        self.reporter
            .rolled_back(&observed.view, &from, &plan.to, reason)
            .await
    }

    /// What promoting the release in flight would do.
    pub fn promote_plan(&self, observed: &Observed) -> anyhow::Result<Move> {
        let (weights, log, release) = rollout::promote(&observed.view)
            .context("nothing to promote: no healthy release is in flight")?;
        Ok(Move {
            weights,
            log,
            from: None,
            to: release,
        })
    }

    /// Sends all traffic to the release in flight and records who did.
    pub async fn promote(&self, observed: &Observed, plan: Move, by: &str) -> anyhow::Result<()> {
        self.apply(observed, &plan.weights, &plan.log).await?;
        tracing::info!(release = plan.to, by, "promoted");
        self.reporter.promoted(&plan.log, by).await
    }
}

/// The weighted target groups for `weights`, sorted: a stack's target
/// group, or the name itself when it is an ARN no stack owns any more (a
/// stack without a target group is left out).
fn targets(stacks: &[Stack], weights: &BTreeMap<String, u8>) -> Vec<(String, u8)> {
    let mut targets: Vec<(String, u8)> = weights
        .iter()
        .filter_map(|(name, weight)| {
            let arn = match stacks.iter().find(|s| s.name == *name) {
                Some(stack) => stack.output("TargetGroupArn")?.to_owned(),
                None if name.starts_with("arn:") => name.clone(),
                None => return None,
            };
            Some((arn, *weight))
        })
        .collect();
    targets.sort();
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::forward::{MAX_PARTS, decode_log, encode_log};
    use crate::domain::release::{Ignored, Schedule};
    use crate::domain::rollout::ProdStack;
    use std::time::Duration;

    /// The log after `releases` releases through the planner's own moves:
    /// every fifth rolled back, every third with an ignored directive.
    fn long_lived(releases: u32) -> Stored {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let ready = |name: &str| ProdStack {
            name: name.to_owned(),
            sha: format!("{name}0123456789abcdef0123456789abcdef"),
            created: now,
            phase: ProdPhase::Ready { healthy: true },
        };
        let name = |n: u32| format!("storefront-checkout-prod-{:07x}", n * 7919 + 0xabc_0000);
        let mut log = Log {
            promoted: vec![name(0)],
            ..Log::default()
        };
        let mut live = name(0);
        for n in 1..=releases {
            let release = name(n);
            log.release = Some(release.clone());
            log.deployment = Some(3_000_000_000 + u64::from(n));
            log.schedule = Schedule::from_percents(&[10, 50, 100], Duration::from_secs(300))
                .unwrap()
                .steps;
            if n % 3 == 0 {
                log.ignore(Ignored {
                    stack: release.clone(),
                    directive: "[hotfix]".to_owned(),
                    by: Some(format!("contributor-{n}")),
                    role: Some("write".to_owned()),
                });
            }
            let view = View {
                stacks: vec![ready(&live), ready(&release)],
                weights: BTreeMap::from([(live.clone(), 90), (release.clone(), 10)]),
                log: log.clone(),
                head: None,
                now: now + chrono::Duration::minutes(i64::from(n)),
            };
            log = if n % 5 == 0 {
                rollout::rollback(&view, None).unwrap().1
            } else {
                live = release;
                rollout::promote(&view).unwrap().1
            };
        }
        Stored {
            weights: BTreeMap::from([(live, 100)]),
            log,
        }
    }

    fn pairs(tags: &[aws_sdk_elasticloadbalancingv2::types::Tag]) -> Vec<(String, String)> {
        tags.iter()
            .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn a_long_lived_installations_log_fits_the_rules_tags_on_moto_too() {
        let stored = long_lived(200);
        assert_eq!(stored.log.promoted.len(), 20, "{:?}", stored.log);
        assert!(!stored.log.failed.is_empty() && !stored.log.ignored.is_empty());
        let json = serde_json::to_string(&stored).unwrap();
        let tags = encode_log(&json).unwrap();
        // moto allows 10 tags on a rule; the stacks' own four may be there.
        assert!(
            tags.len() <= 6,
            "{} parts for {} bytes",
            tags.len(),
            json.len()
        );
        assert!(tags.len() <= MAX_PARTS);
        let back: Stored = serde_json::from_str(&decode_log(&pairs(&tags)).unwrap()).unwrap();
        assert_eq!(back.log, stored.log);
        assert_eq!(back.weights, stored.weights);
    }
}
