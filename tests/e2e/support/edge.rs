//! The setup the edge tests and benchmarks share: a hosted zone with a
//! wildcard certificate on moto, the config that puts previews on it, and
//! the edge shard stacks a world has.
//!
//! moto 5.2.5 answers 500 when a listener refers to a CloudFormation
//! certificate, so the certificate is requested through the ACM API and
//! given as `edge.certificate_arn`.

use super::World;
use std::collections::BTreeMap;

/// A hosted zone and a wildcard certificate for it, on moto.
pub struct Zone {
    pub name: String,
    pub id: String,
    pub certificate: String,
}

/// A new zone named after `prefix`, with its certificate.
pub async fn zone(prefix: &str) -> Zone {
    let sdk = super::moto_config().await;
    let name = format!(
        "{prefix}-{:06x}.example.com",
        rand::random::<u32>() & 0xff_ffff
    );
    let route53 = aws_sdk_route53::Client::new(&sdk);
    let created = route53
        .create_hosted_zone()
        .name(&name)
        .caller_reference(&name)
        .send()
        .await
        .expect("create the hosted zone");
    let id = created
        .hosted_zone()
        .unwrap()
        .id()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let acm = aws_sdk_acm::Client::new(&sdk);
    let certificate = acm
        .request_certificate()
        .domain_name(format!("*.{name}"))
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .send()
        .await
        .expect("request the certificate")
        .certificate_arn()
        .unwrap()
        .to_owned();
    Zone {
        name,
        id,
        certificate,
    }
}

/// A config that puts previews on the shared edge in `zone` (its
/// `edge:` section last, so `extra` may add to it).
pub fn edge_yaml(zone: &Zone, extra: &str) -> String {
    format!(
        "preview:\n  dns_zone: {}\n  hosted_zone_id: {}\n  env:\n    URL: \"{{url}}\"\n\
         edge:\n  certificate_arn: {}\n{extra}",
        zone.name, zone.id, zone.certificate
    )
}

/// The app's edge shard stacks, by number.
pub async fn shards(world: &World) -> BTreeMap<u32, pullstack::aws::stacks::Stack> {
    let prefix = format!("{}-edge-", world.app);
    world
        .aws
        .stacks
        .list_tagged("pullstack:repo", &world.repo)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.tag("pullstack:role") == Some("edge"))
        .filter_map(|s| Some((s.name.strip_prefix(&prefix)?.parse().ok()?, s)))
        .collect()
}

/// Asserts that preview `number` left its own load balancer (`balancer`)
/// behind on the move to the shared edge: it is gone, and the stack holds
/// no load balancer, listener or own target group any more.
pub async fn assert_own_balancer_gone(world: &World, number: u64, balancer: &str) {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&world.sdk);
    let gone = elb
        .describe_load_balancers()
        .load_balancer_arns(balancer)
        .send()
        .await;
    assert!(gone.is_err(), "its own load balancer is left: {gone:?}");
    let resources = (world.aws.stacks.resources(&world.stack_name(number)))
        .await
        .unwrap();
    for kind in [
        "AWS::ElasticLoadBalancingV2::LoadBalancer ",
        "AWS::ElasticLoadBalancingV2::Listener ",
        "AWS::ElasticLoadBalancingV2::TargetGroup TargetGroup",
    ] {
        assert!(
            !resources.iter().any(|r| r.starts_with(kind)),
            "{kind} still in the stack: {resources:?}"
        );
    }
}
