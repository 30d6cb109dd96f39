//! The permanent shared stack and the ECR clean-up.

use serde::Deserialize;
use std::time::Duration;

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
