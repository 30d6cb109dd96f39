//! The shared HTTPS edge (`edge.mode: shared`): previews as host rules on a
//! pool of load balancers, through webhooks, against moto and the GitHub
//! fake. Rules are read back with ELBv2 `DescribeRules`.
//!
//! moto 5.2.5 answers 500 when a CloudFormation certificate is referenced
//! by a listener, so each test requests the wildcard certificate through
//! the ACM API and gives its ARN as `edge.certificate_arn`
//! (`support::edge`).

use crate::support::edge::{assert_own_balancer_gone, edge_yaml, shards, zone};
use crate::support::{WAIT, World, eventually};
use aws_sdk_elasticloadbalancingv2::Client as Elb;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The non-default rules on a listener: (priority, hosts, target groups).
async fn rules(world: &World, listener: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let elb = Elb::new(&world.sdk);
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = elb
            .describe_rules()
            .listener_arn(listener)
            .set_marker(marker)
            .send()
            .await
            .unwrap();
        for rule in page.rules() {
            if rule.is_default() == Some(true) {
                continue;
            }
            let hosts = rule
                .conditions()
                .iter()
                .filter(|c| c.field() == Some("host-header"))
                .flat_map(|c| c.host_header_config().unwrap().values().to_vec())
                .collect();
            let groups = rule
                .actions()
                .iter()
                .filter_map(|a| a.target_group_arn().map(str::to_owned))
                .collect();
            out.push((rule.priority().unwrap().to_owned(), hosts, groups));
        }
        marker = page.next_marker().map(str::to_owned);
        if marker.is_none() {
            return out;
        }
    }
}

#[tokio::test]
async fn a_preview_is_a_host_rule_on_the_shared_https_edge() {
    let zone = zone("edge").await;
    let mut world = World::new("edge", &edge_yaml(&zone, "")).await;
    world.start().await;
    world.open_pr(1).await;
    let comment = world.wait_comment(1, "Ready").await;
    let host = format!("pr-1.{}", zone.name);
    let url = format!("https://{host}");
    assert!(comment.body.contains(&url), "{}", comment.body);

    let stack = world.stack(1).await.unwrap();
    assert_eq!(stack.output("Url"), Some(url.as_str()));
    assert!(
        stack.output("LoadBalancerArn").is_none(),
        "no load balancer of its own"
    );
    // The URL was known before the stack existed: the first deploy has it.
    let ecs = aws_sdk_ecs::Client::new(&world.sdk);
    let task = ecs
        .describe_task_definition()
        .task_definition(stack.output("TaskDefinitionArn").unwrap())
        .send()
        .await
        .unwrap();
    let env = task.task_definition().unwrap().container_definitions()[0].environment();
    let seen = env
        .iter()
        .find(|kv| kv.name() == Some("URL"))
        .and_then(|kv| kv.value());
    assert_eq!(seen, Some(url.as_str()));

    // One shard, whose HTTPS listener routes the host to the stack's own
    // target group, answers 404 otherwise, and whose port 80 redirects.
    let shards = shards(&world).await;
    assert_eq!(shards.keys().copied().collect::<Vec<_>>(), vec![1]);
    let listener = shards[&1].output("ListenerArn").unwrap().to_owned();
    let on_edge = rules(&world, &listener).await;
    assert_eq!(on_edge.len(), 1);
    assert_eq!(on_edge[0].1, vec![host.clone()]);
    assert_eq!(
        on_edge[0].2,
        vec![stack.output("TargetGroupArn").unwrap().to_owned()]
    );
    let elb = Elb::new(&world.sdk);
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(shards[&1].output("LoadBalancerArn").unwrap())
        .send()
        .await
        .unwrap();
    let https = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(443))
        .unwrap();
    assert_eq!(
        https.ssl_policy(),
        Some("ELBSecurityPolicy-TLS13-1-2-2021-06")
    );
    let default = &https.default_actions()[0];
    let page = default.fixed_response_config().expect("a fixed response");
    assert_eq!(page.status_code(), Some("404"));
    assert!(page.message_body().unwrap().contains("No preview"));
    let http = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(80))
        .unwrap();
    let redirect = http.default_actions()[0]
        .redirect_config()
        .expect("a redirect");
    assert_eq!(redirect.protocol(), Some("HTTPS"));
    assert_eq!(redirect.status_code().map(|s| s.as_str()), Some("HTTP_301"));

    // The name is an alias to the shard's load balancer.
    let route53 = aws_sdk_route53::Client::new(&world.sdk);
    let records = route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone.id)
        .send()
        .await
        .unwrap();
    let record = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name().trim_end_matches('.') == host)
        .expect("the preview's record");
    assert_eq!(
        record
            .alias_target()
            .unwrap()
            .dns_name()
            .trim_end_matches('.'),
        shards[&1].output("LoadBalancerDnsName").unwrap()
    );

    // Closing frees the rule; the only shard stays for the next preview.
    world.close(1, true).await;
    world.wait_stack_gone(1).await;
    world.wait_comment(1, "removed").await;
    world.settle().await;
    assert!(rules(&world, &listener).await.is_empty());
    assert_eq!(shards_numbers(&world).await, vec![1]);
}

#[tokio::test]
async fn a_branch_environment_is_a_rule_for_its_slug_and_goes_with_the_branch() {
    let zone = zone("edgebr").await;
    let yaml = crate::support::merge_yaml(
        &edge_yaml(&zone, ""),
        "preview:\n  branches: [\"release/*\"]\n",
    );
    let mut world = World::new("edgebr", &yaml).await;
    world.start().await;
    let branch = "release/1.0";
    let sha = world.push_branch(branch, "one").await;
    let stack = world
        .wait_named_stack_at(&world.branch_stack_name(branch), &sha)
        .await;
    let slug = pullstack::domain::naming::EnvKey::Branch(branch.to_owned()).slug();
    let host = format!("{slug}.{}", zone.name);
    assert_eq!(
        stack.output("Url"),
        Some(format!("https://{host}").as_str())
    );
    let listener = stack.parameters["ListenerArn"].clone();
    let on_edge = rules(&world, &listener).await;
    assert_eq!(on_edge.len(), 1);
    assert_eq!(on_edge[0].1, vec![host]);

    world.delete_branch(branch, true).await;
    world
        .wait_named_stack_gone(&world.branch_stack_name(branch))
        .await;
    // No comment to wait for: the pass after the delete frees the rule.
    eventually("the branch's rule gone", WAIT, || async {
        rules(&world, &listener).await.is_empty()
    })
    .await;
}

async fn shards_numbers(world: &World) -> Vec<u32> {
    shards(world).await.keys().copied().collect()
}

#[tokio::test]
async fn switching_a_live_preview_to_the_edge_leaves_nothing_behind() {
    let zone = zone("switch").await;
    let mut world = World::new("switch", &edge_yaml(&zone, "  mode: dedicated\n")).await;
    // Dedicated on plain HTTP: the certificate comes with the switch.
    world.config_yaml =
        crate::support::merge_yaml(&world.config_yaml, "edge:\n  certificate_arn: \"\"\n");
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    let before = world.stack(1).await.unwrap();
    let own_balancer = before
        .output("LoadBalancerArn")
        .expect("its own ALB")
        .to_owned();
    let own_group = before.output("TargetGroupArn").unwrap().to_owned();
    assert_eq!(
        before.output("Url"),
        Some(format!("http://pr-1.{}", zone.name).as_str())
    );

    // The operator switches to the shared edge; the next push moves it.
    world.stop().await;
    world.config_yaml = crate::support::merge_yaml(
        &world.config_yaml,
        &format!(
            "edge:\n  mode: shared\n  certificate_arn: {}\n",
            zone.certificate
        ),
    );
    world.start().await;
    let sha = world.push(1, "moved").await;
    let after = world.wait_stack_at(1, &sha).await;
    world
        .wait_comment(1, &format!("https://pr-1.{}", zone.name))
        .await;
    world.settle().await;

    // Its own load balancer went with the update, and the stack holds
    // only what shared mode needs.
    assert_own_balancer_gone(&world, 1, &own_balancer).await;
    let new_group = after.output("TargetGroupArn").unwrap();
    assert_ne!(new_group, own_group);
    // moto 5.2.5 never deletes a target group CloudFormation made (it has
    // no delete for them), so the old one is checked gone from the stack
    // above, which is what CloudFormation deletes on AWS.
    let shards = shards(&world).await;
    let listener = shards[&1].output("ListenerArn").unwrap();
    let on_edge = rules(&world, listener).await;
    assert_eq!(on_edge.len(), 1);
    assert_eq!(on_edge[0].2, vec![new_group.to_owned()]);

    // One record for the name, now on the shard.
    let route53 = aws_sdk_route53::Client::new(&world.sdk);
    let records = route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone.id)
        .send()
        .await
        .unwrap();
    let named: Vec<_> = records
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.') == format!("pr-1.{}", zone.name))
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(
        named[0]
            .alias_target()
            .unwrap()
            .dns_name()
            .trim_end_matches('.'),
        shards[&1].output("LoadBalancerDnsName").unwrap()
    );
}

#[tokio::test]
async fn the_comment_says_when_a_load_balancer_is_being_added() {
    use crate::support::fault_proxy::FaultProxy;
    let zone = zone("adding").await;
    let mut world = World::new("adding", &edge_yaml(&zone, "")).await;
    // The shard's rules are not read until the test has seen the comment:
    // the pass after the shard's create waits there.
    let proxy = FaultProxy::start(&crate::support::moto_endpoint()).await;
    proxy.hold("DescribeRules");
    let sdk = proxy.sdk_config(&world.sdk, 2, Duration::from_millis(10));
    world
        .start_with(pullstack::aws::Aws::from_config(&sdk))
        .await;
    world.open_pr(1).await;
    let comment = world
        .wait_comment(1, "adding a load balancer for previews")
        .await;
    assert!(
        comment.body.contains("waits a few minutes"),
        "{}",
        comment.body
    );
    assert_eq!(shards_numbers(&world).await, vec![1]);
    proxy.release();
    world.wait_comment(1, "Ready").await;
}

/// Attack: another process (a second replica, or the GitHub Action) puts
/// a rule at the priority this one chose between its read and its
/// CreateStack. ELB answers `PriorityInUse` (moto cannot race, so the proxy
/// gives that answer once): the preview is placed again at another
/// priority, and the PR never hears of it.
#[tokio::test]
async fn a_priority_taken_meanwhile_is_placed_again_without_a_failure() {
    use crate::support::fault_proxy::{FaultProxy, Outcome};
    let zone = zone("race").await;
    let mut world = World::new("race", &edge_yaml(&zone, "")).await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    world.stop().await;

    let proxy = FaultProxy::start(&crate::support::moto_endpoint()).await;
    proxy.refuse_next(
        "CreateStack",
        400,
        "PriorityInUse",
        "Priority '2' is currently in use",
    );
    let sdk = proxy.sdk_config(&world.sdk, 2, Duration::from_millis(10));
    world
        .start_with(pullstack::aws::Aws::from_config(&sdk))
        .await;
    world.open_pr(2).await;
    let comment = world.wait_comment(2, "Ready").await;
    assert!(!comment.body.contains("ailed"), "{}", comment.body);
    let creates: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.operation == "CreateStack")
        .map(|c| c.outcome)
        .collect();
    assert_eq!(
        creates,
        vec![Some(Outcome::Refused(400)), Some(Outcome::Forwarded(200))]
    );
    let placed = world.stack(2).await.unwrap();
    assert_eq!(placed.parameters["RulePriority"], "3", "not the refused 2");
    let listener = &placed.parameters["ListenerArn"];
    let on_edge = rules(&world, listener).await;
    let priorities: BTreeSet<_> = on_edge.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(priorities, BTreeSet::from(["1", "3"]));
}

/// Previews opened at once across three shards, a crash in the middle,
/// then all closed. A low rule limit per load balancer makes a small pool
/// fill several shards: the placements race under the same lock, the same
/// shards are added and removed, as with 150 previews on 100-rule shards,
/// at a sixth of the work.
const PREVIEWS: u64 = 25;
/// Rules per shard: 25 previews fill two shards and part of a third.
const RULES_PER_ALB: usize = 10;

#[tokio::test]
async fn previews_opened_at_once_fill_shards_without_sharing_a_rule() {
    let zone = zone("pool").await;
    let extra = format!("  rules_per_alb: {RULES_PER_ALB}\nqueue:\n  workers: 16\n");
    let mut world = World::new("pool", &edge_yaml(&zone, &extra)).await;
    world.start().await;
    let started = std::time::Instant::now();
    for number in 1..=PREVIEWS {
        world.open_pr(number).await;
    }
    // A crash (kill -9) once part of them exist: the restart heals the rest.
    eventually(
        "a third of the previews created",
        Duration::from_secs(300),
        || async {
            let stacks = world
                .aws
                .stacks
                .list_tagged("pullstack:repo", &world.repo)
                .await
                .unwrap();
            stacks
                .iter()
                .filter(|s| s.tag("pullstack:role") == Some("preview"))
                .count()
                >= PREVIEWS as usize / 3
        },
    )
    .await;
    world.kill();
    world.start().await;
    world.resync_within(Duration::from_secs(600)).await;
    eventually("every preview ready", Duration::from_secs(600), || async {
        world.settle_within(Duration::from_secs(600)).await;
        (1..=PREVIEWS).all(|n| world.sticky(n).is_some_and(|c| c.body.contains("Ready")))
    })
    .await;
    eprintln!("{PREVIEWS} previews ready in {:?}", started.elapsed());
    // The cost estimate divides the load balancer over the previews on it.
    let comment = world.sticky(PREVIEWS).unwrap().body;
    assert!(comment.contains("load balancer (shared by "), "{comment}");

    // Three shards, none past its rules, no priority twice on a listener,
    // no host twice anywhere, and every rule forwards to its own stack's
    // target group.
    let pool = shards(&world).await;
    assert_eq!(pool.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    let mut hosts = BTreeSet::new();
    let mut groups = BTreeMap::new();
    for shard in pool.values() {
        let listener = shard.output("ListenerArn").unwrap();
        let on = rules(&world, listener).await;
        assert!(on.len() <= RULES_PER_ALB, "{} rules on one ALB", on.len());
        let priorities: BTreeSet<_> = on.iter().map(|r| r.0.clone()).collect();
        assert_eq!(priorities.len(), on.len(), "a priority used twice");
        for (_, rule_hosts, rule_groups) in on {
            assert_eq!(rule_hosts.len(), 1);
            assert!(
                hosts.insert(rule_hosts[0].clone()),
                "host {} twice",
                rule_hosts[0]
            );
            groups.insert(rule_hosts[0].clone(), rule_groups);
        }
    }
    assert_eq!(hosts.len(), PREVIEWS as usize);
    for number in 1..=PREVIEWS {
        let stack = world.stack(number).await.unwrap();
        let host = format!("pr-{number}.{}", zone.name);
        assert_eq!(
            groups[&host],
            vec![stack.output("TargetGroupArn").unwrap().to_owned()],
            "PR #{number}'s rule"
        );
    }

    // Closing them all empties the pool; the surplus shards go (those that
    // emptied while another still held previews), and one stays.
    for number in 1..=PREVIEWS {
        world.close(number, true).await;
    }
    eventually(
        "every preview removed",
        Duration::from_secs(600),
        || async {
            world.settle_within(Duration::from_secs(600)).await;
            let stacks = world
                .aws
                .stacks
                .list_tagged("pullstack:repo", &world.repo)
                .await
                .unwrap();
            !stacks
                .iter()
                .any(|s| s.tag("pullstack:role") == Some("preview"))
        },
    )
    .await;
    world.settle().await;
    eventually("the surplus shard removed", WAIT, || async {
        shards_numbers(&world).await.len() == 1
    })
    .await;
    let last = shards(&world).await;
    let listener = last.values().next().unwrap().output("ListenerArn").unwrap();
    assert!(rules(&world, listener).await.is_empty());
    eprintln!(
        "{PREVIEWS} previews opened and closed in {:?}",
        started.elapsed()
    );
}

/// Attack: the region's load balancer quota is used up (by other apps, or
/// by the shards themselves) when the pool is full. Creating another shard
/// would fail half-way through CloudFormation, and the preview with it.
/// Instead the preview waits in line, and its comment says the quota is
/// reached and what to do; when a preview closes and frees a rule, it is
/// placed there.
///
/// The quota comes through the mechanism the quota tests use
/// (`limits.rs`): aws-smithy-mocks answers ELB DescribeAccountLimits and
/// the count of load balancers, since moto's quota is fixed and its load
/// balancers are shared by every test running on it.
#[tokio::test]
async fn a_full_load_balancer_quota_keeps_a_new_shard_waiting_in_line() {
    use aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersOutput;
    use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, LoadBalancerTypeEnum};
    use aws_smithy_mocks::mock;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    let zone = zone("albroom").await;
    let config = crate::support::merge_yaml(
        &edge_yaml(&zone, "  rules_per_alb: 1\n"),
        "preview:\n  limits:\n    check_quotas: true\n",
    );
    let mut world = World::new("albroom", &config).await;
    let in_use = Arc::new(AtomicU32::new(0));
    let count = in_use.clone();
    let balancers = mock!(aws_sdk_elasticloadbalancingv2::Client::describe_load_balancers)
        .then_output(move || {
            let mut page = DescribeLoadBalancersOutput::builder();
            for n in 0..count.load(Ordering::SeqCst) {
                page = page.load_balancers(
                    LoadBalancer::builder()
                        .load_balancer_name(format!("in-use-{n}"))
                        .r#type(LoadBalancerTypeEnum::Application)
                        .build(),
                );
            }
            page.build()
        });
    let limit = crate::limits::elb_limit("1");
    world
        .start_with(crate::limits::with_quotas(
            &world,
            &[&limit, &balancers],
            &[],
        ))
        .await;
    world.quota_reads(1).await;
    // The start-up resync reads every stack on the shared moto under the
    // edge's lock, which takes seconds in a full run and holds placements
    // back: it ends before the first preview opens.
    world.settle().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle().await;
    // Shard 1 is the region's one load balancer the quota allows.
    in_use.store(1, Ordering::SeqCst);

    let second = world.open_pr(2).await;
    let queued = world.wait_comment(2, "number 1 in line").await;
    for words in [
        "Application Load Balancer quota is reached (1 of 1 in use)",
        "L-53DA6B97",
        "keep fewer previews open",
    ] {
        assert!(queued.body.contains(words), "{words}: {}", queued.body);
    }
    assert!(!queued.body.contains("ailed"), "{}", queued.body);
    world.settle().await;
    assert_eq!(
        shards_numbers(&world).await,
        vec![1],
        "no shard past the quota"
    );
    assert!(world.stack(2).await.is_none());
    // Written by the pass that queued PR 2, which the queue settled.
    let statuses = world.github.statuses(&world.repo, &second);
    assert!(
        statuses.iter().any(|s| {
            s.state == "pending"
                && s.description
                    .as_deref()
                    .is_some_and(|d| d.contains("quota"))
        }),
        "{statuses:?}"
    );

    // Closing PR 1 frees the shard's rule: PR 2 takes it.
    world.close(1, true).await;
    world.wait_stack_gone(1).await;
    world.wait_stack_at(2, &second).await;
    world.wait_comment(2, "Ready").await;
    assert_eq!(shards_numbers(&world).await, vec![1]);
}

/// Placement reads the pool (every stack and every shard's rules) once and
/// then keeps it, adding each claim: at 200 previews, reading it for every
/// placement came to about 5 CloudFormation calls a second. The previews
/// placed from the kept view still get distinct priorities, and a resync
/// reads the pool again.
#[tokio::test]
async fn placements_after_the_first_keep_the_pool_instead_of_reading_it() {
    use crate::support::fault_proxy::FaultProxy;
    let zone = zone("kept").await;
    let mut world = World::new("kept", &edge_yaml(&zone, "")).await;
    // This server's calls, counted on their way to moto (the `/metrics`
    // counters are the whole test process's).
    let proxy = FaultProxy::start(&crate::support::moto_endpoint()).await;
    let sdk = proxy.sdk_config(&world.sdk, 2, Duration::from_millis(10));
    world
        .start_with(pullstack::aws::Aws::from_config(&sdk))
        .await;
    let rule_reads = || proxy.count("elasticloadbalancing", "DescribeRules");
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    // Whatever resync is due runs now, not among the placements.
    world.resync().await;

    let before = rule_reads();
    for pr in [2, 3] {
        world.open_pr(pr).await;
        world.wait_comment(pr, "Ready").await;
        world.settle().await;
    }
    assert_eq!(rule_reads(), before, "no rules read to place");
    let mut priorities = Vec::new();
    for pr in [1, 2, 3] {
        let stack = world.stack(pr).await.unwrap();
        priorities.push(stack.parameters["RulePriority"].clone());
    }
    assert_eq!(priorities, ["1", "2", "3"]);
    let listener = shards(&world).await[&1]
        .output("ListenerArn")
        .unwrap()
        .to_owned();
    assert_eq!(rules(&world, &listener).await.len(), 3);

    world.resync().await;
    assert!(rule_reads() > before, "the resync reads the pool");
}

/// Attack: with the shared queue, two replicas place previews. A pool kept
/// in one replica's memory misses the other's placements, so it hands out
/// a priority already in use: the stack is refused or fails, and has to be
/// created again. Each placement by a replica therefore reads the pool.
/// Replica 0 places PR 1, sits out (its SQS receives held) while replica 1
/// places PR 2, then places PR 3: at the next free priority, with one
/// CreateStack.
#[tokio::test]
async fn replicas_on_the_shared_queue_see_each_others_placements() {
    use crate::support::fault_proxy::FaultProxy;
    let zone = zone("replace").await;
    let config = crate::support::merge_yaml(
        &edge_yaml(&zone, ""),
        "queue:\n  backend: sqs\n  sqs:\n    lease_ttl: 8s\n    receive_wait: 0s\n",
    );
    let mut world = World::new("replace", &config).await;
    let proxy = FaultProxy::start(&crate::support::moto_endpoint()).await;
    let sdk = proxy.sdk_config(&world.sdk, 2, Duration::from_millis(10));
    world
        .start_with(pullstack::aws::Aws::from_config(&sdk))
        .await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    world.settle_shared(WAIT).await;

    proxy.hold("ReceiveMessage");
    world.start_replica(1, world.aws.clone()).await;
    world.open_pr(2).await;
    world.wait_comment(2, "Ready").await;
    world.settle_shared(WAIT).await;
    world.kill_server(1);
    proxy.release();

    let creates = proxy.count("cloudformation", "CreateStack");
    let sha = world.open_pr(3).await;
    let stack = world.wait_stack_at(3, &sha).await;
    world.wait_comment(3, "Ready").await;
    world.settle_shared(WAIT).await;
    assert_eq!(stack.parameters["RulePriority"], "3");
    assert_eq!(
        proxy.count("cloudformation", "CreateStack"),
        creates + 1,
        "PR 3's stack created once"
    );
    let mut priorities = Vec::new();
    for n in [1, 2] {
        priorities.push(world.stack(n).await.unwrap().parameters["RulePriority"].clone());
    }
    assert_eq!(priorities, ["1", "2"]);
}
