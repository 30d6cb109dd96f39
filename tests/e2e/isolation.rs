//! Production kept apart from previews, end to end: each kind of stack gets
//! its own secrets, environment, execution role and task role; images
//! cannot be swapped under a released commit; and only maintainers may
//! change how a release reaches production.
//!
//! What moto does not do, and how these tests live with it:
//! - a task definition CloudFormation creates keeps no execution or task
//!   role on moto, so the roles are read from the environment stack's
//!   outputs, which a unit test (`domain::template`) holds equal to the task
//!   definition's; the roles' policies are read from IAM on moto, which
//!   answers GetRolePolicy for a role CloudFormation made with the Python
//!   form of the policy (read here as YAML, as JSON also reads);
//! - moto, like ECR, refuses to push a tag of an IMMUTABLE repository again,
//!   so to show what pinning by digest guards against where tags can move
//!   (`images.mutable_tags`, or a repository changed by hand) one test makes
//!   the repository MUTABLE with PutImageTagMutability before pushing again.

use crate::support::ecs;
use crate::support::production::*;
use crate::support::{self, MAINTAINER, WRITER, World, merge_yaml};
use aws_sdk_ecr::types::{ImageIdentifier, ImageTagMutability};
use aws_sdk_ecs::types::ContainerDefinition;
use std::collections::BTreeMap;

const ACCOUNT: &str = "123456789012";

fn secret_arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}")
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// The app container of stack `name`'s task definition, as ECS has it.
async fn container(world: &World, name: &str) -> ContainerDefinition {
    let stack = world.aws.stacks.describe(name).await.unwrap().unwrap();
    ecs::container(world, stack.output("TaskDefinitionArn").unwrap()).await
}

fn secrets(container: &ContainerDefinition) -> BTreeMap<String, String> {
    container
        .secrets()
        .iter()
        .map(|s| (s.name().to_owned(), s.value_from().to_owned()))
        .collect()
}

async fn shared_output(world: &World, key: &str) -> String {
    let name = format!("{}-shared", world.app);
    let shared = world.aws.stacks.describe(&name).await.unwrap().unwrap();
    shared.output(key).unwrap().to_owned()
}

/// Whether IAM resource pattern `pattern` (with `*` wildcards) covers `arn`.
fn covers(pattern: &str, arn: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = arn.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        if index + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether the inline policies of the role `arn` let it read secret `secret`.
async fn may_read(world: &World, role: &str, secret: &str) -> bool {
    let iam = aws_sdk_iam::Client::new(&world.sdk);
    let name = role.rsplit('/').next().unwrap();
    let policies = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .unwrap();
    let mut allowed = false;
    for policy in policies.policy_names() {
        let document = iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .unwrap();
        // IAM answers with the JSON document URL-encoded; moto with the
        // Python form of the one CloudFormation gave it, which, like JSON,
        // reads as YAML.
        let text = percent_encoding::percent_decode_str(document.policy_document())
            .decode_utf8()
            .unwrap();
        let document: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        for statement in document["Statement"].as_array().unwrap() {
            let list = |v: &serde_json::Value| -> Vec<String> {
                match v {
                    serde_json::Value::String(s) => vec![s.clone()],
                    v => v
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_owned())
                        .collect(),
                }
            };
            let reads = list(&statement["Action"])
                .iter()
                .any(|a| a == "secretsmanager:GetSecretValue");
            let matches = list(&statement["Resource"])
                .iter()
                .any(|r| covers(r, secret));
            if reads && matches {
                match statement["Effect"].as_str() {
                    Some("Deny") => return false,
                    _ => allowed = true,
                }
            }
        }
    }
    allowed
}

// Attack: a same-repository PR, or a fork PR once approved, runs its code
// with production's secrets, because previews and releases shared one list
// of secrets and one execution role that could read them all.
#[tokio::test]
async fn previews_and_production_run_with_their_own_secrets_env_and_roles() {
    let (mut world, _) = production_world("isolate", "").await;
    let app = world.app.clone();
    let preview_secret = secret_arn(&format!("pullstack/{app}/preview/db-AbCdEf"));
    let production_secret = secret_arn(&format!("pullstack/{app}/production/db-XyZ123"));
    let (preview_task, production_task) = (
        role_arn(&format!("{app}-preview")),
        role_arn(&format!("{app}-production")),
    );
    world.config_yaml = merge_yaml(
        &world.config_yaml,
        &format!(
            "preview:\n  env:\n    APP_ENV: preview\n  secrets:\n    DB: {preview_secret}\n  task_role_arn: {preview_task}\n\
             production:\n  env:\n    APP_ENV: production\n    RELEASE: \"{{sha7}}\"\n  secrets:\n    DB: {production_secret}\n  task_role_arn: {production_task}\n"
        ),
    );
    world.start().await;

    let sha = world.open_pr(1).await;
    let preview = world.wait_stack_at(1, &sha).await;
    let app_container = container(&world, &preview.name).await;
    assert_eq!(
        secrets(&app_container),
        BTreeMap::from([("DB".to_owned(), preview_secret.clone())])
    );
    let preview_env = ecs::env(&app_container);
    assert_eq!(
        (preview_env["APP_ENV"].as_str(), preview_env["PR"].as_str()),
        ("preview", "1")
    );
    assert!(!preview_env.contains_key("RELEASE"));
    let preview_role = shared_output(&world, "PreviewExecutionRoleArn").await;
    assert_eq!(
        preview.output("ExecutionRoleArn"),
        Some(preview_role.as_str())
    );
    assert_eq!(preview.output("TaskRoleArn"), Some(preview_task.as_str()));
    assert!(may_read(&world, &preview_role, &preview_secret).await);
    assert!(
        !may_read(&world, &preview_role, &production_secret).await,
        "the preview execution role must not read production's secrets"
    );

    let released = merge(&world, 2, "First release").await;
    let name = release_name(&world, &released);
    wait_weight(&world, &name, 100).await;
    let production = world.aws.stacks.describe(&name).await.unwrap().unwrap();
    let app_container = container(&world, &name).await;
    assert_eq!(
        secrets(&app_container),
        BTreeMap::from([("DB".to_owned(), production_secret.clone())])
    );
    assert_eq!(
        ecs::env(&app_container),
        BTreeMap::from([
            ("APP_ENV".to_owned(), "production".to_owned()),
            ("RELEASE".to_owned(), released[..7].to_owned()),
        ]),
        "production never takes preview.env"
    );
    let production_role = shared_output(&world, "ProductionExecutionRoleArn").await;
    assert_ne!(production_role, preview_role);
    assert_eq!(
        production.output("ExecutionRoleArn"),
        Some(production_role.as_str())
    );
    assert_eq!(
        production.output("TaskRoleArn"),
        Some(production_task.as_str())
    );
    assert!(may_read(&world, &production_role, &production_secret).await);
    assert!(!may_read(&world, &production_role, &preview_secret).await);
    // The role that stacks made before the split still use reads the old
    // names, never production's.
    let legacy = shared_output(&world, "ExecutionRoleArn").await;
    let old_name = secret_arn(&format!("pullstack/{app}/db-AbCdEf"));
    assert!(may_read(&world, &legacy, &old_name).await);
    assert!(!may_read(&world, &legacy, &production_secret).await);
}

/// The digest of the image tagged `tag` in the world's repository.
async fn digest(world: &World, tag: &str) -> String {
    let ecr = aws_sdk_ecr::Client::new(&world.sdk);
    let images = ecr
        .describe_images()
        .repository_name(&world.app)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await
        .unwrap();
    images.image_details()[0].image_digest().unwrap().to_owned()
}

/// Pushes another image under an existing tag.
async fn push_again(world: &World, tag: &str) -> Result<(), String> {
    world.put_image(tag, &"e".repeat(64)).await
}

// Attack: whoever can push to the ECR repository pushes another image under
// an approved or released commit's tag; the next task that starts (a
// scale-out, a replaced task, a rollback) runs it.
#[tokio::test]
async fn tags_are_immutable_and_releases_are_pinned_by_digest() {
    let (mut world, _) = production_world("pinned", "").await;
    world.start().await;
    let ecr = aws_sdk_ecr::Client::new(&world.sdk);
    let repositories = ecr
        .describe_repositories()
        .repository_names(&world.app)
        .send()
        .await
        .unwrap();
    let repository = &repositories.repositories()[0];
    assert_eq!(
        repository.image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    let uri = repository.repository_uri().unwrap().to_owned();

    let first = first_release(&world).await;
    let pushed = digest(&world, &first).await;
    let refused = push_again(&world, &first).await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("AlreadyExists")),
        "{refused:?}"
    );
    assert_eq!(digest(&world, &first).await, pushed, "the tag did not move");

    let old = release_name(&world, &first);
    let pinned = format!("{uri}@{pushed}");
    assert_eq!(container(&world, &old).await.image(), Some(pinned.as_str()));
    let stack = world.aws.stacks.describe(&old).await.unwrap().unwrap();
    assert_eq!(stack.parameters["Image"], pinned);
    let recorded = world
        .github
        .deployments(&world.repo)
        .into_iter()
        .find(|d| d.sha == first && d.description.starts_with("release "))
        .expect("the release's Deployment");
    assert_eq!(recorded.description, format!("release {old} of {pushed}"));

    let second = merge(&world, 2, "[hotfix] second").await;
    wait_weight(&world, &release_name(&world, &second), 100).await;
    // Where tags can move, the released commit's tag now names another image.
    ecr.put_image_tag_mutability()
        .repository_name(&world.app)
        .image_tag_mutability(ImageTagMutability::Mutable)
        .send()
        .await
        .unwrap();
    push_again(&world, &first).await.unwrap();
    assert_ne!(digest(&world, &first).await, pushed);

    world.comment(2, MAINTAINER, "/pullstack rollback").await;
    wait_weight(&world, &old, 100).await;
    world.settle().await;
    assert_eq!(
        container(&world, &old).await.image(),
        Some(pinned.as_str()),
        "the rollback runs the image released, not what the tag names now"
    );
}

/// The `production` Deployment of `sha`.
fn release_deployment(world: &World, sha: &str) -> support::github_fake::FakeDeployment {
    world
        .github
        .deployments(&world.repo)
        .into_iter()
        .find(|d| d.environment == "production" && d.sha == sha)
        .expect("a production Deployment")
}

// Attack: anyone who can get a PR merged (a writer, or a fork contributor
// whose PR a writer merges) writes `[hotfix]` in its title and skips the
// canary steps that guard production's traffic.
#[tokio::test]
async fn a_writers_hotfix_still_gets_the_canary_and_a_maintainers_skips_it() {
    let (mut world, _) = production_world("direct", "").await;
    world.start().await;
    first_release(&world).await;

    let by_writer = merge_by(&world, 2, "[hotfix] skip the checks", WRITER).await;
    wait_released(&world, &by_writer).await;
    assert_eq!(steps(&world, &by_writer), CANARY);
    let note = format!(
        "[hotfix] ignored: merged by @{WRITER}, who has write permission, not maintain or admin"
    );
    let deployment = release_deployment(&world, &by_writer);
    assert!(
        deployment
            .description
            .contains(&format!("; {note}; the configured steps apply")),
        "{}",
        deployment.description
    );
    assert_eq!(
        deployment.statuses[0].description,
        format!("{note}; waiting for the health gate")
    );

    let history = Cli::new(&world).run(&["prod", "history"]);
    let history = String::from_utf8_lossy(&history.stdout);
    let line = history
        .lines()
        .find(|l| l.starts_with(&release_name(&world, &by_writer)))
        .unwrap_or_else(|| panic!("{history}"));
    assert!(line.contains("promoted") && line.ends_with(&note), "{line}");

    let by_maintainer = merge_by(&world, 3, "[hotfix] stop the bleeding", MAINTAINER).await;
    wait_released(&world, &by_maintainer).await;
    assert_eq!(
        steps(&world, &by_maintainer),
        ["in_progress: 0% of traffic", "success: 100% of traffic"]
    );
    let deployment = release_deployment(&world, &by_maintainer);
    assert!(
        !deployment.description.contains("ignored"),
        "{}",
        deployment.description
    );
}
