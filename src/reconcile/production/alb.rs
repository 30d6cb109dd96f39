//! The production load balancer (`production.strategy: alb`): the stack
//! `<app>-prod-edge` (the edge template with `ProductionHost`), made by
//! `pullstack bootstrap` or, when missing, on the next release; the place
//! each release stack's rule takes on its listener; and the one weighted
//! alias record that sends the production name to it. An installation
//! switched from `strategy: route53` while a release holds traffic moves
//! over first ([`super::switch`]).

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
    /// Release stacks still hold traffic through Route53 weighted records
    /// (as `strategy: route53` leaves them): the load balancer is ready,
    /// the name does not point at it yet. [`super::switch`] moves them.
    Switching {
        edge: ProdEdge,
        /// The weighted records on the production name.
        records: Vec<Weighted>,
        /// The release log `strategy: route53` stored beside them.
        log: Option<String>,
    },
}

impl ProdEdge {
    /// The production name's weighted record with all the weight on it.
    pub fn name_record(&self) -> Weighted {
        Weighted {
            stack: self.stack.clone(),
            weight: 100,
            dns_name: self.dns_name.trim_end_matches('.').to_owned(),
            zone_id: self.zone_id.clone(),
        }
    }

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

/// The production load balancer, created when missing, and the production
/// name's alias record pointing at it once no release stack holds traffic
/// through a record of its own.
pub async fn ensure(aws: &Aws, config: &Config, shared_stack: &str) -> anyhow::Result<State> {
    let name = stack_name(&config.app);
    let production = &config.production;
    let (records, log) = aws
        .traffic
        .read(&production.hosted_zone_id, &production.domain)
        .await?;
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
    if records.iter().any(|r| r.stack != name && r.weight > 0) {
        return Ok(State::Switching { edge, records, log });
    }
    point_name(aws, config, &edge, &records, log.is_some()).await?;
    Ok(State::Ready(edge))
}

/// The production name's alias: one weighted record (all the weight) to
/// the load balancer, written once. Weighted, so that it can stand beside
/// the records of `strategy: route53` while an installation switches; what
/// a switch leaves (their records at 0, the log beside them: the log now
/// lives on the rule) goes in the same batch.
async fn point_name(
    aws: &Aws,
    config: &Config,
    edge: &ProdEdge,
    records: &[Weighted],
    dns_log: bool,
) -> anyhow::Result<()> {
    let production = &config.production;
    let wanted = edge.name_record();
    let left: Vec<Weighted> = records
        .iter()
        .filter(|r| r.stack != wanted.stack)
        .cloned()
        .collect();
    let pointed = records
        .iter()
        .any(|r| r.stack == wanted.stack && r.weight == wanted.weight);
    if pointed && left.is_empty() && !dns_log {
        return Ok(());
    }
    if !left.is_empty() || dns_log {
        tracing::info!(
            records = left.len(),
            "removing the Route53 records and log a switch to the load balancer left"
        );
    }
    let batch = Batch {
        upsert: if pointed { vec![] } else { vec![wanted] },
        delete: left,
        log: None,
        forget_log: dns_log,
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
