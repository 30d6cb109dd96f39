//! Whether a production stack may take traffic, and whether it should keep
//! it: the ECS deployment and target health (the gate), the load balancer's
//! alias target, and the CloudWatch alarms watched during a shift.

use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_ecs::types::DeploymentRolloutState;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;

use super::error::{Error, ErrorKind, Result};

#[derive(Clone)]
pub struct Health {
    ecs: aws_sdk_ecs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Health {
    pub fn new(
        ecs: aws_sdk_ecs::Client,
        elb: aws_sdk_elasticloadbalancingv2::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
    ) -> Health {
        Health {
            ecs,
            elb,
            cloudwatch,
        }
    }

    /// The service's primary deployment has completed and runs all its tasks.
    pub async fn service_settled(&self, cluster: &str, service: &str) -> Result<bool> {
        let out = self
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| {
                Error::from_sdk(
                    "ECS",
                    "DescribeServices",
                    format!("{cluster}/{service}"),
                    &e,
                )
            })?;
        let Some(service) = out.services().first() else {
            return Ok(false);
        };
        let primary = service
            .deployments()
            .iter()
            .find(|d| d.status() == Some("PRIMARY"));
        Ok(primary.is_some_and(|d| {
            d.rollout_state() == Some(&DeploymentRolloutState::Completed)
                && d.running_count() >= d.desired_count()
        }) && service.deployments().len() == 1)
    }

    /// Every registered target is healthy, and there is at least one.
    pub async fn targets_healthy(&self, target_group: &str) -> Result<bool> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(target_group)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ELBv2", "DescribeTargetHealth", target_group, &e))?;
        let states: Vec<_> = out
            .target_health_descriptions()
            .iter()
            .map(|d| d.target_health().and_then(|h| h.state()).cloned())
            .collect();
        Ok(!states.is_empty()
            && states
                .iter()
                .all(|s| s == &Some(TargetHealthStateEnum::Healthy)))
    }

    /// The load balancer's DNS name and canonical hosted zone, for an alias.
    pub async fn alias_target(&self, load_balancer: &str) -> Result<(String, String)> {
        let out = self
            .elb
            .describe_load_balancers()
            .load_balancer_arns(load_balancer)
            .send()
            .await
            .map_err(|e| Error::from_sdk("ELBv2", "DescribeLoadBalancers", load_balancer, &e))?;
        let lb = out.load_balancers().first().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "ELBv2",
                "DescribeLoadBalancers",
                load_balancer,
                "LoadBalancerNotFound",
                "no such load balancer",
            )
        })?;
        Ok((
            lb.dns_name().unwrap_or_default().to_owned(),
            lb.canonical_hosted_zone_id().unwrap_or_default().to_owned(),
        ))
    }

    /// The named alarms now in ALARM.
    pub async fn alarms_firing(&self, names: &[String]) -> Result<Vec<String>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .state_value(StateValue::Alarm)
            .send()
            .await
            .map_err(|e| Error::from_sdk("CloudWatch", "DescribeAlarms", names.join(","), &e))?;
        Ok(out
            .metric_alarms()
            .iter()
            .filter_map(|a| a.alarm_name().map(str::to_owned))
            .collect())
    }
}
