//! Production releases.

use super::{Capacity, Check};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

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
    /// How traffic moves between releases: `route53` (a weighted alias
    /// record per release stack) or `alb` (one production load balancer,
    /// `<app>-prod-edge`, whose rule on `domain` forwards to the releases'
    /// target groups with weights). `route53` to `alb` on a live
    /// installation moves it without a gap; `alb` back to `route53` is
    /// refused. Default: route53.
    pub strategy: Strategy,
    /// With `strategy: alb`, how long a client stays on the target group it
    /// first reached (target-group stickiness on the forward action), so one
    /// session does not flip between releases during a canary; 1s to 7d.
    /// Default: none (every request is weighted on its own).
    #[serde(with = "humantime_serde")]
    pub sticky: Option<Duration>,
    /// HTTP checks (the same as `preview.checks`) run before each shift of
    /// a release: before its first, against the candidate alone (with
    /// `strategy: alb`, through the test route `next.<domain>`; Route53 has
    /// no such route, so there production is checked as it stands), and
    /// after each bake, against production. A failed check rolls the
    /// release back as an alarm does. Each run is a Check Run on the
    /// released commit. Default: [] (none).
    pub checks: Vec<Check>,
    /// The name of those Check Runs (or, with a token that cannot write
    /// check runs, of the commit status). Default:
    /// "pullstack/production-checks".
    pub checks_name: String,
    /// URLs POSTed a signed JSON body before each shift of a release
    /// (`release`, `step`, `percent`, `weights`, `repository`, `sha`),
    /// signed with HMAC-SHA256 of the key in `PULLSTACK_GATE_SECRET` in the
    /// `X-Pullstack-Signature-256: sha256=<hex>` header. A 2xx answer lets
    /// the shift go on; any other status holds the release, asking again
    /// at the next poll; no answer within `gates_timeout`, or no
    /// connection, rolls it back as an alarm does. https only (http only
    /// to localhost, for tests). Default: [] (none).
    pub gates: Vec<String>,
    /// How long a gate may take to answer. Default: 10s.
    #[serde(with = "humantime_serde")]
    pub gates_timeout: Duration,
}

/// Where production's traffic weights live.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Route53 weighted records, split per resolver.
    #[default]
    Route53,
    /// Weighted target groups on the production load balancer's rule,
    /// split per request.
    Alb,
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
            strategy: Strategy::Route53,
            sticky: None,
            checks: Vec::new(),
            checks_name: "pullstack/production-checks".into(),
            gates: Vec::new(),
            gates_timeout: Duration::from_secs(10),
        }
    }
}
