//! A repository's own `.pullstack.yaml`, read from its default branch, and
//! how it is laid over the server's config.
//!
//! A repository says what its team owns (app name, sizes, env, secrets,
//! health path, port, production settings); the server keeps what only
//! operators decide (limits, the edge, the shared stack, the queue, GitHub
//! pacing) and the ceilings in `allow:`, which a repository cannot pass.

use super::validate::Problem;
use super::{AllowConfig, Check, Config, ConfigError, DatabaseConfig, Gate, OneOffTask};
use crate::domain::globs::{Globs, RepoGlobs};
use crate::domain::naming::RepoName;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Where each repository keeps its config, on its default branch.
pub const REPO_FILE: &str = ".pullstack.yaml";

/// The whole `.pullstack.yaml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Short name of the app: lower-case letters, digits and dashes, at
    /// most 24 characters. Stack names start with it, so no two
    /// repositories of one server may share it. Required.
    pub app: String,
    /// The repository's previews. Default: the server's `preview:`.
    #[serde(default)]
    pub preview: RepoPreview,
    /// The repository's production releases. Default: the server's
    /// `production:`.
    #[serde(default)]
    pub production: RepoProduction,
}

/// What a repository may set of `preview:`; each unset field keeps the
/// server's value.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepoPreview {
    /// Whether pull requests get previews. Default: the server's.
    pub enabled: Option<bool>,
    /// Fargate CPU units, at most the server's `allow.cpu`. Default: the server's.
    pub cpu: Option<String>,
    /// Fargate memory in MiB, at most the server's `allow.memory`. Default: the server's.
    pub memory: Option<String>,
    /// The port the container listens on. Default: the server's.
    pub port: Option<u16>,
    /// The path the load balancer and the ready check probe. Default: the server's.
    pub health_path: Option<String>,
    /// Number of tasks, at most the server's `allow.desired_count`. Default: the server's.
    pub desired_count: Option<u32>,
    /// Environment variables; replaces the server's whole map. Default: the server's.
    pub env: Option<BTreeMap<String, String>>,
    /// Secrets, under `pullstack/<app>/preview/`; replaces the server's
    /// whole map. Default: the server's.
    pub secrets: Option<BTreeMap<String, String>>,
    /// The IAM role preview tasks run as. Default: the server's.
    pub task_role_arn: Option<String>,
    /// Whether "ready" also needs the URL to answer `health_path` with a
    /// 2xx status. Default: the server's.
    pub ready_check: Option<bool>,
    /// How long the ready check may take. Default: the server's.
    #[serde(default, with = "humantime_serde")]
    pub ready_timeout: Option<Duration>,
    /// Branches with environments of their own, as globs. Default: the server's.
    pub branches: Option<Globs>,
    /// A command run on the image before a commit takes traffic
    /// (migrations, seed data). Default: the server's.
    pub before_traffic: Option<OneOffTask>,
    /// A command run before the environment is torn down. Default: the
    /// server's.
    pub on_delete: Option<OneOffTask>,
    /// An Aurora copy-on-write clone of the team's cluster per environment.
    /// Default: the server's.
    pub database: Option<DatabaseConfig>,
    /// HTTP checks run after every ready deploy; replaces the server's
    /// whole list. Default: the server's.
    pub checks: Option<Vec<Check>>,
    /// The name of the checks' Check Run. Default: the server's.
    pub checks_name: Option<String>,
}

/// What a repository may set of `production:`; each unset field keeps the
/// server's value.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepoProduction {
    /// Whether merges are released; only repositories in the server's
    /// `allow.production` may turn this on. Default: the server's.
    pub enabled: Option<bool>,
    /// The production DNS name. Default: the server's.
    pub domain: Option<String>,
    /// The Route53 hosted zone id of `domain`. Default: the server's.
    pub hosted_zone_id: Option<String>,
    /// An ACM certificate for `domain`. Default: the server's.
    pub certificate_arn: Option<String>,
    /// The branch releases come from. Default: the server's.
    pub branch: Option<String>,
    /// Fargate CPU units, at most the server's `allow.cpu`. Default: the server's.
    pub cpu: Option<String>,
    /// Fargate memory in MiB, at most the server's `allow.memory`. Default: the server's.
    pub memory: Option<String>,
    /// Number of tasks, at most the server's `allow.desired_count`. Default: the server's.
    pub desired_count: Option<u32>,
    /// Canary steps in percent, ending at 100. Default: the server's.
    pub steps: Option<Vec<u8>>,
    /// Bake time after each step. Default: the server's.
    #[serde(default, with = "humantime_serde")]
    pub bake: Option<Duration>,
    /// `full` or `stack`. Default: the server's.
    pub gate: Option<Gate>,
    /// CloudWatch alarms that roll a shift back. Default: the server's.
    pub alarms: Option<Vec<String>>,
    /// Environment variables for production. Default: the server's.
    pub env: Option<BTreeMap<String, String>>,
    /// Secrets, under `pullstack/<app>/production/`. Default: the server's.
    pub secrets: Option<BTreeMap<String, String>>,
    /// The IAM role production tasks run as. Default: the server's.
    pub task_role_arn: Option<String>,
    /// HTTP checks run before each shift of a release; replaces the
    /// server's whole list. Gate hooks stay the server's: they are signed
    /// with its key. Default: the server's.
    pub checks: Option<Vec<Check>>,
    /// The name of those checks' Check Runs. Default: the server's.
    pub checks_name: Option<String>,
}

impl Config {
    /// The config `repo` runs under: this server config with its
    /// `.pullstack.yaml` (`text`) laid over it. Errors name
    /// `.pullstack.yaml`, the line, the column and the field.
    pub fn for_repository(&self, repo: &RepoName, text: &str) -> Result<Config, ConfigError> {
        self.for_repository_file(Path::new(REPO_FILE), repo, text)
    }

    /// [`Config::for_repository`] for a copy of the file at `path`, which
    /// errors name instead.
    pub fn for_repository_file(
        &self,
        path: &Path,
        repo: &RepoName,
        text: &str,
    ) -> Result<Config, ConfigError> {
        let own: RepoConfig = super::read_yaml(path, text)?;
        let mut merged = self.clone();
        // What the server names stays the server's.
        merged.shared.stack_name = Some(self.shared_stack_name());
        merged.queue.sqs.queue = Some(self.sqs_queue());
        merged.queue.sqs.table = Some(self.lease_table());
        merged.repositories = RepoGlobs::default();
        merged.repository = repo.to_string();
        merged.app = own.app.clone();
        own.lay_over(&mut merged, &self.allow, repo)
            .map_err(|problem| problem.at_in(path, text))?;
        merged.check(path, text)?;
        Ok(merged)
    }
}

impl RepoConfig {
    fn lay_over(
        self,
        to: &mut Config,
        allow: &AllowConfig,
        repo: &RepoName,
    ) -> Result<(), Problem> {
        let (preview, production) = (self.preview, self.production);
        check_size(
            "preview.cpu",
            preview.cpu.as_deref(),
            allow.cpu,
            "allow.cpu",
        )?;
        check_size(
            "preview.memory",
            preview.memory.as_deref(),
            allow.memory,
            "allow.memory",
        )?;
        check_count("preview.desired_count", preview.desired_count, allow)?;
        check_size(
            "production.cpu",
            production.cpu.as_deref(),
            allow.cpu,
            "allow.cpu",
        )?;
        check_size(
            "production.memory",
            production.memory.as_deref(),
            allow.memory,
            "allow.memory",
        )?;
        check_count("production.desired_count", production.desired_count, allow)?;
        if production.enabled == Some(true) && !allow.production.0.matches(&repo.to_string()) {
            return Err(Problem::at(
                "production.enabled",
                format!("this server does not release {repo} to production (its allow.production)"),
            ));
        }
        let p = &mut to.preview;
        set(&mut p.enabled, preview.enabled);
        set(&mut p.cpu, preview.cpu);
        set(&mut p.memory, preview.memory);
        set(&mut p.port, preview.port);
        set(&mut p.health_path, preview.health_path);
        set(&mut p.desired_count, preview.desired_count);
        set(&mut p.env, preview.env);
        set(&mut p.secrets, preview.secrets);
        if preview.task_role_arn.is_some() {
            p.task_role_arn = preview.task_role_arn;
        }
        set(&mut p.ready_check, preview.ready_check);
        set(&mut p.ready_timeout, preview.ready_timeout);
        set(&mut p.branches, preview.branches);
        if preview.before_traffic.is_some() {
            p.before_traffic = preview.before_traffic;
        }
        if preview.on_delete.is_some() {
            p.on_delete = preview.on_delete;
        }
        if preview.database.is_some() {
            p.database = preview.database;
        }
        set(&mut p.checks, preview.checks);
        set(&mut p.checks_name, preview.checks_name);
        let p = &mut to.production;
        set(&mut p.enabled, production.enabled);
        set(&mut p.domain, production.domain);
        set(&mut p.hosted_zone_id, production.hosted_zone_id);
        set(&mut p.certificate_arn, production.certificate_arn);
        if production.branch.is_some() {
            p.branch = production.branch;
        }
        set(&mut p.cpu, production.cpu);
        set(&mut p.memory, production.memory);
        set(&mut p.desired_count, production.desired_count);
        set(&mut p.steps, production.steps);
        set(&mut p.bake, production.bake);
        set(&mut p.gate, production.gate);
        set(&mut p.alarms, production.alarms);
        if production.env.is_some() {
            p.env = production.env;
        }
        if production.secrets.is_some() {
            p.secrets = production.secrets;
        }
        if production.task_role_arn.is_some() {
            p.task_role_arn = production.task_role_arn;
        }
        set(&mut p.checks, production.checks);
        set(&mut p.checks_name, production.checks_name);
        Ok(())
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// A CPU or memory size is a number no larger than the server allows.
fn check_size(field: &str, value: Option<&str>, most: u32, ceiling: &str) -> Result<(), Problem> {
    let Some(value) = value else { return Ok(()) };
    match value.trim().parse::<u32>() {
        Ok(asked) if asked <= most => Ok(()),
        Ok(asked) => Err(Problem::at(
            field,
            format!("{asked} is more than this server allows ({ceiling}: {most})"),
        )),
        Err(_) => Err(Problem::at(field, format!("{value:?} is not a number"))),
    }
}

fn check_count(field: &str, value: Option<u32>, allow: &AllowConfig) -> Result<(), Problem> {
    match value {
        Some(asked) if asked > allow.desired_count => Err(Problem::at(
            field,
            format!(
                "{asked} tasks is more than this server allows (allow.desired_count: {})",
                allow.desired_count
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
