//! ELBv2 on the preview edge: the rules on a shard's HTTPS listener, and
//! removing what a preview left there. The shards and previews themselves
//! are CloudFormation stacks ([`super::stacks`]).

use super::error::{Error, ErrorKind, Result};
use aws_sdk_elasticloadbalancingv2::Client;

/// One non-default rule on a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub arn: String,
    pub priority: u32,
    /// The values of its `host-header` conditions.
    pub hosts: Vec<String>,
    /// The target groups its forward actions send to.
    pub target_groups: Vec<String>,
}

#[derive(Clone)]
pub struct Edge {
    elb: Client,
}

impl Edge {
    pub fn new(elb: Client) -> Edge {
        Edge { elb }
    }

    /// The rules on `listener` besides its default, across all pages; none
    /// when the listener is gone.
    pub async fn rules(&self, listener: &str) -> Result<Vec<Rule>> {
        let mut rules = Vec::new();
        let mut marker = None;
        loop {
            let out = match self
                .elb
                .describe_rules()
                .listener_arn(listener)
                .set_marker(marker)
                .send()
                .await
            {
                Ok(out) => out,
                Err(err) => {
                    let err = Error::from_sdk("ELBv2", "DescribeRules", listener, &err);
                    if err.kind() == ErrorKind::NotFound {
                        return Ok(Vec::new());
                    }
                    return Err(err);
                }
            };
            rules.extend(out.rules().iter().filter_map(|rule| {
                let priority = rule.priority()?.parse().ok()?;
                let hosts = rule
                    .conditions()
                    .iter()
                    .filter(|c| c.field() == Some("host-header"))
                    .flat_map(|c| {
                        let config = c
                            .host_header_config()
                            .map(|h| h.values())
                            .unwrap_or_default();
                        config.iter().chain(c.values()).cloned().collect::<Vec<_>>()
                    })
                    .collect();
                let target_groups = rule
                    .actions()
                    .iter()
                    .flat_map(|a| {
                        let weighted = a
                            .forward_config()
                            .map(|f| f.target_groups())
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|t| t.target_group_arn().map(str::to_owned));
                        a.target_group_arn()
                            .map(str::to_owned)
                            .into_iter()
                            .chain(weighted)
                    })
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                Some(Rule {
                    arn: rule.rule_arn()?.to_owned(),
                    priority,
                    hosts,
                    target_groups,
                })
            }));
            marker = out.next_marker().map(str::to_owned);
            if marker.is_none() {
                return Ok(rules);
            }
        }
    }

    /// Deletes a rule; one already gone is not an error.
    pub async fn delete_rule(&self, arn: &str) -> Result<()> {
        match self.elb.delete_rule().rule_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(err) => match Error::from_sdk("ELBv2", "DeleteRule", arn, &err) {
                err if err.kind() == ErrorKind::NotFound => Ok(()),
                err => Err(err),
            },
        }
    }

    /// Deletes a target group; one already gone is not an error.
    pub async fn delete_target_group(&self, arn: &str) -> Result<()> {
        match self
            .elb
            .delete_target_group()
            .target_group_arn(arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => match Error::from_sdk("ELBv2", "DeleteTargetGroup", arn, &err) {
                err if err.kind() == ErrorKind::NotFound => Ok(()),
                err => Err(err),
            },
        }
    }
}
