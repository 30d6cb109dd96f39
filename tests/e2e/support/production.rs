//! Production helpers shared by the production tests and the release
//! benchmark: a world with a Route53 zone, merges, and reading the weights.

use super::github_fake::{FakePr, fake_sha};
use super::{World, eventually, payloads};
use aws_sdk_route53::types::HostedZoneConfig;
use pullstack::aws::forward::Forward;
use pullstack::aws::stacks::Stacks;
use pullstack::aws::traffic::Traffic;
use pullstack::config::Strategy;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const LONG: Duration = Duration::from_secs(45);

/// A world with production enabled on a fresh hosted zone. Releases get no
/// environment variables of their own (the previews' are for previews).
pub async fn production_world(prefix: &str, extra: &str) -> (World, String) {
    let mut world = World::new(prefix, "").await;
    let route53 = aws_sdk_route53::Client::new(&world.sdk);
    let zone = route53
        .create_hosted_zone()
        .name(format!("{}.example.com", world.app))
        .caller_reference(world.app.clone())
        .hosted_zone_config(
            HostedZoneConfig::builder()
                .comment("pullstack test")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let zone_id = zone
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_owned();
    let domain = format!("www.{}.example.com", world.app);
    // Requested through the ACM API: moto answers 500 when a listener
    // refers to a certificate CloudFormation made.
    let certificate = aws_sdk_acm::Client::new(&world.sdk)
        .request_certificate()
        .domain_name(&domain)
        .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_owned();
    world.config_yaml.push_str(&format!(
        "production:\n  enabled: true\n  domain: {domain}\n  hosted_zone_id: {zone_id}\n  \
         certificate_arn: {certificate}\n  gate: stack\n  bake: 300ms\n  env: {{}}\n{extra}"
    ));
    (world, zone_id)
}

/// The release weights by stack name: Route53's records, or with
/// `strategy: alb` the production rule's forward action (DescribeRules).
pub async fn weights(world: &World) -> BTreeMap<String, u8> {
    let config = world.config();
    if config.production.strategy == Strategy::Alb {
        return forward_weights(world).await;
    }
    let traffic = Traffic::new(aws_sdk_route53::Client::new(&world.sdk));
    let (records, _) = traffic
        .read(&config.production.hosted_zone_id, &config.production.domain)
        .await
        .unwrap();
    records.into_iter().map(|r| (r.stack, r.weight)).collect()
}

/// The production rule's forward action, by stack name; empty until the
/// production load balancer exists.
pub async fn forward_weights(world: &World) -> BTreeMap<String, u8> {
    let config = world.config();
    let Some((rule, next)) = production_rules(world).await else {
        return BTreeMap::new();
    };
    let forwarding = forward(world).read(&rule, &next).await.unwrap();
    let stacks = stacks(world)
        .list_tagged("pullstack:repo", &config.repository)
        .await
        .unwrap();
    forwarding
        .targets
        .into_iter()
        .map(|(arn, weight)| {
            let name = stacks
                .iter()
                .find(|s| s.output("TargetGroupArn") == Some(arn.as_str()))
                .map_or(arn, |s| s.name.clone());
            (name, weight)
        })
        .collect()
}

/// Clients of their own, without pullstack's metering, so that reading
/// the weights adds nothing to the server's AWS call counts.
pub fn forward(world: &World) -> Forward {
    Forward::new(aws_sdk_elasticloadbalancingv2::Client::new(&world.sdk))
}

fn stacks(world: &World) -> Stacks {
    Stacks::new(aws_sdk_cloudformation::Client::new(&world.sdk))
}

/// The production rule's and the test route's ARNs (`strategy: alb`),
/// once their stack exists.
pub async fn production_rules(world: &World) -> Option<(String, String)> {
    let stack = stacks(world)
        .describe(&format!("{}-prod-edge", world.app))
        .await
        .unwrap()?;
    Some((
        stack.output("ProductionRuleArn")?.to_owned(),
        stack.output("NextRuleArn")?.to_owned(),
    ))
}

pub fn release_name(world: &World, sha: &str) -> String {
    format!("{}-prod-{}", world.app, &sha[..7])
}

/// A maintainer merges PR `number` (fast-forward: main moves to its head)
/// with `title`.
pub async fn merge(world: &World, number: u64, title: &str) -> String {
    merge_by(world, number, title, super::MAINTAINER).await
}

/// `merger` merges PR `number`, written by a writer, with `title`.
pub async fn merge_by(world: &World, number: u64, title: &str, merger: &str) -> String {
    let sha = fake_sha(&format!("{}-merge-{number}", world.app));
    world.push_image(&sha).await;
    let pr = FakePr {
        number,
        title: title.to_owned(),
        state: "closed".into(),
        merged: true,
        head_sha: sha.clone(),
        head_ref: format!("feature-{number}"),
        user: super::WRITER.into(),
        merged_by: merger.into(),
        ..FakePr::default()
    };
    world.github.upsert_pr(&world.repo, pr);
    world.github.add_branch(&world.repo, "main", &sha);
    let body = payloads::push(
        &world.repo,
        "refs/heads/main",
        &"0".repeat(40),
        &sha,
        false,
        false,
        false,
    );
    let (status, _) = world.deliver("push", body).await;
    assert_eq!(status, 202);
    sha
}

/// The descriptions of the production Deployment statuses for `sha`.
pub fn statuses(world: &World, sha: &str) -> Vec<String> {
    world
        .github
        .deployments(&world.repo)
        .into_iter()
        .filter(|d| d.environment == "production" && d.sha == sha)
        .flat_map(|d| {
            d.statuses
                .into_iter()
                .map(|s| format!("{}: {}", s.state, s.description))
        })
        .collect()
}

/// The traffic steps recorded on the release's Deployment.
pub fn steps(world: &World, sha: &str) -> Vec<String> {
    statuses(world, sha)
        .into_iter()
        .filter(|s| s.contains("% of traffic"))
        .collect()
}

/// Waits until the release of `sha` is recorded as complete.
pub async fn wait_released(world: &World, sha: &str) {
    eventually("release recorded", LONG, || async {
        statuses(world, sha)
            .iter()
            .any(|s| s.starts_with("success: 100%"))
    })
    .await;
}

pub const CANARY: [&str; 4] = [
    "in_progress: 0% of traffic",
    "in_progress: 10% of traffic",
    "in_progress: 50% of traffic",
    "success: 100% of traffic",
];

pub async fn wait_weight(world: &World, stack: &str, weight: u8) {
    let what = format!("{stack} at weight {weight}");
    eventually(&what, LONG, || async {
        weights(world).await.get(stack) == Some(&weight)
    })
    .await;
}

/// Releases a first commit so later releases have something to shift from.
pub async fn first_release(world: &World) -> String {
    let sha = merge(world, 1, "First").await;
    wait_weight(world, &release_name(world, &sha), 100).await;
    sha
}

/// Asserts that a rollback from `from_sha`'s release to `to_sha`'s was
/// recorded as every rollback is, whoever gave it: the release fails, the
/// target gets a `production` Deployment of its own that succeeds, and the
/// merged PR `pr` is told.
pub fn assert_rollback_recorded(
    world: &World,
    pr: u64,
    from_sha: &str,
    to_sha: &str,
    reason: &str,
) {
    let (from, to) = (release_name(world, from_sha), release_name(world, to_sha));
    let released = statuses(world, from_sha);
    assert_eq!(
        released.last().map(String::as_str),
        Some(format!("failure: rolled back: {reason}").as_str()),
        "{released:?}"
    );
    let rollback = world
        .github
        .deployments(&world.repo)
        .into_iter()
        .find(|d| d.description == format!("rollback to {to}"))
        .expect("a Deployment records the rollback");
    assert_eq!(
        (rollback.environment.as_str(), rollback.sha.as_str()),
        ("production", to_sha)
    );
    let states: Vec<String> = rollback
        .statuses
        .iter()
        .map(|s| format!("{}: {}", s.state, s.description))
        .collect();
    assert_eq!(
        states,
        [format!("success: rolled back from {from}: {reason}")]
    );
    let told = format!("⏪ **Production rolled back** from `{from}` to `{to}`: {reason}.");
    assert!(
        world.bot_comments(pr).iter().any(|c| c.body == told),
        "{told}"
    );
}

/// `pullstack prod` as a release manager runs it: the world's config, moto,
/// and credentials for the GitHub fake, where it records what it did.
pub struct Cli {
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    github: String,
}

impl Cli {
    pub fn new(world: &World) -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pullstack.yaml");
        std::fs::write(&config, &world.config_yaml).unwrap();
        Cli {
            _dir: dir,
            config,
            github: world.github.url(),
        }
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_pullstack"))
            .args(args)
            .args(["--config", self.config.to_str().unwrap()])
            .env("AWS_ENDPOINT_URL", super::moto_endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("PULLSTACK_GITHUB_API_URL", &self.github)
            .env("PULLSTACK_GITHUB_TOKEN", "ghp_test_token")
            .output()
            .unwrap()
    }
}

/// Counts the requests of one operation (its input type `I`) made through
/// a client it intercepts.
pub struct Count<I>(Arc<AtomicUsize>, PhantomData<fn(I)>);

impl<I> std::fmt::Debug for Count<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Count({})", self.get())
    }
}

impl<I> Clone for Count<I> {
    fn clone(&self) -> Self {
        Count(self.0.clone(), PhantomData)
    }
}

impl<I> Default for Count<I> {
    fn default() -> Self {
        Count(Arc::default(), PhantomData)
    }
}

impl<I> Count<I> {
    /// How many so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl<I: Send + Sync + std::fmt::Debug + 'static>
    aws_smithy_runtime_api::client::interceptors::Intercept for Count<I>
{
    fn name(&self) -> &'static str {
        "Count"
    }

    fn read_before_execution(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if context.input().downcast_ref::<I>().is_some() {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}
