//! Issue comments, and the reactions on them.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::api::{
    ApiError, ApiResult, Params, Sh, created, invalid, not_found, ok, paginate, parse,
};
use super::json::{comment_json, stable_id, ts, user_json};
use super::{BOT_LOGIN, FakeComment, REACTIONS, Shared};

pub(super) fn new_comment(
    sh: &Shared,
    repo: &str,
    issue: u64,
    login: &str,
    body: &str,
) -> Result<FakeComment, ApiError> {
    let id = sh.id();
    sh.repo(repo, |r| {
        let now = Utc::now();
        let c = FakeComment {
            id,
            issue,
            body: body.into(),
            user: login.into(),
            created_at: now,
            updated_at: now,
            edits: 0,
        };
        r.comments.push(c.clone());
        // Like GitHub, a new comment counts as activity on its PR.
        if let Some(pr) = r.prs.get_mut(&issue) {
            pr.updated_at = now;
        }
        Ok(c)
    })
}

pub(super) async fn list_comments(
    State(sh): Sh,
    Path((o, r, n)): Path<(String, String, u64)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        let on_issue = repo.comments.iter().filter(|c| c.issue == n);
        Ok(on_issue
            .map(|c| comment_json(&sh.base, repo, c))
            .collect::<Vec<_>>())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

#[derive(Deserialize)]
struct BodyOnly {
    body: String,
}

/// Issues exist here if a PR has that number or someone already commented on it.
pub(super) async fn create_comment(
    State(sh): Sh,
    Path((o, r, n)): Path<(String, String, u64)>,
    body: Bytes,
) -> ApiResult {
    let BodyOnly { body } = parse(&body)?;
    let full = sh.with_repo(&o, &r, |repo| {
        let exists = repo.prs.contains_key(&n) || repo.comments.iter().any(|c| c.issue == n);
        exists.then(|| repo.full_name.clone()).ok_or_else(not_found)
    })?;
    let c = new_comment(&sh, &full, n, BOT_LOGIN, &body)?;
    created(sh.repo(&full, |repo| Ok(comment_json(&sh.base, repo, &c)))?)
}

pub(super) async fn get_comment(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| {
        let c = repo
            .comments
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(not_found)?;
        Ok(comment_json(&sh.base, repo, c))
    })?)
}

pub(super) async fn edit_comment(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> ApiResult {
    let BodyOnly { body } = parse(&body)?;
    ok(sh.with_repo(&o, &r, |repo| {
        let c = repo
            .comments
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(not_found)?;
        (c.body, c.updated_at, c.edits) = (body, Utc::now(), c.edits + 1);
        let c = c.clone();
        Ok(comment_json(&sh.base, repo, &c))
    })?)
}

/// 201 for a new reaction, 200 when the bot already reacted with that content (like GitHub).
pub(super) async fn add_reaction(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> ApiResult {
    #[derive(Deserialize)]
    struct NewReaction {
        content: String,
    }
    let NewReaction { content } = parse(&body)?;
    if !REACTIONS.contains(&content.as_str()) {
        return Err(invalid(
            "Reaction",
            "content",
            "content is not included in the list",
        ));
    }
    let rid = sh.id();
    let fresh = sh.with_repo(&o, &r, |repo| {
        repo.comments
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(not_found)?;
        let fresh = !repo
            .reactions
            .iter()
            .any(|x| x.0 == id && x.1 == content && x.2 == BOT_LOGIN);
        if fresh {
            repo.reactions.push((id, content.clone(), BOT_LOGIN.into()));
        }
        Ok(fresh)
    })?;
    let v = json!({ "id": rid, "node_id": format!("REA_lADO{rid}"), "user": user_json(&sh.base, BOT_LOGIN),
        "content": content, "created_at": ts(&Utc::now()) });
    if fresh { created(v) } else { ok(v) }
}

/// The reactions on a comment, oldest first; 404 once the comment is gone.
pub(super) async fn list_reactions(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        repo.comments
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(not_found)?;
        let on_comment = repo.reactions.iter().filter(|x| x.0 == id);
        Ok(on_comment
            .enumerate()
            .map(|(n, (_, content, login))| {
                let rid = stable_id(&format!("{id}/{n}"));
                json!({ "id": rid, "node_id": format!("REA_lADO{rid}"),
                    "user": user_json(&sh.base, login), "content": content,
                    "created_at": ts(&Utc::now()) })
            })
            .collect::<Vec<_>>())
    })?;
    paginate(&sh.base, &uri, &q, items)
}
