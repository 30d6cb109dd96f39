//! Pull requests: storing one, listing them with GitHub's filters, and reading one.

use axum::extract::{Path, Query, State};
use axum::http::Uri;
use chrono::Utc;

use super::api::{ApiError, ApiResult, Params, Sh, not_found, ok, paginate};
use super::json::pr_json;
use super::{FakePr, Shared, StoredPr};

pub(super) fn upsert(sh: &Shared, repo: &str, mut pr: FakePr) -> Result<FakePr, ApiError> {
    sh.repo(repo, |r| {
        if pr.head_repo.is_empty() {
            pr.head_repo = r.full_name.clone();
        }
        let now = Utc::now();
        let created_at = r.prs.get(&pr.number).map_or(now, |p| p.created_at);
        r.prs.insert(
            pr.number,
            StoredPr {
                pr: pr.clone(),
                created_at,
                updated_at: now,
            },
        );
        Ok(pr)
    })
}

/// `state` (open|closed|all, default open), `head` ("owner:branch") and `base` filters; newest first.
pub(super) async fn list_pulls(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let state = q.get("state").map_or("open", String::as_str);
    let items = sh.with_repo(&o, &r, |repo| {
        let keep = |p: &FakePr| {
            let head_ok = q.get("head").is_none_or(|h| {
                let owner = p.head_repo.split('/').next().unwrap_or("");
                h.split_once(':')
                    .is_some_and(|(ho, hr)| ho.eq_ignore_ascii_case(owner) && hr == p.head_ref)
            });
            (state == "all" || p.state == state)
                && head_ok
                && q.get("base").is_none_or(|b| *b == p.base_ref)
        };
        Ok(repo
            .prs
            .values()
            .rev()
            .filter(|sp| keep(&sp.pr))
            .map(|sp| pr_json(&sh.base, repo, sp, false))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

pub(super) async fn get_pull(
    State(sh): Sh,
    Path((o, r, n)): Path<(String, String, u64)>,
) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| {
        Ok(pr_json(
            &sh.base,
            repo,
            repo.prs.get(&n).ok_or_else(not_found)?,
            true,
        ))
    })?)
}
