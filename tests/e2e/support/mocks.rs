//! AWS clients with some answers scripted by aws-smithy-mocks on the real
//! SDK clients, every other call passing through to moto: for the states
//! moto cannot produce (tasks that run and stop, unhealthy targets, stacks
//! stuck in progress).

use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode};
use pullstack::aws::Aws;
use pullstack::aws::metered::Metered;
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
    aws.stacks = Stacks::new(aws_sdk_cloudformation::Client::from_conf(cfn));
    let ecs = aws_sdk_ecs::config::Builder::from(sdk)
        .interceptor(Metered)
        .interceptor(interceptor(&scripted.ecs))
        .build();
    let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(sdk)
        .interceptor(Metered)
        .interceptor(interceptor(&scripted.elb))
        .build();
    aws.tasks = Tasks::new(
        aws_sdk_ecs::Client::from_conf(ecs),
        aws_sdk_elasticloadbalancingv2::Client::from_conf(elb),
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
