//! The repository itself: its metadata, branches, collaborator permissions, and the pull
//! requests of a commit.

use axum::extract::{Path, Query, State};
use axum::http::Uri;
use serde_json::{Value, json};

use super::ROLES;
use super::api::{ApiError, ApiResult, Params, Sh, not_found, ok, paginate};
use super::json::{branch_json, pr_json, repo_json, user_json};

pub(super) async fn get_repo(State(sh): Sh, Path((o, r)): Path<(String, String)>) -> ApiResult {
    let v = sh.with_repo(&o, &r, |repo| {
        Ok(repo_json(
            &sh.base,
            &repo.full_name,
            &repo.default_branch,
            false,
        ))
    })?;
    ok(v)
}

/// Real shape: `permission` is the legacy level (maintain→write, triage→read), `role_name` the
/// role. Logins never given to `set_permission` answer 404 (GitHub answers 404 for users it
/// cannot resolve and, on private repos, for non-collaborators); set "none" for a known
/// non-collaborator.
pub(super) async fn get_permission(
    State(sh): Sh,
    Path((o, r, login)): Path<(String, String, String)>,
) -> ApiResult {
    let role = sh.with_repo(&o, &r, |repo| {
        repo.permissions.get(&login).cloned().ok_or_else(not_found)
    })?;
    let rank = ROLES.iter().position(|x| *x == role).unwrap_or(5);
    let legacy = ["admin", "write", "write", "read", "read", "none"][rank];
    let mut user = user_json(&sh.base, &login);
    user["permissions"] = json!({ "admin": rank == 0, "maintain": rank <= 1, "push": rank <= 2, "triage": rank <= 3, "pull": rank <= 4 });
    user["role_name"] = json!(role);
    ok(json!({ "permission": legacy, "role_name": role, "user": user }))
}

pub(super) async fn list_branches(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        Ok(repo
            .branches
            .iter()
            .map(|(n, sha)| branch_json(&sh.base, &repo.full_name, n, sha))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

pub(super) async fn get_branch(
    State(sh): Sh,
    Path((o, r, name)): Path<(String, String, String)>,
) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| {
        let sha = repo.branches.get(&name).ok_or_else(|| ApiError::new(404, "Branch not found"))?;
        let mut v = branch_json(&sh.base, &repo.full_name, &name, sha);
        let api = format!("{}repos/{}/branches/{name}", sh.base, repo.full_name);
        v["_links"] = json!({ "self": api, "html": format!("https://github.com/{}/tree/{name}", repo.full_name) });
        v["protection"] = json!({ "enabled": false, "required_status_checks": { "enforcement_level": "off", "contexts": [], "checks": [] } });
        v["protection_url"] = json!(format!("{api}/protection"));
        Ok(v)
    })?)
}

/// Pull requests whose head is `sha` (as for a fast-forward merge), newest first.
pub(super) async fn commit_pulls(
    State(sh): Sh,
    Path((o, r, sha)): Path<(String, String, String)>,
) -> ApiResult {
    let v = sh.with_repo(&o, &r, |repo| {
        let prs: Vec<Value> = repo
            .prs
            .values()
            .rev()
            .filter(|sp| sp.pr.head_sha == sha)
            .map(|sp| pr_json(&sh.base, repo, sp, false))
            .collect();
        Ok(json!(prs))
    })?;
    ok(v)
}
