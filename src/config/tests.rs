//! Parsing and defaults; each section's tests are in a module of their own.

use super::*;

mod checks;
mod container;
mod edge;
mod errors;
mod preview;
mod production;
mod queue;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("pullstack.yaml"), text)
}

#[test]
fn shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pullstack.example.yaml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.app, "demo");
    // The example states the defaults: it must agree with the code.
    let defaults = PreviewConfig::default();
    assert_eq!(config.preview.image_timeout, defaults.image_timeout);
    assert_eq!(config.preview.approve_label, defaults.approve_label);
    assert_eq!(config.queue.workers, QueueConfig::default().workers);
    let images = ImagesConfig::default();
    assert_eq!(config.images.prune, images.prune);
    assert_eq!(config.images.prune_after, images.prune_after);
    assert_eq!(config.images.interval, images.interval);
    assert_eq!(config.images.mutable_tags, images.mutable_tags);
    assert_eq!(config.preview.task_role_arn, None);
    assert_eq!(config.production.task_role_arn, None);
    let sqs = SqsConfig::default();
    assert_eq!(config.queue.backend, Backend::Memory);
    assert_eq!(config.queue.sqs.lease_ttl, sqs.lease_ttl);
    assert_eq!(config.queue.sqs.receive_wait, sqs.receive_wait);
    assert_eq!(config.sqs_queue(), "demo-pullstack.fifo");
    assert_eq!(config.lease_table(), "demo-pullstack");
    let edge = EdgeConfig::default();
    assert_eq!(config.edge.mode, edge.mode);
    assert_eq!(config.edge.certificate_arn, edge.certificate_arn);
    assert_eq!(config.edge.rules_per_alb, edge.rules_per_alb);
    assert_eq!(config.production.certificate_arn, "");
    assert_eq!(config.production.strategy, super::Strategy::Route53);
    assert_eq!(config.production.sticky, None);
    assert_eq!(config.preview.access, AccessConfig::default());
}

#[test]
fn minimal_config_takes_defaults() {
    let config = parse("app: demo\nrepository: octo/app\n").unwrap();
    assert_eq!(config.shared_stack_name(), "demo-shared");
    assert_eq!(config.preview.capacity, Capacity::FargateSpot);
    assert_eq!(config.queue.workers, 16);
}

const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:";

const PRODUCTION: &str = "production:\n  enabled: true\n  domain: www.example.com\n  hosted_zone_id: Z1\n\
     \x20 certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c\n";

#[test]
fn missing_required_field() {
    let err = parse("app: demo\n").unwrap_err().to_string();
    assert!(err.contains("missing field `repository`"), "{err}");
}
