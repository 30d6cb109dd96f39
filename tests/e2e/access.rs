//! Private previews (`preview.access`) on the shared edge and on a
//! preview's own HTTPS load balancer, through webhooks, against moto and
//! the GitHub fake: the listener rules each kind of access puts there, read
//! back with ELBv2 `DescribeRules` and `DescribeListeners`.
//!
//! moto 5.2.5 keeps authenticate actions (OIDC and Cognito alike) as sent
//! and passes CloudFormation's `{{resolve:secretsmanager:...}}` dynamic
//! references through verbatim instead of resolving them: the tests can
//! therefore see that only the reference, never a secret value, was sent.

use crate::support::edge::{assert_own_balancer_gone, edge_yaml, shards, zone};
use crate::support::{World, merge_yaml};
use aws_sdk_elasticloadbalancingv2::Client as Elb;
use aws_sdk_elasticloadbalancingv2::types::Rule;

/// The ARN of the app's access secret `name` (never created: pullstack
/// only passes the reference, and moto does not resolve it). Kept short
/// and without the random suffix AWS adds: moto checks the 128-character
/// limit of a header condition's value on the unresolved reference.
fn secret(world: &World, name: &str) -> String {
    format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:pullstack/{}/access/{name}",
        world.app
    )
}

/// `world` with `access` as its `preview.access` section.
fn with_access(world: &mut World, access: &str) {
    world.config_yaml = merge_yaml(
        &world.config_yaml,
        &format!("preview:\n  access:\n{access}"),
    );
}

/// The non-default rules on a listener whose host condition names `host`,
/// by priority.
async fn rules_for(world: &World, listener: &str, host: &str) -> Vec<(u32, Rule)> {
    all_rules(world, listener)
        .await
        .into_iter()
        .filter(|(_, r)| {
            r.conditions().iter().any(|c| {
                c.host_header_config()
                    .is_some_and(|h| h.values().iter().any(|v| v == host))
            })
        })
        .collect()
}

/// The non-default rules on a listener, by priority.
async fn all_rules(world: &World, listener: &str) -> Vec<(u32, Rule)> {
    let elb = Elb::new(&world.sdk);
    let page = elb
        .describe_rules()
        .listener_arn(listener)
        .send()
        .await
        .unwrap();
    let mut out: Vec<(u32, Rule)> = page
        .rules()
        .iter()
        .filter(|r| r.is_default() != Some(true))
        .map(|r| (r.priority().unwrap().parse().unwrap(), r.clone()))
        .collect();
    out.sort_by_key(|(p, _)| *p);
    out
}

fn condition<'a>(
    rule: &'a Rule,
    field: &str,
) -> Option<&'a aws_sdk_elasticloadbalancingv2::types::RuleCondition> {
    rule.conditions().iter().find(|c| c.field() == Some(field))
}

/// Checks a preview's two rules with `oidc_access`: first the bypass (its
/// header's secret, from anywhere, straight to `group`), then the sign-in
/// (the ranges beside the host, OIDC before the forward to `group`).
/// Returns their priorities.
fn bypass_then_sign_in(
    rules: &[(u32, Rule)],
    group: &str,
    bypass_secret: &str,
    oidc_secret: &str,
) -> (u32, u32) {
    assert_eq!(rules.len(), 2, "a bypass rule and the preview's own");
    let (bypass_at, bypass) = &rules[0];
    let (login_at, login) = &rules[1];
    let resolve = |arn: &str| format!("{{{{resolve:secretsmanager:{arn}:SecretString}}}}");

    // The bypass: host and header, straight to the preview.
    let header = condition(bypass, "http-header")
        .and_then(|c| c.http_header_config())
        .expect("a header condition");
    assert_eq!(header.http_header_name(), Some("X-Pullstack-Bypass"));
    assert_eq!(header.values(), [resolve(bypass_secret)]);
    assert!(condition(bypass, "source-ip").is_none());
    assert_eq!(bypass.actions().len(), 1);
    assert_eq!(bypass.actions()[0].target_group_arn(), Some(group));

    // The login: the ranges beside the host, sign-in before forward.
    let ranges = condition(login, "source-ip")
        .and_then(|c| c.source_ip_config())
        .expect("a source-ip condition");
    assert_eq!(ranges.values(), ["203.0.113.0/24"]);
    let mut actions = login.actions().to_vec();
    actions.sort_by_key(|a| a.order());
    assert_eq!(actions.len(), 2);
    assert_eq!(
        actions[0].r#type().map(|t| t.as_str()),
        Some("authenticate-oidc")
    );
    assert_eq!(actions[0].order(), Some(1));
    let oidc = actions[0].authenticate_oidc_config().unwrap();
    assert_eq!(oidc.issuer(), Some("https://idp.example.com"));
    assert_eq!(oidc.client_id(), Some("previews"));
    assert_eq!(oidc.client_secret(), Some(resolve(oidc_secret).as_str()));
    assert_eq!(actions[1].r#type().map(|t| t.as_str()), Some("forward"));
    assert_eq!(actions[1].order(), Some(2));
    assert_eq!(actions[1].target_group_arn(), Some(group));
    (*bypass_at, *login_at)
}

/// Access from 203.0.113.0/24 only, signed in through an OIDC provider
/// whose client secret is `oidc_secret`, with CI's bypass in
/// `bypass_secret`.
fn oidc_access(oidc_secret: &str, bypass_secret: &str) -> String {
    format!(
        "    allow_cidrs: [203.0.113.0/24]\n    oidc:\n      issuer: https://idp.example.com\n      \
         authorization_endpoint: https://idp.example.com/auth\n      \
         token_endpoint: https://idp.example.com/token\n      \
         user_info_endpoint: https://idp.example.com/userinfo\n      client_id: previews\n      \
         client_secret_arn: {oidc_secret}\n    bypass_secret_arn: {bypass_secret}\n"
    )
}

/// Attack: anyone who finds a preview's URL reaches unreleased code. With
/// OIDC and source ranges, the preview's rule signs people in first and
/// admits only those ranges; CI gets past both with the bypass header,
/// whose rule comes just before. Two previews never share a priority, and
/// closing one frees both of its rules.
#[tokio::test]
async fn an_oidc_preview_signs_in_first_and_ci_bypasses_it_with_a_header() {
    let zone = zone("oidc").await;
    let mut world = World::new("oidc", &edge_yaml(&zone, "")).await;
    let (oidc_secret, bypass_secret) = (secret(&world, "oidc"), secret(&world, "ci"));
    with_access(&mut world, &oidc_access(&oidc_secret, &bypass_secret));
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    world.open_pr(2).await;
    world.wait_comment(2, "Ready").await;

    let shards = shards(&world).await;
    let listener = shards[&1].output("ListenerArn").unwrap().to_owned();
    let mut taken = Vec::new();
    for pr in [1, 2] {
        let host = format!("pr-{pr}.{}", zone.name);
        let stack = world.stack(pr).await.unwrap();
        let group = stack.output("TargetGroupArn").unwrap();
        let rules = rules_for(&world, &listener, &host).await;
        let (bypass_at, login_at) =
            bypass_then_sign_in(&rules, group, &bypass_secret, &oidc_secret);
        assert_eq!(bypass_at + 1, login_at, "the bypass just before the login");
        taken.extend([bypass_at, login_at]);
    }
    taken.sort_unstable();
    taken.dedup();
    assert_eq!(taken.len(), 4, "no priority twice: {taken:?}");

    // Closing frees both of its rules; the other preview keeps its own.
    world.close(1, true).await;
    world.wait_stack_gone(1).await;
    world.wait_comment(1, "removed").await;
    world.settle().await;
    let host = format!("pr-1.{}", zone.name);
    assert!(rules_for(&world, &listener, &host).await.is_empty());
    let host = format!("pr-2.{}", zone.name);
    assert_eq!(rules_for(&world, &listener, &host).await.len(), 2);
}

/// Attack: as above, with a Cognito user pool as the sign-in.
#[tokio::test]
async fn a_cognito_preview_signs_in_through_the_user_pool() {
    let zone = zone("cognito").await;
    let mut world = World::new("cognito", &edge_yaml(&zone, "")).await;
    with_access(
        &mut world,
        "    cognito:\n      \
         user_pool_arn: arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf\n      \
         client_id: 1example23456789\n      domain: demo-previews\n",
    );
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;

    let shards = shards(&world).await;
    let listener = shards[&1].output("ListenerArn").unwrap().to_owned();
    let host = format!("pr-1.{}", zone.name);
    let rules = rules_for(&world, &listener, &host).await;
    assert_eq!(rules.len(), 1, "no bypass configured");
    let login = &rules[0].1;
    assert!(condition(login, "source-ip").is_none());
    let mut actions = login.actions().to_vec();
    actions.sort_by_key(|a| a.order());
    assert_eq!(
        actions[0].r#type().map(|t| t.as_str()),
        Some("authenticate-cognito")
    );
    let cognito = actions[0].authenticate_cognito_config().unwrap();
    assert_eq!(
        cognito.user_pool_arn(),
        Some("arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbCdEf")
    );
    assert_eq!(cognito.user_pool_client_id(), Some("1example23456789"));
    assert_eq!(cognito.user_pool_domain(), Some("demo-previews"));
    assert_eq!(actions[1].r#type().map(|t| t.as_str()), Some("forward"));
    assert_eq!(actions[1].order(), Some(2));
}

/// Attack: a bypass added to a live installation gives a preview's new
/// bypass rule a priority another preview holds (or its own), so one host
/// is routed past the login, or the update fails. A preview that gains a
/// bypass is placed again at two free adjacent priorities; one that loses
/// it keeps its own priority and gives the other back.
#[tokio::test]
async fn a_bypass_added_or_removed_later_moves_only_that_preview() {
    let zone = zone("bypass").await;
    let mut world = World::new("bypass", &edge_yaml(&zone, "")).await;
    with_access(&mut world, "    allow_cidrs: [198.51.100.0/24]\n");
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    world.open_pr(2).await;
    world.wait_comment(2, "Ready").await;
    world.settle().await;
    let listener = shards(&world).await[&1]
        .output("ListenerArn")
        .unwrap()
        .to_owned();
    let (one, two) = (format!("pr-1.{}", zone.name), format!("pr-2.{}", zone.name));
    let priorities =
        |rules: Vec<(u32, Rule)>| rules.into_iter().map(|(p, _)| p).collect::<Vec<_>>();
    assert_eq!(priorities(rules_for(&world, &listener, &one).await), [1]);
    assert_eq!(priorities(rules_for(&world, &listener, &two).await), [2]);

    world.stop().await;
    let bypass = secret(&world, "ci");
    with_access(&mut world, &format!("    bypass_secret_arn: {bypass}\n"));
    world.start().await;
    let sha = world.push(1, "with a bypass").await;
    world.wait_stack_at(1, &sha).await;
    world.settle().await;
    let rules = rules_for(&world, &listener, &one).await;
    // moto keeps the rule an update replaced: only the stack's own count.
    let stack = world.stack(1).await.unwrap();
    let own = stack.output("ListenerRuleArn").unwrap();
    let login = rules
        .iter()
        .find(|(_, r)| r.rule_arn() == Some(own))
        .unwrap();
    let bypassing: Vec<u32> = rules
        .iter()
        .filter(|(_, r)| condition(r, "http-header").is_some())
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(bypassing, [3], "the lowest two free, after 2");
    // moto's CloudFormation ignores a ListenerRule's new Priority on update
    // (AWS moves the rule): the login rule stays at 1 there, still a
    // priority no other rule has.
    assert!([1, 4].contains(&login.0), "{}", login.0);
    let mut all = priorities(all_rules(&world, &listener).await);
    let count = all.len();
    all.dedup();
    assert_eq!(all.len(), count, "no priority twice: {all:?}");
    assert_eq!(
        stack.parameters.get("RulePriority").map(String::as_str),
        Some("4")
    );
    assert_eq!(
        stack
            .parameters
            .get("BypassRulePriority")
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(priorities(rules_for(&world, &listener, &two).await), [2]);

    world.stop().await;
    with_access(&mut world, "    bypass_secret_arn: \"\"\n");
    world.start().await;
    let sha = world.push(1, "without").await;
    let stack = world.wait_stack_at(1, &sha).await;
    world.settle().await;
    assert_eq!(
        stack.parameters.get("RulePriority").map(String::as_str),
        Some("4")
    );
    assert_eq!(
        stack
            .parameters
            .get("BypassRulePriority")
            .map(String::as_str),
        Some("0")
    );
    // The bypass rule left the stack. moto keeps a listener rule whose
    // resource an update removed (AWS deletes it), so the stack's resources
    // are what is asserted.
    let cloudformation = aws_sdk_cloudformation::Client::new(&world.sdk);
    let resources = cloudformation
        .list_stack_resources()
        .stack_name(&stack.name)
        .send()
        .await
        .unwrap();
    let logical: Vec<&str> = resources
        .stack_resource_summaries()
        .iter()
        .filter_map(|r| r.logical_resource_id())
        .collect();
    assert!(logical.contains(&"ListenerRule"), "{logical:?}");
    assert!(!logical.contains(&"BypassRule"), "{logical:?}");
}

/// The ingress rules of stack `name`'s load balancer security group, from
/// the template CloudFormation holds (the tests have no EC2 client).
async fn ingress(world: &World, name: &str) -> Vec<serde_json::Value> {
    let template = aws_sdk_cloudformation::Client::new(&world.sdk)
        .get_template()
        .stack_name(name)
        .send()
        .await
        .expect("get the template");
    let body = template.template_body().expect("a template body");
    let template: serde_json::Value = serde_json::from_str(body).expect("a JSON template");
    (template.pointer("/Resources/LoadBalancerSecurityGroup/Properties/SecurityGroupIngress"))
        .and_then(|i| i.as_array())
        .expect("the load balancer's ingress")
        .clone()
}

/// Attack: a dedicated preview's own load balancer admits the whole
/// internet although only some ranges should reach it. Its security group
/// admits those ranges only (read from the template CloudFormation holds:
/// the tests have no EC2 client).
#[tokio::test]
async fn a_dedicated_preview_admits_only_the_listed_ranges() {
    let mut world = World::new("ranges", "").await;
    with_access(
        &mut world,
        "    allow_cidrs: [198.51.100.0/24, \"2001:db8::/48\"]\n",
    );
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    let stack = world.stack(1).await.unwrap();
    assert!(
        stack.output("LoadBalancerArn").is_some(),
        "its own load balancer"
    );
    let sources: Vec<(String, u64)> = (ingress(&world, &stack.name).await.iter())
        .map(|rule| {
            let source = rule
                .get("CidrIp")
                .or_else(|| rule.get("CidrIpv6"))
                .and_then(|c| c.as_str())
                .unwrap()
                .to_owned();
            (source, rule["FromPort"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("198.51.100.0/24".to_owned(), 80),
            ("198.51.100.0/24".to_owned(), 443),
            ("2001:db8::/48".to_owned(), 80),
            ("2001:db8::/48".to_owned(), 443),
        ]
    );
}

/// Attack: anyone who finds a dedicated preview's URL reaches unreleased
/// code, because its own load balancer had plain HTTP only and no room for
/// a sign-in. With `edge.certificate_arn`, its load balancer serves HTTPS
/// (HTTP redirected), answers 404 to what no rule admits, and carries the
/// very rules the shared edge does: the bypass first, then the sign-in in
/// front of the forward, beside the source ranges. Moving it to the shared
/// edge afterwards leaves no load balancer behind.
#[tokio::test]
async fn a_dedicated_preview_signs_in_on_its_own_https_load_balancer() {
    let zone = zone("private").await;
    let mut world = World::new("private", &edge_yaml(&zone, "  mode: dedicated\n")).await;
    let (oidc_secret, bypass_secret) = (secret(&world, "oidc"), secret(&world, "ci"));
    with_access(&mut world, &oidc_access(&oidc_secret, &bypass_secret));
    world.start().await;
    world.open_pr(1).await;
    let host = format!("pr-1.{}", zone.name);
    let comment = world.wait_comment(1, "Ready").await;
    assert!(
        comment.body.contains(&format!("https://{host}")),
        "{}",
        comment.body
    );
    world.settle().await;
    assert!(
        shards(&world).await.is_empty(),
        "no edge shard in dedicated mode"
    );

    let stack = world.stack(1).await.unwrap();
    assert_eq!(
        stack.output("Url"),
        Some(format!("https://{host}").as_str())
    );
    let balancer = stack
        .output("LoadBalancerArn")
        .expect("its own load balancer")
        .to_owned();
    let group = stack.output("TargetGroupArn").unwrap().to_owned();
    let elb = Elb::new(&world.sdk);
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&balancer)
        .send()
        .await
        .unwrap();
    let by_port = |port: i32| {
        listeners
            .listeners()
            .iter()
            .find(|l| l.port() == Some(port))
            .unwrap_or_else(|| panic!("a listener on {port}: {listeners:?}"))
    };
    assert_eq!(listeners.listeners().len(), 2, "{listeners:?}");

    // HTTPS with the edge's TLS policy and the certificate.
    let https = by_port(443);
    assert_eq!(https.protocol().map(|p| p.as_str()), Some("HTTPS"));
    assert_eq!(
        https.ssl_policy(),
        Some("ELBSecurityPolicy-TLS13-1-2-2021-06")
    );
    assert_eq!(
        https.certificates()[0].certificate_arn(),
        Some(zone.certificate.as_str())
    );
    let default = &https.default_actions()[0];
    assert_eq!(default.r#type().map(|t| t.as_str()), Some("fixed-response"));
    assert_eq!(
        default.fixed_response_config().unwrap().status_code(),
        Some("404")
    );

    // HTTP only redirects to HTTPS.
    let http = by_port(80);
    let redirect = http.default_actions()[0]
        .redirect_config()
        .expect("a redirect");
    assert_eq!(redirect.protocol(), Some("HTTPS"));
    assert_eq!(redirect.port(), Some("443"));
    assert_eq!(redirect.status_code().map(|c| c.as_str()), Some("HTTP_301"));

    // The rules: the bypass, then the sign-in in front of the forward.
    let listener = https.listener_arn().unwrap();
    let rules = rules_for(&world, listener, &host).await;
    let priorities = bypass_then_sign_in(&rules, &group, &bypass_secret, &oidc_secret);
    assert_eq!(priorities, (1, 2));

    // The bypass must reach the load balancer from anywhere: the rule's
    // source-ip condition keeps the others out.
    let sources: Vec<String> = (ingress(&world, &stack.name).await.iter())
        .map(|rule| rule["CidrIp"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(sources, ["0.0.0.0/0", "0.0.0.0/0"]);

    // Moving to the shared edge: one update, and its own load balancer goes.
    world.stop().await;
    world.config_yaml = merge_yaml(&world.config_yaml, "edge:\n  mode: shared\n");
    world.start().await;
    let sha = world.push(1, "to the edge").await;
    let after = world.wait_stack_at(1, &sha).await;
    world.settle().await;
    assert!(after.output("LoadBalancerArn").is_none());
    assert_own_balancer_gone(&world, 1, &balancer).await;
    // moto 5.2.5 modifies a listener rule in place when its ListenerArn
    // changes (AWS replaces it on the new listener), so where the rules
    // went is read from the stack's parameters.
    let edge_listener = shards(&world).await[&1]
        .output("ListenerArn")
        .unwrap()
        .to_owned();
    assert_eq!(after.parameters.get("ListenerArn"), Some(&edge_listener));
}
