//! The `/_fake/` control routes, for demo scripts to seed and read state over HTTP (no
//! auth, not recorded).

use axum::body::Bytes;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use super::FakePr;
use super::api::{ApiResult, Sh, created, not_found, ok, parse};
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
