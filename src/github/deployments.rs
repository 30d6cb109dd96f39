//! Deployments and commit statuses: how an environment's outcome reaches a
//! commit on GitHub.

use super::client::{DeploymentState, Forge, Result, StatusState};
use super::pacing::Priority;
use super::types::Created;
use chrono::{DateTime, Utc};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

/// A Deployment as GitHub lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct Listed {
    pub id: u64,
    pub sha: String,
    /// When its newest status was added (or it was created, without one):
    /// GitHub gives whole seconds.
    pub updated_at: DateTime<Utc>,
}

impl Forge {
    /// Creates a Deployment of `sha` to `environment`; returns its id.
    pub async fn create_deployment(
        &self,
        sha: &str,
        environment: &str,
        transient: bool,
        production: bool,
        description: &str,
    ) -> Result<u64> {
        let created: Created = self
            .write_post(
                format!("/repos/{}/deployments", self.repo()),
                &serde_json::json!({
                    "ref": sha,
                    "environment": environment,
                    "description": description,
                    "transient_environment": transient,
                    "production_environment": production,
                    "auto_merge": false,
                    "required_contexts": [],
                }),
                Priority::Record,
            )
            .await?;
        Ok(created.id)
    }

    /// Deployments to `environment` (of `sha` only, if given), newest first,
    /// at most `limit` (up to 100): (id, sha).
    pub async fn deployments(
        &self,
        environment: &str,
        sha: Option<&str>,
        limit: u8,
    ) -> Result<Vec<(u64, String)>> {
        let listed = self.listed_deployments(environment, sha, limit).await?;
        Ok(listed.into_iter().map(|d| (d.id, d.sha)).collect())
    }

    /// [`Forge::deployments`], with when each last changed.
    pub async fn listed_deployments(
        &self,
        environment: &str,
        sha: Option<&str>,
        limit: u8,
    ) -> Result<Vec<Listed>> {
        let environment = utf8_percent_encode(environment, NON_ALPHANUMERIC);
        let sha = sha.map(|sha| format!("&sha={sha}")).unwrap_or_default();
        self.get(format!(
            "/repos/{}/deployments?environment={environment}{sha}&per_page={}",
            self.repo(),
            limit.min(100)
        ))
        .await
    }

    /// The state of a Deployment's newest status (`success`, `inactive`…),
    /// or `None` if it has none yet.
    pub async fn deployment_state(&self, deployment: u64) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Status {
            state: String,
        }
        let newest: Vec<Status> = self
            .get(format!(
                "/repos/{}/deployments/{deployment}/statuses?per_page=1",
                self.repo()
            ))
            .await?;
        Ok(newest.into_iter().next().map(|s| s.state))
    }

    pub async fn deployment_status(
        &self,
        deployment: u64,
        state: DeploymentState,
        environment_url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let mut body = serde_json::json!({
            "state": state,
            "description": truncate(description, 140),
            "auto_inactive": true,
        });
        if let Some(url) = environment_url {
            body["environment_url"] = url.into();
        }
        let _: serde_json::Value = self
            .write_post(
                format!("/repos/{}/deployments/{deployment}/statuses", self.repo()),
                &body,
                Priority::Record,
            )
            .await?;
        Ok(())
    }

    pub async fn commit_status(
        &self,
        sha: &str,
        context: &str,
        state: StatusState,
        target_url: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let mut body = serde_json::json!({
            "state": state,
            "context": context,
            "description": truncate(description, 140),
        });
        if let Some(url) = target_url {
            body["target_url"] = url.into();
        }
        let _: serde_json::Value = self
            .write_post(
                format!("/repos/{}/statuses/{sha}", self.repo()),
                &body,
                Priority::Record,
            )
            .await?;
        Ok(())
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
