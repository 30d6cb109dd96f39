//! Who is calling: the authenticated user or GitHub App, the app's installation and its
//! access tokens, and the rate limit.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri, header};
use chrono::Utc;
use serde_json::{Value, json};

use super::BOT_LOGIN;
use super::api::{ApiError, ApiResult, Params, Sh, created, not_found, ok, paginate};
use super::json::{installation_permissions, repo_json, stable_id, ts, user_json};

pub(super) async fn get_installation(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
) -> ApiResult {
    let full = sh.with_repo(&o, &r, |repo| Ok(repo.full_name.clone()))?;
    let installations = sh.lock().installations();
    let id = (installations.iter())
        .find(|(_, repos)| repos.iter().any(|r| r.eq_ignore_ascii_case(&full)))
        .map(|(id, _)| *id)
        .ok_or_else(not_found)?;
    let owner = full.split('/').next().unwrap_or("").to_string();
    ok(installation_json(&sh.base, id, &owner))
}

/// `GET /app/installations` (JWT auth): every installation of the App.
pub(super) async fn list_installations(
    State(sh): Sh,
    headers: HeaderMap,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    jwt(&headers)?;
    let installations = sh.lock().installations();
    let items = (installations.iter())
        .map(|(id, repos)| {
            let owner = repos
                .first()
                .and_then(|r| r.split('/').next())
                .unwrap_or("octo");
            installation_json(&sh.base, *id, owner)
        })
        .collect();
    paginate(&sh.base, &uri, &q, items)
}

/// `GET /installation/repositories` (installation token): the repositories
/// the token's installation reaches.
pub(super) async fn list_installation_repositories(
    State(sh): Sh,
    headers: HeaderMap,
    Query(q): Params,
) -> ApiResult {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = auth.split_whitespace().last().unwrap_or("");
    let db = sh.lock();
    let id = *db
        .tokens
        .get(token)
        .ok_or_else(|| ApiError::new(403, "This endpoint needs an installation access token"))?;
    let names = db.installations().remove(&id).unwrap_or_default();
    let repos: Vec<Value> = names
        .iter()
        .filter_map(|name| db.repos.get(&name.to_lowercase()))
        .map(|repo| repo_json(&sh.base, &repo.full_name, &repo.default_branch, false))
        .collect();
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let total = repos.len();
    let slice: Vec<Value> = repos
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    ok(json!({ "total_count": total, "repository_selection": "selected", "repositories": slice }))
}

/// An App's JWT: `Authorization: Bearer <a.b.c>` (its signature is not verified).
fn jwt(headers: &HeaderMap) -> Result<(), ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let jwt = auth.strip_prefix("Bearer ").unwrap_or("");
    if jwt.split('.').count() != 3 || jwt.split('.').any(str::is_empty) {
        return Err(ApiError::new(401, "A JSON web token could not be decoded"));
    }
    Ok(())
}

fn installation_json(base: &str, id: u64, owner: &str) -> Value {
    json!({
        "id": id, "account": user_json(base, owner), "repository_selection": "selected",
        "access_tokens_url": format!("{base}app/installations/{id}/access_tokens"),
        "repositories_url": format!("{base}installation/repositories"),
        "html_url": format!("https://github.com/settings/installations/{id}"), "app_id": 1, "app_slug": "pullstack",
        "target_id": stable_id(owner), "target_type": "User", "permissions": installation_permissions(),
        "events": ["delete", "issue_comment", "pull_request", "push", "workflow_run"],
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "single_file_name": null,
        "has_multiple_single_files": false, "single_file_paths": [], "suspended_by": null, "suspended_at": null,
    })
}

/// Needs `Authorization: Bearer <a.b.c>` (the JWT's signature is not verified).
pub(super) async fn create_token(
    State(sh): Sh,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> ApiResult {
    jwt(&headers)?;
    let n = {
        let mut db = sh.lock();
        if !db.installations().contains_key(&id) {
            return Err(not_found());
        }
        db.tokens_issued += 1;
        let n = db.tokens_issued;
        db.tokens.insert(format!("ghs_fake_{n}"), id);
        n
    };
    let expires_at = ts(&(Utc::now() + chrono::Duration::hours(1)));
    created(
        json!({ "token": format!("ghs_fake_{n}"), "expires_at": expires_at,
        "permissions": installation_permissions(), "repository_selection": "all" }),
    )
}

pub(super) async fn rate_limit(State(sh): Sh) -> ApiResult {
    let used = sh
        .lock()
        .requests
        .iter()
        .filter(|r| r.authorization.is_some())
        .count()
        .min(5000);
    let reset = Utc::now().timestamp() + 3600;
    let rate = |limit: usize, used: usize| json!({ "limit": limit, "used": used, "remaining": limit - used, "reset": reset });
    ok(json!({
        "resources": { "core": rate(5000, used), "search": rate(30, 0), "graphql": rate(5000, 0),
            "integration_manifest": rate(5000, 0), "source_import": rate(100, 0), "code_scanning_upload": rate(1000, 0),
            "actions_runner_registration": rate(10000, 0), "scim": rate(15000, 0), "dependency_snapshots": rate(100, 0),
            "code_search": rate(10, 0) },
        "rate": rate(5000, used),
    }))
}

/// The authenticated user: with a token, pullstack runs as `pullstack[bot]`.
pub(super) async fn get_user() -> ApiResult {
    ok(
        json!({ "login": BOT_LOGIN, "id": 9_000_001, "node_id": "U_kgDOfake", "type": "Bot", "site_admin": false }),
    )
}

/// The authenticated GitHub App (JWT auth); its bot login is `<slug>[bot]`.
pub(super) async fn get_app() -> ApiResult {
    ok(
        json!({ "id": 29_310, "slug": "pullstack", "node_id": "A_kwDOfake", "name": "pullstack",
        "owner": { "login": "octo", "id": 1, "type": "Organization" } }),
    )
}
