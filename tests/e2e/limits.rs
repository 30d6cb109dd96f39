//! Capacity: the limit on concurrent previews, with a fair line, and the
//! account quotas checked before creating anything.
//!
//! The limit runs on moto as it is. The quotas use aws-smithy-mocks: moto
//! reports a fixed load balancer quota, shared by every test running on it,
//! and has no CloudFormation DescribeAccountLimits. A `MockResponseInterceptor`
//! on the real ELBv2 and CloudFormation clients answers the quota calls, and
//! lets every other call pass through to moto. Quotas are read in the
//! background, so a test waits for the read before opening a PR. How the
//! reads stay off a PR's way runs through the fault proxy in front of moto.

use crate::support::fault_proxy::{FaultProxy, Outcome};
use crate::support::mocks::{self, Scripted};
use crate::support::{WAIT, World, eventually, moto_endpoint};
use aws_sdk_cloudformation::operation::describe_account_limits::DescribeAccountLimitsOutput as StackLimits;
use aws_sdk_cloudformation::types::AccountLimit;
use aws_sdk_elasticloadbalancingv2::operation::describe_account_limits::DescribeAccountLimitsOutput as ElbLimits;
use aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersOutput;
use aws_sdk_elasticloadbalancingv2::types::{Limit, LoadBalancer, LoadBalancerTypeEnum};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};
use pullstack::aws::Aws;
use pullstack::aws::quotas::Quotas;
use std::time::Duration;

#[tokio::test]
async fn beyond_the_limit_prs_wait_in_line_and_start_when_a_slot_frees() {
    let config = "preview:\n  limits:\n    per_repository: 1\n";
    let mut world = World::new("limit", config).await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;

    let second = world.open_pr(2).await;
    let queued = world.wait_comment(2, "number 1 in line").await;
    assert!(
        queued
            .body
            .contains("1 of 1 preview environments for this repository"),
        "{}",
        queued.body
    );
    assert!(queued.body.contains("Estimated cost"), "{}", queued.body);
    world.open_pr(3).await;
    world.wait_comment(3, "number 2 in line").await;
    assert!(world.stack(2).await.is_none());
    assert!(world.stack(3).await.is_none());
    eventually(
        "a pending status for the queued PR",
        Duration::from_secs(30),
        || async {
            world.github.statuses(&world.repo, &second).iter().any(|s| {
                s.state == "pending"
                    && s.description
                        .as_deref()
                        .is_some_and(|d| d.contains("queued"))
            })
        },
    )
    .await;

    // Closing PR 1 frees its slot: the oldest in line gets it, the other
    // moves up.
    world.close(1, true).await;
    world.wait_stack_gone(1).await;
    world.wait_stack_at(2, &second).await;
    world.wait_comment(2, "Ready").await;
    world.wait_comment(3, "number 1 in line").await;
    assert!(world.stack(3).await.is_none());
}

/// The world's AWS clients, with quota calls answered by `elb` and `cfn`
/// rules first.
pub(crate) fn with_quotas(world: &World, elb: &[&Rule], cfn: &[&Rule]) -> Aws {
    let scripted = Scripted {
        elb: elb.to_vec(),
        cloudformation: cfn.to_vec(),
        ..Scripted::default()
    };
    mocks::aws(&world.sdk, &scripted)
}

pub(crate) fn elb_limit(max: &'static str) -> Rule {
    mock!(aws_sdk_elasticloadbalancingv2::Client::describe_account_limits).then_output(move || {
        ElbLimits::builder()
            .limits(
                Limit::builder()
                    .name("network-load-balancers")
                    .max("50")
                    .build(),
            )
            .limits(
                Limit::builder()
                    .name("application-load-balancers")
                    .max(max)
                    .build(),
            )
            .build()
    })
}

#[tokio::test]
async fn a_full_load_balancer_quota_refuses_before_creating_anything() {
    let config = "preview:\n  limits:\n    check_quotas: true\n";
    let mut world = World::new("albquota", config).await;
    let limit = elb_limit("1");
    let in_use = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_load_balancers)
        .then_output(|| {
            DescribeLoadBalancersOutput::builder()
                .load_balancers(
                    LoadBalancer::builder()
                        .load_balancer_name("someone-elses")
                        .r#type(LoadBalancerTypeEnum::Application)
                        .build(),
                )
                .build()
        });
    world
        .start_with(with_quotas(&world, &[&limit, &in_use], &[]))
        .await;
    world.quota_reads(1).await;
    let sha = world.open_pr(1).await;

    let refused = world.wait_comment(1, "Not created").await;
    assert!(
        refused
            .body
            .contains("1 of its 1 Application Load Balancers"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("/pullstack redeploy"),
        "{}",
        refused.body
    );
    assert!(world.stack(1).await.is_none());
    eventually("an error status", Duration::from_secs(30), || async {
        world
            .github
            .statuses(&world.repo, &sha)
            .iter()
            .any(|s| s.state == "error")
    })
    .await;
}

#[tokio::test]
async fn a_full_stack_quota_refuses_too() {
    let config = "preview:\n  limits:\n    check_quotas: true\n";
    let mut world = World::new("stackquota", config).await;
    let plenty = elb_limit("100000");
    // moto holds at least this world's shared stack, so a quota of one is full.
    let stacks = mock!(aws_sdk_cloudformation::Client::describe_account_limits).then_output(|| {
        StackLimits::builder()
            .account_limits(
                AccountLimit::builder()
                    .name("StackOutputsLimit")
                    .value(200)
                    .build(),
            )
            .account_limits(AccountLimit::builder().name("StackLimit").value(1).build())
            .build()
    });
    world
        .start_with(with_quotas(&world, &[&plenty], &[&stacks]))
        .await;
    world.quota_reads(1).await;
    world.open_pr(1).await;

    let refused = world.wait_comment(1, "Not created").await;
    assert!(
        refused.body.contains("of its 1 CloudFormation stacks"),
        "{}",
        refused.body
    );
    assert!(world.stack(1).await.is_none());
}

#[tokio::test]
async fn a_queued_pr_is_told_once_not_on_every_resync() {
    let config = "preview:\n  limits:\n    per_repository: 1\n";
    let mut world = World::new("toldonce", config).await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    let second = world.open_pr(2).await;
    let queued = world.wait_comment(2, "number 1 in line").await;
    // Several resyncs look at the queued PR again.
    for _ in 0..3 {
        world.resync().await;
    }
    let statuses = world.github.statuses(&world.repo, &second);
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    let comment = world.sticky(2).unwrap();
    assert_eq!(comment.edits, queued.edits, "the comment is not rewritten");
}

/// Attack: reading the quotas is slow, or fails (moto has no CloudFormation
/// DescribeAccountLimits: a 500 the SDK retries), and the first PR after
/// each start waits for the read before its stack is created; then the
/// unreadable quota is asked for again on the next create.
#[tokio::test]
async fn quotas_are_read_off_the_critical_path_and_an_unreadable_one_is_remembered() {
    let config = "preview:\n  limits:\n    check_quotas: true\n";
    let mut world = World::new("quotaread", config).await;
    let proxy = FaultProxy::start(&moto_endpoint()).await;
    proxy.hold("DescribeAccountLimits");
    let sdk = proxy.sdk_config(&world.sdk, 2, Duration::from_millis(10));
    // moto's load balancer quota is shared by every test running on it:
    // plenty here, so that only the CloudFormation quota is in question.
    let plenty = elb_limit("100000");
    let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(&sdk)
        .interceptor(
            MockResponseInterceptor::new()
                .rule_mode(RuleMode::MatchAny)
                .allow_passthrough()
                .with_rule(&plenty),
        )
        .build();
    let mut aws = Aws::from_config(&sdk);
    aws.quotas = Quotas::new(
        aws_sdk_elasticloadbalancingv2::Client::from_conf(elb),
        aws_sdk_cloudformation::Client::new(&sdk),
    );
    world.start_with(aws).await;

    // The quota read hangs; the first PR is created all the same.
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    eventually("a quota read under way", WAIT, || async {
        proxy
            .calls()
            .iter()
            .any(|c| c.operation == "DescribeAccountLimits")
    })
    .await;
    let calls = proxy.calls();
    let reads: Vec<_> = calls
        .iter()
        .filter(|c| c.operation == "DescribeAccountLimits")
        .collect();
    assert!(
        reads.iter().all(|c| c.outcome.is_none()),
        "the read is still held: {reads:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c.operation == "CreateStack" && c.outcome == Some(Outcome::Forwarded(200))),
        "the stack was created while the quota read hung"
    );

    // moto answers the CloudFormation quota with a 500: unknown, and not
    // asked for again on the next create.
    proxy.release();
    world.quota_reads(1).await;
    let cloudformation = || proxy.count("cloudformation", "DescribeAccountLimits");
    let asked = cloudformation();
    assert!(asked > 0);
    world.open_pr(2).await;
    world.wait_comment(2, "Ready").await;
    assert_eq!(cloudformation(), asked, "an unreadable quota is remembered");

    // Ten minutes on, it is asked for again, still in the background.
    world.advance(pullstack::reconcile::preview::UNREADABLE_TTL + Duration::from_secs(60));
    world.open_pr(3).await;
    world.wait_comment(3, "Ready").await;
    world.quota_reads(2).await;
    assert!(cloudformation() > asked, "read again once stale");
}
