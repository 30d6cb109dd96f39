//! Per-pull-request preview environments.

use super::AccessConfig;
use super::checks::Check;
use crate::domain::cost::Prices;
use crate::domain::globs::Globs;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Per-pull-request preview environments.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreviewConfig {
    /// Whether pull requests get preview environments. Default: true.
    pub enabled: bool,
    /// Fargate CPU units for the task. Default: "256".
    pub cpu: String,
    /// Fargate memory in MiB for the task. Default: "512".
    pub memory: String,
    /// The port the container listens on. Default: 8080.
    pub port: u16,
    /// The path the load balancer and the ready check probe. Default: "/".
    pub health_path: String,
    /// Number of tasks. Default: 1.
    pub desired_count: u32,
    /// `FARGATE_SPOT` (cheaper, may be interrupted) or `FARGATE`. Default: FARGATE_SPOT.
    pub capacity: Capacity,
    /// DNS zone for preview names (`pr-<n>.<zone>`); empty for the load
    /// balancer's own name. Default: "".
    pub dns_zone: String,
    /// Route53 hosted zone id of `dns_zone`. Default: "".
    pub hosted_zone_id: String,
    /// Environment variables for the container. Values may use `{pr}`,
    /// `{branch}`, `{sha}`, `{sha7}`, `{url}` and `{env}`. Previews only;
    /// production has `production.env`. Default: none.
    pub env: BTreeMap<String, String>,
    /// Secrets for the container: name to the ARN of a Secrets Manager
    /// secret or SSM parameter under `pullstack/<app>/preview/`, the only
    /// secrets the preview execution role may read. Only the reference is
    /// passed, never the value. Default: none.
    pub secrets: BTreeMap<String, String>,
    /// The IAM role preview tasks run as (the task definition's
    /// `TaskRoleArn`). Default: none.
    pub task_role_arn: Option<String>,
    /// How long to wait for the commit's image to appear in ECR. Default: 30m.
    #[serde(with = "humantime_serde")]
    pub image_timeout: Duration,
    /// Whether "ready" also needs the URL to answer `health_path` with a
    /// 2xx status. Default: true.
    pub ready_check: bool,
    /// How long the ready check may take after the stack is complete. Default: 5m.
    #[serde(with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// A label that approves a fork PR's current head commit. Default: "pullstack:approved".
    pub approve_label: String,
    /// Branches that get an environment of their own, kept at their head
    /// commit, as globs: `*` stays within one `/` segment, `**` crosses
    /// them. Default: [] (none).
    pub branches: Globs,
    /// Scaling idle environments to zero, then deleting them.
    pub idle: IdleConfig,
    /// How many preview environments may exist at once.
    pub limits: LimitsConfig,
    /// The prices the hourly cost estimate on each PR uses.
    pub prices: Prices,
    /// Who may reach a preview. Default: everyone (`public`).
    pub access: AccessConfig,
    /// A command run on the commit's image, with the environment's variables
    /// and secrets, as a one-off Fargate task before the service takes
    /// traffic (migrations, seed data). The service starts at zero tasks and
    /// scales up once the task exits 0; any other end leaves it at zero.
    /// Runs on every new commit's deploy. Default: none.
    pub before_traffic: Option<OneOffTask>,
    /// A command run the same way before an environment is torn down (e.g.
    /// dropping its schema in a shared database). Best effort: its failure
    /// is shown on the PR, and the teardown goes on. Default: none.
    pub on_delete: Option<OneOffTask>,
    /// HTTP checks run against the preview URL after every ready deploy
    /// (through the access bypass of a private preview), reported
    /// as a Check Run on the head commit. A failed check never tears the
    /// environment down. Default: [] (none).
    pub checks: Vec<Check>,
    /// The name of that Check Run (or, with a token that cannot write
    /// check runs, of the commit status). Default: "pullstack/checks".
    pub checks_name: String,
    /// A database of its own for each environment: an Aurora copy-on-write
    /// clone of an existing cluster, created before the service is
    /// deployed, stopped while the environment sleeps and deleted with it.
    /// Default: none.
    pub database: Option<DatabaseConfig>,
}

/// Each environment's Aurora clone.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The DB cluster identifier of the Aurora cluster to clone. Required.
    pub clone_from: String,
    /// The clone's one instance: `db.serverless` (Aurora Serverless v2) or
    /// a provisioned class such as `db.t4g.medium`. Default: "db.serverless".
    #[serde(default = "DatabaseConfig::default_instance_class")]
    pub instance_class: String,
    /// The database name the app is given as `DATABASE_NAME`. Default: the
    /// source cluster's.
    #[serde(default)]
    pub name: Option<String>,
    /// Serverless v2 minimum capacity, in ACUs. Default: 0.5.
    #[serde(default = "DatabaseConfig::default_min_acu")]
    pub min_acu: f64,
    /// Serverless v2 maximum capacity, in ACUs. Default: 2.
    #[serde(default = "DatabaseConfig::default_max_acu")]
    pub max_acu: f64,
}

impl DatabaseConfig {
    /// The instance class of Aurora Serverless v2.
    pub const SERVERLESS: &str = "db.serverless";

    fn default_instance_class() -> String {
        Self::SERVERLESS.into()
    }

    fn default_min_acu() -> f64 {
        0.5
    }

    fn default_max_acu() -> f64 {
        2.0
    }

    /// Whether the clone's instance is Aurora Serverless v2.
    pub fn serverless(&self) -> bool {
        self.instance_class == Self::SERVERLESS
    }
}

/// A command run once as a Fargate task with the environment's task
/// definition, network, variables and secrets.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OneOffTask {
    /// The command and its arguments, replacing the image's own (no
    /// shell: `["sh", "-c", "..."]` for one). Required.
    pub command: Vec<String>,
    /// How long it may run; it is then stopped and counts as failed.
    /// Default: 10m.
    #[serde(with = "humantime_serde", default = "OneOffTask::default_timeout")]
    pub timeout: Duration,
}

impl OneOffTask {
    fn default_timeout() -> Duration {
        Duration::from_secs(10 * 60)
    }
}

/// Idle environments: no push and no activity on the PR for a while.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdleConfig {
    /// Scale an environment to zero tasks (the stack stays) after this long
    /// without activity; `0s` never does. Default: 24h.
    #[serde(with = "humantime_serde")]
    pub scale_after: Duration,
    /// Delete it after this long without activity; `0s` never does. Default: 7d.
    #[serde(with = "humantime_serde")]
    pub delete_after: Duration,
    /// A PR label that exempts its environment from both. Default: "pullstack:keep".
    pub keep_label: String,
    /// Branches whose environments are exempt from both, as globs (matched
    /// against a PR's head branch, or a branch environment's branch). Default: [].
    pub exempt: Globs,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            scale_after: Duration::from_secs(86_400),
            delete_after: Duration::from_secs(7 * 86_400),
            keep_label: "pullstack:keep".into(),
            exempt: Globs::default(),
        }
    }
}

/// Limits on concurrent preview environments (PRs and branches alike; an
/// idle one still counts, its load balancer still runs).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// At most this many for this repository. Default: none.
    pub per_repository: Option<u32>,
    /// At most this many across every repository pullstack manages in the
    /// account and region. Default: none.
    pub total: Option<u32>,
    /// Whether to check the account's load balancer and CloudFormation stack
    /// quotas before creating an environment. Default: true.
    pub check_quotas: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            per_repository: None,
            total: None,
            check_quotas: true,
        }
    }
}

/// Fargate capacity provider for a service.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Capacity {
    #[default]
    #[serde(rename = "FARGATE_SPOT")]
    FargateSpot,
    #[serde(rename = "FARGATE")]
    Fargate,
}

impl Capacity {
    pub fn as_str(self) -> &'static str {
        match self {
            Capacity::FargateSpot => "FARGATE_SPOT",
            Capacity::Fargate => "FARGATE",
        }
    }
}

impl Default for PreviewConfig {
    fn default() -> Self {
        PreviewConfig {
            enabled: true,
            cpu: "256".into(),
            memory: "512".into(),
            port: 8080,
            health_path: "/".into(),
            desired_count: 1,
            capacity: Capacity::FargateSpot,
            dns_zone: String::new(),
            hosted_zone_id: String::new(),
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            task_role_arn: None,
            image_timeout: Duration::from_secs(30 * 60),
            ready_check: true,
            ready_timeout: Duration::from_secs(5 * 60),
            approve_label: "pullstack:approved".into(),
            branches: Globs::default(),
            idle: IdleConfig::default(),
            limits: LimitsConfig::default(),
            prices: Prices::default(),
            access: AccessConfig::default(),
            before_traffic: None,
            on_delete: None,
            database: None,
            checks: Vec::new(),
            checks_name: "pullstack/checks".into(),
        }
    }
}
