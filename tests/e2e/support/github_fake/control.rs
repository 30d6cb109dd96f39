//! The `/_fake/` control routes, for demo scripts to seed and read state over HTTP (no
//! auth, not recorded).

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use super::FakePr;
use super::api::{ApiError, ApiResult, Sh, created, not_found, ok, parse};
use super::pulls::upsert;

#[derive(Deserialize)]
struct ControlPr {
    /// Defaults to the only (or first) repository.
    repo: Option<String>,
    #[serde(flatten)]
    pr: FakePr,
}

/// `POST /_fake/prs` with a FakePr JSON (missing fields take `FakePr::default()` values).
pub(super) async fn fake_post_pr(State(sh): Sh, body: Bytes) -> ApiResult {
    let ControlPr { repo, pr } = parse(&body)?;
    let repo = repo
        .or_else(|| sh.lock().repos.values().next().map(|r| r.full_name.clone()))
        .ok_or_else(not_found)?;
    created(serde_json::to_value(upsert(&sh, &repo, pr)?).expect("serialize"))
}

#[derive(Deserialize)]
struct ControlMerge {
    /// Defaults to the only (or first) repository.
    repo: Option<String>,
    number: u64,
    merged_by: String,
}

/// `POST /_fake/merge` with `{"repo", "number", "merged_by"}`: merges an open
/// PR as a fast-forward (its base branch moves to its head commit), closed
/// and merged by `merged_by`, as GitHub's merge button does. Answers the PR.
pub(super) async fn fake_merge(State(sh): Sh, body: Bytes) -> ApiResult {
    let ControlMerge {
        repo,
        number,
        merged_by,
    } = parse(&body)?;
    let repo = repo
        .or_else(|| sh.lock().repos.values().next().map(|r| r.full_name.clone()))
        .ok_or_else(not_found)?;
    let merged = sh.repo(&repo, |r| {
        let stored = r.prs.get_mut(&number).ok_or_else(not_found)?;
        if stored.pr.state != "open" {
            return Err(ApiError::new(405, "Pull Request is not mergeable"));
        }
        stored.pr.state = "closed".into();
        stored.pr.merged = true;
        stored.pr.merged_by = merged_by;
        stored.updated_at = chrono::Utc::now();
        let pr = stored.pr.clone();
        r.branches.insert(pr.base_ref.clone(), pr.head_sha.clone());
        Ok(pr)
    })?;
    ok(serde_json::to_value(merged).expect("serialize"))
}

pub(super) async fn fake_comments(
    State(sh): Sh,
    Path((o, r, n)): Path<(String, String, u64)>,
) -> ApiResult {
    let v = sh.with_repo(&o, &r, |repo| {
        Ok(json!(
            repo.comments
                .iter()
                .filter(|c| c.issue == n)
                .collect::<Vec<_>>()
        ))
    })?;
    ok(v)
}

pub(super) async fn fake_deployments(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| Ok(json!(repo.deployments)))?)
}

pub(super) async fn fake_requests(State(sh): Sh) -> ApiResult {
    ok(json!(sh.lock().requests))
}
