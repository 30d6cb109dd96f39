//! The shared stack's outputs, which every environment stack builds on.

use super::stacks::Stacks;
use anyhow::Context;

/// What pullstack reads from the shared stack.
#[derive(Clone, Debug)]
pub struct Shared {
    pub stack_name: String,
    pub repository_name: String,
    pub repository_uri: String,
    /// The ECS cluster every environment's service runs in.
    pub cluster_name: String,
    /// The CloudWatch Logs group every environment's tasks write to.
    pub log_group: String,
    /// The subnets every environment's service runs in.
    pub subnets: Vec<String>,
    /// Where previews' database clones go: the DB subnet group and the
    /// security group. `None` from a shared stack made before they existed.
    pub database: Option<(String, String)>,
}

impl Shared {
    /// Reads the shared stack; fails with the command to run when it is missing.
    pub async fn load(stacks: &Stacks, name: &str) -> anyhow::Result<Shared> {
        let stack = stacks
            .describe(name)
            .await?
            .with_context(|| format!("shared stack {name} not found: run `pullstack bootstrap`"))?;
        let output = |key: &str| {
            stack.output(key).map(str::to_owned).with_context(|| {
                format!("shared stack {name} has no {key} output; re-run `pullstack bootstrap`")
            })
        };
        Ok(Shared {
            stack_name: name.to_owned(),
            repository_name: output("RepositoryName")?,
            repository_uri: output("RepositoryUri")?,
            cluster_name: output("ClusterName")?,
            log_group: output("LogGroupName")?,
            subnets: vec![output("SubnetA")?, output("SubnetB")?],
            database: output("DatabaseSubnetGroupName")
                .ok()
                .zip(output("DatabaseSecurityGroupId").ok()),
        })
    }

    /// The image for a commit, by its tag.
    pub fn image(&self, sha: &str) -> String {
        format!("{}:{sha}", self.repository_uri)
    }

    /// The image with this digest, whatever its tags name later.
    pub fn image_at(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repository_uri)
    }
}
