//! The production load balancer (`production.strategy: alb`): the stack
//! `<app>-prod-edge` (the edge template with `ProductionHost`), made by
//! `pullstack bootstrap` or, when missing, on the next release; the place
//! each release stack's rule takes on its listener; and the one weighted
//! alias record that sends the production name to it.

use crate::aws::Aws;
use crate::aws::stacks::{Deploy, Phase, Stack, tag};
use crate::aws::traffic::{Batch, Weighted};
use crate::config::Config;
use crate::domain::template;
use crate::reconcile::edge::Placement;
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};

/// The `pullstack:role` of the production load balancer's stack.
pub const ROLE: &str = "production-edge";

/// Release stacks' own rules (which attach their target groups) start
/// here; the production rule and the test route sit before them.
const FIRST_RELEASE_PRIORITY: u32 = 10;

/// The production load balancer, as its stack's outputs give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProdEdge {
    pub stack: String,
    pub listener: String,
    /// The rule on `production.domain` holding the weights and the log.
    pub rule: String,
    /// The test route's rule, `next.<production.domain>`.
    pub next_rule: String,
    pub security_group: String,
    pub dns_name: String,
    pub zone_id: String,
}

/// The production load balancer's stack name.
pub fn stack_name(app: &str) -> String {
    format!("{app}-prod-edge")
}

/// Where the production load balancer stands.
pub enum State {
    Ready(ProdEdge),
    /// Being created (or just asked for).
    Busy,
    /// Release stacks hold traffic through Route53 weighted records (as
    /// `strategy: route53` leaves them), as `stack at weight`: their target
    /// groups belong to their own load balancers and cannot join the
    /// production rule, and pointing the name elsewhere would cut them off.
    /// Nothing is made or changed.
    Refused(Vec<String>),
}

impl ProdEdge {
    fn of(stack: &Stack) -> Option<ProdEdge> {
        let get = |k: &str| stack.output(k).map(str::to_owned);
        Some(ProdEdge {
            stack: stack.name.clone(),
            listener: get("ListenerArn")?,
            rule: get("ProductionRuleArn")?,
            next_rule: get("NextRuleArn")?,
            security_group: get("SecurityGroupId")?,
            dns_name: get("LoadBalancerDnsName")?,
            zone_id: get("LoadBalancerHostedZoneId")?,
        })
    }
}

/// The production load balancer if its stack is complete.
pub async fn describe(aws: &Aws, config: &Config) -> anyhow::Result<Option<ProdEdge>> {
    let name = stack_name(&config.app);
    let stack = aws.stacks.describe(&name).await?;
    Ok(stack
        .filter(|s| s.phase() == Phase::Stable)
        .as_ref()
        .and_then(ProdEdge::of))
}

/// The production load balancer's stack as the release and `pullstack
/// bootstrap` both deploy it: the edge template with `ProductionHost`.
pub struct StackSpec {
    pub name: String,
    pub body: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl StackSpec {
    pub fn new(config: &Config, shared_stack: &str) -> anyhow::Result<StackSpec> {
        let production = &config.production;
        let parameters = BTreeMap::from([
            ("SharedStackName".to_owned(), shared_stack.to_owned()),
            ("DnsZone".to_owned(), production.domain.clone()),
            ("HostedZoneId".to_owned(), production.hosted_zone_id.clone()),
            (
                "CertificateArn".to_owned(),
                production.certificate_arn.clone(),
            ),
            ("ProductionHost".to_owned(), production.domain.clone()),
        ]);
        let yaml: serde_json::Value = serde_yaml::from_str(template::EDGE)?;
        let body = template::decide(&yaml.to_string(), &parameters)?;
        let tags = BTreeMap::from([
            (tag::MANAGED.to_owned(), "true".to_owned()),
            (tag::REPO.to_owned(), config.repository.clone()),
            (tag::ROLE.to_owned(), ROLE.to_owned()),
        ]);
        Ok(StackSpec {
            name: stack_name(&config.app),
            body,
            parameters,
            tags,
        })
    }

    pub fn deploy(&self) -> Deploy<'_> {
        Deploy {
            name: &self.name,
            template_body: &self.body,
            parameters: &self.parameters,
            tags: &self.tags,
        }
    }
}

/// The production name's records, and the release stacks among them that
/// hold traffic through Route53 weighted records, as `stack at weight`
/// (see [`State::Refused`]).
pub async fn route53_traffic(
    aws: &Aws,
    config: &Config,
) -> anyhow::Result<(Vec<Weighted>, Vec<String>)> {
    let production = &config.production;
    let name = stack_name(&config.app);
    let (records, _) = aws
        .traffic
        .read(&production.hosted_zone_id, &production.domain)
        .await?;
    let live = records
        .iter()
        .filter(|r| r.stack != name && r.weight > 0)
        .map(|r| format!("{} at {}", r.stack, r.weight))
        .collect();
    Ok((records, live))
}

/// Why nothing is made while `live` release stacks hold traffic through
/// Route53 weighted records, in words for the user.
pub fn refusal(live: &[String]) -> String {
    format!(
        "`production.strategy: alb`, but production traffic is on Route53 weighted \
         records ({}): moving a live release onto the production load balancer is \
         not supported, so nothing was changed. Keep `strategy: route53`.",
        live.join(", ")
    )
}

/// The production load balancer, created when missing, and the production
/// name's alias record pointing at it.
pub async fn ensure(aws: &Aws, config: &Config, shared_stack: &str) -> anyhow::Result<State> {
    let name = stack_name(&config.app);
    let (records, live) = route53_traffic(aws, config).await?;
    if !live.is_empty() {
        return Ok(State::Refused(live));
    }
    let Some(stack) = aws.stacks.describe(&name).await? else {
        let spec = StackSpec::new(config, shared_stack)?;
        tracing::info!(stack = name, "creating the production load balancer");
        aws.stacks.create(&spec.deploy()).await?;
        return Ok(State::Busy);
    };
    match stack.phase() {
        Phase::InProgress | Phase::Deleting => return Ok(State::Busy),
        Phase::Stable | Phase::UpdateRolledBack => {}
        phase => anyhow::bail!(
            "the production load balancer's stack {name} is {phase:?}; \
             see its CloudFormation events, then delete it to have it made again"
        ),
    }
    let edge =
        ProdEdge::of(&stack).context("the production load balancer's stack lacks outputs")?;
    point_name(aws, config, &edge, &records).await?;
    Ok(State::Ready(edge))
}

/// The production name's alias: one weighted record (all the weight) to
/// the load balancer, written once. Weighted, so that it can stand beside
/// the records of `strategy: route53` while an installation switches.
async fn point_name(
    aws: &Aws,
    config: &Config,
    edge: &ProdEdge,
    records: &[Weighted],
) -> anyhow::Result<()> {
    let production = &config.production;
    let wanted = Weighted {
        stack: edge.stack.clone(),
        weight: 100,
        dns_name: edge.dns_name.trim_end_matches('.').to_owned(),
        zone_id: edge.zone_id.clone(),
    };
    if records
        .iter()
        .any(|r| r.stack == wanted.stack && r.weight == wanted.weight)
    {
        return Ok(());
    }
    let batch = Batch {
        upsert: vec![wanted],
        ..Batch::default()
    };
    aws.traffic
        .apply(&production.hosted_zone_id, &production.domain, &batch)
        .await?;
    tracing::info!(
        domain = production.domain,
        "production name points at its load balancer"
    );
    Ok(())
}

/// Where a new release stack's rule goes: the first priority free on the
/// production listener.
pub async fn place(aws: &Aws, edge: &ProdEdge) -> anyhow::Result<Placement> {
    let taken: BTreeSet<u32> = aws
        .edge
        .rules(&edge.listener)
        .await?
        .into_iter()
        .map(|r| r.priority)
        .collect();
    let priority = (FIRST_RELEASE_PRIORITY..)
        .find(|p| !taken.contains(p))
        .expect("priorities are unbounded");
    Ok(Placement {
        listener: edge.listener.clone(),
        priority,
        bypass_priority: None,
        security_group: edge.security_group.clone(),
        dns_name: edge.dns_name.clone(),
        zone_id: edge.zone_id.clone(),
    })
}
