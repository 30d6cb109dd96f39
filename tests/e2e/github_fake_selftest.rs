//! Self-test of the GitHub fake (tests/e2e/support/github_fake/): raw HTTP through reqwest, plus
//! a check that octocrab's models parse the fake's JSON shapes.

use crate::support::github_fake::{BOT_LOGIN, Chaos, FakePr, GitHubFake};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REPO: &str = "octo/app";

async fn fake_with_pr() -> GitHubFake {
    let fake = GitHubFake::start().await;
    fake.add_repo(REPO, "main");
    fake.add_branch(REPO, "feat/login", &"a".repeat(40));
    let pr = FakePr {
        number: 7,
        head_ref: "feat/login".into(),
        head_sha: "a".repeat(40),
        user: "alice".into(),
        ..FakePr::default()
    };
    fake.upsert_pr(REPO, pr);
    fake
}

/// Sends an authenticated request; returns status, headers and JSON body (Null if empty).
async fn call(
    fake: &GitHubFake,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    call_as(fake, method, path, body, Some("token ghs_test")).await
}

async fn call_as(
    fake: &GitHubFake,
    method: Method,
    path: &str,
    body: Option<Value>,
    auth: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let url = format!("{}{}", fake.url(), path.trim_start_matches('/'));
    let mut req = reqwest::Client::new()
        .request(method, url)
        .header("user-agent", "selftest");
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("request");
    let (status, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.expect("body");
    (
        status,
        headers,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        },
    )
}

fn link(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("link")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn comment_create_list_patch_and_react() {
    let fake = fake_with_pr().await;
    let (status, _, c) = call(
        &fake,
        Method::POST,
        "/repos/octo/app/issues/7/comments",
        Some(json!({"body": "Deploying…"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(c["user"]["login"], BOT_LOGIN);
    assert_eq!(c["user"]["type"], "Bot");
    let id = c["id"].as_u64().unwrap();

    let (status, _, list) = call(
        &fake,
        Method::GET,
        "/repos/octo/app/issues/7/comments",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);

    let path = format!("/repos/octo/app/issues/comments/{id}");
    let (status, _, c) = call(
        &fake,
        Method::PATCH,
        &path,
        Some(json!({"body": "Deployed ✅"})),
    )
    .await;
    assert_eq!(
        (status, c["body"].as_str()),
        (StatusCode::OK, Some("Deployed ✅"))
    );
    let stored = fake.comments(REPO, 7);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (
            stored[0].edits,
            stored[0].body.as_str(),
            stored[0].user.as_str()
        ),
        (1, "Deployed ✅", BOT_LOGIN)
    );

    let reactions = format!("{path}/reactions");
    let (status, _, _) = call(
        &fake,
        Method::POST,
        &reactions,
        Some(json!({"content": "eyes"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = call(
        &fake,
        Method::POST,
        &reactions,
        Some(json!({"content": "eyes"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "repeat reaction answers 200 like GitHub"
    );
    assert_eq!(fake.reactions(REPO, id), vec!["eyes"]);
    let (_, _, c) = call(&fake, Method::GET, &path, None).await;
    assert_eq!(
        (
            c["reactions"]["eyes"].as_u64(),
            c["reactions"]["total_count"].as_u64()
        ),
        (Some(1), Some(1))
    );

    // Unknown things are 404 with GitHub's body; bad bodies are 400/422.
    let (status, _, body) = call(
        &fake,
        Method::POST,
        "/repos/octo/app/issues/99/comments",
        Some(json!({"body": "x"})),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("Not Found"))
    );
    assert_eq!(
        call(&fake, Method::GET, "/repos/octo/nope/pulls/7", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &fake,
            Method::GET,
            "/repos/octo/app/issues/comments/1",
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&fake, Method::PATCH, &path, Some(json!({"nobody": 1})))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn comments_paginate_with_link_header() {
    let fake = fake_with_pr().await;
    for i in 0..150 {
        fake.add_comment(REPO, 7, "alice", &format!("comment {i}"));
    }
    let (_, headers, page1) = call(
        &fake,
        Method::GET,
        "/repos/octo/app/issues/7/comments?per_page=100",
        None,
    )
    .await;
    assert_eq!(page1.as_array().unwrap().len(), 100);
    assert_eq!(page1[0]["body"], "comment 0", "oldest first");
    let base = fake.url();
    let l = link(&headers);
    assert!(
        l.contains(&format!(
            "<{base}repos/octo/app/issues/7/comments?per_page=100&page=2>; rel=\"next\""
        )),
        "{l}"
    );
    assert!(l.contains("page=2>; rel=\"last\""), "{l}");

    let (_, headers, page2) = call(
        &fake,
        Method::GET,
        "/repos/octo/app/issues/7/comments?per_page=100&page=2",
        None,
    )
    .await;
    assert_eq!(page2.as_array().unwrap().len(), 50);
    let l = link(&headers);
    assert!(
        l.contains("page=1>; rel=\"prev\"") && l.contains("rel=\"first\"") && !l.contains("next"),
        "{l}"
    );

    let (_, headers, default_page) = call(
        &fake,
        Method::GET,
        "/repos/octo/app/issues/7/comments",
        None,
    )
    .await;
    assert_eq!(default_page.as_array().unwrap().len(), 30);
    assert!(link(&headers).contains("?page=5>; rel=\"last\""));
    let (_, _, clamped) = call(
        &fake,
        Method::GET,
        "/repos/octo/app/issues/7/comments?per_page=500",
        None,
    )
    .await;
    assert_eq!(clamped.as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn deployments_statuses_and_auto_inactive() {
    let fake = fake_with_pr().await;
    let deployment_of = |git_ref: &str, transient: bool| {
        json!({"ref": git_ref, "environment": "pr-7", "transient_environment": transient,
        "production_environment": false, "auto_merge": false, "required_contexts": [], "payload": {"pr": 7}})
    };
    let new_deployment = |git_ref: &str| deployment_of(git_ref, false);
    let (status, _, d1) = call(
        &fake,
        Method::POST,
        "/repos/octo/app/deployments",
        Some(new_deployment("feat/login")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(d1["sha"], "a".repeat(40), "branch ref resolves to its sha");
    let d1_id = d1["id"].as_u64().unwrap();
    let ok = json!({"state": "success", "environment_url": "https://pr-7.preview.example.com", "log_url": "https://logs"});
    let path = |id: u64| format!("/repos/octo/app/deployments/{id}/statuses");
    assert_eq!(
        call(
            &fake,
            Method::POST,
            &path(d1_id),
            Some(json!({"state": "in_progress"}))
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        call(&fake, Method::POST, &path(d1_id), Some(ok.clone()))
            .await
            .0,
        StatusCode::CREATED
    );

    let (_, _, d2) = call(
        &fake,
        Method::POST,
        "/repos/octo/app/deployments",
        Some(new_deployment(&"b".repeat(40))),
    )
    .await;
    let d2_id = d2["id"].as_u64().unwrap();
    let (status, _, s) = call(&fake, Method::POST, &path(d2_id), Some(ok.clone())).await;
    assert_eq!(
        (status, s["environment_url"].as_str()),
        (
            StatusCode::CREATED,
            Some("https://pr-7.preview.example.com")
        )
    );

    let deployments = fake.deployments(REPO);
    let states = |i: usize| {
        deployments[i]
            .statuses
            .iter()
            .map(|s| s.state.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(states(0), ["in_progress", "success", "inactive"]);
    assert_eq!(states(1), ["success"]);
    assert!(!deployments[0].transient && !deployments[0].production);

    let (_, _, listed) = call(
        &fake,
        Method::GET,
        "/repos/octo/app/deployments?environment=pr-7",
        None,
    )
    .await;
    assert_eq!(listed[0]["id"].as_u64(), Some(d2_id), "newest first");
    let (_, _, statuses) = call(&fake, Method::GET, &path(d1_id), None).await;
    assert_eq!(statuses[0]["state"], "inactive", "newest first");

    // auto_inactive: false leaves older deployments alone.
    let (_, _, d3) = call(
        &fake,
        Method::POST,
        "/repos/octo/app/deployments",
        Some(new_deployment("feat/login")),
    )
    .await;
    let no_auto = json!({"state": "success", "auto_inactive": false});
    call(
        &fake,
        Method::POST,
        &path(d3["id"].as_u64().unwrap()),
        Some(no_auto),
    )
    .await;
    assert_eq!(
        fake.deployments(REPO)[1].statuses.last().unwrap().state,
        "success"
    );

    // Nor does GitHub deactivate transient deployments: only prior
    // non-transient, non-production ones.
    for sha in ["c".repeat(40), "d".repeat(40)] {
        let (_, _, d) = call(
            &fake,
            Method::POST,
            "/repos/octo/app/deployments",
            Some(deployment_of(&sha, true)),
        )
        .await;
        call(
            &fake,
            Method::POST,
            &path(d["id"].as_u64().unwrap()),
            Some(ok.clone()),
        )
        .await;
    }
    let transient = fake.deployments(REPO);
    assert_eq!(transient[3].statuses.last().unwrap().state, "success");

    // Commit statuses gate deployments unless required_contexts says otherwise.
    let sha = "c".repeat(40);
    let status_path = format!("/repos/octo/app/statuses/{sha}");
    let pending =
        json!({"state": "pending", "context": "pullstack/preview", "description": "Building"});
    assert_eq!(
        call(&fake, Method::POST, &status_path, Some(pending))
            .await
            .0,
        StatusCode::CREATED
    );
    let (status, _, err) = call(
        &fake,
        Method::POST,
        "/repos/octo/app/deployments",
        Some(json!({"ref": sha})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(
        err["errors"][0]["contexts"][0]["context"],
        "pullstack/preview"
    );
    let long =
        json!({"state": "success", "context": "pullstack/preview", "description": "x".repeat(141)});
    assert_eq!(
        call(&fake, Method::POST, &status_path, Some(long)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let done =
        json!({"state": "success", "context": "pullstack/preview", "target_url": "https://pr"});
    call(&fake, Method::POST, &status_path, Some(done)).await;
    assert_eq!(
        call(
            &fake,
            Method::POST,
            "/repos/octo/app/deployments",
            Some(json!({"ref": sha}))
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let recorded = fake.statuses(REPO, &sha);
    assert_eq!(
        recorded
            .iter()
            .map(|s| s.state.as_str())
            .collect::<Vec<_>>(),
        ["pending", "success"]
    );
    let (_, _, listed) = call(
        &fake,
        Method::GET,
        &format!("/repos/octo/app/commits/{sha}/statuses"),
        None,
    )
    .await;
    assert_eq!(listed[0]["state"], "success", "newest first");
}

#[tokio::test]
async fn permission_shapes() {
    let fake = fake_with_pr().await;
    for (login, role) in [
        ("boss", "admin"),
        ("rel", "maintain"),
        ("dev", "write"),
        ("tri", "triage"),
        ("ro", "read"),
        ("ex", "none"),
    ] {
        fake.set_permission(REPO, login, role);
    }
    let expect = [
        ("boss", "admin", "admin", true),
        ("rel", "write", "maintain", true),
        ("dev", "write", "write", true),
        ("tri", "read", "triage", false),
        ("ro", "read", "read", false),
        ("ex", "none", "none", false),
    ];
    for (login, legacy, role, push) in expect {
        let (status, _, v) = call(
            &fake,
            Method::GET,
            &format!("/repos/octo/app/collaborators/{login}/permission"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (v["permission"].as_str(), v["role_name"].as_str()),
            (Some(legacy), Some(role)),
            "{login}"
        );
        assert_eq!(v["user"]["login"], login);
        assert_eq!(v["user"]["permissions"]["push"], push, "{login}");
    }
    let (status, _, v) = call(
        &fake,
        Method::GET,
        "/repos/octo/app/collaborators/stranger/permission",
        None,
    )
    .await;
    assert_eq!(
        (status, v["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("Not Found"))
    );
}

#[tokio::test]
async fn installation_token_flow() {
    let fake = fake_with_pr().await;
    let jwt = Some("Bearer eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxIn0.c2ln");
    let (status, _, inst) = call_as(
        &fake,
        Method::GET,
        "/repos/octo/app/installation",
        None,
        jwt,
    )
    .await;
    assert_eq!((status, inst["id"].as_u64()), (StatusCode::OK, Some(1)));
    let token_path = "/app/installations/1/access_tokens";
    assert_eq!(
        call_as(
            &fake,
            Method::POST,
            token_path,
            None,
            Some("Bearer not-a-jwt")
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call_as(&fake, Method::POST, token_path, None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call_as(
            &fake,
            Method::POST,
            "/app/installations/2/access_tokens",
            None,
            jwt
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (status, _, tok) = call_as(&fake, Method::POST, token_path, None, jwt).await;
    assert_eq!(
        (status, tok["token"].as_str()),
        (StatusCode::CREATED, Some("ghs_fake_1"))
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(tok["expires_at"].as_str().unwrap()).unwrap();
    let left = expires
        .signed_duration_since(chrono::Utc::now())
        .num_minutes();
    assert!((58..=60).contains(&left), "{left}");
    call_as(&fake, Method::POST, token_path, None, jwt).await;
    assert_eq!(fake.installation_tokens_issued(), 2);
}

#[tokio::test]
async fn fail_next_auth_and_recording() {
    let fake = fake_with_pr().await;
    fake.fail_next(2, 502);
    for _ in 0..2 {
        let (status, _, body) = call(&fake, Method::GET, "/repos/octo/app/pulls/7", None).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (StatusCode::BAD_GATEWAY, Some("Server Error"))
        );
    }
    let (status, headers, pr) = call(&fake, Method::GET, "/repos/octo/app/pulls/7", None).await;
    assert_eq!(
        (status, pr["head"]["sha"].as_str()),
        (StatusCode::OK, Some(&*"a".repeat(40)))
    );
    assert_eq!(pr["merged"], false);
    assert!(headers.contains_key("x-ratelimit-remaining"));

    fake.fail_next(1, 403);
    let (status, headers, _) = call(&fake, Method::GET, "/repos/octo/app", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-ratelimit-remaining"], "0");

    let (status, _, body) = call_as(&fake, Method::GET, "/repos/octo/app/pulls", None, None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("Requires authentication"))
    );
    let (status, _, limits) = call_as(&fake, Method::GET, "/rate_limit", None, None).await;
    assert_eq!(
        (status, limits["resources"]["core"]["limit"].as_u64()),
        (StatusCode::OK, Some(5000))
    );

    let requests = fake.requests();
    assert_eq!(fake.request_count(), 6);
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 502, 200, 403, 401, 200]);
    assert_eq!(requests[0].path, "/repos/octo/app/pulls/7");
    assert_eq!(requests[0].authorization.as_deref(), Some("token ghs_test"));
    assert_eq!(requests[4].authorization, None);
}

#[tokio::test]
async fn secondary_limits_and_chaos_on_demand() {
    let fake = fake_with_pr().await;
    let pull = "/repos/octo/app/pulls/7";
    fake.secondary_limit_next(1, 7);
    let (status, headers, body) = call(&fake, Method::GET, pull, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["retry-after"], "7");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("secondary rate limit")),
        "{body}"
    );

    // At a rate of 1, every request fails, in each of the ways.
    fake.set_chaos(Some(Chaos {
        seed: 7,
        rate: 1.0,
        retry_after: 2,
    }));
    let url = format!("{}{}", fake.url(), pull.trim_start_matches('/'));
    let client = reqwest::Client::new();
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let sent = client
            .get(&url)
            .header("authorization", "token ghs_test")
            .send()
            .await;
        let kind = match sent {
            Err(_) => "dropped",
            Ok(answer) => match answer.status().as_u16() {
                403 => {
                    assert_eq!(answer.headers()["retry-after"], "2");
                    "secondary limit"
                }
                500 | 502 | 503 => "server error",
                status => {
                    assert!(answer.bytes().await.is_err(), "{status} with a body");
                    "dropped"
                }
            },
        };
        kinds.insert(kind);
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["dropped", "secondary limit", "server error"]
    );
    fake.set_chaos(None);
    let (status, _, _) = call(&fake, Method::GET, pull, None).await;
    assert_eq!(status, StatusCode::OK);
    let requests = fake.requests();
    assert_eq!(requests.len(), 42);
    assert!(requests.windows(2).all(|w| w[0].at <= w[1].at));
}

#[tokio::test]
async fn pulls_branches_and_control_api() {
    let fake = fake_with_pr().await;
    let fork = FakePr {
        number: 8,
        head_repo: "mallory/app".into(),
        head_ref: "main".into(),
        state: "closed".into(),
        ..FakePr::default()
    };
    fake.upsert_pr(REPO, fork);
    let (_, _, open) = call(&fake, Method::GET, "/repos/octo/app/pulls", None).await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    let (_, _, all) = call(&fake, Method::GET, "/repos/octo/app/pulls?state=all", None).await;
    assert_eq!(all[0]["number"], 8, "newest first");
    assert_eq!(
        (
            all[0]["head"]["repo"]["full_name"].as_str(),
            all[0]["head"]["repo"]["fork"].as_bool()
        ),
        (Some("mallory/app"), Some(true))
    );
    let (_, _, by_head) = call(
        &fake,
        Method::GET,
        "/repos/octo/app/pulls?state=all&head=octo:feat/login",
        None,
    )
    .await;
    assert_eq!(by_head.as_array().unwrap().len(), 1);

    let (status, _, b) = call(
        &fake,
        Method::GET,
        "/repos/octo/app/branches/feat/login",
        None,
    )
    .await;
    assert_eq!(
        (status, b["commit"]["sha"].as_str()),
        (StatusCode::OK, Some(&*"a".repeat(40)))
    );
    fake.remove_branch(REPO, "feat/login");
    assert_eq!(
        call(
            &fake,
            Method::GET,
            "/repos/octo/app/branches/feat/login",
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (_, _, branches) = call(&fake, Method::GET, "/repos/octo/app/branches", None).await;
    assert_eq!(branches[0]["name"], "main");
    let (_, _, repo) = call(&fake, Method::GET, "/repos/Octo/App", None).await;
    assert_eq!(
        (repo["full_name"].as_str(), repo["default_branch"].as_str()),
        (Some(REPO), Some("main"))
    );

    let before = fake.request_count();
    let (status, _, pr) = call_as(
        &fake,
        Method::POST,
        "/_fake/prs",
        Some(json!({"number": 9, "head_ref": "x", "labels": ["preview"]})),
        None,
    )
    .await;
    assert_eq!(
        (status, pr["head_repo"].as_str()),
        (StatusCode::CREATED, Some(REPO))
    );
    assert_eq!(fake.pr(REPO, 9).unwrap().labels, ["preview"]);
    fake.add_comment(REPO, 9, "alice", "hi");
    let (_, _, comments) =
        call_as(&fake, Method::GET, "/_fake/comments/octo/app/9", None, None).await;
    assert_eq!(comments[0]["body"], "hi");
    assert_eq!(
        fake.request_count(),
        before,
        "control routes are not recorded"
    );
}

/// The control API's merge, as demos use it: a fast-forward of the base
/// branch to the PR's head, the PR closed and merged by the given login.
#[tokio::test]
async fn control_merge_fast_forwards_the_base_branch() {
    let fake = fake_with_pr().await;
    let merge = json!({"number": 7, "merged_by": "rita"});
    let (status, _, pr) = call_as(
        &fake,
        Method::POST,
        "/_fake/merge",
        Some(merge.clone()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (pr["state"].as_str(), pr["merged"].as_bool()),
        (Some("closed"), Some(true))
    );
    assert_eq!(fake.branch(REPO, "main"), Some("a".repeat(40)));
    let (_, _, got) = call(&fake, Method::GET, "/repos/octo/app/pulls/7", None).await;
    assert_eq!(
        (got["merged"].as_bool(), got["merged_by"]["login"].as_str()),
        (Some(true), Some("rita"))
    );
    let (again, _, _) = call_as(&fake, Method::POST, "/_fake/merge", Some(merge), None).await;
    assert_eq!(
        again,
        StatusCode::METHOD_NOT_ALLOWED,
        "a merged PR is merged once"
    );
}

/// The JSON shapes must be what a real client expects: parse them with octocrab's models.
#[tokio::test]
async fn octocrab_parses_the_shapes() {
    use octocrab::models;
    let fake = fake_with_pr().await;
    for i in 0..120 {
        fake.add_comment(REPO, 7, "alice", &format!("c{i}"));
    }
    let gh = octocrab::Octocrab::builder()
        .base_uri(fake.url())
        .unwrap()
        .personal_token("ghs_test".to_string())
        .build()
        .unwrap();

    let pr = gh.pulls("octo", "app").get(7).await.expect("pull request");
    assert_eq!(
        (pr.head.sha.as_str(), pr.merged),
        (&*"a".repeat(40), Some(false))
    );
    assert!(pr.merged_by.is_none());
    let mut merged = fake.pr(REPO, 7).unwrap();
    (merged.state, merged.merged, merged.merged_by) = ("closed".into(), true, "lead".into());
    fake.upsert_pr(REPO, merged);
    let pr = gh
        .pulls("octo", "app")
        .get(7)
        .await
        .expect("merged pull request");
    assert_eq!(pr.merged_by.map(|u| u.login).as_deref(), Some("lead"));
    let prs = gh
        .pulls("octo", "app")
        .list()
        .state(octocrab::params::State::All)
        .send()
        .await
        .expect("pull list");
    assert_eq!(prs.items.len(), 1);

    let first = gh
        .issues("octo", "app")
        .list_comments(7)
        .per_page(50)
        .send()
        .await
        .expect("comments");
    assert_eq!(
        gh.all_pages(first).await.expect("all pages").len(),
        120,
        "octocrab follows our Link header"
    );
    let c = gh
        .issues("octo", "app")
        .create_comment(7, "hello")
        .await
        .expect("create comment");
    gh.issues("octo", "app")
        .update_comment(c.id, "edited")
        .await
        .expect("update comment");
    assert_eq!(fake.comments(REPO, 7).last().unwrap().edits, 1);

    let d: models::repos::Deployment = gh
        .post(
            "/repos/octo/app/deployments",
            Some(&json!({"ref": "feat/login", "environment": "pr-7", "required_contexts": []})),
        )
        .await
        .expect("deployment");
    let status: models::repos::DeploymentStatus = gh
        .post(
            format!("/repos/octo/app/deployments/{}/statuses", d.id),
            Some(&json!({"state": "success"})),
        )
        .await
        .expect("deployment status");
    assert_eq!(status.state, models::repos::DeploymentStatusState::Success);
    let _: Vec<models::repos::Deployment> = gh
        .get("/repos/octo/app/deployments", None::<&()>)
        .await
        .expect("deployment list");
    let _: models::Status = gh
        .post(
            format!("/repos/octo/app/statuses/{}", d.sha),
            Some(&json!({"state": "pending"})),
        )
        .await
        .expect("status");
    let _: Vec<models::Status> = gh
        .get(
            format!("/repos/octo/app/commits/{}/statuses", d.sha),
            None::<&()>,
        )
        .await
        .expect("statuses");
    let branches = gh
        .repos("octo", "app")
        .list_branches()
        .send()
        .await
        .expect("branches");
    assert_eq!(branches.items.len(), 2);
    let repo = gh.repos("octo", "app").get().await.expect("repo");
    assert_eq!(repo.default_branch.as_deref(), Some("main"));
    let _: models::Installation = gh
        .get("/repos/octo/app/installation", None::<&()>)
        .await
        .expect("installation");
    let _: models::RateLimit = gh
        .get("/rate_limit", None::<&()>)
        .await
        .expect("rate limit");
}

#[test]
fn payload_builders_are_signed_json() {
    use crate::support::payloads;
    let body = payloads::pull_request(&payloads::PrPayload {
        action: "opened",
        repo: REPO,
        number: 7,
        head_sha: &"a".repeat(40),
        head_ref: "feat/login",
        head_repo: REPO,
        base_ref: "main",
        title: "Login",
        merged: false,
        labels: &[],
        sender: "alice",
        label: None,
    });
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["pull_request"]["head"]["ref"], "feat/login");
    let headers = payloads::delivery_headers("pull_request", b"s3cret", &body);
    let sig = headers
        .iter()
        .find(|(k, _)| *k == "x-hub-signature-256")
        .unwrap();
    assert_eq!(sig.1, payloads::sign(b"s3cret", &body));
}

/// Every builder's output must also parse with octocrab's webhook event types.
#[test]
fn payloads_parse_as_octocrab_webhook_events() {
    use crate::support::payloads::*;
    use octocrab::models::webhook_events::{WebhookEvent, WebhookEventPayload};
    const HEAD_SHA: &str = "1111111111111111111111111111111111111111";
    let (sha, zeros) = (HEAD_SHA, "0".repeat(40));
    let pr = |action: &'static str, label: Option<&'static str>| PrPayload {
        action,
        repo: REPO,
        number: 7,
        head_sha: HEAD_SHA,
        head_ref: "feat/login",
        head_repo: "mallory/app",
        base_ref: "main",
        title: "Login",
        merged: action == "closed",
        labels: &["preview"],
        sender: "alice",
        label,
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "push",
            push(REPO, "refs/heads/feat", &zeros, sha, true, false, false),
        ),
        (
            "push",
            push(REPO, "refs/heads/feat", sha, &zeros, false, true, false),
        ),
        (
            "issue_comment",
            issue_comment(REPO, 7, 99, "bob", "MEMBER", "/preview", true),
        ),
        (
            "issue_comment",
            issue_comment(REPO, 7, 99, "bob", "NONE", "hi", false),
        ),
        ("delete", delete_branch(REPO, "feat/login")),
        (
            "workflow_run",
            workflow_run_completed(REPO, sha, "feat/login", "success"),
        ),
        ("ping", fixture("ping/payload.json")),
    ];
    for (action, label) in [
        ("opened", None),
        ("synchronize", None),
        ("closed", None),
        ("reopened", None),
        ("labeled", Some("preview")),
        ("unlabeled", Some("preview")),
    ] {
        cases.push(("pull_request", pull_request(&pr(action, label))));
    }
    for (event, body) in cases {
        let parsed = WebhookEvent::try_from_header_and_body(event, &body)
            .unwrap_or_else(|e| panic!("{event}: {e}"));
        let repo = parsed.repository.as_ref().and_then(|r| r.full_name.clone());
        if event != "ping" {
            assert_eq!(repo.as_deref(), Some(REPO), "{event}");
        }
        if let WebhookEventPayload::PullRequest(p) = parsed.specific {
            assert_eq!(p.number, 7);
            assert_eq!(
                p.pull_request
                    .head
                    .repo
                    .and_then(|r| r.full_name)
                    .as_deref(),
                Some("mallory/app")
            );
        }
    }
}
