//! Commit statuses: creating one on a sha, listing those of a sha or branch.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use chrono::Utc;
use serde::Deserialize;

use super::FakeStatus;
use super::api::{ApiResult, Params, Sh, check_description, created, invalid, paginate, parse};
use super::json::status_json;

#[derive(Deserialize)]
struct NewStatus {
    state: String,
    target_url: Option<String>,
    description: Option<String>,
    context: Option<String>,
}

pub(super) async fn create_status(
    State(sh): Sh,
    Path((o, r, sha)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    let ns: NewStatus = parse(&body)?;
    if !["error", "failure", "pending", "success"].contains(&ns.state.as_str()) {
        return Err(invalid(
            "Status",
            "state",
            "state is not included in the list",
        ));
    }
    check_description("Status", ns.description.as_deref())?;
    let id = sh.id();
    created(sh.with_repo(&o, &r, |repo| {
        let context = ns.context.unwrap_or_else(|| "default".into());
        let s = FakeStatus {
            id,
            sha,
            state: ns.state,
            context,
            description: ns.description,
            target_url: ns.target_url,
            created_at: Utc::now(),
        };
        repo.statuses.push(s.clone());
        Ok(status_json(&sh.base, &repo.full_name, &s))
    })?)
}

/// `git_ref` may be a sha or a branch name. Newest first.
pub(super) async fn list_statuses(
    State(sh): Sh,
    Path((o, r, git_ref)): Path<(String, String, String)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        let sha = repo.resolve(&git_ref);
        let found = repo.statuses.iter().rev().filter(|s| s.sha == sha);
        Ok(found
            .map(|s| status_json(&sh.base, &repo.full_name, s))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}
