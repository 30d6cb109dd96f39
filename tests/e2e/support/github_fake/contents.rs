//! Repository contents: files at a commit, read through
//! `GET /repos/{o}/{r}/contents/{path}?ref=` as GitHub serves them
//! (base64, wrapped every 60 characters, with the blob SHA).

use axum::extract::{Path, Query, State};
use base64::Engine;
use serde_json::json;

use axum::http::Uri;
use serde_json::Value;

use super::api::{ApiError, ApiResult, Params, Sh, not_found, ok, paginate};
use super::fake_sha;

/// The blob SHA of `text`: determined by the content, as git's is.
pub(super) fn blob_sha(text: &str) -> String {
    fake_sha(&format!("blob {}\0{text}", text.len()))
}

pub(super) async fn get_contents(
    State(sh): Sh,
    Path((o, r, path)): Path<(String, String, String)>,
    Query(q): Params,
) -> ApiResult {
    let v = sh.with_repo(&o, &r, |repo| {
        let git_ref = q.get("ref").cloned().unwrap_or_else(|| repo.default_branch.clone());
        let sha = repo.resolve(&git_ref);
        let tree = repo.tree(&sha);
        let text = tree.get(&path).ok_or_else(|| ApiError::new(404, "Not Found"))?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        let wrapped: Vec<&str> = encoded
            .as_bytes()
            .chunks(60)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        let blob = blob_sha(text);
        let api = format!("{}repos/{}/contents/{path}?ref={git_ref}", sh.base, repo.full_name);
        let html = format!("https://github.com/{}/blob/{git_ref}/{path}", repo.full_name);
        let git = format!("{}repos/{}/git/blobs/{blob}", sh.base, repo.full_name);
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        Ok(json!({
            "type": "file", "encoding": "base64", "size": text.len(), "name": name, "path": path,
            "content": format!("{}\n", wrapped.join("\n")), "sha": blob, "url": api,
            "git_url": git, "html_url": html,
            "download_url": format!("https://raw.githubusercontent.com/{}/{sha}/{path}", repo.full_name),
            "_links": { "self": api, "git": git, "html": html },
        }))
    })?;
    ok(v)
}

/// `GET /repos/{o}/{r}/pulls/{n}/files`: the files the PR's head changes
/// against its base branch.
pub(super) async fn list_pull_files(
    State(sh): Sh,
    Path((o, r, n)): Path<(String, String, u64)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        let pr = repo.prs.get(&n).ok_or_else(not_found)?.pr.clone();
        let head = &repo.tree(&pr.head_sha);
        let base = &repo.tree(&repo.resolve(&pr.base_ref));
        let mut paths: Vec<&String> = head.keys().chain(base.keys()).collect();
        paths.sort();
        paths.dedup();
        let items: Vec<Value> = paths
            .into_iter()
            .filter_map(|path| {
                let status = match (base.get(path), head.get(path)) {
                    (None, Some(_)) => "added",
                    (Some(_), None) => "removed",
                    (Some(a), Some(b)) if a != b => "modified",
                    _ => return None,
                };
                let blob = head.get(path).or(base.get(path)).map(|t| blob_sha(t));
                Some(json!({
                    "sha": blob, "filename": path, "status": status, "additions": 1, "deletions": 1,
                    "changes": 2,
                    "blob_url": format!("https://github.com/{}/blob/{}/{path}", repo.full_name, pr.head_sha),
                    "raw_url": format!("https://github.com/{}/raw/{}/{path}", repo.full_name, pr.head_sha),
                    "contents_url": format!("{}repos/{}/contents/{path}?ref={}", sh.base, repo.full_name, pr.head_sha),
                }))
            })
            .collect();
        Ok(items)
    })?;
    paginate(&sh.base, &uri, &q, items)
}
