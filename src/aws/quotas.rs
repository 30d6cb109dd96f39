//! The account quotas a new environment would run into, read where an API
//! gives them: Application Load Balancers per region (ELBv2
//! DescribeAccountLimits) and CloudFormation stacks per region
//! (CloudFormation DescribeAccountLimits).
//!
//! A quota that cannot be read (no permission, or an emulator without the
//! call) is reported as unknown, and never blocks.

use super::error::{Error, Result};
use aws_sdk_cloudformation::types::StackStatus;
use aws_sdk_elasticloadbalancingv2::types::LoadBalancerTypeEnum;

/// One quota and its use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub used: u32,
    pub limit: u32,
}

impl Usage {
    pub fn is_full(self) -> bool {
        self.used >= self.limit
    }
}

#[derive(Clone, Debug)]
pub struct Quotas {
    elb: aws_sdk_elasticloadbalancingv2::Client,
    cloudformation: aws_sdk_cloudformation::Client,
}

impl Quotas {
    pub fn new(
        elb: aws_sdk_elasticloadbalancingv2::Client,
        cloudformation: aws_sdk_cloudformation::Client,
    ) -> Quotas {
        Quotas {
            elb,
            cloudformation,
        }
    }

    /// The load balancer quota, or `None` when it cannot be read.
    pub async fn load_balancer_limit(&self) -> Option<u32> {
        let limits = self
            .elb
            .describe_account_limits()
            .send()
            .await
            .map_err(|e| {
                let err = Error::from_sdk("ELBv2", "DescribeAccountLimits", "", &e);
                unknown("elasticloadbalancing:DescribeAccountLimits", &err);
            })
            .ok()?;
        limits
            .limits()
            .iter()
            .find(|l| l.name() == Some("application-load-balancers"))
            .and_then(|l| l.max())
            .and_then(|max| max.parse::<f64>().ok())
            .map(|max| max as u32)
    }

    /// Application Load Balancers in the region.
    pub async fn load_balancers(&self) -> Result<u32> {
        let mut count = 0;
        let mut pages = self.elb.describe_load_balancers().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| Error::from_sdk("ELBv2", "DescribeLoadBalancers", "", &e))?;
            count += page
                .load_balancers()
                .iter()
                .filter(|lb| lb.r#type() == Some(&LoadBalancerTypeEnum::Application))
                .count() as u32;
        }
        Ok(count)
    }

    /// The CloudFormation stack quota, or `None` when it cannot be read.
    pub async fn stack_limit(&self) -> Option<u32> {
        let limits = self
            .cloudformation
            .describe_account_limits()
            .send()
            .await
            .map_err(|e| {
                let err = Error::from_sdk("CloudFormation", "DescribeAccountLimits", "", &e);
                unknown("cloudformation:DescribeAccountLimits", &err);
            })
            .ok()?;
        limits
            .account_limits()
            .iter()
            .find(|l| l.name() == Some("StackLimit"))
            .and_then(|l| l.value())
            .and_then(|v| u32::try_from(v).ok())
    }

    /// Stacks in the region that count toward the quota (all but deleted).
    pub async fn stacks(&self) -> Result<u32> {
        let mut count = 0;
        let mut pages = self.cloudformation.list_stacks().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::from_sdk("CloudFormation", "ListStacks", "", &e))?;
            count += page
                .stack_summaries()
                .iter()
                .filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete))
                .count() as u32;
        }
        Ok(count)
    }
}

/// Logs a quota that cannot be read, naming the IAM action it needs.
fn unknown(call: &str, err: &Error) {
    tracing::warn!(
        call,
        code = %err.code,
        "cannot read an account quota; it will not be checked"
    );
}
