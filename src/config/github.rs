//! GitHub write pacing.

use serde::Deserialize;

/// GitHub write pacing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitHubConfig {
    /// Content-creating requests (comments, reactions, deployments, statuses)
    /// in any 60-second window, restarts included: they are spaced evenly,
    /// and a new process starts with none in hand. With the SQS backend,
    /// the replicas alive share them evenly. GitHub's secondary limit is
    /// 80. Default: 80.
    pub writes_per_minute: u32,
}

impl Default for GitHubConfig {
    fn default() -> Self {
        GitHubConfig {
            writes_per_minute: 80,
        }
    }
}
