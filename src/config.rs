//! The strict YAML config (`pullstack.yaml`).
//!
//! Every field has a default stated in its doc comment and in the annotated
//! `pullstack.example.yaml`. Unknown fields are errors, and every error names
//! the file, line, column and field. Secrets never live here: they come from
//! the environment (see [`crate::settings`]).

use crate::domain::cost::Prices;
use crate::domain::globs::Globs;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod access;
mod container;
mod locate;
pub use access::{AccessConfig, CognitoConfig, OidcConfig};
pub use container::{Container, StackRole, secrets_prefix};

/// A config file that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// `field` is the dotted path to the offending field, when known.
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// The whole config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Short name of the app: lower-case letters, digits and dashes, at most
    /// 24 characters. Stack names start with it. Required.
    pub app: String,
    /// The GitHub repository the app is built from, as `owner/name`. Required.
    pub repository: String,
    /// The shared stack (`pullstack bootstrap`).
    #[serde(default)]
    pub shared: SharedConfig,
    /// Per-pull-request preview environments.
    #[serde(default)]
    pub preview: PreviewConfig,
    /// How previews are reached: shared HTTPS load balancers or one each.
    #[serde(default)]
    pub edge: EdgeConfig,
    /// The work queue.
    #[serde(default)]
    pub queue: QueueConfig,
    /// The periodic resync against GitHub and AWS.
    #[serde(default)]
    pub resync: ResyncConfig,
    /// GitHub write pacing and comment behaviour.
    #[serde(default)]
    pub github: GitHubConfig,
    /// Production releases: a new stack per merge, traffic shifted by
    /// Route53 weights.
    #[serde(default)]
    pub production: ProductionConfig,
    /// ECR image clean-up in repositories tagged `pullstack:prune=true`.
    #[serde(default)]
    pub images: ImagesConfig,
}

/// ECR image clean-up. Only repositories tagged `pullstack:prune=true` are
/// touched; in those, an image goes once nothing references it and it has
/// been neither pushed nor pulled for `prune_after`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// Whether `pullstack bootstrap` tags the app's ECR repository
    /// `pullstack:prune=true`, opting it in. Default: false.
    pub prune: bool,
    /// How long an unreferenced image is kept after its last push or pull,
    /// so a recent rollback still finds its image. Default: 24h.
    #[serde(with = "humantime_serde")]
    pub prune_after: Duration,
    /// Time between clean-ups in `pullstack serve`; the first runs one
    /// interval after start; 0s turns them off. Default: 1h.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Whether `pullstack bootstrap` lets a tag of the app's ECR repository
    /// be pushed again with another image. Immutable tags mean the image of
    /// an approved or released commit cannot be replaced; production is
    /// deployed by digest either way. Default: false.
    pub mutable_tags: bool,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            prune: false,
            prune_after: Duration::from_secs(24 * 3600),
            interval: Duration::from_secs(3600),
            mutable_tags: false,
        }
    }
}

/// How previews are reached from the internet.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// `shared`: previews are host rules on a pool of HTTPS load balancers
    /// (`<app>-edge-<n>` stacks), reached at `https://<env>.<dns_zone>`;
    /// needs `preview.dns_zone` and `preview.hosted_zone_id`. `dedicated`:
    /// each preview has its own load balancer, on plain HTTP. Default:
    /// shared when `preview.dns_zone` is set, else dedicated.
    pub mode: Option<EdgeMode>,
    /// An ACM certificate for `*.<preview.dns_zone>` in the region, which
    /// every shard serves. Default: "" (each shard requests one, validated
    /// through a DNS record in `preview.hosted_zone_id`).
    pub certificate_arn: String,
    /// Preview rules per load balancer before another is added (an ALB
    /// takes 100 rules and 100 target groups; a preview with an automation
    /// bypass takes two rules). Default: 90.
    pub rules_per_alb: u32,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            mode: None,
            certificate_arn: String::new(),
            rules_per_alb: 90,
        }
    }
}

/// The two edge modes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EdgeMode {
    Shared,
    Dedicated,
}

/// The most rules an Application Load Balancer takes, besides its default.
pub const ALB_RULES: u32 = 100;

/// Production releases.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductionConfig {
    /// Whether merges to the default branch are released. Default: false.
    pub enabled: bool,
    /// The production DNS name the weighted records live on. Required when enabled.
    pub domain: String,
    /// The Route53 hosted zone id of `domain`. Required when enabled.
    pub hosted_zone_id: String,
    /// The branch releases come from. Default: the repository's default branch.
    pub branch: Option<String>,
    /// Fargate CPU units. Default: "512".
    pub cpu: String,
    /// Fargate memory in MiB. Default: "1024".
    pub memory: String,
    /// Number of tasks. Default: 2.
    pub desired_count: u32,
    /// Capacity provider. Default: FARGATE.
    pub capacity: Capacity,
    /// Canary steps, in percent of traffic, ending at 100. Default: [10, 50, 100].
    pub steps: Vec<u8>,
    /// Bake time after each step before the next. Default: 5m.
    #[serde(with = "humantime_serde")]
    pub bake: Duration,
    /// `full` (ECS deployment complete and targets healthy) or `stack`
    /// (the stack is complete). Default: full.
    pub gate: Gate,
    /// How long a new stack may take to pass the gate. Default: 15m.
    #[serde(with = "humantime_serde")]
    pub gate_timeout: Duration,
    /// CloudWatch alarms that roll a shift back when in ALARM. Default: [].
    pub alarms: Vec<String>,
    /// Previous production stacks kept for rollback. Default: 2.
    pub keep: usize,
    /// How long previous stacks are kept at most. Default: 7d.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Environment variables for the production container. Values may use
    /// `{sha}`, `{sha7}`, `{url}` (the production URL) and `{env}`
    /// (`production`). Releases never take `preview.env`. Default: none;
    /// when `preview.env` is set, it must be given (`{}` for none), since
    /// releases once took `preview.env`.
    pub env: Option<BTreeMap<String, String>>,
    /// Secrets for the production container: name to the ARN of a Secrets
    /// Manager secret or SSM parameter under `pullstack/<app>/production/`,
    /// the only secrets the production execution role may read. Default:
    /// none; when `preview.secrets` is set, it must be given (`{}` for none).
    pub secrets: Option<BTreeMap<String, String>>,
    /// The IAM role production tasks run as (the task definition's
    /// `TaskRoleArn`). Default: none.
    pub task_role_arn: Option<String>,
    /// An ACM certificate for `domain` in the region: each production load
    /// balancer serves HTTPS:443 with it and redirects HTTP:80 there.
    /// Required when enabled. Default: "".
    pub certificate_arn: String,
}

/// What "healthy" means before a new production stack gets traffic.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Gate {
    #[default]
    Full,
    Stack,
}

impl Default for ProductionConfig {
    fn default() -> Self {
        ProductionConfig {
            enabled: false,
            domain: String::new(),
            hosted_zone_id: String::new(),
            branch: None,
            cpu: "512".into(),
            memory: "1024".into(),
            desired_count: 2,
            capacity: Capacity::Fargate,
            steps: vec![10, 50, 100],
            bake: Duration::from_secs(300),
            gate: Gate::Full,
            gate_timeout: Duration::from_secs(900),
            alarms: Vec::new(),
            keep: 2,
            window: Duration::from_secs(7 * 86_400),
            env: None,
            secrets: None,
            task_role_arn: None,
            certificate_arn: String::new(),
        }
    }
}

/// The permanent shared stack.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedConfig {
    /// The shared stack's name. Default: `<app>-shared`.
    pub stack_name: Option<String>,
    /// A Route53 hosted zone to create for preview names; empty for none. Default: "".
    pub hosted_zone: String,
    /// Regions the ECR repository replicates images to. Default: none.
    pub replicate_to: Vec<String>,
    /// Days the container logs are kept. Default: 14.
    pub log_retention_days: u32,
    /// An IAM role that CloudFormation assumes to create, update and delete
    /// every stack pullstack manages, the shared stack included (sent as
    /// `RoleARN`), e.g. `arn:aws:iam::123456789012:role/pullstack-<app>-cloudformation`.
    /// pullstack's own credentials then need `iam:PassRole` on it instead
    /// of the rights to build what the templates hold (`iam/README.md`).
    /// Default: none (CloudFormation acts with pullstack's credentials).
    pub cloudformation_role_arn: Option<String>,
}

impl Default for SharedConfig {
    fn default() -> Self {
        SharedConfig {
            stack_name: None,
            hosted_zone: String::new(),
            replicate_to: Vec::new(),
            log_retention_days: 14,
            cloudformation_role_arn: None,
        }
    }
}

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
    /// Whether "ready" also needs the URL to answer `health_path`. Default: true.
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
        }
    }
}

/// The work queue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most environments reconciled at once. Default: 16.
    pub workers: usize,
    /// First retry delay after a failed step; doubles each time, with jitter. Default: 2s.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay. Default: 5m.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// A stack operation is polled at once, then after this delay; the first
    /// poll of an image wait comes after it. Each later poll comes at three
    /// times the age of the last, up to every 2.5s, then after 40% of the
    /// time the operation has run so far, up to `poll_max`: a fast stack is
    /// seen fast, and a slow one is not polled more often. Default: 50ms.
    #[serde(with = "humantime_serde")]
    pub poll_initial: Duration,
    /// Longest delay between polls. Default: 30s.
    #[serde(with = "humantime_serde")]
    pub poll_max: Duration,
    /// Failed passes in a row, on pullstack's side, after which the PR's
    /// comment gets a short notice (cleared by the next good pass). Default: 3.
    pub notice_after: u32,
    /// Where work waits: `memory` (in this process; what a stop loses, the
    /// next resync finds again) or `sqs` (an SQS FIFO queue that several
    /// replicas share, with periodic work under a DynamoDB lease).
    /// Default: memory.
    pub backend: Backend,
    /// The SQS queue and the DynamoDB lease table, used when `backend` is
    /// `sqs`.
    pub sqs: SqsConfig,
}

/// Where work waits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In this process.
    #[default]
    Memory,
    /// In an SQS FIFO queue shared by replicas.
    Sqs,
}

/// The durable queue shared by replicas (`queue.backend: sqs`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqsConfig {
    /// The SQS FIFO queue, by name or URL (`pullstack bootstrap` creates
    /// it, with a dead-letter queue `<name>-dlq.fifo`). Default:
    /// `<app>-pullstack.fifo`.
    pub queue: Option<String>,
    /// The DynamoDB table holding the lease on periodic work (`pullstack
    /// bootstrap` creates it). Default: `<app>-pullstack`.
    pub table: Option<String>,
    /// How long a replica that stops answering keeps the lease on periodic
    /// work (resync, image prune) and the messages it is working on; then
    /// another replica takes them. Between 2s and 12h. Default: 30s.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How long a receive waits for a message (SQS long polling), at most
    /// 20s. 0s asks without waiting, and again 100ms after an empty answer:
    /// for emulators whose long polls may hand out a message of a group
    /// already in flight (moto does). Default: 20s.
    #[serde(with = "humantime_serde")]
    pub receive_wait: Duration,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig {
            queue: None,
            table: None,
            lease_ttl: Duration::from_secs(30),
            receive_wait: Duration::from_secs(20),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            workers: 16,
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            poll_initial: Duration::from_millis(50),
            poll_max: Duration::from_secs(30),
            notice_after: 3,
            backend: Backend::Memory,
            sqs: SqsConfig::default(),
        }
    }
}

/// The periodic resync.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResyncConfig {
    /// Time between resyncs; the first runs at start. Default: 5m.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How far back the first resync after a start looks for PR stacks
    /// that were deleted, so a PR closed while pullstack was down, or just
    /// before it stopped, still gets its final comment and its Deployments
    /// closed. Default: 7d.
    #[serde(with = "humantime_serde")]
    pub deleted_within: Duration,
}

impl Default for ResyncConfig {
    fn default() -> Self {
        ResyncConfig {
            interval: Duration::from_secs(300),
            deleted_within: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// GitHub write pacing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitHubConfig {
    /// Content-creating requests (comments, reactions, deployments, statuses)
    /// in any 60-second window, restarts included: they are spaced evenly,
    /// and a new process starts with none in hand. GitHub's secondary limit
    /// is 80. Default: 80.
    pub writes_per_minute: u32,
}

impl Default for GitHubConfig {
    fn default() -> Self {
        GitHubConfig {
            writes_per_minute: 80,
        }
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates config text; `path` is only used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |line: usize, column: usize, message: String| ConfigError::Invalid {
            file: path.to_owned(),
            line,
            column,
            message,
        };
        let config: Config = serde_yaml::from_str(text).map_err(|err| {
            let (line, column) = err
                .location()
                .map_or((1, 1), |loc| (loc.line(), loc.column()));
            invalid(line, column, err.to_string())
        })?;
        config
            .validate()
            .map_err(|(field, message)| Problem {
                field: field.to_owned(),
                at: field.to_owned(),
                message,
            })
            .and_then(|()| config.validate_containers())
            .and_then(|()| {
                let dedicated = config.edge_mode() == EdgeMode::Dedicated;
                config
                    .preview
                    .access
                    .validate(&config.app, dedicated)
                    .map_err(|(field, message)| Problem {
                        at: field.clone(),
                        field,
                        message,
                    })
            })
            .map_err(|problem| {
                let (line, column) = locate::locate(text, &problem.at);
                invalid(
                    line,
                    column,
                    format!("{}: {}", problem.field, problem.message),
                )
            })?;
        Ok(config)
    }

    /// What `role`'s containers get.
    pub fn container(&self, role: StackRole) -> Container<'_> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        match role {
            StackRole::Preview => Container {
                env: &self.preview.env,
                secrets: &self.preview.secrets,
                task_role_arn: self.preview.task_role_arn.as_deref(),
            },
            StackRole::Production => Container {
                env: self.production.env.as_ref().unwrap_or(&NONE),
                secrets: self.production.secrets.as_ref().unwrap_or(&NONE),
                task_role_arn: self.production.task_role_arn.as_deref(),
            },
        }
    }

    /// The SQS queue's name or URL (`queue.sqs.queue`).
    pub fn sqs_queue(&self) -> String {
        (self.queue.sqs.queue.clone()).unwrap_or_else(|| format!("{}-pullstack.fifo", self.app))
    }

    /// The DynamoDB lease table's name (`queue.sqs.table`).
    pub fn lease_table(&self) -> String {
        (self.queue.sqs.table.clone()).unwrap_or_else(|| format!("{}-pullstack", self.app))
    }

    /// The edge mode in force: the configured one, else shared when
    /// previews have a DNS zone.
    pub fn edge_mode(&self) -> EdgeMode {
        self.edge
            .mode
            .unwrap_or(if self.preview.dns_zone.is_empty() {
                EdgeMode::Dedicated
            } else {
                EdgeMode::Shared
            })
    }

    /// The shared stack's name.
    pub fn shared_stack_name(&self) -> String {
        self.shared
            .stack_name
            .clone()
            .unwrap_or_else(|| crate::domain::naming::shared_stack_name(&self.app))
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let app_ok = !self.app.is_empty()
            && self.app.len() <= 24
            && self.app.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .app
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !app_ok {
            return Err((
                "app",
                format!(
                    "{:?} must be 1-24 lower-case letters, digits or dashes, starting with a letter",
                    self.app
                ),
            ));
        }
        if crate::domain::naming::RepoName::parse(&self.repository).is_none() {
            return Err((
                "repository",
                format!("{:?} must look like owner/name", self.repository),
            ));
        }
        if !self.preview.health_path.starts_with('/') {
            return Err(("health_path", "must start with '/'".into()));
        }
        if self.preview.port == 0 {
            return Err(("port", "must be between 1 and 65535".into()));
        }
        let idle = &self.preview.idle;
        if !idle.scale_after.is_zero()
            && !idle.delete_after.is_zero()
            && idle.delete_after <= idle.scale_after
        {
            return Err(("delete_after", "must be longer than scale_after".into()));
        }
        if self.queue.workers == 0 {
            return Err(("workers", "must be at least 1".into()));
        }
        let lease_ttl = self.queue.sqs.lease_ttl;
        if lease_ttl < Duration::from_secs(2) || lease_ttl > Duration::from_secs(12 * 3600) {
            return Err(("lease_ttl", "must be between 2s and 12h".into()));
        }
        if self.queue.sqs.receive_wait > Duration::from_secs(20) {
            return Err(("receive_wait", "must be at most 20s".into()));
        }
        if !self.sqs_queue().ends_with(".fifo") {
            return Err((
                "queue.sqs.queue",
                format!(
                    "{:?} must be a FIFO queue (its name ends in .fifo)",
                    self.sqs_queue()
                ),
            ));
        }
        if self.github.writes_per_minute == 0 {
            return Err(("writes_per_minute", "must be at least 1".into()));
        }
        if self.images.prune_after.is_zero() {
            return Err(("prune_after", "must be more than 0s".into()));
        }
        let production = &self.production;
        if production.enabled
            && (production.domain.is_empty() || production.hosted_zone_id.is_empty())
        {
            return Err((
                "production",
                "domain and hosted_zone_id are required when enabled".into(),
            ));
        }
        if production.enabled && production.certificate_arn.is_empty() {
            return Err((
                "production.certificate_arn",
                format!(
                    "required when enabled: an ACM certificate for {} in the region, \
                     so production serves HTTPS",
                    production.domain
                ),
            ));
        }
        if !production.certificate_arn.is_empty() {
            check_certificate_arn(&production.certificate_arn)
                .map_err(|err| ("production.certificate_arn", err))?;
        }
        self.validate_edge()?;
        if let Err(err) =
            crate::domain::release::Schedule::from_percents(&production.steps, production.bake)
        {
            return Err(("steps", err));
        }
        if let Some(role) = &self.shared.cloudformation_role_arn {
            container::check_role_arn(role).map_err(|err| ("cloudformation_role_arn", err))?;
        }
        Ok(())
    }

    fn validate_edge(&self) -> Result<(), (&'static str, String)> {
        let edge = &self.edge;
        if edge.rules_per_alb == 0 || edge.rules_per_alb > ALB_RULES {
            return Err((
                "edge.rules_per_alb",
                format!("must be between 1 and {ALB_RULES}, the rules an ALB takes"),
            ));
        }
        if self.preview.access.has_bypass() && edge.rules_per_alb < 2 {
            return Err((
                "edge.rules_per_alb",
                "must be at least 2 with preview.access.bypass_secret_arn: a preview \
                 then takes two rules"
                    .into(),
            ));
        }
        if !edge.certificate_arn.is_empty() {
            check_certificate_arn(&edge.certificate_arn)
                .map_err(|err| ("edge.certificate_arn", err))?;
        }
        let preview = &self.preview;
        if self.edge_mode() == EdgeMode::Shared
            && (preview.dns_zone.is_empty() || preview.hosted_zone_id.is_empty())
        {
            return Err((
                "edge.mode",
                "shared needs preview.dns_zone and preview.hosted_zone_id: previews are \
                 reached at https://<env>.<dns_zone>"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Each kind of stack's secrets under its own prefix, its task role an
    /// IAM role, and production's settings its own.
    fn validate_containers(&self) -> Result<(), Problem> {
        for role in [StackRole::Preview, StackRole::Production] {
            // Each kind's settings live in the config section of its name.
            let section = role.as_str();
            let container = self.container(role);
            for (name, reference) in container.secrets {
                container::check_secret(&self.app, role, name, reference).map_err(|message| {
                    Problem {
                        field: format!("{section}.secrets"),
                        at: format!("{section}.secrets.{name}"),
                        message,
                    }
                })?;
            }
            if let Some(arn) = container.task_role_arn {
                let field = format!("{section}.task_role_arn");
                container::check_role_arn(arn).map_err(|message| Problem {
                    field: field.clone(),
                    at: field.clone(),
                    message,
                })?;
            }
        }
        // Releases used to take the preview's settings: a config written
        // then must say what production gets now, not lose it silently.
        let production = &self.production;
        let inherited = |field: &str, own: String| Problem {
            field: format!("production.{field}"),
            at: "production".to_owned(),
            message: format!(
                "production releases no longer take preview.{field}: {own} \
                 (`{field}: {{}}` for none)"
            ),
        };
        if production.enabled && production.env.is_none() && !self.preview.env.is_empty() {
            return Err(inherited("env", "give production its own".to_owned()));
        }
        if production.enabled && production.secrets.is_none() && !self.preview.secrets.is_empty() {
            let prefix = secrets_prefix(&self.app, StackRole::Production);
            return Err(inherited(
                "secrets",
                format!("list production's own, under {prefix}"),
            ));
        }
        Ok(())
    }
}

/// Whether `arn` looks like an ACM certificate's ARN.
fn check_certificate_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "acm"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("certificate/")
            .is_some_and(|id| !id.is_empty());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{arn:?} is not an ACM certificate ARN \
             (arn:aws:acm:<region>:<account>:certificate/<id>)"
        ))
    }
}

/// A value the config cannot take: the field to name, the dotted path of
/// the key to point at, and why.
struct Problem {
    field: String,
    at: String,
    message: String,
}

#[cfg(test)]
mod tests;
