//! Narrow clients over the AWS SDK. The SDK's standard configuration is
//! honoured (credential chain, region, `AWS_ENDPOINT_URL`), so the same
//! binary runs against AWS or a local emulator.

pub mod databases;
pub mod edge;
pub mod error;
pub mod forward;
pub mod health;
pub mod images;
pub mod lease;
pub mod metered;
pub mod quotas;
pub mod registry;
pub mod secrets;
pub mod services;
pub mod shared;
pub mod stacks;
pub mod tasks;
pub mod traffic;
pub mod usage;
pub mod work_queue;

pub use error::{Error, ErrorKind};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use std::time::Duration;

/// The AWS clients pullstack uses.
#[derive(Clone)]
pub struct Aws {
    pub stacks: stacks::Stacks,
    /// The previews' Aurora clones.
    pub databases: databases::Databases,
    pub edge: edge::Edge,
    pub images: images::Images,
    pub services: services::Services,
    pub traffic: traffic::Traffic,
    /// The production load balancer's weighted rule (`production.strategy: alb`).
    pub forward: forward::Forward,
    pub health: health::Health,
    /// Stopped tasks, target health, one-off tasks and their logs.
    pub tasks: tasks::Tasks,
    pub registry: registry::Registry,
    /// Values pullstack sends itself (a private preview's bypass header).
    pub secrets: secrets::Secrets,
    pub usage: usage::Usage,
    pub quotas: quotas::Quotas,
    /// The shared work queue (`queue.backend: sqs`).
    pub sqs: work_queue::Sqs,
    /// The lease on periodic work (`queue.backend: sqs`).
    pub leases: lease::Leases,
    /// The region the clients talk to, for console links.
    pub region: Option<String>,
}

impl Aws {
    /// Loads the standard AWS configuration. Throttling and transient errors
    /// are retried with exponential backoff and jitter by the SDK.
    pub async fn from_env() -> Aws {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(6)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(20)),
            )
            .load()
            .await;
        Aws::from_config(&config)
    }

    /// These clients, with every stack created, updated and deleted through
    /// the CloudFormation service role `role_arn` (the config's
    /// `shared.cloudformation_role_arn`), or with the caller's own
    /// credentials when `None`.
    pub fn with_cloudformation_role(self, role_arn: Option<String>) -> Aws {
        Aws {
            stacks: self.stacks.with_role(role_arn),
            ..self
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig) -> Aws {
        use metered::Metered;
        let cloudformation = aws_sdk_cloudformation::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let ecr = aws_sdk_ecr::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let ecs = aws_sdk_ecs::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let ecs = aws_sdk_ecs::Client::from_conf(ecs);
        let route53 = aws_sdk_route53::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let cloudwatch = aws_sdk_cloudwatch::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let sqs = aws_sdk_sqs::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let logs = aws_sdk_cloudwatchlogs::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let rds = aws_sdk_rds::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let secretsmanager = aws_sdk_secretsmanager::config::Builder::from(config)
            .interceptor(Metered)
            .build();
        let cloudformation = aws_sdk_cloudformation::Client::from_conf(cloudformation);
        let elb = aws_sdk_elasticloadbalancingv2::Client::from_conf(elb);
        let registry = registry::Registry::new(aws_sdk_ecr::Client::from_conf(ecr.clone()));
        let usage = usage::Usage::new(ecs.clone());
        Aws {
            region: config.region().map(|r| r.as_ref().to_owned()),
            registry,
            usage,
            secrets: secrets::Secrets::new(aws_sdk_secretsmanager::Client::from_conf(
                secretsmanager,
            )),
            quotas: quotas::Quotas::new(elb.clone(), cloudformation.clone()),
            stacks: stacks::Stacks::new(cloudformation),
            databases: databases::Databases::new(aws_sdk_rds::Client::from_conf(rds)),
            edge: edge::Edge::new(elb.clone()),
            forward: forward::Forward::new(elb.clone()),
            images: images::Images::new(aws_sdk_ecr::Client::from_conf(ecr)),
            services: services::Services::new(ecs.clone()),
            sqs: work_queue::Sqs::new(aws_sdk_sqs::Client::from_conf(sqs)),
            leases: lease::Leases::new(aws_sdk_dynamodb::Client::from_conf(dynamodb)),
            traffic: traffic::Traffic::new(aws_sdk_route53::Client::from_conf(route53)),
            tasks: tasks::Tasks::new(
                ecs.clone(),
                elb.clone(),
                aws_sdk_cloudwatchlogs::Client::from_conf(logs),
            ),
            health: health::Health::new(
                ecs,
                elb,
                aws_sdk_cloudwatch::Client::from_conf(cloudwatch),
            ),
        }
    }
}
