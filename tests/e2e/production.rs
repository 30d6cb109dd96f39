//! Production releases end to end, against moto (CloudFormation, Route53,
//! CloudWatch, ELBv2 through the real SDK) and the GitHub fake, with time
//! compressed through config. moto never runs tasks, so the health gate is
//! `stack` here; the full gate (ECS deployment and target health) is the
//! default on AWS.

use crate::support;
use crate::support::eventually;
use pullstack::aws::traffic::Traffic;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::production::*;

#[tokio::test]
async fn a_merge_releases_through_the_canary_and_keeps_the_old_stack() {
    let (mut world, _) = production_world("canary", "").await;
    // A real bake; the test moves the clock through it step by step.
    let bake = Duration::from_secs(600);
    world.config_yaml = world.config_yaml.replace("bake: 300ms", "bake: 10m");
    world.start().await;
    let first = first_release(&world).await;
    let second = merge(&world, 2, "Second").await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    for (percent, then) in [(10, 50), (50, 100)] {
        wait_weight(&world, &new, percent).await;
        world.settle().await;
        assert_eq!(weights(&world).await[&new], percent, "held for the bake");
        world.advance(bake);
        wait_weight(&world, &new, then).await;
    }
    wait_released(&world, &second).await;
    assert_eq!(steps(&world, &second), CANARY);
    let w = weights(&world).await;
    assert_eq!((w[&old], w[&new]), (0, 100));
    assert!(
        world.aws.stacks.describe(&old).await.unwrap().is_some(),
        "the old stack is kept for rollback"
    );
    let stack = world.aws.stacks.describe(&new).await.unwrap().unwrap();
    assert_eq!(stack.tag("pullstack:role"), Some("production"));
    assert_eq!(stack.parameters["DesiredCount"], "2", "production sizing");
}

#[tokio::test]
async fn a_hotfix_title_goes_straight_to_100() {
    let (mut world, _) = production_world("hotfix", "").await;
    world.start().await;
    first_release(&world).await;
    let sha = merge(&world, 2, "[hotfix] stop the bleeding").await;
    wait_weight(&world, &release_name(&world, &sha), 100).await;
    // The weights move before the Deployment is told.
    wait_released(&world, &sha).await;
    assert_eq!(
        steps(&world, &sha),
        ["in_progress: 0% of traffic", "success: 100% of traffic"]
    );
}

#[tokio::test]
async fn old_stacks_are_removed_after_the_window() {
    let (mut world, _) = production_world("retain", "  keep: 1\n").await;
    world.start().await;
    let mut names = vec![];
    for n in 1..=3 {
        let sha = merge(&world, n, "[hotfix] release").await;
        let name = release_name(&world, &sha);
        wait_weight(&world, &name, 100).await;
        names.push(name);
    }
    // The live stack and the rollback target stay; the oldest goes, record and all.
    let oldest = names[0].clone();
    eventually("oldest stack deleted", LONG, || async {
        world.aws.stacks.describe(&oldest).await.unwrap().is_none()
    })
    .await;
    assert!(
        !weights(&world).await.contains_key(&oldest),
        "its record is gone too"
    );
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
}

// Two worker threads: the CLI runs as a blocking child process while this
// runtime serves the GitHub fake it records the rollback on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_from_the_cli_finishes_the_release_and_records_it() {
    let (mut world, _) = production_world("clipr", "").await;
    // A bake long enough that the release waits at its first step.
    world.config_yaml = world.config_yaml.replace("bake: 300ms", "bake: 1h");
    world.start().await;
    first_release(&world).await;
    let second = merge(&world, 2, "Second").await;
    let new = release_name(&world, &second);
    wait_weight(&world, &new, 10).await;
    world.stop().await;

    let promoted = Cli::new(&world).run(&["prod", "promote", "--yes"]);
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert_eq!(weights(&world).await[&new], 100);
    assert_eq!(
        statuses(&world, &second).last().map(String::as_str),
        Some("success: promoted by `pullstack prod promote`")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_from_the_cli_restores_the_weights() {
    let (mut world, _) = production_world("clirb", "").await;
    world.start().await;
    let first = first_release(&world).await;
    let second = merge(&world, 2, "[hotfix] second").await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    wait_weight(&world, &new, 100).await;
    world.stop().await;

    let cli = Cli::new(&world);
    let run = |args: &[&str]| cli.run(args);
    let refused = run(&["prod", "rollback"]);
    assert!(
        !refused.status.success(),
        "no --yes and no terminal: refused"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(weights(&world).await[&new], 100, "nothing changed");

    let output = run(&["prod", "rollback", "--yes", "-o", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (reply["from"].as_str(), reply["to"].as_str()),
        (Some(new.as_str()), Some(old.as_str()))
    );
    let w = weights(&world).await;
    assert_eq!((w[&old], w[&new]), (100, 0));
    // Recorded on GitHub exactly as a `/pullstack rollback` is.
    let reason = "requested with `pullstack prod rollback`";
    assert_rollback_recorded(&world, 2, &second, &first, reason);

    let status = run(&["prod", "status", "-o", "json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let roles: BTreeMap<String, String> = status["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stack"].as_str().unwrap().to_owned(),
                s["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(roles[&old], "live");
    assert_eq!(roles[&new], "rolled back");

    // The server keeps it rolled back: the rolled-back commit is not released again.
    world.start().await;
    world.settle().await;
    world.resync().await;
    assert_eq!(weights(&world).await[&old], 100);
}

#[tokio::test]
async fn a_maintainer_rolls_back_from_a_comment_in_one_change_batch() {
    let (mut world, _) = production_world("cmtrb", "").await;
    let counter = Count::<
        aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsInput,
    >::default();
    let mut aws = pullstack::aws::Aws::from_config(&world.sdk);
    let route53 = aws_sdk_route53::config::Builder::from(&world.sdk)
        .interceptor(counter.clone())
        .build();
    aws.traffic = Traffic::new(aws_sdk_route53::Client::from_conf(route53));
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

    // A writer is not enough, and is told so.
    world
        .comment(2, support::WRITER, "/pullstack rollback")
        .await;
    eventually("refusal", LONG, || async {
        world
            .bot_comments(2)
            .iter()
            .any(|c| c.body.contains("needs maintain or admin permission"))
    })
    .await;
    assert_eq!(weights(&world).await[&new], 100);

    let before = counter.get();
    world
        .comment(2, support::MAINTAINER, "/pullstack rollback")
        .await;
    wait_weight(&world, &old, 100).await;
    assert_eq!(weights(&world).await[&new], 0);
    eventually("reply", LONG, || async {
        world
            .bot_comments(2)
            .iter()
            .any(|c| c.body.contains("Rolled production back"))
    })
    .await;
    assert_eq!(counter.get() - before, 1, "one change batch");
    let by = format!("requested by @{}", support::MAINTAINER);
    assert_rollback_recorded(&world, 2, &second, &first, &by);
}

// Attack: a read-only user's flood of `/pullstack rollback` comments queued
// a refusal for each ahead of a maintainer's real rollback, delaying it by
// as many paced writes.
#[tokio::test]
async fn a_readers_flood_costs_few_writes_and_cannot_hold_back_a_rollback() {
    let (mut world, _) = production_world("rbflood", "").await;
    world.start().await;
    let first = first_release(&world).await;
    let second = merge(&world, 2, "[hotfix] second").await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    wait_weight(&world, &new, 100).await;
    world.settle().await;

    let mut flood = Vec::new();
    for _ in 0..40 {
        let id = world
            .comment(2, support::READER, "/pullstack rollback")
            .await;
        flood.push(id);
    }
    world
        .comment(2, support::MAINTAINER, "/pullstack rollback")
        .await;
    wait_weight(&world, &old, 100).await;
    assert_eq!(weights(&world).await[&new], 0);
    world.settle().await;
    let answered = flood
        .iter()
        .filter(|id| !world.github.reactions(&world.repo, **id).is_empty())
        .count();
    assert!(
        answered <= pullstack::reconcile::gate::PER_AUTHOR_HOURLY as usize,
        "{answered} answers to the flood"
    );
    let replies = world.bot_comments(2);
    assert!(
        !replies.iter().any(|c| c.body.contains("needs maintain")),
        "a reader gets no reply"
    );
    assert!(
        replies
            .iter()
            .any(|c| c.body.contains("Rolled production back"))
    );
}

#[tokio::test]
async fn an_alarm_during_a_shift_rolls_back_automatically() {
    let (mut world, _) = production_world("alarm", "").await;
    let alarm = format!("{}-5xx", world.app);
    world.config_yaml = world
        .config_yaml
        .replace("bake: 300ms", &format!("bake: 30s\n  alarms: [{alarm}]"));
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&world.sdk);
    cloudwatch
        .put_metric_alarm()
        .alarm_name(&alarm)
        .metric_name("HTTPCode_Target_5XX_Count")
        .namespace("AWS/ApplicationELB")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    world.start().await;
    let first = first_release(&world).await;
    let second = merge(&world, 2, "Risky change").await;
    let (old, new) = (release_name(&world, &first), release_name(&world, &second));
    wait_weight(&world, &new, 10).await;

    cloudwatch
        .set_alarm_state()
        .alarm_name(&alarm)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test: too many 5xx")
        .send()
        .await
        .unwrap();
    wait_weight(&world, &old, 100).await;
    assert_eq!(weights(&world).await[&new], 0);
    eventually("failure recorded", LONG, || async {
        statuses(&world, &second)
            .iter()
            .any(|s| s.contains("failure: rolled back: alarm") && s.contains(&alarm))
    })
    .await;
    eventually("merged PR told", LONG, || async {
        world
            .bot_comments(2)
            .iter()
            .any(|c| c.body.contains("Production rolled back"))
    })
    .await;
}

#[tokio::test]
async fn a_crash_mid_shift_resumes_without_skipping_a_step() {
    let (mut world, _) = production_world("resume", "").await;
    world.config_yaml = world.config_yaml.replace("bake: 300ms", "bake: 2s");
    world.start().await;
    first_release(&world).await;
    let sha = merge(&world, 2, "Second").await;
    let new = release_name(&world, &sha);
    wait_weight(&world, &new, 10).await;
    world.kill();
    world.start().await;
    wait_weight(&world, &new, 100).await;
    wait_released(&world, &sha).await;
    assert_eq!(steps(&world, &sha), CANARY, "no step skipped or repeated");
}

#[tokio::test]
async fn a_second_quick_merge_supersedes_the_first() {
    let (mut world, _) = production_world("twice", "").await;
    world.start().await;
    let first = first_release(&world).await;
    let second = merge(&world, 2, "Second").await;
    let third = merge(&world, 3, "Third").await;
    let names = [&first, &second, &third].map(|sha| release_name(&world, sha));
    // While it settles, traffic only ever points at stacks that exist.
    let watch = async {
        // A watcher samples the weights as a user's resolver would.
        let mut sample = tokio::time::interval(Duration::from_millis(100));
        loop {
            sample.tick().await;
            let w = weights(&world).await;
            let total: u32 = w.values().map(|v| u32::from(*v)).sum();
            assert!(total == 100, "weights sum to {total}: {w:?}");
            for (stack, weight) in &w {
                if *weight > 0 {
                    assert!(
                        world.aws.stacks.describe(stack).await.unwrap().is_some(),
                        "traffic on deleted {stack}"
                    );
                }
            }
            if w.get(&names[2]) == Some(&100) {
                break w;
            }
        }
    };
    let w = tokio::time::timeout(LONG, watch)
        .await
        .expect("the last merge is released");
    assert_eq!(w.get(&names[1]).copied().unwrap_or(0), 0);
    assert_eq!(w[&names[0]], 0);

    // GitHub shows one live production release, and none left in progress.
    world.settle().await;
    let live: Vec<(String, String)> = world
        .github
        .deployments(&world.repo)
        .into_iter()
        .filter(|d| d.environment == "production")
        .filter_map(|d| {
            let state = d
                .statuses
                .last()
                .map(|s| s.state.clone())
                .unwrap_or_default();
            matches!(state.as_str(), "" | "success" | "in_progress" | "queued")
                .then(|| (d.sha.clone(), state))
        })
        .collect();
    assert_eq!(live, [(third.clone(), "success".to_owned())]);
}

#[tokio::test]
async fn a_release_serves_https_with_the_configured_certificate() {
    let (mut world, _) = production_world("tls", "").await;
    world.start().await;
    let sha = first_release(&world).await;
    let stack = world
        .aws
        .stacks
        .describe(&release_name(&world, &sha))
        .await
        .unwrap()
        .unwrap();
    let certificate = world.config().production.certificate_arn;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&world.sdk);
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(stack.output("LoadBalancerArn").unwrap())
        .send()
        .await
        .unwrap();
    let by_port = |port| {
        listeners
            .listeners()
            .iter()
            .find(|l| l.port() == Some(port))
            .unwrap_or_else(|| panic!("no listener on {port}: {listeners:?}"))
    };
    let https = by_port(443);
    assert_eq!(https.protocol().map(|p| p.as_str()), Some("HTTPS"));
    assert_eq!(
        https.certificates()[0].certificate_arn(),
        Some(certificate.as_str())
    );
    assert_eq!(
        https.default_actions()[0].target_group_arn(),
        stack.output("TargetGroupArn")
    );
    let redirect = by_port(80).default_actions()[0]
        .redirect_config()
        .expect("port 80 redirects");
    assert_eq!(redirect.protocol(), Some("HTTPS"));
    assert_eq!(redirect.port(), Some("443"));
    assert!(stack.output("Url").unwrap().starts_with("https://"));
}
