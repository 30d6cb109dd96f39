//! What the repositories of an organisation server may ask for in their
//! own `.pullstack.yaml`.

use crate::domain::globs::RepoGlobs;
use serde::Deserialize;

/// Ceilings on what a repository's `.pullstack.yaml` may ask for. Only
/// used with `repositories:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllowConfig {
    /// The most Fargate CPU units a repository may give a task, preview
    /// or production. Default: 1024.
    pub cpu: u32,
    /// The most Fargate memory, in MiB, a repository may give a task.
    /// Default: 2048.
    pub memory: u32,
    /// The most tasks a repository may run per environment. Default: 2.
    pub desired_count: u32,
    /// Repositories (globs such as `acme/web`) whose `.pullstack.yaml` may
    /// turn production releases on. Default: [] (none).
    pub production: RepoGlobs,
}

impl Default for AllowConfig {
    fn default() -> Self {
        AllowConfig {
            cpu: 1024,
            memory: 2048,
            desired_count: 2,
            production: RepoGlobs::default(),
        }
    }
}
