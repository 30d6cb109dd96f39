//! `shared.cloudformation_role_arn`: every stack pullstack creates or
//! updates carries the CloudFormation service role, read back from moto
//! with DescribeStacks through the SDK. moto stores the `RoleARN` of a
//! create and of each update (an update that sends none clears it there,
//! where AWS would keep the old one, so a forgotten role shows); a deleted
//! stack cannot be read back, so DeleteStack's role is checked against the
//! SDK's mock in `src/aws/stacks/tests.rs`.

use crate::support::production::{first_release, production_world, release_name};
use crate::support::{self, World, merge_yaml};

const ROLE: &str = "arn:aws:iam::123456789012:role/pullstack-cloudformation";

fn with_role(yaml: &str) -> String {
    merge_yaml(
        yaml,
        &format!("shared:\n  cloudformation_role_arn: {ROLE}\n"),
    )
}

/// The `RoleARN` CloudFormation holds for stack `name`.
async fn role_of(world: &World, name: &str) -> Option<String> {
    let client = aws_sdk_cloudformation::Client::new(&world.sdk);
    let out = client
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .expect("describe the stack");
    out.stacks()[0].role_arn().map(str::to_owned)
}

#[tokio::test]
async fn preview_stacks_are_created_and_updated_through_the_role() {
    let mut world = World::new("cfnrole", "").await;
    world.config_yaml = with_role(&world.config_yaml);
    world.start().await;
    let name = world.stack_name(1);

    let sha = world.open_pr(1).await;
    world.wait_stack_at(1, &sha).await;
    assert_eq!(
        role_of(&world, &name).await.as_deref(),
        Some(ROLE),
        "create"
    );

    let sha = world.push(1, "second").await;
    world.wait_stack_at(1, &sha).await;
    assert_eq!(
        role_of(&world, &name).await.as_deref(),
        Some(ROLE),
        "update"
    );

    world.close(1, true).await;
    world.wait_stack_gone(1).await;
}

#[tokio::test]
async fn a_release_stack_is_created_through_the_role() {
    let (mut world, _) = production_world("cfnrole-prod", "").await;
    world.config_yaml = with_role(&world.config_yaml);
    world.start().await;
    let sha = first_release(&world).await;
    let name = release_name(&world, &sha);
    assert_eq!(role_of(&world, &name).await.as_deref(), Some(ROLE));
}

/// `pullstack bootstrap` creates the shared stack through the role, and
/// updates it through the role too.
#[tokio::test]
async fn bootstrap_creates_and_updates_the_shared_stack_through_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let app = format!("cfnboot-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let config = dir.path().join("pullstack.yaml");
    let bootstrap = |retention: u32| {
        std::fs::write(
            &config,
            format!(
                "app: {app}\nrepository: octo/{app}\nshared:\n  log_retention_days: {retention}\n  cloudformation_role_arn: {ROLE}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pullstack"))
            .args(["bootstrap", "--config", config.to_str().unwrap()])
            .env("AWS_ENDPOINT_URL", support::moto_endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sdk = support::moto_config().await;
    let client = aws_sdk_cloudformation::Client::new(&sdk);
    let name = format!("{app}-shared");
    let role = || async {
        let out = client.describe_stacks().stack_name(&name).send().await;
        out.unwrap().stacks()[0].role_arn().map(str::to_owned)
    };

    let out = bootstrap(14);
    assert!(out.contains("Creating shared stack"), "{out}");
    assert_eq!(role().await.as_deref(), Some(ROLE), "create");

    let out = bootstrap(30);
    assert!(out.contains("Updating shared stack"), "{out}");
    assert_eq!(role().await.as_deref(), Some(ROLE), "update");
}
