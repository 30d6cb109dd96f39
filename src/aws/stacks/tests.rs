//! Stack phases, deploy digests and the tag and parameter helpers.

use super::*;

#[test]
fn phases() {
    assert_eq!(Phase::of(&StackStatus::RollbackComplete), Phase::Dead);
    assert_eq!(
        Phase::of(&StackStatus::UpdateRollbackFailed),
        Phase::RollbackFailed
    );
    assert_eq!(
        Phase::of(&StackStatus::UpdateCompleteCleanupInProgress),
        Phase::InProgress
    );
    assert_eq!(Phase::of(&StackStatus::DeleteFailed), Phase::DeleteFailed);
    assert_eq!(Phase::of(&StackStatus::UpdateComplete), Phase::Stable);
}

mod role {
    //! The CloudFormation service role is sent on every call that changes a
    //! stack. moto keeps the role of a create or update (the end-to-end
    //! tests read it back) but forgets a deleted stack, so what is sent is
    //! checked here, on requests the SDK's mock answers.

    use super::super::*;
    use aws_sdk_cloudformation::config::retry::RetryConfig;
    use aws_sdk_cloudformation::operation::continue_update_rollback::ContinueUpdateRollbackOutput;
    use aws_sdk_cloudformation::operation::create_stack::CreateStackOutput;
    use aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput;
    use aws_sdk_cloudformation::operation::update_stack::UpdateStackOutput;
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};
    use std::sync::{Arc, Mutex};

    const ROLE: &str = "arn:aws:iam::123456789012:role/pullstack-cloudformation";

    /// Each request's `RoleARN`, in order.
    type Sent = Arc<Mutex<Vec<Option<String>>>>;

    fn stacks(rules: &[&Rule], role: Option<&str>) -> Stacks {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in rules {
            interceptor = interceptor.with_rule(rule);
        }
        let config = aws_sdk_cloudformation::Config::builder()
            .behavior_version(aws_sdk_cloudformation::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudformation::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            .retry_config(RetryConfig::disabled())
            .build();
        Stacks::new(Client::from_conf(config)).with_role(role.map(str::to_owned))
    }

    /// Rules answering every stack-changing call, recording its `RoleARN`.
    fn recording(sent: &Sent) -> Vec<Rule> {
        let (a, b, c, d) = (sent.clone(), sent.clone(), sent.clone(), sent.clone());
        vec![
            mock!(Client::create_stack)
                .match_requests(move |i| {
                    a.lock().unwrap().push(i.role_arn().map(Into::into));
                    true
                })
                .then_output(|| CreateStackOutput::builder().build()),
            mock!(Client::update_stack)
                .match_requests(move |i| {
                    b.lock().unwrap().push(i.role_arn().map(Into::into));
                    true
                })
                .then_output(|| UpdateStackOutput::builder().build()),
            mock!(Client::delete_stack)
                .match_requests(move |i| {
                    c.lock().unwrap().push(i.role_arn().map(Into::into));
                    true
                })
                .then_output(|| DeleteStackOutput::builder().build()),
            mock!(Client::continue_update_rollback)
                .match_requests(move |i| {
                    d.lock().unwrap().push(i.role_arn().map(Into::into));
                    true
                })
                .then_output(|| ContinueUpdateRollbackOutput::builder().build()),
        ]
    }

    async fn change_everything(stacks: &Stacks) {
        let (parameters, tags) = (BTreeMap::new(), BTreeMap::new());
        let deploy = Deploy {
            name: "demo-pr-1",
            template_body: "{}",
            parameters: &parameters,
            tags: &tags,
        };
        stacks.create(&deploy).await.unwrap();
        stacks.update(&deploy).await.unwrap();
        stacks.continue_rollback("demo-pr-1").await.unwrap();
        stacks.delete("demo-pr-1").await.unwrap();
    }

    #[tokio::test]
    async fn every_change_goes_through_the_configured_role() {
        let sent = Sent::default();
        let rules = recording(&sent);
        let rules: Vec<&Rule> = rules.iter().collect();
        change_everything(&stacks(&rules, Some(ROLE))).await;
        assert_eq!(*sent.lock().unwrap(), vec![Some(ROLE.to_owned()); 4]);
    }

    #[tokio::test]
    async fn without_a_role_none_is_sent() {
        let sent = Sent::default();
        let rules = recording(&sent);
        let rules: Vec<&Rule> = rules.iter().collect();
        change_everything(&stacks(&rules, None)).await;
        assert_eq!(*sent.lock().unwrap(), vec![None; 4]);
    }
}
