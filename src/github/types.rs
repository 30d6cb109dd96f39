//! pullstack's own small types for GitHub's responses: only the fields it
//! reads, so a field GitHub adds or an enum value octocrab does not know
//! (`write`, `maintain`) never breaks parsing.

use crate::domain::naming::RepoName;
use serde::{Deserialize, Serialize};

/// A pull request, as pullstack needs it.
#[derive(Clone, Debug, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub state: String,
    pub title: String,
    #[serde(default)]
    pub merged: bool,
    /// Who merged it; only in a single PR's answer, not in lists.
    #[serde(default)]
    pub merged_by: Option<User>,
    pub head: Ref,
    pub base: Ref,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Moves on pushes, comments, labels and reviews: pullstack's measure
    /// of activity on the PR.
    #[serde(default)]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl PullRequest {
    pub fn is_open(&self) -> bool {
        self.state == "open"
    }

    /// Whether the head branch lives outside `repo` (or its repository is gone).
    pub fn is_fork_of(&self, repo: &RepoName) -> bool {
        self.head
            .repo
            .as_ref()
            .is_none_or(|head| head.full_name != repo.to_string())
    }

    pub fn has_label(&self, name: &str) -> bool {
        self.labels.iter().any(|l| l.name == name)
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Ref {
    pub r#ref: String,
    pub sha: String,
    pub repo: Option<RepoRef>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RepoRef {
    pub full_name: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Label {
    pub name: String,
}

/// An issue comment.
#[derive(Clone, Debug, Deserialize)]
pub struct Comment {
    pub id: u64,
    #[serde(default)]
    pub body: String,
    pub user: User,
    /// When the text last changed, by GitHub's clock.
    #[serde(default)]
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A reaction on a comment.
#[derive(Clone, Debug, Deserialize)]
pub struct Reaction {
    pub user: User,
}

#[derive(Clone, Debug, Deserialize)]
pub struct User {
    pub login: String,
}

#[derive(Deserialize)]
pub(super) struct Created {
    pub(super) id: u64,
}

#[derive(Deserialize)]
pub(super) struct Permission {
    pub(super) permission: String,
    pub(super) role_name: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct App {
    pub(super) slug: String,
}

/// A GitHub Deployment status state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    InProgress,
    Success,
    Failure,
    Error,
    Inactive,
}

impl DeploymentState {
    /// The name GitHub gives the state.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::InProgress => "in_progress",
            DeploymentState::Success => "success",
            DeploymentState::Failure => "failure",
            DeploymentState::Error => "error",
            DeploymentState::Inactive => "inactive",
        }
    }
}

/// A commit status state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}
