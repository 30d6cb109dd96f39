//! The ECR image clean-up against moto's ECR, ECS and CloudFormation,
//! through the real AWS SDK: `pullstack images prune` (dry run and for
//! real, as a user runs it) and the periodic run inside `pullstack serve`.
//!
//! What moto 5.2.5 does not do, and how these tests live with it:
//! - DescribeImages reports no `lastRecordedPullTime`, so the rule "a recent
//!   pull keeps an image" is covered by the unit tests in `src/prune/plan`;
//! - `imagePushedAt` has whole-second precision: the "old" images are made
//!   old with a 1s window and a 2s sleep; "younger than the window" is shown
//!   with a 1h window instead of timing;
//! - a running task reports no `imageDigest`, so a running task protects its
//!   image here by the reference in its task definition only;
//! - BatchDeleteImage deletes an untagged image by digest but does not say
//!   so (no `imageIds` entry, no failure); pullstack then checks with
//!   DescribeImages, which this test goes through;
//! - DescribeRepositories, DescribeImages and ListTaskDefinitions answer in
//!   one page (no `nextToken`), so pagination is not exercised;
//! - PutImage does not check a digest it is given, and invents one (from a
//!   hundred possibilities) for a manifest without layers: every image here
//!   is pushed with the sha256 of its manifest, as a registry computes it.

use crate::support::{World, eventually, moto_config, moto_endpoint};
use aws_sdk_ecr::types::{ImageTagMutability, Tag as EcrTag};
use aws_sdk_ecs::types::{ContainerDefinition, LaunchType};
use pullstack::aws::Aws;
use pullstack::aws::stacks::Deploy;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::time::Duration;

/// A prune deletes from every opted-in repository on the (shared) moto, so
/// the tests that prune for real take turns.
static PRUNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn pullstack(args: &[&str]) -> Output {
    let endpoint = moto_endpoint();
    Command::new(env!("CARGO_BIN_EXE_pullstack"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run pullstack")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A pushed image: its digest, manifest and media type.
#[derive(Clone)]
struct Pushed {
    digest: String,
    manifest: String,
    media_type: &'static str,
}

fn sha256(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// A single-platform image manifest, unique to `seed`.
fn image(seed: &str) -> Pushed {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1000,
            "digest": sha256(&format!("{seed}-config")),
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": 2000,
            "digest": sha256(&format!("{seed}-layer")),
        }],
    })
    .to_string();
    Pushed {
        digest: sha256(&manifest),
        manifest,
        media_type: MANIFEST,
    }
}

/// A multi-platform index listing `platforms`.
fn index(platforms: &[&Pushed]) -> Pushed {
    let manifests: Vec<_> = platforms
        .iter()
        .map(|p| {
            serde_json::json!({
                "mediaType": p.media_type,
                "digest": p.digest,
                "size": p.manifest.len(),
                "platform": { "architecture": "amd64", "os": "linux" },
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": manifests,
    })
    .to_string();
    Pushed {
        digest: sha256(&manifest),
        manifest,
        media_type: INDEX,
    }
}

struct Registry {
    ecr: aws_sdk_ecr::Client,
}

impl Registry {
    async fn create(&self, name: &str, opted_in: &str, mutability: ImageTagMutability) -> String {
        let out = self
            .ecr
            .create_repository()
            .repository_name(name)
            .image_tag_mutability(mutability)
            .tags(
                EcrTag::builder()
                    .key("pullstack:prune")
                    .value(opted_in)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create repository");
        out.repository()
            .unwrap()
            .repository_uri()
            .unwrap()
            .to_owned()
    }

    /// Pushes `image` to `repository` under each of `tags` (untagged if none).
    async fn push(&self, repository: &str, image: &Pushed, tags: &[&str]) {
        let tags: Vec<Option<&str>> = if tags.is_empty() {
            vec![None]
        } else {
            tags.iter().copied().map(Some).collect()
        };
        for tag in tags {
            self.ecr
                .put_image()
                .repository_name(repository)
                .image_manifest(&image.manifest)
                .image_manifest_media_type(image.media_type)
                .image_digest(&image.digest)
                .set_image_tag(tag.map(str::to_owned))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put image in {repository}: {e:?}"));
        }
    }

    /// The repository's images: digest to tags.
    async fn images(&self, repository: &str) -> BTreeMap<String, BTreeSet<String>> {
        let out = self
            .ecr
            .describe_images()
            .repository_name(repository)
            .send()
            .await
            .expect("describe images");
        out.image_details()
            .iter()
            .map(|d| {
                (
                    d.image_digest().unwrap().to_owned(),
                    d.image_tags().iter().cloned().collect(),
                )
            })
            .collect()
    }

    /// Sets the repository's `pullstack:prune` tag; returns its URI.
    async fn opt(&self, repository: &str, value: &str) -> String {
        let described = self
            .ecr
            .describe_repositories()
            .repository_names(repository)
            .send()
            .await
            .expect("describe repository");
        let repo = &described.repositories()[0];
        self.ecr
            .tag_resource()
            .resource_arn(repo.repository_arn().unwrap())
            .tags(
                EcrTag::builder()
                    .key("pullstack:prune")
                    .value(value)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("tag repository");
        repo.repository_uri().unwrap().to_owned()
    }

    async fn tags(&self, repository: &str) -> BTreeMap<String, String> {
        let repo = self
            .ecr
            .describe_repositories()
            .repository_names(repository)
            .send()
            .await
            .expect("describe repository");
        let arn = repo.repositories()[0].repository_arn().unwrap();
        let out = self
            .ecr
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .expect("list repository tags");
        out.tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()
    }
}

fn container(name: &str, image: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name(name)
        .image(image)
        .memory(128)
        .build()
}

/// Registers a task definition of `family` with these containers; returns
/// its ARN.
async fn register(ecs: &aws_sdk_ecs::Client, family: &str, containers: &[(&str, &str)]) -> String {
    let out = ecs
        .register_task_definition()
        .family(family)
        .set_container_definitions(Some(
            containers
                .iter()
                .map(|(name, image)| container(name, image))
                .collect(),
        ))
        .send()
        .await
        .expect("register task definition");
    out.task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned()
}

/// A stack pullstack manages, whose `Image` parameter is `image`.
async fn managed_stack(aws: &Aws, name: &str, image: &str) {
    let template = serde_json::json!({
        "Parameters": { "Image": { "Type": "String" } },
        "Resources": { "Handle": { "Type": "AWS::CloudFormation::WaitConditionHandle" } },
    })
    .to_string();
    let parameters = BTreeMap::from([("Image".to_owned(), image.to_owned())]);
    let tags = BTreeMap::from([("pullstack:managed".to_owned(), "true".to_owned())]);
    aws.stacks
        .create(&Deploy {
            name,
            template_body: &template,
            parameters: &parameters,
            tags: &tags,
        })
        .await
        .expect("create stack");
}

/// One line of `images prune` output: (what, repository, digest, reason).
fn lines(stdout: &str, repositories: &[&str]) -> BTreeMap<String, (String, String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let (what, rest) = line.split_once("  ")?;
            let (image, rest) = rest.trim_start().split_once(' ')?;
            let (repository, digest) = image.split_once('@')?;
            let (_, reason) = rest.split_once("]: ")?;
            repositories.contains(&repository).then(|| {
                (
                    digest.to_owned(),
                    (
                        what.trim().to_owned(),
                        repository.to_owned(),
                        reason.to_owned(),
                    ),
                )
            })
        })
        .collect()
}

#[tokio::test]
async fn prune_deletes_exactly_the_unused_old_images() {
    let _turn = PRUNING.lock().await;
    let sdk = moto_config().await;
    let aws = Aws::from_config(&sdk);
    let registry = Registry {
        ecr: aws_sdk_ecr::Client::new(&sdk),
    };
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let app = format!("prune-{:06x}", rand::random::<u32>() & 0xff_ff_ff);
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, window: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "app: {app}\nrepository: octo/{app}\nimages:\n  prune: true\n  prune_after: {window}\n"
            ),
        )
        .unwrap();
        path.to_str().unwrap().to_owned()
    };
    let wide = config("wide.yaml", "1h");
    // Every image is past a 1ms window (shown as 0s) by the time it is
    // pruned: no waiting for the images to age.
    let tight = config("tight.yaml", "1ms");

    // `bootstrap` with images.prune opts the app's repository in through
    // the shared template.
    let boot = pullstack(&["bootstrap", "--config", &tight]);
    assert!(boot.status.success(), "{}", text(&boot.stderr));
    assert_eq!(
        registry
            .tags(&app)
            .await
            .get("pullstack:prune")
            .map(String::as_str),
        Some("true")
    );
    let main = app.clone();
    let immutable = format!("{app}-imm");
    let off = format!("{app}-off");
    let imm_uri = registry
        .create(&immutable, "true", ImageTagMutability::Immutable)
        .await;
    registry
        .create(&off, "false", ImageTagMutability::Mutable)
        .await;
    let uri = imm_uri.replace(&immutable, &main);

    let old_unused = image(&format!("{app}-old-unused"));
    let untagged = image(&format!("{app}-untagged"));
    let by_tag = image(&format!("{app}-by-tag"));
    let by_digest = image(&format!("{app}-by-digest"));
    let two_tags = image(&format!("{app}-two-tags"));
    let inactive = image(&format!("{app}-inactive"));
    let in_stack = image(&format!("{app}-in-stack"));
    let platform = image(&format!("{app}-platform"));
    let multi = index(&[&platform]);
    let running = image(&format!("{app}-running"));
    let imm_old = image(&format!("{app}-imm-old"));
    let imm_used = image(&format!("{app}-imm-used"));
    let off_old = image(&format!("{app}-off-old"));
    for (image, tags) in [
        (&old_unused, &["old-unused"][..]),
        (&untagged, &[]),
        (&by_tag, &["in-taskdef"]),
        (&by_digest, &[]),
        (&two_tags, &["v1", "also"]),
        (&inactive, &["inactive"]),
        (&in_stack, &["in-stack"]),
        (&platform, &[]),
        (&multi, &["multi"]),
        (&running, &["running"]),
    ] {
        registry.push(&main, image, tags).await;
    }
    registry.push(&immutable, &imm_old, &["imm-old"]).await;
    registry.push(&immutable, &imm_used, &["imm-used"]).await;
    registry.push(&off, &off_old, &["off-old"]).await;

    // In use: an active task definition (by tag, by digest, by a second tag,
    // across repositories), two managed stacks, and a running task whose
    // task definition is no longer active. Not in use: an inactive one.
    let web = register(
        &ecs,
        &format!("{app}-web"),
        &[
            ("web", &format!("{uri}:in-taskdef")),
            ("sidecar", &format!("{uri}@{}", by_digest.digest)),
            ("extra", &format!("{uri}:also")),
            ("imm", &format!("{imm_uri}:imm-used")),
        ],
    )
    .await;
    let old = register(
        &ecs,
        &format!("{app}-old"),
        &[("old", &format!("{uri}:inactive"))],
    )
    .await;
    ecs.deregister_task_definition()
        .task_definition(&old)
        .send()
        .await
        .expect("deregister");
    let job = register(
        &ecs,
        &format!("{app}-job"),
        &[("job", &format!("{uri}:running"))],
    )
    .await;
    let cluster = format!("pullstack-{app}");
    let task = ecs
        .run_task()
        .cluster(&cluster)
        .task_definition(&job)
        .launch_type(LaunchType::Fargate)
        .send()
        .await
        .expect("run task");
    let task = task.tasks()[0].task_arn().unwrap().to_owned();
    ecs.deregister_task_definition()
        .task_definition(&job)
        .send()
        .await
        .expect("deregister");
    managed_stack(&aws, &format!("{app}-pr-1"), &format!("{uri}:in-stack")).await;
    managed_stack(&aws, &format!("{app}-prod-1"), &format!("{uri}:multi")).await;

    let mine = [main.as_str(), immutable.as_str(), off.as_str()];
    let everything: BTreeSet<String> = [
        &old_unused,
        &untagged,
        &by_tag,
        &by_digest,
        &two_tags,
        &inactive,
        &in_stack,
        &platform,
        &multi,
        &running,
        &imm_old,
        &imm_used,
    ]
    .iter()
    .map(|i| i.digest.clone())
    .collect();

    // With a 1h window, nothing here is old enough to go.
    let out = pullstack(&["images", "prune", "--dry-run", "--config", &wide]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    let decided = lines(&stdout, &mine);
    assert_eq!(
        decided.keys().cloned().collect::<BTreeSet<_>>(),
        everything,
        "one line per image of the opted-in repositories only:\n{stdout}"
    );
    assert!(
        decided.values().all(|(what, ..)| what == "keep"),
        "{stdout}"
    );
    assert!(
        decided[&old_unused.digest]
            .2
            .contains("inside the 1h window"),
        "{stdout}"
    );

    let doomed: BTreeSet<String> = [&old_unused, &untagged, &inactive, &imm_old]
        .iter()
        .map(|i| i.digest.clone())
        .collect();

    // The dry run lists what would go, and why, and deletes nothing.
    let before = (
        registry.images(&main).await,
        registry.images(&immutable).await,
    );
    let out = pullstack(&["images", "prune", "--dry-run", "--config", &tight]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    let decided = lines(&stdout, &mine);
    let would: BTreeSet<String> = decided
        .iter()
        .filter(|(_, (what, ..))| what == "would delete")
        .map(|(digest, _)| digest.clone())
        .collect();
    assert_eq!(would, doomed, "{stdout}");
    let reason = |image: &Pushed| decided[&image.digest].2.clone();
    assert!(
        reason(&old_unused).starts_with("unreferenced; pushed"),
        "{stdout}"
    );
    assert!(reason(&old_unused).ends_with("(window 0s)"), "{stdout}");
    let web_rev = web.rsplit('/').next().unwrap();
    assert!(
        reason(&by_tag).contains(&format!("task definition {web_rev}")),
        "{stdout}"
    );
    assert!(reason(&by_digest).starts_with("in use by task definition"));
    assert!(reason(&two_tags).starts_with("in use by task definition"));
    assert!(reason(&imm_used).starts_with("in use by task definition"));
    assert_eq!(reason(&in_stack), format!("in use by stack {app}-pr-1"));
    assert_eq!(reason(&multi), format!("in use by stack {app}-prod-1"));
    assert!(reason(&platform).starts_with("part of sha256:"), "{stdout}");
    let task_id = task.rsplit('/').next().unwrap();
    assert_eq!(
        reason(&running),
        format!("in use by task {task_id} in cluster {cluster}")
    );
    assert!(stdout.contains("dry run: would delete"), "{stdout}");
    assert_eq!(
        (
            registry.images(&main).await,
            registry.images(&immutable).await
        ),
        before,
        "a dry run deletes nothing"
    );

    // For real: exactly the unreferenced old images go, immutable tags or
    // not; the repository that did not opt in is untouched.
    let out = pullstack(&["images", "prune", "--config", &tight]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    let decided = lines(&stdout, &mine);
    let deleted: BTreeSet<String> = decided
        .iter()
        .filter(|(_, (what, ..))| what == "deleted")
        .map(|(digest, _)| digest.clone())
        .collect();
    assert_eq!(deleted, doomed, "{stdout}");
    let left: BTreeSet<String> = registry
        .images(&main)
        .await
        .into_keys()
        .chain(registry.images(&immutable).await.into_keys())
        .collect();
    assert_eq!(
        left,
        everything.difference(&doomed).cloned().collect(),
        "{stdout}"
    );
    assert_eq!(
        registry.images(&main).await[&two_tags.digest],
        BTreeSet::from(["v1".to_owned(), "also".to_owned()])
    );
    assert!(
        registry.images(&off).await.contains_key(&off_old.digest),
        "a repository that did not opt in keeps everything"
    );

    // Tidy up what would otherwise protect or be pruned in later runs.
    let _ = ecs.stop_task().cluster(&cluster).task(&task).send().await;
    let _ = ecs
        .deregister_task_definition()
        .task_definition(&web)
        .send()
        .await;
    for stack in [format!("{app}-pr-1"), format!("{app}-prod-1")] {
        let _ = aws.stacks.delete(&stack).await;
    }
    for repository in [&immutable, &off] {
        let _ = registry
            .ecr
            .delete_repository()
            .repository_name(repository)
            .force(true)
            .send()
            .await;
    }
    registry.opt(&main, "false").await;
}

/// `serve` prunes every `images.interval`, and stops doing so on shutdown.
#[tokio::test]
async fn serve_prunes_on_its_interval() {
    let _turn = PRUNING.lock().await;
    let mut world = World::new("prunesrv", "images:\n  interval: 1s\n  prune_after: 1s\n").await;
    let registry = Registry {
        ecr: aws_sdk_ecr::Client::new(&world.sdk),
    };
    // Opted in by hand, as a team would tag an existing repository.
    let uri = registry.opt(&world.app, "true").await;
    let stale = image(&format!("{}-stale", world.app));
    let live = image(&format!("{}-live", world.app));
    registry.push(&world.app, &stale, &["stale"]).await;
    registry.push(&world.app, &live, &["live"]).await;
    managed_stack(
        &world.aws,
        &format!("{}-pr-9", world.app),
        &format!("{uri}:live"),
    )
    .await;

    world.start().await;
    let app = world.app.clone();
    eventually("the stale image pruned", Duration::from_secs(30), || {
        let registry = &registry;
        let app = &app;
        let stale = &stale.digest;
        async move { !registry.images(app).await.contains_key(stale) }
    })
    .await;
    assert!(
        registry.images(&world.app).await.contains_key(&live.digest),
        "the image a managed stack uses stays"
    );
    // stop() waits for the prune task: it must end on shutdown.
    tokio::time::timeout(Duration::from_secs(10), world.stop())
        .await
        .expect("the server, prune task included, stops");
    let _ = world
        .aws
        .stacks
        .delete(&format!("{}-pr-9", world.app))
        .await;
    registry.opt(&world.app, "false").await;
}

/// AWS trouble is a clear error and a non-zero exit, with nothing deleted.
#[test]
fn prune_without_aws_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pullstack.yaml");
    std::fs::write(&config, "app: demo\nrepository: octo/demo\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pullstack"))
        .args(["images", "prune", "--config", config.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Nothing answers here.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("error: image prune failed: listing the opted-in ECR repositories"),
        "{err}"
    );
    assert!(err.contains("DescribeRepositories"), "{err}");
}
