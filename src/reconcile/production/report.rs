//! Where production's steps are recorded on GitHub: the `production`
//! Deployment of each release (every step, promotion and rollback) and a
//! comment on the merged PR when its release is rolled back.

use crate::config::Config;
use crate::domain::release::{Ignored, TOTAL};
use crate::domain::rollout::{Log, View};
use crate::github::client::{DeploymentState, Forge};

/// Records production's steps; without GitHub credentials it can only log
/// that nothing was recorded.
pub struct Reporter<'a> {
    forge: Option<&'a Forge>,
    url: String,
}

impl<'a> Reporter<'a> {
    pub fn github(forge: &'a Forge, config: &Config) -> Reporter<'a> {
        Reporter {
            forge: Some(forge),
            url: super::url(config),
        }
    }

    /// For a CLI run without GitHub credentials.
    pub fn log_only(config: &Config) -> Reporter<'a> {
        Reporter {
            forge: None,
            url: super::url(config),
        }
    }

    fn forge(&self) -> Option<&'a Forge> {
        if self.forge.is_none() {
            tracing::warn!(
                "no GitHub credentials: this step is not recorded on the production Deployment \
                 (set PULLSTACK_GITHUB_TOKEN or the GitHub App's variables)"
            );
        }
        self.forge
    }

    /// A new release of `image`: its Deployment, waiting for the health
    /// gate, saying which image and any title directive it did not follow.
    pub async fn started(
        &self,
        sha: &str,
        stack: &str,
        image: Option<&str>,
        ignored: Option<&Ignored>,
    ) -> anyhow::Result<Option<u64>> {
        let Some(forge) = self.forge() else {
            return Ok(None);
        };
        let mut description = format!("release {stack}");
        if let Some((_, digest)) = image.and_then(|i| i.split_once('@')) {
            description.push_str(&format!(" of {digest}"));
        }
        let mut why = "waiting for the health gate".to_owned();
        if let Some(ignored) = ignored {
            description.push_str(&format!("; {ignored}; the configured steps apply"));
            why = format!("{ignored}; waiting for the health gate");
        }
        let id = forge
            .create_deployment(sha, "production", false, true, &description)
            .await?;
        forge
            .deployment_status(id, DeploymentState::InProgress, None, &why)
            .await?;
        Ok(Some(id))
    }

    /// The release in flight now has `percent` of the traffic.
    pub async fn shifted(&self, log: &Log, percent: u8) -> anyhow::Result<()> {
        let (Some(forge), Some(id)) = (self.forge(), log.deployment) else {
            return Ok(());
        };
        let state = if percent >= TOTAL {
            DeploymentState::Success
        } else {
            DeploymentState::InProgress
        };
        let description = format!("{percent}% of traffic");
        forge
            .deployment_status(id, state, Some(&self.url), &description)
            .await?;
        if state == DeploymentState::Success {
            retire_others(forge, id).await?;
        }
        Ok(())
    }

    /// A step of the release in flight on its Deployment (`deployment`),
    /// which stays in progress: its checks passed.
    pub async fn note(&self, deployment: Option<u64>, why: &str) -> anyhow::Result<()> {
        let (Some(forge), Some(id)) = (self.forge(), deployment) else {
            return Ok(());
        };
        forge
            .deployment_status(id, DeploymentState::InProgress, Some(&self.url), why)
            .await?;
        Ok(())
    }

    /// A gate holds the release in flight; `why` names it and its answer.
    pub async fn held(&self, deployment: Option<u64>, why: &str) -> anyhow::Result<()> {
        self.note(deployment, why).await
    }

    /// The release `stack` was stopped by its gates before it had any
    /// traffic: its Deployment fails, and the merged PR is told why.
    pub async fn stopped(&self, view: &View, stack: &str, reason: &str) -> anyhow::Result<()> {
        let Some(forge) = self.forge() else {
            return Ok(());
        };
        if let Some(id) = release_deployment(view, stack) {
            let why = format!("stopped before any traffic: {reason}");
            forge
                .deployment_status(id, DeploymentState::Failure, None, &why)
                .await?;
        }
        let sha = (view.stacks.iter())
            .find(|s| s.name == stack)
            .map(|s| s.sha.clone())
            .unwrap_or_default();
        if let Some(pr) = forge.pulls_for_commit(&sha).await?.first() {
            let body =
                format!("⛔ **Production release stopped**: `{stack}` got no traffic: {reason}.");
            forge.create_comment(pr.number, &body).await?;
        }
        Ok(())
    }

    /// The release `stack` failed or never became healthy.
    pub async fn failed(&self, view: &View, stack: &str) -> anyhow::Result<()> {
        let Some(id) = release_deployment(view, stack) else {
            return Ok(());
        };
        let Some(forge) = self.forge() else {
            return Ok(());
        };
        let why = "the new stack failed or never became healthy; it got no traffic";
        forge
            .deployment_status(id, DeploymentState::Failure, None, why)
            .await?;
        Ok(())
    }

    /// All traffic moved from `from` back to `to`: the release fails, the
    /// target gets a Deployment of its own, and the merged PR is told.
    pub async fn rolled_back(
        &self,
        view: &View,
        from: &str,
        to: &str,
        reason: &str,
    ) -> anyhow::Result<()> {
        let Some(forge) = self.forge() else {
            return Ok(());
        };
        if let Some(id) = release_deployment(view, from) {
            let why = format!("rolled back: {reason}");
            forge
                .deployment_status(id, DeploymentState::Failure, None, &why)
                .await?;
        }
        let sha_of = |name: &str| {
            view.stacks
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.sha.clone())
                .unwrap_or_default()
        };
        let id = forge
            .create_deployment(
                &sha_of(to),
                "production",
                false,
                true,
                &format!("rollback to {to}"),
            )
            .await?;
        let why = format!("rolled back from {from}: {reason}");
        forge
            .deployment_status(id, DeploymentState::Success, Some(&self.url), &why)
            .await?;
        if let Some(pr) = forge.pulls_for_commit(&sha_of(from)).await?.first() {
            let body = format!("⏪ **Production rolled back** from `{from}` to `{to}`: {reason}.");
            forge.create_comment(pr.number, &body).await?;
        }
        retire_others(forge, id).await
    }

    /// A release was replaced by `by` before it held all the traffic: its
    /// Deployment is closed, not left in progress.
    pub async fn replaced(&self, view: &View, replaced: &str, by: &str) -> anyhow::Result<()> {
        let (Some(forge), Some(id)) = (self.forge(), release_deployment(view, replaced)) else {
            return Ok(());
        };
        let why = format!("replaced by {by} before it held all the traffic");
        forge
            .deployment_status(id, DeploymentState::Inactive, None, &why)
            .await?;
        Ok(())
    }

    /// The release in flight was promoted to all traffic by `by`.
    pub async fn promoted(&self, log: &Log, by: &str) -> anyhow::Result<()> {
        let (Some(forge), Some(id)) = (self.forge(), log.deployment) else {
            return Ok(());
        };
        let why = format!("promoted by {by}");
        forge
            .deployment_status(id, DeploymentState::Success, Some(&self.url), &why)
            .await?;
        retire_others(forge, id).await
    }
}

/// Marks every other production Deployment still shown as live inactive:
/// GitHub deactivates none of them on its own, since they are production
/// environments.
async fn retire_others(forge: &Forge, current: u64) -> anyhow::Result<()> {
    for (id, _) in forge.deployments("production", None, 100).await? {
        if id == current {
            continue;
        }
        let state = forge.deployment_state(id).await?;
        if matches!(
            state.as_deref(),
            None | Some("success" | "in_progress" | "queued" | "pending")
        ) {
            forge
                .deployment_status(
                    id,
                    DeploymentState::Inactive,
                    None,
                    "a newer release holds the traffic",
                )
                .await?;
        }
    }
    Ok(())
}

/// The Deployment of `stack`, when it is the release the log tracks.
fn release_deployment(view: &View, stack: &str) -> Option<u64> {
    view.log
        .deployment
        .filter(|_| view.log.release.as_deref() == Some(stack))
}
