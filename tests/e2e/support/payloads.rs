//! Webhook payload builders for tests, made from the real deliveries in `tests/fixtures/`
//! (see tests/fixtures/README.md for where they come from). Each builder loads a fixture,
//! rewrites the repository / numbers / shas / logins it is asked for (including the URLs that
//! embed them) and returns compact JSON bytes. Self-contained: include with `#[path]`.

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `X-Hub-Signature-256` value for `body`: "sha256=<hex hmac>".
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Raw bytes of `tests/fixtures/<rel>`, e.g. "rust-lang-bors/pull-request-opened.json".
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn fixture_json(rel: &str) -> Value {
    serde_json::from_slice(&fixture(rel)).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

/// Headers of a real delivery (`X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256`, ...).
pub fn delivery_headers(event: &str, secret: &[u8], body: &[u8]) -> Vec<(&'static str, String)> {
    let g = format!("{:032x}", rand::random::<u128>());
    let guid = format!(
        "{}-{}-{}-{}-{}",
        &g[..8],
        &g[8..12],
        &g[12..16],
        &g[16..20],
        &g[20..]
    );
    vec![
        ("content-type", "application/json".into()),
        ("user-agent", "GitHub-Hookshot/6b02022".into()),
        ("x-github-event", event.into()),
        ("x-github-delivery", guid),
        ("x-github-hook-id", "109948940".into()),
        (
            "x-github-hook-installation-target-type",
            "integration".into(),
        ),
        ("x-github-hook-installation-target-id", "1".into()),
        ("x-hub-signature-256", sign(secret, body)),
    ]
}

pub struct PrPayload<'a> {
    pub action: &'a str,
    pub repo: &'a str,
    pub number: u64,
    pub head_sha: &'a str,
    pub head_ref: &'a str,
    /// Full name; differs from `repo` for a PR from a fork.
    pub head_repo: &'a str,
    pub base_ref: &'a str,
    pub title: &'a str,
    pub merged: bool,
    pub labels: &'a [&'a str],
    /// Also used as the PR author (`pull_request.user`).
    pub sender: &'a str,
    /// The label added/removed, for `labeled` / `unlabeled`.
    pub label: Option<&'a str>,
}

/// `pull_request` event built from `rust-lang-bors/pull-request-opened.json`. `state` is
/// "closed" only for action "closed"; `synchronize` gets top-level `before`/`after`;
/// `repository.default_branch` stays "main".
pub fn pull_request(p: &PrPayload) -> Vec<u8> {
    let mut v = fixture_json("rust-lang-bors/pull-request-opened.json");
    let (old_repo, old_number, old_sha) = (
        "Sakib25800/bors-test",
        2,
        "5f935077074fb7e225332e672399306591db30dd",
    );
    set_repo(&mut v, old_repo, p.repo);
    renumber(&mut v["pull_request"], old_number, p.number);
    replace_strings(&mut v["pull_request"], old_sha, p.head_sha);
    v["action"] = json!(p.action);
    v["number"] = json!(p.number);
    patch_user(&mut v["sender"], p.sender);

    let pr = &mut v["pull_request"];
    let closed = p.action == "closed";
    let now = now();
    pr["number"] = json!(p.number);
    pr["id"] = json!(stable_id(&format!("{}#{}", p.repo, p.number)));
    pr["title"] = json!(p.title);
    pr["state"] = json!(if closed { "closed" } else { "open" });
    pr["merged"] = json!(p.merged);
    pr["closed_at"] = if closed { json!(now) } else { Value::Null };
    pr["merged_at"] = if p.merged { json!(now) } else { Value::Null };
    pr["merge_commit_sha"] = if p.merged {
        json!(fake_sha(p.head_sha))
    } else {
        Value::Null
    };
    pr["merged_by"] = if p.merged {
        pr["user"].clone()
    } else {
        Value::Null
    };
    patch_user(&mut pr["user"], p.sender);
    if p.merged {
        patch_user(&mut pr["merged_by"], p.sender);
    }
    pr["labels"] = json!(
        p.labels
            .iter()
            .map(|l| label(p.repo, l))
            .collect::<Vec<_>>()
    );

    let fork = p.head_repo != p.repo;
    let head = &mut pr["head"];
    head["ref"] = json!(p.head_ref);
    head["sha"] = json!(p.head_sha);
    head["label"] = json!(format!("{}:{}", owner_of(p.head_repo), p.head_ref));
    patch_user(&mut head["user"], owner_of(p.head_repo));
    replace_strings(&mut head["repo"], p.repo, p.head_repo);
    patch_repo(&mut head["repo"], p.head_repo);
    head["repo"]["fork"] = json!(fork);
    let base = &mut pr["base"];
    base["ref"] = json!(p.base_ref);
    base["label"] = json!(format!("{}:{}", owner_of(p.repo), p.base_ref));
    patch_user(&mut base["user"], owner_of(p.repo));
    patch_repo(&mut base["repo"], p.repo);

    match p.label {
        Some(name) => v["label"] = label(p.repo, name),
        None => drop(v.as_object_mut().expect("object").remove("label")),
    }
    if p.action == "synchronize" {
        v["before"] = json!(fake_sha(&format!("before:{}", p.head_sha)));
        v["after"] = json!(p.head_sha);
    }
    to_bytes(&v)
}

/// `push` event built from `rust-lang-bors/push.json` (one commit whose id is `after`; no
/// commits and `head_commit: null` when `deleted`). The sender is the repository owner.
pub fn push(
    repo: &str,
    git_ref: &str,
    before: &str,
    after: &str,
    created: bool,
    deleted: bool,
    forced: bool,
) -> Vec<u8> {
    let mut v = fixture_json("rust-lang-bors/push.json");
    let old_after = "bc7370e473896a94d40a7dff71f197a3ff0208f5";
    set_repo(&mut v, "Kobzol/bors-kindergarten", repo);
    replace_strings(&mut v["commits"], old_after, after);
    replace_strings(&mut v["head_commit"], old_after, after);
    let owner = owner_of(repo);
    patch_user(&mut v["sender"], owner);
    let email = format!("{owner}@users.noreply.github.com");
    v["pusher"] = json!({ "name": owner, "email": email });
    let person = json!({ "name": owner, "email": email, "username": owner });
    for key in ["author", "committer"] {
        v["commits"][0][key] = person.clone();
        v["head_commit"][key] = person.clone();
    }
    v["ref"] = json!(git_ref);
    v["before"] = json!(before);
    v["after"] = json!(after);
    v["created"] = json!(created);
    v["deleted"] = json!(deleted);
    v["forced"] = json!(forced);
    v["compare"] = json!(format!(
        "https://github.com/{repo}/compare/{}...{}",
        short(before),
        short(after)
    ));
    if deleted {
        v["commits"] = json!([]);
        v["head_commit"] = Value::Null;
    }
    to_bytes(&v)
}

/// `issue_comment` `created` event built from `rust-lang-bors/issue-comment.json` (a comment
/// on a PR). `on_pr = false` removes `issue.pull_request`, making it a plain-issue comment.
pub fn issue_comment(
    repo: &str,
    issue: u64,
    comment_id: u64,
    login: &str,
    association: &str,
    body: &str,
    on_pr: bool,
) -> Vec<u8> {
    let mut v = fixture_json("rust-lang-bors/issue-comment.json");
    set_repo(&mut v, "Kobzol/bors-kindergarten", repo);
    renumber(&mut v["issue"], 5, issue);
    renumber(&mut v["comment"], 5, issue);
    replace_strings(&mut v["comment"], "1420770715", &comment_id.to_string());
    patch_user(&mut v["issue"]["user"], owner_of(repo));
    patch_user(&mut v["sender"], login);
    v["issue"]["number"] = json!(issue);
    v["issue"]["id"] = json!(stable_id(&format!("{repo}#{issue}")));
    let c = &mut v["comment"];
    c["id"] = json!(comment_id);
    c["node_id"] = json!(format!("IC_kwDO{comment_id}"));
    c["body"] = json!(body);
    c["author_association"] = json!(association);
    patch_user(&mut c["user"], login);
    if !on_pr {
        v["issue"]
            .as_object_mut()
            .expect("object")
            .remove("pull_request");
        v["issue"]["node_id"] = json!(format!("I_kwDO{issue}"));
        let (from, to) = (
            format!("/{repo}/pull/{issue}"),
            format!("/{repo}/issues/{issue}"),
        );
        replace_strings(&mut v["issue"], &from, &to);
        replace_strings(&mut v["comment"], &from, &to);
    }
    to_bytes(&v)
}

/// `delete` event for a branch, built from `delete/payload.json` (a tag delete upstream).
pub fn delete_branch(repo: &str, branch: &str) -> Vec<u8> {
    let mut v = fixture_json("delete/payload.json");
    set_repo(&mut v, "Codertocat/Hello-World", repo);
    patch_user(&mut v["sender"], owner_of(repo));
    v["ref"] = json!(branch);
    v["ref_type"] = json!("branch");
    to_bytes(&v)
}

/// `workflow_run` `completed` event. No fixture exists for this event, so it is hand-built:
/// the fields GitHub documents for `workflow_run` (trimmed), with `repository`, `sender` and
/// `installation` taken from the (rewritten) pull-request fixture.
pub fn workflow_run_completed(
    repo: &str,
    head_sha: &str,
    head_branch: &str,
    conclusion: &str,
) -> Vec<u8> {
    let mut src = fixture_json("rust-lang-bors/pull-request-opened.json");
    set_repo(&mut src, "Sakib25800/bors-test", repo);
    let owner = owner_of(repo);
    patch_user(&mut src["sender"], owner);
    let run_id = stable_id(&format!("run:{repo}:{head_sha}"));
    let workflow_id = stable_id(&format!("workflow:{repo}"));
    let (api, html) = (
        format!("https://api.github.com/repos/{repo}"),
        format!("https://github.com/{repo}"),
    );
    let now = now();
    let run_url = format!("{api}/actions/runs/{run_id}");
    let head_commit = json!({
        "id": head_sha, "tree_id": fake_sha(&format!("tree:{head_sha}")), "message": "Update", "timestamp": now,
        "author": { "name": owner, "email": format!("{owner}@users.noreply.github.com") },
        "committer": { "name": "GitHub", "email": "noreply@github.com" },
    });
    let mut run = json!({
        "id": run_id, "name": "CI", "node_id": format!("WFR_kwLO{run_id}"), "head_branch": head_branch,
        "head_sha": head_sha, "path": ".github/workflows/ci.yml", "display_title": "CI", "run_number": 42,
        "event": "push", "status": "completed", "conclusion": conclusion, "workflow_id": workflow_id,
        "check_suite_id": run_id + 1, "check_suite_node_id": format!("CS_kwDO{}", run_id + 1),
        "url": run_url, "html_url": format!("{html}/actions/runs/{run_id}"), "pull_requests": [],
        "created_at": now, "updated_at": now, "run_attempt": 1, "referenced_workflows": [], "run_started_at": now,
        "jobs_url": format!("{run_url}/jobs"), "logs_url": format!("{run_url}/logs"),
        "check_suite_url": format!("{api}/check-suites/{}", run_id + 1),
        "artifacts_url": format!("{run_url}/artifacts"), "cancel_url": format!("{run_url}/cancel"),
        "rerun_url": format!("{run_url}/rerun"), "previous_attempt_url": null,
        "workflow_url": format!("{api}/actions/workflows/{workflow_id}"), "head_commit": head_commit,
    });
    for (key, from) in [
        ("actor", "sender"),
        ("triggering_actor", "sender"),
        ("repository", "repository"),
        ("head_repository", "repository"),
    ] {
        run[key] = src[from].clone();
    }
    let workflow = json!({
        "id": workflow_id, "node_id": format!("W_kwDO{workflow_id}"), "name": "CI", "path": ".github/workflows/ci.yml",
        "state": "active", "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
        "url": format!("{api}/actions/workflows/{workflow_id}"),
        "html_url": format!("{html}/blob/main/.github/workflows/ci.yml"), "badge_url": format!("{html}/workflows/CI/badge.svg"),
    });
    let v = json!({
        "action": "completed", "workflow_run": run, "workflow": workflow,
        "repository": src["repository"], "sender": src["sender"], "installation": src["installation"],
    });
    to_bytes(&v)
}

/// Valid JSON of exactly `size` bytes (or the re-serialised body if that is already larger):
/// adds a top-level `"padding"` string. Panics if `body` is not a JSON object.
pub fn pad_to(body: Vec<u8>, size: usize) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&body).expect("pad_to: body must be JSON");
    v.as_object_mut()
        .expect("pad_to: body must be a JSON object")
        .insert("padding".into(), json!(""));
    let fill = size.saturating_sub(to_bytes(&v).len());
    v["padding"] = json!("x".repeat(fill));
    to_bytes(&v)
}

// ---------------------------------------------------------------------------------------

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialize")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn fake_sha(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))[..40].to_string()
}

fn stable_id(seed: &str) -> u64 {
    u64::from_str_radix(&fake_sha(seed)[..7], 16).unwrap_or(1)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn label(repo: &str, name: &str) -> Value {
    let id = stable_id(&format!("{repo}#{name}"));
    json!({ "id": id, "node_id": format!("LA_kwDO{id}"), "url": format!("https://api.github.com/repos/{repo}/labels/{name}"),
        "name": name, "color": "ededed", "default": false, "description": null })
}

fn replace_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items.iter_mut().for_each(|x| replace_strings(x, from, to)),
        Value::Object(map) => map.values_mut().for_each(|x| replace_strings(x, from, to)),
        _ => {}
    }
}

/// Rewrites `/pulls/{old}`, `/pull/{old}` and `/issues/{old}` in URLs (whole numbers only).
fn renumber(v: &mut Value, old: u64, new: u64) {
    match v {
        Value::String(s) => {
            for prefix in ["/pulls/", "/pull/", "/issues/"] {
                let needle = format!("{prefix}{old}");
                if let Some(i) = s.find(&needle) {
                    let rest = &s[i + needle.len()..];
                    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                        *s = format!("{}{prefix}{new}{rest}", &s[..i]);
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|x| renumber(x, old, new)),
        Value::Object(map) => map.values_mut().for_each(|x| renumber(x, old, new)),
        _ => {}
    }
}

/// Renames the repository `old` → `new` in every string of `v` (URLs, full names), then
/// patches `v["repository"]`.
fn set_repo(v: &mut Value, old: &str, new: &str) {
    replace_strings(v, old, new);
    patch_repo(&mut v["repository"], new);
}

/// Sets `name`, `full_name`, `id` and `owner` of a repository object.
fn patch_repo(repo: &mut Value, full: &str) {
    repo["name"] = json!(full.split_once('/').map_or(full, |(_, name)| name));
    repo["full_name"] = json!(full);
    repo["id"] = json!(stable_id(full));
    patch_user(&mut repo["owner"], owner_of(full));
    if repo["owner"].get("name").is_some() {
        repo["owner"]["name"] = json!(owner_of(full));
    }
}

fn owner_of(full: &str) -> &str {
    full.split('/').next().unwrap_or(full)
}

/// Turns a user object into `login` (URLs, id, type "Bot" for "...[bot]").
fn patch_user(u: &mut Value, login: &str) {
    let Some(old) = u["login"].as_str().map(str::to_string) else {
        return;
    };
    let enc = login.replace('[', "%5B").replace(']', "%5D");
    replace_strings(u, &format!("/{old}"), &format!("/{enc}"));
    let id = stable_id(login);
    u["login"] = json!(login);
    u["id"] = json!(id);
    u["node_id"] = json!(format!("U_kgDO{id}"));
    u["avatar_url"] = json!(format!("https://avatars.githubusercontent.com/u/{id}?v=4"));
    u["type"] = json!(if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    #[test]
    fn github_docs_signature_vector() {
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn fixtures_are_json_and_kept_byte_for_byte() {
        let raw = fixture("rust-lang-bors/push.json");
        assert_ne!(
            raw.last(),
            Some(&b'\n'),
            "README: push.json has no trailing newline"
        );
        for rel in [
            "rust-lang-bors/push.json",
            "pull_request/opened.payload.json",
            "ping/payload.json",
            "delete/payload.json",
        ] {
            parse(&fixture(rel));
        }
    }

    #[test]
    fn pull_request_patches_fields() {
        let p = PrPayload {
            action: "labeled",
            repo: "octo/app",
            number: 17,
            head_sha: &"a".repeat(40),
            head_ref: "feat/x",
            head_repo: "mallory/app",
            base_ref: "main",
            title: "Add x",
            merged: false,
            labels: &["preview", "bug"],
            sender: "alice",
            label: Some("preview"),
        };
        let v = parse(&pull_request(&p));
        assert_eq!(v["action"], "labeled");
        assert_eq!(v["number"], 17);
        assert_eq!(v["repository"]["full_name"], "octo/app");
        assert_eq!(v["repository"]["owner"]["login"], "octo");
        assert_eq!(v["sender"]["login"], "alice");
        assert_eq!(v["label"]["name"], "preview");
        let pr = &v["pull_request"];
        assert_eq!(pr["url"], "https://api.github.com/repos/octo/app/pulls/17");
        assert_eq!(pr["html_url"], "https://github.com/octo/app/pull/17");
        assert_eq!(pr["state"], "open");
        assert_eq!(pr["head"]["sha"], "a".repeat(40));
        assert_eq!(pr["head"]["ref"], "feat/x");
        assert_eq!(pr["head"]["repo"]["full_name"], "mallory/app");
        assert_eq!(pr["head"]["repo"]["fork"], true);
        assert_eq!(pr["base"]["repo"]["full_name"], "octo/app");
        assert_eq!(pr["labels"][1]["name"], "bug");
        assert!(!String::from_utf8_lossy(&pull_request(&p)).contains("Sakib25800/bors-test"));

        let closed = PrPayload {
            action: "closed",
            merged: true,
            label: None,
            head_repo: "octo/app",
            ..p
        };
        let v = parse(&pull_request(&closed));
        assert_eq!(v["pull_request"]["state"], "closed");
        assert_eq!(v["pull_request"]["merged"], true);
        assert!(v["pull_request"]["merged_at"].is_string());
        assert_eq!(v["pull_request"]["head"]["repo"]["fork"], false);
        assert!(v.get("label").is_none());
    }

    #[test]
    fn other_builders_produce_valid_patched_json() {
        let (z, a) = ("0".repeat(40), "b".repeat(40));
        let v = parse(&push(
            "octo/app",
            "refs/heads/feat",
            &z,
            &a,
            true,
            false,
            false,
        ));
        assert_eq!(
            (
                v["ref"].as_str(),
                v["after"].as_str(),
                v["created"].as_bool()
            ),
            (Some("refs/heads/feat"), Some(&*a), Some(true))
        );
        assert_eq!(v["head_commit"]["id"], a.as_str());
        assert_eq!(v["repository"]["full_name"], "octo/app");
        let v = parse(&push(
            "octo/app",
            "refs/heads/feat",
            &a,
            &z,
            false,
            true,
            false,
        ));
        assert!(v["head_commit"].is_null());

        let v = parse(&issue_comment(
            "octo/app",
            9,
            555,
            "bob",
            "MEMBER",
            "/preview redeploy",
            true,
        ));
        assert_eq!(v["issue"]["number"], 9);
        assert_eq!(
            v["issue"]["pull_request"]["url"],
            "https://api.github.com/repos/octo/app/pulls/9"
        );
        assert_eq!(
            (v["comment"]["id"].as_u64(), v["comment"]["body"].as_str()),
            (Some(555), Some("/preview redeploy"))
        );
        assert_eq!(v["comment"]["user"]["login"], "bob");
        assert_eq!(v["comment"]["author_association"], "MEMBER");
        let v = parse(&issue_comment(
            "octo/app", 9, 555, "bob", "NONE", "hi", false,
        ));
        assert!(v["issue"].get("pull_request").is_none());
        assert_eq!(
            v["issue"]["html_url"],
            "https://github.com/octo/app/issues/9"
        );

        let v = parse(&delete_branch("octo/app", "feat/x"));
        assert_eq!(
            (v["ref"].as_str(), v["ref_type"].as_str()),
            (Some("feat/x"), Some("branch"))
        );
        let v = parse(&workflow_run_completed("octo/app", &a, "feat", "success"));
        assert_eq!(v["workflow_run"]["conclusion"], "success");
        assert_eq!(v["workflow_run"]["repository"]["full_name"], "octo/app");
        assert!(v["installation"]["id"].is_u64());

        let padded = pad_to(delete_branch("octo/app", "x"), 100_000);
        assert_eq!(padded.len(), 100_000);
        parse(&padded);
    }
}
