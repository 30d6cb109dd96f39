//! Production releases with `production.strategy: alb`, end to end against
//! moto: the production load balancer's rule forwards to the releases'
//! target groups with weights (read back with DescribeRules), and its tags
//! hold the release log.

use crate::support::production::*;
use crate::support::{self, MAINTAINER, WRITER, eventually};
use pullstack::aws::forward::Forward;
use pullstack::cli::bootstrap::Outcome;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const ALB: &str = "  strategy: alb\n";

#[tokio::test]
async fn a_canary_moves_exact_weights_on_the_production_rule() {
    let (mut world, zone) = production_world("albcanary", &format!("{ALB}  sticky: 1h\n")).await;
    let bake = Duration::from_secs(600);
    world.config_yaml = world.config_yaml.replace("bake: 300ms", "bake: 10m");
    world.start().await;
    let first = first_release(&world).await;
    let second = merge(&world, 2, "Second").await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    for (percent, then) in [(10, 50), (50, 100)] {
        wait_weight(&world, &new, percent).await;
        world.settle().await;
        let w = weights(&world).await;
        assert_eq!(
            (w[&old], w[&new]),
            (100 - percent, percent),
            "held for the bake"
        );
        world.advance(bake);
        wait_weight(&world, &new, then).await;
    }
    wait_released(&world, &second).await;
    assert_eq!(steps(&world, &second), CANARY);
    // Only what has traffic stays in the forward action.
    assert_eq!(
        weights(&world).await.into_iter().collect::<Vec<_>>(),
        [(new.clone(), 100)]
    );

    // Stickiness rides on the forward action.
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&world.sdk);
    let (rule, _) = production_rules(&world).await.unwrap();
    let described = elb.describe_rules().rule_arns(&rule).send().await.unwrap();
    let forward = described.rules()[0].actions()[0].forward_config().unwrap();
    let sticky = forward.target_group_stickiness_config().unwrap();
    assert_eq!(
        (sticky.enabled(), sticky.duration_seconds()),
        (Some(true), Some(3600))
    );

    // Release stacks have no load balancer of their own.
    let stack = world.aws.stacks.describe(&new).await.unwrap().unwrap();
    assert_eq!(stack.output("LoadBalancerArn"), None);
    assert!(stack.output("TargetGroupArn").is_some());
    // The production name points at the production load balancer, once.
    let config = world.config();
    let (records, log) = world
        .aws
        .traffic
        .read(&zone, &config.production.domain)
        .await
        .unwrap();
    let edge = format!("{}-prod-edge", world.app);
    assert_eq!(
        records
            .iter()
            .map(|r| (r.stack.as_str(), r.weight))
            .collect::<Vec<_>>(),
        [(edge.as_str(), 100)]
    );
    assert_eq!(log, None, "the log lives on the rule, not in DNS");
}

// Attack: anyone who can get a PR merged writes `[hotfix]` in its title
// and skips the canary that guards production's traffic; on the load
// balancer as with Route53, only a maintainer's merge may.
#[tokio::test]
async fn a_writers_hotfix_gets_the_canary_on_the_load_balancer_too() {
    let (mut world, _) = production_world("albdirect", ALB).await;
    world.start().await;
    first_release(&world).await;
    let by_writer = merge_by(&world, 2, "[hotfix] skip the checks", WRITER).await;
    wait_released(&world, &by_writer).await;
    assert_eq!(steps(&world, &by_writer), CANARY);
    let by_maintainer = merge_by(&world, 3, "[hotfix] stop the bleeding", MAINTAINER).await;
    wait_released(&world, &by_maintainer).await;
    assert_eq!(
        steps(&world, &by_maintainer),
        ["in_progress: 0% of traffic", "success: 100% of traffic"]
    );
}

#[tokio::test]
async fn a_rollback_from_a_comment_is_one_modify_rule() {
    let (mut world, _) = production_world("albrb", ALB).await;
    let counter =
        Count::<aws_sdk_elasticloadbalancingv2::operation::modify_rule::ModifyRuleInput>::default();
    let mut aws = pullstack::aws::Aws::from_config(&world.sdk);
    let elb = aws_sdk_elasticloadbalancingv2::config::Builder::from(&world.sdk)
        .interceptor(counter.clone())
        .build();
    aws.forward = Forward::new(aws_sdk_elasticloadbalancingv2::Client::from_conf(elb));
    world.start_with(aws).await;
    let first = first_release(&world).await;
    let second = merge(&world, 2, "[hotfix] second").await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    wait_weight(&world, &new, 100).await;
    eventually("release settled", LONG, || async {
        statuses(&world, &second)
            .iter()
            .any(|s| s.starts_with("success"))
    })
    .await;
    world.settle().await;

    let before = counter.get();
    world.comment(2, MAINTAINER, "/pullstack rollback").await;
    wait_weight(&world, &old, 100).await;
    eventually("reply", LONG, || async {
        world
            .bot_comments(2)
            .iter()
            .any(|c| c.body.contains("Rolled production back"))
    })
    .await;
    world.settle().await;
    assert_eq!(counter.get() - before, 1, "one ModifyRule");
    assert!(!weights(&world).await.contains_key(&new));
    let by = format!("requested by @{}", support::MAINTAINER);
    assert_rollback_recorded(&world, 2, &second, &first, &by);
}

#[tokio::test]
async fn a_crash_at_10_percent_resumes_at_10_on_the_load_balancer() {
    let (mut world, _) = production_world("albresume", ALB).await;
    // A real bake; the test moves the clock through it.
    let bake = Duration::from_secs(600);
    world.config_yaml = world.config_yaml.replace("bake: 300ms", "bake: 10m");
    world.start().await;
    first_release(&world).await;
    let sha = merge(&world, 2, "Second").await;
    let new = release_name(&world, &sha);
    wait_weight(&world, &new, 10).await;
    world.settle().await;
    world.kill();
    assert_eq!(weights(&world).await[&new], 10);
    world.start().await;
    world.settle().await;
    assert_eq!(weights(&world).await[&new], 10, "resumed at 10, baking");
    for then in [50, 100] {
        world.advance(bake);
        wait_weight(&world, &new, then).await;
    }
    wait_released(&world, &sha).await;
    assert_eq!(steps(&world, &sha), CANARY, "no step skipped or repeated");
}

/// `pullstack bootstrap` makes the production load balancer before any
/// release (its production rule and test route on the HTTPS listener, the
/// production name pointing at it), a second run changes nothing, and the
/// first release goes onto that load balancer. (Through bootstrap's
/// function: the binary would also update the world's shared stack, made
/// with other parameters, and moto drops a stack's outputs on update.)
#[tokio::test]
async fn bootstrap_makes_the_production_load_balancer_the_release_uses() {
    let (mut world, zone) = production_world("albboot", ALB).await;
    let config = world.config();
    let bootstrap = || pullstack::cli::bootstrap::production_edge(&world.aws, &config, LONG);
    assert_eq!(bootstrap().await.unwrap(), Some(Outcome::Changed));
    let edge = format!("{}-prod-edge", world.app);
    let stack = world.aws.stacks.describe(&edge).await.unwrap().unwrap();
    assert_eq!(stack.status.as_str(), "CREATE_COMPLETE");
    let listener = stack.output("ListenerArn").unwrap().to_owned();
    let (rule, next) = production_rules(&world).await.unwrap();
    let domain = config.production.domain.clone();
    let mut rules: Vec<_> = world
        .aws
        .edge
        .rules(&listener)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.priority, r.arn, r.hosts))
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            (1, next, vec![format!("next.{domain}")]),
            (2, rule, vec![domain.clone()]),
        ]
    );
    let (records, _) = world.aws.traffic.read(&zone, &domain).await.unwrap();
    assert_eq!(
        records
            .iter()
            .map(|r| (r.stack.as_str(), r.weight))
            .collect::<Vec<_>>(),
        [(edge.as_str(), 100)],
        "the production name points at the load balancer"
    );

    assert_eq!(bootstrap().await.unwrap(), Some(Outcome::UpToDate));

    world.start().await;
    let sha = first_release(&world).await;
    assert_eq!(
        weights(&world).await.into_iter().collect::<Vec<_>>(),
        [(release_name(&world, &sha), 100)]
    );
    let stack = world.aws.stacks.describe(&edge).await.unwrap().unwrap();
    assert_eq!(
        stack.output("ListenerArn"),
        Some(listener.as_str()),
        "the release used the load balancer bootstrap made"
    );
}

/// The target groups the test route (`next.<domain>`) forwards to.
async fn test_route(world: &support::World) -> Vec<String> {
    let (rule, next) = production_rules(world).await.unwrap();
    world.aws.forward.read(&rule, &next).await.unwrap().next
}

async fn target_group(world: &support::World, stack: &str) -> String {
    let stack = world.aws.stacks.describe(stack).await.unwrap().unwrap();
    stack.output("TargetGroupArn").unwrap().to_owned()
}

// Two worker threads: the CLI runs as a blocking child process while this
// runtime serves the GitHub fake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_route_reaches_the_candidate_before_customers_do() {
    let (mut world, _) = production_world("albnext", ALB).await;
    world.start().await;
    first_release(&world).await;
    world.settle().await;
    assert!(test_route(&world).await.is_empty(), "no candidate");

    // Paused, the next release joins at 0 and stays there.
    world.stop().await;
    let cli = Cli::new(&world);
    assert!(cli.run(&["prod", "pause"]).status.success());
    world.start().await;
    let second = merge(&world, 2, "Second").await;
    let new = release_name(&world, &second);
    let tg = target_group_when_ready(&world, &new).await;
    eventually("the test route reaches the candidate", LONG, || async {
        test_route(&world).await == [tg.clone()]
    })
    .await;
    wait_weight(&world, &new, 0).await;
    world.settle().await;
    assert_eq!(weights(&world).await[&new], 0, "no customer traffic yet");
    assert_eq!(test_route(&world).await, [tg]);

    world.stop().await;
    assert!(cli.run(&["prod", "resume"]).status.success());
    world.start().await;
    wait_released(&world, &second).await;
    world.settle().await;
    assert!(
        test_route(&world).await.is_empty(),
        "a release holding all traffic is no longer a candidate"
    );
}

async fn target_group_when_ready(world: &support::World, stack: &str) -> String {
    eventually("the release's stack", LONG, || async {
        world
            .aws
            .stacks
            .describe(stack)
            .await
            .unwrap()
            .is_some_and(|s| s.output("TargetGroupArn").is_some())
    })
    .await;
    target_group(world, stack).await
}

#[tokio::test]
async fn a_move_cut_short_between_log_and_weights_is_finished() {
    let (mut world, _) = production_world("albcut", ALB).await;
    world.config_yaml = world.config_yaml.replace("bake: 300ms", "bake: 1h");
    world.start().await;
    let first = first_release(&world).await;
    let second = merge(&world, 2, "Second").await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    wait_weight(&world, &new, 10).await;
    world.settle().await;
    world.kill();

    // What a process killed between its two calls leaves: the log of a
    // move to 50% in the rule's tags, the ModifyRule never sent.
    let (rule, next) = production_rules(&world).await.unwrap();
    let forwarding = world.aws.forward.read(&rule, &next).await.unwrap();
    let mut stored: serde_json::Value = serde_json::from_str(&forwarding.log.unwrap()).unwrap();
    stored["weights"][&old] = 50.into();
    stored["weights"][&new] = 50.into();
    world
        .aws
        .forward
        .apply(&rule, &forwarding.targets, None, Some(&stored.to_string()))
        .await
        .unwrap();
    assert_eq!(weights(&world).await[&new], 10, "the weights did not move");

    world.start().await;
    wait_weight(&world, &new, 50).await;
    world.settle().await;
    let w = weights(&world).await;
    assert_eq!(
        (w[&old], w[&new]),
        (50, 50),
        "finished, and held for the bake"
    );
}

// Attack on availability: a config switched to `alb` while a release is
// live on Route53 records must never point the production name at a load
// balancer with nothing behind it, nor leave weights that do not sum to
// 100, not even for one sample, and not across a crash mid-switch.
#[tokio::test]
async fn switching_a_live_route53_release_to_alb_keeps_every_sample_whole() {
    let (mut world, zone) = production_world("albswitch", "").await;
    world.start().await;
    let first = first_release(&world).await;
    let live = release_name(&world, &first);
    world.settle().await;
    world.stop().await;
    // A real bake after the switch; the test moves the clock through it.
    world.config_yaml = world
        .config_yaml
        .replace("  bake: 300ms\n", "  bake: 10m\n  strategy: alb\n");
    let edge = format!("{}-prod-edge", world.app);

    // The watcher, every 100 ms: the Route53 weights on the production
    // name and, when they give the load balancer any, the production
    // rule's forward action.
    let domain = world.config().production.domain.clone();
    let traffic = world.aws.traffic.clone();
    let (forward, stacks) = (forward(&world), world.aws.stacks.clone());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (stop, zone, edge) = (stop.clone(), zone.clone(), edge.clone());
        async move {
            // A sampling rate, not a wait: the test ends on `stop`.
            let mut every = tokio::time::interval(Duration::from_millis(100));
            let mut samples = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                every.tick().await;
                let (records, _) = traffic.read(&zone, &domain).await.unwrap();
                let dns: u32 = records.iter().map(|r| u32::from(r.weight)).sum();
                let on_edge = records
                    .iter()
                    .find(|r| r.stack == edge)
                    .map_or(0, |r| r.weight);
                let mut forwarded = None;
                if on_edge > 0 {
                    let stack = stacks.describe(&edge).await.unwrap().unwrap();
                    let (rule, next) = (
                        stack.output("ProductionRuleArn").unwrap(),
                        stack.output("NextRuleArn").unwrap(),
                    );
                    let targets = forward.read(rule, next).await.unwrap().targets;
                    forwarded = Some(targets.iter().map(|(_, w)| u32::from(*w)).sum::<u32>());
                }
                samples.push((dns, on_edge, forwarded));
            }
            samples
        }
    });
    let (traffic, domain) = (world.aws.traffic.clone(), world.config().production.domain);
    let records = || async {
        let (records, log) = traffic.read(&zone, &domain).await.unwrap();
        let records: Vec<(String, u8)> = records.into_iter().map(|r| (r.stack, r.weight)).collect();
        (records, log)
    };
    world.start().await;
    // A crash in the middle: the live release has joined the load balancer,
    // the name has not moved yet.
    eventually("the live release bridged", LONG, || async {
        world.advance(Duration::from_secs(5));
        let stack = world.aws.stacks.describe(&live).await.unwrap().unwrap();
        stack
            .parameters
            .get("BridgeListenerArn")
            .is_some_and(|l| !l.is_empty())
            && stack.phase() == pullstack::aws::stacks::Phase::Stable
    })
    .await;
    world.kill();
    world.start().await;
    eventually("the name on the load balancer alone", LONG, || async {
        world.advance(Duration::from_secs(5));
        records().await.0 == [(edge.clone(), 100)]
    })
    .await;
    world.settle().await;
    assert_eq!(records().await.1, None, "the log moved to the rule");
    assert_eq!(
        weights(&world).await.into_iter().collect::<Vec<_>>(),
        [(live.clone(), 100)]
    );
    // The live release kept its own load balancer through the switch.
    let stack = world.aws.stacks.describe(&live).await.unwrap().unwrap();
    assert!(stack.output("LoadBalancerArn").is_some());

    // The next release canaries on the load balancer, from the live one.
    let second = merge(&world, 2, "Second").await;
    let new = release_name(&world, &second);
    wait_weight(&world, &new, 10).await;
    world.settle().await;
    let w = weights(&world).await;
    assert_eq!((w[&live], w[&new]), (90, 10), "held for the bake");
    for then in [50, 100] {
        world.advance(Duration::from_secs(600));
        wait_weight(&world, &new, then).await;
    }
    wait_released(&world, &second).await;
    assert_eq!(steps(&world, &second), CANARY);
    // And a rollback reaches the release that was live on Route53.
    world.comment(2, MAINTAINER, "/pullstack rollback").await;
    wait_weight(&world, &live, 100).await;
    world.settle().await;

    stop.store(true, Ordering::SeqCst);
    let samples = watcher.await.unwrap();
    assert!(
        samples.iter().any(|(_, on_edge, _)| *on_edge == 0)
            && samples.iter().any(|(_, on_edge, _)| *on_edge == 100),
        "the watcher saw both sides of the switch: {samples:?}"
    );
    assert!(
        samples
            .iter()
            .all(|(dns, on_edge, forwarded)| *dns == 100
                && (*on_edge == 0 || *forwarded == Some(100))),
        "{samples:?}"
    );
}

// Switching back is refused: the releases on the load balancer have no
// records of their own, so moving the name to them would leave it empty.
#[tokio::test]
async fn switching_back_to_route53_changes_nothing() {
    let (mut world, zone) = production_world("albback", ALB).await;
    world.start().await;
    let first = first_release(&world).await;
    world.settle().await;
    world.stop().await;
    world.config_yaml = world.config_yaml.replace(ALB, "");
    world.start().await;
    let second = merge(&world, 2, "Second").await;
    world.resync().await;
    world.settle().await;
    let (records, log) = world
        .aws
        .traffic
        .read(&zone, &world.config().production.domain)
        .await
        .unwrap();
    let edge = format!("{}-prod-edge", world.app);
    assert_eq!(
        records
            .iter()
            .map(|r| (r.stack.as_str(), r.weight))
            .collect::<Vec<_>>(),
        [(edge.as_str(), 100)],
        "the name stays on the load balancer"
    );
    assert_eq!(log, None);
    assert_eq!(
        forward_weights(&world)
            .await
            .into_iter()
            .collect::<Vec<_>>(),
        [(release_name(&world, &first), 100)]
    );
    assert!(
        world
            .aws
            .stacks
            .describe(&release_name(&world, &second))
            .await
            .unwrap()
            .is_none(),
        "no release made while the config is refused"
    );
}

#[tokio::test]
async fn old_release_stacks_leave_the_load_balancer_after_the_window() {
    let (mut world, _) = production_world("albretain", &format!("{ALB}  keep: 1\n")).await;
    world.start().await;
    let mut names = vec![];
    for n in 1..=3 {
        let sha = merge(&world, n, "[hotfix] release").await;
        let name = release_name(&world, &sha);
        wait_weight(&world, &name, 100).await;
        names.push(name);
    }
    // The live stack and the rollback target stay; the oldest goes, its
    // rule on the production listener with it.
    let oldest = names[0].clone();
    eventually("oldest stack deleted", LONG, || async {
        world.aws.stacks.describe(&oldest).await.unwrap().is_none()
    })
    .await;
    assert!(
        world
            .aws
            .stacks
            .describe(&names[1])
            .await
            .unwrap()
            .is_some(),
        "rollback target kept"
    );
    let edge = world
        .aws
        .stacks
        .describe(&format!("{}-prod-edge", world.app))
        .await
        .unwrap()
        .unwrap();
    let listener = edge.output("ListenerArn").unwrap().to_owned();
    let oldest_host = |rules: &[pullstack::aws::edge::Rule]| {
        let sha7 = oldest.rsplit('-').next().unwrap().to_owned();
        rules.iter().any(|r| {
            r.hosts
                .iter()
                .any(|h| h.starts_with(&format!("prod-{sha7}.")))
        })
    };
    world.resync().await;
    eventually("the oldest release's rule removed", LONG, || async {
        !oldest_host(&world.aws.edge.rules(&listener).await.unwrap())
    })
    .await;
    let rules = world.aws.edge.rules(&listener).await.unwrap();
    let domain = world.config().production.domain;
    let mut hosts: Vec<String> = rules
        .into_iter()
        .flat_map(|r| r.hosts)
        .filter(|h| h.starts_with("prod-"))
        .collect();
    hosts.sort();
    let mut expected = vec![];
    for name in &names[1..] {
        let sha7 = name.rsplit('-').next().unwrap();
        expected.push(format!("prod-{sha7}.{domain}"));
    }
    expected.sort();
    assert_eq!(hosts, expected);
}

#[tokio::test]
async fn a_long_release_history_on_the_rule_still_resumes() {
    let (mut world, _) = production_world("alblong", ALB).await;
    world.start().await;
    let first = first_release(&world).await;
    let live = release_name(&world, &first);
    world.settle().await;
    world.stop().await;

    // What years of releases leave in the log: full lists of promoted and
    // rolled-back stacks and of ignored title directives.
    let (rule, next) = production_rules(&world).await.unwrap();
    let forwarding = world.aws.forward.read(&rule, &next).await.unwrap();
    let mut stored: serde_json::Value = serde_json::from_str(&forwarding.log.unwrap()).unwrap();
    let past = |kind: &str, n: usize| format!("{}-prod-{kind}{n:06x}", world.app);
    let mut promoted: Vec<serde_json::Value> = (0..19).map(|n| past("a", n).into()).collect();
    promoted.push(live.clone().into());
    stored["log"]["promoted"] = promoted.into();
    stored["log"]["failed"] = (0..20).map(|n| past("b", n)).collect();
    stored["log"]["ignored"] = (0..5)
        .map(|n| serde_json::json!({"stack": past("b", n), "directive": "[hotfix]", "by": "someone", "role": "write"}))
        .collect();
    let log = stored.to_string();
    // Base64 alone would need more tags than moto allows on the rule.
    assert!(log.len() * 4 / 3 > 240 * 10, "{}", log.len());
    world
        .aws
        .forward
        .apply(&rule, &forwarding.targets, None, Some(&log))
        .await
        .unwrap();

    world.start().await;
    let second = merge(&world, 2, "Second").await;
    wait_released(&world, &second).await;
    assert_eq!(steps(&world, &second), CANARY);
    let forwarding = world.aws.forward.read(&rule, &next).await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(&forwarding.log.unwrap()).unwrap();
    let promoted = stored["log"]["promoted"].as_array().unwrap();
    assert_eq!(promoted.len(), 20, "the oldest promoted stack forgotten");
    assert_eq!(promoted[18], live.as_str());
    assert_eq!(promoted[19], release_name(&world, &second).as_str());
    assert_eq!(stored["log"]["failed"].as_array().unwrap().len(), 20);
}
