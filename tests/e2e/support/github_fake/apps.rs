//! Who is calling: the authenticated user or GitHub App, the app's installation and its
//! access tokens, and the rate limit.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use chrono::Utc;
use serde_json::json;

use super::BOT_LOGIN;
use super::api::{ApiError, ApiResult, Sh, created, not_found, ok};
use super::json::{installation_permissions, stable_id, ts, user_json};

pub(super) async fn get_installation(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
) -> ApiResult {
    let owner = sh.with_repo(&o, &r, |repo| {
        Ok(repo.full_name.split('/').next().unwrap_or("").to_string())
    })?;
    ok(json!({
        "id": 1, "account": user_json(&sh.base, &owner), "repository_selection": "all",
        "access_tokens_url": format!("{}app/installations/1/access_tokens", sh.base),
        "repositories_url": format!("{}installation/repositories", sh.base),
        "html_url": format!("https://github.com/settings/installations/1"), "app_id": 1, "app_slug": "pullstack",
        "target_id": stable_id(&owner), "target_type": "User", "permissions": installation_permissions(),
        "events": ["delete", "issue_comment", "pull_request", "push", "workflow_run"],
        "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "single_file_name": null,
        "has_multiple_single_files": false, "single_file_paths": [], "suspended_by": null, "suspended_at": null,
    }))
}

/// Needs `Authorization: Bearer <a.b.c>` (the JWT's signature is not verified).
pub(super) async fn create_token(
    State(sh): Sh,
    Path(id): Path<u64>,
    headers: HeaderMap,
) -> ApiResult {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let jwt = auth.strip_prefix("Bearer ").unwrap_or("");
    if jwt.split('.').count() != 3 || jwt.split('.').any(str::is_empty) {
        return Err(ApiError::new(401, "A JSON web token could not be decoded"));
    }
    if id != 1 {
        return Err(not_found());
    }
    let n = {
        let mut db = sh.lock();
        db.tokens_issued += 1;
        db.tokens_issued
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
