//! AWS clients with some answers scripted by aws-smithy-mocks on the real
//! SDK clients, every other call passing through to moto: for the states
//! moto cannot produce (tasks that run and stop, unhealthy targets, stacks
//! stuck in progress).

use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
use aws_sdk_cloudformation::types::{ResourceStatus, Stack, StackEvent, StackStatus, Tag};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_types::DateTime;
use pullstack::aws::Aws;
use pullstack::aws::metered::Metered;
use pullstack::aws::quotas::Quotas;
use pullstack::aws::stacks::Stacks;
use pullstack::aws::tasks::Tasks;

/// Rules per service; a service without rules talks to moto only.
#[derive(Default)]
pub struct Scripted<'a> {
    pub cloudformation: Vec<&'a Rule>,
    pub ecs: Vec<&'a Rule>,
    pub elb: Vec<&'a Rule>,
}

/// Mocked or not, every call is counted on `/metrics`, as pullstack's own
/// clients count theirs.
fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    let mut interceptor = MockResponseInterceptor::new()
        .rule_mode(RuleMode::MatchAny)
        .allow_passthrough();
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    interceptor
}

/// The world's AWS clients, answering `scripted`'s rules first.
pub fn aws(sdk: &aws_config::SdkConfig, scripted: &Scripted<'_>) -> Aws {
    let mut aws = Aws::from_config(sdk);
    let cfn = aws_sdk_cloudformation::config::Builder::from(sdk)
        .interceptor(Metered)
        .interceptor(interceptor(&scripted.cloudformation))
        .build();
    let ecs = aws_sdk_ecs::config::Builder::from(sdk)
        .interceptor(Metered)
        .interceptor(interceptor(&scripted.ecs))
        .build();
    let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(sdk)
        .interceptor(Metered)
        .interceptor(interceptor(&scripted.elb))
        .build();
    let elb = aws_sdk_elasticloadbalancingv2::Client::from_conf(elb);
    let cfn = aws_sdk_cloudformation::Client::from_conf(cfn);
    aws.stacks = Stacks::new(cfn.clone());
    aws.quotas = Quotas::new(elb.clone(), cfn);
    aws.tasks = Tasks::new(
        aws_sdk_ecs::Client::from_conf(ecs),
        elb,
        aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::config::Builder::from(sdk)
                .interceptor(Metered)
                .build(),
        ),
    );
    aws
}

/// Writes `lines` to `stream` of `group` on moto's CloudWatch Logs, as the
/// awslogs driver would.
pub async fn put_logs(sdk: &aws_config::SdkConfig, group: &str, stream: &str, lines: &[String]) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(sdk);
    // The shared stack's group may not exist on moto: make sure it does.
    let _ = logs.create_log_group().log_group_name(group).send().await;
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .expect("create the log stream");
    let now = chrono::Utc::now().timestamp_millis();
    let mut put = logs
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream);
    for (i, line) in lines.iter().enumerate() {
        put = put.log_events(
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now + i64::try_from(i).unwrap())
                .message(line)
                .build()
                .unwrap(),
        );
    }
    put.send().await.expect("put the log events");
}

/// The shared stack's output `key` (e.g. `LogGroupName`, `ClusterName`).
pub async fn shared_output(world: &super::World, key: &str) -> String {
    let name = format!("{}-shared", world.app);
    let stack = world.aws.stacks.describe(&name).await.unwrap().unwrap();
    stack.output(key).unwrap().to_owned()
}

/// `DescribeStacks` of a managed stack `name` in `status` at commit `sha`.
pub fn stack_in(name: &str, status: StackStatus, sha: &str) -> DescribeStacksOutput {
    let stack = Stack::builder()
        .stack_name(name)
        .stack_status(status)
        .creation_time(DateTime::from_secs(chrono::Utc::now().timestamp()))
        .tags(Tag::builder().key("pullstack:commit").value(sha).build())
        .tags(
            Tag::builder()
                .key("pullstack:managed")
                .value("true")
                .build(),
        )
        .build();
    DescribeStacksOutput::builder().stacks(stack).build()
}

/// What CloudFormation says of a circuit-breaker rollback: nothing a person
/// can act on.
pub fn circuit_breaker_events(name: &str) -> DescribeStackEventsOutput {
    let event = |logical: &str, kind: &str, status: ResourceStatus, reason: &str| {
        StackEvent::builder()
            .stack_name(name)
            .event_id(format!("{logical}-{}", status.as_str()))
            .logical_resource_id(logical)
            .resource_type(kind)
            .resource_status(status)
            .resource_status_reason(reason)
            .timestamp(DateTime::from_secs(chrono::Utc::now().timestamp()))
            .build()
    };
    DescribeStackEventsOutput::builder()
        .stack_events(event(
            name,
            "AWS::CloudFormation::Stack",
            ResourceStatus::RollbackComplete,
            "",
        ))
        .stack_events(event(
            "Service",
            "AWS::ECS::Service",
            ResourceStatus::CreateFailed,
            "ECS Deployment Circuit Breaker was triggered",
        ))
        .stack_events(event(
            name,
            "AWS::CloudFormation::Stack",
            ResourceStatus::CreateInProgress,
            "User Initiated",
        ))
        .build()
}
