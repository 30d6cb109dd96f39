//! A database per preview, end to end: `preview.database` clones an Aurora
//! cluster the test creates on moto, through the real aws-sdk-rds client,
//! and the clone's connection reaches the task definition (read back from
//! ECS). The clone is stopped when the environment sleeps (manual clock),
//! started when it wakes, deleted on close, and swept by the resync when
//! its environment is gone.

use crate::support::ecs;
use crate::support::github_fake::FakePr;
use crate::support::{WAIT, WRITER, World, eventually, merge_yaml};
use aws_sdk_rds::operation::describe_db_clusters::DescribeDbClustersOutput;
use aws_sdk_rds::types::{DbCluster, Tag};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};
use pullstack::aws::Aws;
use pullstack::aws::databases::Databases;
use pullstack::aws::metered::Metered;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn rds(world: &World) -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&world.sdk)
}

/// A world cloning `<app>-source`, which the test creates with its master
/// password in Secrets Manager.
async fn world_with_source(prefix: &str) -> (World, String) {
    let mut world = World::new(prefix, "").await;
    let source = format!("{}-source", world.app);
    let yaml = format!("preview:\n  database:\n    clone_from: {source}\n    name: shop\n");
    world.config_yaml = merge_yaml(&world.config_yaml, &yaml);
    create_source(&world, &source).await;
    (world, source)
}

async fn create_source(world: &World, id: &str) {
    rds(world)
        .create_db_cluster()
        .db_cluster_identifier(id)
        .engine("aurora-postgresql")
        .master_username("app")
        .manage_master_user_password(true)
        .database_name("app")
        .send()
        .await
        .expect("create the source cluster");
}

async fn clone_of(world: &World, number: u64) -> Option<aws_sdk_rds::types::DbCluster> {
    let id = format!("{}-pr-{number}", world.app);
    match rds(world)
        .describe_db_clusters()
        .db_cluster_identifier(&id)
        .send()
        .await
    {
        Ok(out) => out.db_clusters().first().cloned(),
        Err(err) if format!("{err:?}").contains("DBClusterNotFound") => None,
        Err(err) => panic!("describe {id}: {err:?}"),
    }
}

async fn wait_clone_status(world: &World, number: u64, status: &str) {
    let what = format!("PR #{number}'s clone to be {status}");
    eventually(&what, WAIT, || async {
        clone_of(world, number)
            .await
            .is_some_and(|c| c.status() == Some(status))
    })
    .await;
}

/// The environment of the running service's task definition.
async fn task_env(world: &World, number: u64) -> BTreeMap<String, String> {
    let service = ecs::service(world, number).await;
    let arn = service.task_definition().expect("a task definition");
    ecs::env(&ecs::container(world, arn).await)
}

#[tokio::test]
async fn a_preview_gets_a_clone_that_sleeps_wakes_and_goes_with_it() {
    let (mut world, source) = world_with_source("db").await;
    world.start().await;
    world.open_pr(1).await;
    let ready = world.wait_comment(1, "Ready").await;
    assert!(
        ready
            .body
            .contains("· database 0.5 ACU Serverless v2, 1 GB standard storage $0.0601"),
        "the estimate counts the clone: {}",
        ready.body
    );

    let clone = clone_of(&world, 1).await.expect("a clone of the source");
    assert_eq!(clone.status(), Some("available"));
    assert_eq!(clone.engine(), Some("aurora-postgresql"));
    let tags: BTreeMap<_, _> = clone
        .tag_list()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags.get("pullstack:managed"), Some(&"true"));
    assert_eq!(tags.get("pullstack:repo"), Some(&world.repo.as_str()));
    assert_eq!(tags.get("pullstack:env"), Some(&"pr/1"));
    assert_eq!(tags.get("pullstack:app"), Some(&world.app.as_str()));
    assert_eq!(clone.db_cluster_members().len(), 1, "one instance");
    let shared = world
        .aws
        .stacks
        .describe(&format!("{}-shared", world.app))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        clone.db_subnet_group(),
        shared.output("DatabaseSubnetGroupName")
    );
    let instance = rds(&world)
        .describe_db_instances()
        .db_instance_identifier(clone.db_cluster_identifier().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        instance.db_instances()[0].db_instance_class(),
        Some("db.serverless")
    );

    // The connection reaches the container; the credentials only as the
    // secret's ARN.
    let env = task_env(&world, 1).await;
    assert_eq!(
        env.get("DATABASE_HOST").map(String::as_str),
        clone.endpoint()
    );
    assert_eq!(env.get("DATABASE_PORT"), Some(&"5432".to_owned()));
    assert_eq!(env.get("DATABASE_NAME"), Some(&"shop".to_owned()));
    let secret = env.get("DATABASE_SECRET_ARN").expect("a secret ARN");
    assert!(secret.starts_with("arn:aws:secretsmanager:"), "{secret}");
    assert!(
        !env.keys().any(|k| k.contains("PASSWORD")),
        "no password: {env:?}"
    );

    // Idle for a day: scaled to zero, the clone stopped.
    world.advance(DAY + HOUR);
    let asleep = world.wait_comment(1, "Asleep").await;
    assert!(
        asleep.body.contains("· database stopped"),
        "{}",
        asleep.body
    );
    wait_clone_status(&world, 1, "stopped").await;

    // Woken: the clone is started before the service scales up.
    world.comment(1, WRITER, "/pullstack wake").await;
    world.wait_comment(1, "Ready").await;
    wait_clone_status(&world, 1, "available").await;
    let stack = world.stack(1).await.unwrap();
    assert_eq!(
        stack.parameters.get("DesiredCount").map(String::as_str),
        Some("1")
    );

    // Closed: the stack and the clone both go; the source stays.
    world.close(1, true).await;
    world.wait_stack_gone(1).await;
    eventually("the clone is deleted", WAIT, || async {
        clone_of(&world, 1).await.is_none()
    })
    .await;
    world.settle().await;
    let left = rds(&world)
        .describe_db_clusters()
        .db_cluster_identifier(&source)
        .send()
        .await
        .unwrap();
    assert_eq!(left.db_clusters().len(), 1, "the source is never touched");
}

/// Attack: a clone outliving its environment (a PR closed while pullstack
/// was down) keeps costing money unseen; the resync must find it by its
/// tags and delete it.
#[tokio::test]
async fn the_resync_deletes_an_orphaned_clone() {
    let (mut world, source) = world_with_source("dborphan").await;
    let orphan = format!("{}-pr-7", world.app);
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    rds(&world)
        .restore_db_cluster_to_point_in_time()
        .db_cluster_identifier(&orphan)
        .source_db_cluster_identifier(&source)
        .restore_type("copy-on-write")
        .use_latest_restorable_time(true)
        .tags(tag("pullstack:managed", "true"))
        .tags(tag("pullstack:repo", &world.repo))
        .tags(tag("pullstack:app", &world.app))
        .tags(tag("pullstack:env", "pr/7"))
        .send()
        .await
        .expect("an orphaned clone");
    // Another repository's clone, tagged alike, is not this one's to delete.
    let foreign = format!("{}-other-pr-7", world.app);
    rds(&world)
        .restore_db_cluster_to_point_in_time()
        .db_cluster_identifier(&foreign)
        .source_db_cluster_identifier(&source)
        .restore_type("copy-on-write")
        .use_latest_restorable_time(true)
        .tags(tag("pullstack:managed", "true"))
        .tags(tag("pullstack:repo", "octo/someone-else"))
        .tags(tag("pullstack:app", &world.app))
        .tags(tag("pullstack:env", "pr/7"))
        .send()
        .await
        .expect("another repository's clone");
    // PR 7 existed and was closed while nothing listened.
    let closed = FakePr {
        number: 7,
        state: "closed".into(),
        user: WRITER.to_owned(),
        ..FakePr::default()
    };
    world.github.upsert_pr(&world.repo, closed);

    world.start().await;
    world.resync().await;
    let exists = |id: String| {
        let client = rds(&world);
        async move {
            client
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
                .await
                .is_ok()
        }
    };
    assert!(!exists(orphan).await, "the orphaned clone is deleted");
    assert!(exists(foreign).await, "another repository's clone stays");
}

/// The world's AWS clients, with RDS answering `rules` first
/// (aws-smithy-mocks on the real client; every other call reaches moto):
/// for a state moto's RDS never shows (a clone still being created).
fn rds_scripted(world: &World, rules: &[&Rule]) -> Aws {
    let mut interceptor = MockResponseInterceptor::new()
        .rule_mode(RuleMode::MatchAny)
        .allow_passthrough();
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_rds::config::Builder::from(&world.sdk)
        .interceptor(Metered)
        .interceptor(interceptor)
        .build();
    let mut aws = Aws::from_config(&world.sdk);
    aws.databases = Databases::new(aws_sdk_rds::Client::from_conf(config));
    aws
}

/// Uses aws-smithy-mocks: RDS answers that the clone is still being
/// created until the test lets it be available.
#[tokio::test]
async fn the_deploy_waits_for_the_clone_and_says_so() {
    let (mut world, _) = world_with_source("dbwait").await;
    let creating = Arc::new(AtomicBool::new(true));
    let (flag, id) = (creating.clone(), format!("{}-pr-1", world.app));
    let describe = mock!(aws_sdk_rds::Client::describe_db_clusters)
        .match_requests(move |r| {
            flag.load(Ordering::SeqCst) && r.db_cluster_identifier() == Some(id.as_str())
        })
        .sequence()
        .output({
            let id = format!("{}-pr-1", world.app);
            move || {
                DescribeDbClustersOutput::builder()
                    .db_clusters(
                        DbCluster::builder()
                            .db_cluster_identifier(&id)
                            .status("creating")
                            .engine("aurora-postgresql")
                            .build(),
                    )
                    .build()
            }
        })
        .repeatedly()
        .build();
    world.start_with(rds_scripted(&world, &[&describe])).await;
    world.open_pr(1).await;
    world.wait_comment(1, "creating the database").await;
    world.settle().await;
    assert!(
        world.stack(1).await.is_none(),
        "no stack before the database is available"
    );
    creating.store(false, Ordering::SeqCst);
    world.wait_comment(1, "Ready").await;
    let env = task_env(&world, 1).await;
    assert!(env.contains_key("DATABASE_HOST"), "{env:?}");
}

/// A delete RDS refuses (here: someone turned deletion protection on)
/// does not hold the stack back, and is retried until the clone is gone.
#[tokio::test]
async fn a_refused_clone_delete_is_retried_until_it_is_gone() {
    let (mut world, _) = world_with_source("dbdelete").await;
    world.start().await;
    world.open_pr(1).await;
    world.wait_comment(1, "Ready").await;
    let id = format!("{}-pr-1", world.app);
    let protect = |on: bool| {
        let (client, id) = (rds(&world), id.clone());
        async move {
            client
                .modify_db_cluster()
                .db_cluster_identifier(id)
                .deletion_protection(on)
                .send()
                .await
                .expect("modify the clone");
        }
    };
    protect(true).await;
    world.close(1, true).await;
    world.wait_stack_gone(1).await;
    let deletes = || async {
        world
            .aws_requests()
            .await
            .iter()
            .filter(|((_, operation), _)| operation == "DeleteDBCluster")
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    eventually("the refused delete is tried again", WAIT, || async {
        deletes().await >= 3
    })
    .await;
    assert!(
        clone_of(&world, 1).await.is_some(),
        "refused, so still there"
    );
    protect(false).await;
    eventually("the clone is deleted", WAIT, || async {
        clone_of(&world, 1).await.is_none()
    })
    .await;
}
