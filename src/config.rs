//! The strict YAML config (`pullstack.yaml`).
//!
//! Every field has a default stated in its doc comment and in the annotated
//! `pullstack.example.yaml`. Unknown fields are errors, and every error names
//! the file, line, column and field. Secrets never live here: they come from
//! the environment (see [`crate::settings`]).

use crate::domain::globs::RepoGlobs;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod access;
mod allow;
mod checks;
mod container;
mod edge;
mod github;
mod locate;
mod preview;
mod production;
mod queue;
mod repo;
mod shared;
mod validate;

pub use access::{AccessConfig, CognitoConfig, OidcConfig};
pub use allow::AllowConfig;
pub use checks::{Check, Method, Pattern, TaskCheck};
pub use container::{Container, StackRole, secrets_prefix};
pub use edge::{ALB_RULES, EdgeConfig, EdgeMode};
pub use github::GitHubConfig;
pub use preview::{Capacity, DatabaseConfig, IdleConfig, LimitsConfig, OneOffTask, PreviewConfig};
pub use production::{Gate, ProductionConfig, Strategy};
pub use queue::{Backend, QueueConfig, ResyncConfig, SqsConfig};
pub use repo::{REPO_FILE, RepoConfig};
pub use shared::{ImagesConfig, SharedConfig};
use validate::Problem;

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
    /// 24 characters. Stack names start with it. With `repositories:` it
    /// names the server's own shared stack, queue and lease table, and each
    /// repository names its app in its `.pullstack.yaml`. Required.
    pub app: String,
    /// The GitHub repository the app is built from, as `owner/name`.
    /// Required unless `repositories:` is set; never both. Default: "".
    #[serde(default)]
    pub repository: String,
    /// Serve every repository of the GitHub App's installations that
    /// matches one of these globs (`acme/*`, `acme/web`), each with its own
    /// `.pullstack.yaml` laid over this config. Needs GitHub App
    /// credentials. Default: [] (serve `repository:` only).
    #[serde(default)]
    pub repositories: RepoGlobs,
    /// What repositories served through `repositories:` may ask for in
    /// their `.pullstack.yaml`.
    #[serde(default)]
    pub allow: AllowConfig,
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
        let config: Config = read_yaml(path, text)?;
        config.check(path, text)?;
        Ok(config)
    }

    /// Whether this server serves the repositories of its App's
    /// installations (`repositories:`) rather than one.
    pub fn serves_many(&self) -> bool {
        !self.repositories.0.is_empty()
    }

    /// Validates a parsed config; errors point into `text`, read from `path`.
    fn check(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        self.validate()
            .map_err(|(field, message)| Problem::at(field, message))
            .and_then(|()| self.validate_containers())
            .and_then(|()| {
                let host_rules =
                    self.edge_mode() == EdgeMode::Shared || self.dedicated_certificate().is_some();
                self.preview
                    .access
                    .validate(&self.app, host_rules)
                    .map_err(|(field, message)| Problem {
                        at: field.clone(),
                        field,
                        message,
                    })
            })
            .map_err(|problem| problem.at_in(path, text))
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

    /// The certificate a preview's own load balancer serves in dedicated
    /// mode (`edge.certificate_arn`, for `*.<preview.dns_zone>`): it then
    /// answers on HTTPS through host rules, as the shared edge does.
    pub fn dedicated_certificate(&self) -> Option<&str> {
        let preview = &self.preview;
        (self.edge_mode() == EdgeMode::Dedicated
            && !self.edge.certificate_arn.is_empty()
            && !preview.dns_zone.is_empty()
            && !preview.hosted_zone_id.is_empty())
        .then_some(self.edge.certificate_arn.as_str())
    }

    /// The shared stack's name.
    pub fn shared_stack_name(&self) -> String {
        self.shared
            .stack_name
            .clone()
            .unwrap_or_else(|| crate::domain::naming::shared_stack_name(&self.app))
    }
}

/// Where the key at dotted path `at` (`preview.cpu`) is written in `text`,
/// as (line, column); the top of the file when it is not.
pub fn key_position(text: &str, at: &str) -> (usize, usize) {
    locate::locate(text, at)
}

/// Reads YAML into `T`; an error names `path` and where in `text` it is.
fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    serde_yaml::from_str(text).map_err(|err| {
        let (line, column) = err
            .location()
            .map_or((1, 1), |loc| (loc.line(), loc.column()));
        ConfigError::Invalid {
            file: path.to_owned(),
            line,
            column,
            message: err.to_string(),
        }
    })
}

#[cfg(test)]
mod tests;
