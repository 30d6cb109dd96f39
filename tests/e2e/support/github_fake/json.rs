//! The JSON shapes the fake answers with, as GitHub's REST API renders them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{
    BOT_LOGIN, FakeComment, FakeDeployment, FakeDeploymentStatus, FakeStatus, REACTIONS, Repo,
    StoredPr, fake_sha,
};

pub(super) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn stable_id(seed: &str) -> u64 {
    u64::from_str_radix(&fake_sha(seed)[..7], 16).unwrap_or(1)
}

pub(super) fn user_json(base: &str, login: &str) -> Value {
    let id = stable_id(login);
    let enc = login.replace('[', "%5B").replace(']', "%5D");
    let api = format!("{base}users/{enc}");
    json!({
        "login": login, "id": id, "node_id": format!("U_kgDO{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"), "gravatar_id": "",
        "url": api, "html_url": format!("https://github.com/{enc}"),
        "followers_url": format!("{api}/followers"), "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"), "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"), "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"), "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": if login.ends_with("[bot]") { "Bot" } else { "User" }, "user_view_type": "public", "site_admin": false,
    })
}

pub(super) fn repo_json(base: &str, full: &str, default_branch: &str, fork: bool) -> Value {
    let (owner, name) = full.split_once('/').unwrap_or((full, full));
    let (api, id) = (format!("{base}repos/{full}"), stable_id(full));
    json!({
        "id": id, "node_id": format!("R_kgDO{id}"), "name": name, "full_name": full, "private": false,
        "owner": user_json(base, owner), "html_url": format!("https://github.com/{full}"), "description": null,
        "fork": fork, "url": api, "pulls_url": format!("{api}/pulls{{/number}}"),
        "issues_url": format!("{api}/issues{{/number}}"), "deployments_url": format!("{api}/deployments"),
        "statuses_url": format!("{api}/statuses/{{sha}}"), "branches_url": format!("{api}/branches{{/branch}}"),
        "clone_url": format!("https://github.com/{full}.git"), "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z", "pushed_at": "2024-01-01T00:00:00Z", "archived": false,
        "disabled": false, "visibility": "public", "default_branch": default_branch,
    })
}

fn label_json(base: &str, full: &str, name: &str) -> Value {
    let id = stable_id(&format!("{full}#{name}"));
    json!({ "id": id, "node_id": format!("LA_kwDO{id}"), "url": format!("{base}repos/{full}/labels/{name}"),
        "name": name, "color": "ededed", "default": false, "description": null })
}

pub(super) fn pr_json(base: &str, repo: &Repo, sp: &StoredPr, full: bool) -> Value {
    let (pr, name) = (&sp.pr, &repo.full_name);
    let (api, html) = (
        format!("{base}repos/{name}"),
        format!("https://github.com/{name}/pull/{}", pr.number),
    );
    let fork = !pr.head_repo.eq_ignore_ascii_case(name);
    let closed = pr.state == "closed";
    let updated = ts(&sp.updated_at);
    let side = |repo_name: &str, git_ref: &str, sha: &str, fork: bool| {
        let owner = repo_name.split('/').next().unwrap_or(repo_name);
        json!({ "label": format!("{owner}:{git_ref}"), "ref": git_ref, "sha": sha, "user": user_json(base, owner),
            "repo": repo_json(base, repo_name, &repo.default_branch, fork) })
    };
    let base_sha = repo
        .branches
        .get(&pr.base_ref)
        .cloned()
        .unwrap_or_else(|| fake_sha(&pr.base_ref));
    let mut v = json!({
        "url": format!("{api}/pulls/{}", pr.number), "id": stable_id(&html), "node_id": format!("PR_kwDO{}", pr.number),
        "html_url": html, "diff_url": format!("{html}.diff"), "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{}", pr.number), "number": pr.number, "state": pr.state, "locked": false,
        "title": pr.title, "user": user_json(base, &pr.user), "body": null,
        "labels": pr.labels.iter().map(|l| label_json(base, name, l)).collect::<Vec<_>>(),
        "milestone": null, "active_lock_reason": null, "created_at": ts(&sp.created_at), "updated_at": updated,
        "closed_at": if closed { json!(updated) } else { Value::Null },
        "merged_at": if pr.merged { json!(updated) } else { Value::Null },
        "merge_commit_sha": if pr.merged { json!(fake_sha(&html)) } else { Value::Null },
        "assignee": null, "assignees": [], "requested_reviewers": [], "requested_teams": [], "draft": pr.draft,
        "commits_url": format!("{api}/pulls/{}/commits", pr.number),
        "comments_url": format!("{api}/issues/{}/comments", pr.number),
        "statuses_url": format!("{api}/statuses/{}", pr.head_sha),
        "head": side(&pr.head_repo, &pr.head_ref, &pr.head_sha, fork),
        "base": side(name, &pr.base_ref, &base_sha, false),
        "author_association": if fork { "CONTRIBUTOR" } else { "MEMBER" }, "auto_merge": null,
    });
    if full {
        let merged_by = match pr.merged_by.as_str() {
            "" => Value::Null,
            login => user_json(base, login),
        };
        let extra = json!({ "merged": pr.merged, "mergeable": null, "rebaseable": null, "mergeable_state": "unknown",
            "merged_by": merged_by, "comments": repo.comments.iter().filter(|c| c.issue == pr.number).count(),
            "review_comments": 0, "maintainer_can_modify": false, "commits": 1, "additions": 1, "deletions": 0, "changed_files": 1 });
        v.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
    }
    v
}

pub(super) fn comment_json(base: &str, repo: &Repo, c: &FakeComment) -> Value {
    let (api, name) = (format!("{base}repos/{}", repo.full_name), &repo.full_name);
    let association = match repo.permissions.get(&c.user).map(String::as_str) {
        _ if c.user.ends_with("[bot]") => "NONE",
        _ if name.split('/').next() == Some(c.user.as_str()) => "OWNER",
        Some("none") | None => "NONE",
        Some(_) => "COLLABORATOR",
    };
    let url = format!("{api}/issues/comments/{}", c.id);
    let mut reactions = json!({ "url": format!("{url}/reactions"), "total_count": 0 });
    for content in REACTIONS {
        let n = repo
            .reactions
            .iter()
            .filter(|r| r.0 == c.id && r.1 == content)
            .count();
        reactions[content] = json!(n);
        reactions["total_count"] = json!(reactions["total_count"].as_u64().unwrap_or(0) + n as u64);
    }
    json!({
        "url": url, "html_url": format!("https://github.com/{name}/pull/{}#issuecomment-{}", c.issue, c.id),
        "issue_url": format!("{api}/issues/{}", c.issue), "id": c.id, "node_id": format!("IC_kwDO{}", c.id),
        "user": user_json(base, &c.user), "created_at": ts(&c.created_at), "updated_at": ts(&c.updated_at),
        "author_association": association, "body": c.body, "reactions": reactions, "performed_via_github_app": null,
    })
}

pub(super) fn deployment_json(base: &str, full: &str, d: &FakeDeployment) -> Value {
    let api = format!("{base}repos/{full}");
    json!({
        "url": format!("{api}/deployments/{}", d.id), "id": d.id, "node_id": format!("DE_kwDO{}", d.id),
        "sha": d.sha, "ref": d.ref_, "task": d.task, "payload": d.payload, "original_environment": d.environment,
        "environment": d.environment, "description": d.description, "creator": user_json(base, BOT_LOGIN),
        "created_at": ts(&d.created_at), "updated_at": ts(d.statuses.last().map_or(&d.created_at, |s| &s.created_at)),
        "statuses_url": format!("{api}/deployments/{}/statuses", d.id), "repository_url": api,
        "transient_environment": d.transient, "production_environment": d.production, "performed_via_github_app": null,
    })
}

pub(super) fn deployment_status_json(
    base: &str,
    full: &str,
    d: &FakeDeployment,
    s: &FakeDeploymentStatus,
) -> Value {
    let api = format!("{base}repos/{full}");
    json!({
        "url": format!("{api}/deployments/{}/statuses/{}", d.id, s.id), "id": s.id, "node_id": format!("DES_kwDO{}", s.id),
        "state": s.state, "creator": user_json(base, BOT_LOGIN), "description": s.description,
        "environment": s.environment, "target_url": s.log_url, "log_url": s.log_url, "environment_url": s.environment_url,
        "created_at": ts(&s.created_at), "updated_at": ts(&s.created_at),
        "deployment_url": format!("{api}/deployments/{}", d.id), "repository_url": api, "performed_via_github_app": null,
    })
}

pub(super) fn status_json(base: &str, full: &str, s: &FakeStatus) -> Value {
    json!({
        "url": format!("{base}repos/{full}/statuses/{}", s.sha), "avatar_url": null, "id": s.id,
        "node_id": format!("SC_kwDO{}", s.id), "state": s.state, "description": s.description, "target_url": s.target_url,
        "context": s.context, "created_at": ts(&s.created_at), "updated_at": ts(&s.created_at),
        "creator": user_json(base, BOT_LOGIN),
    })
}

pub(super) fn branch_json(base: &str, full: &str, name: &str, sha: &str) -> Value {
    json!({ "name": name, "commit": { "sha": sha, "url": format!("{base}repos/{full}/commits/{sha}") }, "protected": false })
}

pub(super) fn installation_permissions() -> Value {
    json!({ "checks": "write", "contents": "read", "deployments": "write", "issues": "write", "metadata": "read",
        "pull_requests": "write", "statuses": "write" })
}
