//! Repository contents: files at a commit, read through
//! `GET /repos/{o}/{r}/contents/{path}?ref=` as GitHub serves them
//! (base64, wrapped every 60 characters, with the blob SHA).

use axum::extract::{Path, Query, State};
use base64::Engine;
use serde_json::json;

use super::api::{ApiError, ApiResult, Params, Sh, ok};
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
        let text = (repo.files.get(&sha))
            .and_then(|files| files.get(&path))
            .ok_or_else(|| ApiError::new(404, "Not Found"))?;
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
