//! The routes, and the gate every API request passes first: the auth check, injected
//! failures, request recording and rate-limit headers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;

use super::api::{ApiError, Sh, not_found};
use super::apps::{
    create_token, get_app, get_installation, get_user, list_installation_repositories,
    list_installations, rate_limit,
};
use super::checks::{create_check_run, get_check_run, list_check_runs, update_check_run};
use super::comments::{
    add_reaction, create_comment, edit_comment, get_comment, list_comments, list_reactions,
};
use super::contents::{get_contents, list_pull_files};
use super::control::{fake_comments, fake_deployments, fake_merge, fake_post_pr, fake_requests};
use super::deployments::{
    create_deployment, create_deployment_status, get_deployment, list_deployment_statuses,
    list_deployments,
};
use super::pulls::{get_pull, list_pulls};
use super::repos::{commit_pulls, get_branch, get_permission, get_repo, list_branches};
use super::statuses::{create_status, list_statuses};
use super::{Fault, RecordedRequest, Shared};

pub(super) fn router(shared: Arc<Shared>) -> Router {
    let repo = "/repos/{o}/{r}";
    Router::new()
        .route(repo, get(get_repo))
        .route(&format!("{repo}/pulls"), get(list_pulls))
        .route(&format!("{repo}/pulls/{{n}}"), get(get_pull))
        .route(
            &format!("{repo}/issues/{{n}}/comments"),
            get(list_comments).post(create_comment),
        )
        // GitHub accepts POST in place of PATCH (octocrab's update_comment relies on it).
        .route(
            &format!("{repo}/issues/comments/{{id}}"),
            get(get_comment).patch(edit_comment).post(edit_comment),
        )
        .route(
            &format!("{repo}/issues/comments/{{id}}/reactions"),
            get(list_reactions).post(add_reaction),
        )
        .route(
            &format!("{repo}/deployments"),
            get(list_deployments).post(create_deployment),
        )
        .route(&format!("{repo}/deployments/{{id}}"), get(get_deployment))
        .route(
            &format!("{repo}/deployments/{{id}}/statuses"),
            get(list_deployment_statuses).post(create_deployment_status),
        )
        .route(&format!("{repo}/statuses/{{sha}}"), post(create_status))
        .route(
            &format!("{repo}/commits/{{git_ref}}/statuses"),
            get(list_statuses),
        )
        .route(
            &format!("{repo}/collaborators/{{login}}/permission"),
            get(get_permission),
        )
        .route(&format!("{repo}/commits/{{sha}}/pulls"), get(commit_pulls))
        .route(&format!("{repo}/branches"), get(list_branches))
        .route(&format!("{repo}/branches/{{*name}}"), get(get_branch))
        .route(&format!("{repo}/installation"), get(get_installation))
        .route(&format!("{repo}/contents/{{*path}}"), get(get_contents))
        .route(&format!("{repo}/pulls/{{n}}/files"), get(list_pull_files))
        .route(&format!("{repo}/check-runs"), post(create_check_run))
        .route(
            &format!("{repo}/check-runs/{{id}}"),
            get(get_check_run).patch(update_check_run),
        )
        .route(
            &format!("{repo}/commits/{{git_ref}}/check-runs"),
            get(list_check_runs),
        )
        .route("/app/installations", get(list_installations))
        .route("/app/installations/{id}/access_tokens", post(create_token))
        .route(
            "/installation/repositories",
            get(list_installation_repositories),
        )
        .route("/rate_limit", get(rate_limit))
        .route("/user", get(get_user))
        .route("/app", get(get_app))
        .route("/_fake/prs", post(fake_post_pr))
        .route("/_fake/merge", post(fake_merge))
        .route("/_fake/comments/{o}/{r}/{n}", get(fake_comments))
        .route("/_fake/deployments/{o}/{r}", get(fake_deployments))
        .route("/_fake/requests", get(fake_requests))
        .fallback(|| async { not_found() })
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

/// Auth check, injected failures, request recording and rate-limit headers.
async fn gate(State(sh): Sh, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_fake/") {
        return next.run(req).await;
    }
    // Counted until the answer is made, even if the client is gone; its end
    // is announced to those waiting for a change.
    struct InFlight<'a>(&'a Shared);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.0.answered.send_modify(|n| *n += 1);
        }
    }
    sh.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&sh);
    let at = Utc::now();
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |pq| pq.to_string());
    let [authorization, accept, api_version] = [
        header::AUTHORIZATION.as_str(),
        header::ACCEPT.as_str(),
        "x-github-api-version",
    ]
    .map(|name| {
        let value = req.headers().get(name)?;
        value.to_str().ok().map(str::to_string)
    });
    let rejection = if authorization.is_none() && req.uri().path() != "/rate_limit" {
        Some(Err(ApiError::new(401, "Requires authentication")))
    } else if req.uri().path().contains("/check-runs")
        && authorization
            .as_deref()
            .is_some_and(|a| a.contains("ghp_") || a.contains("github_pat_"))
    {
        // As GitHub: the Checks API is for Apps; a personal token is refused.
        Some(Err(ApiError::new(
            403,
            "Resource not accessible by personal access token",
        )))
    } else {
        sh.lock().next_fault().map(|fault| match fault {
            Fault::Status(status) => Err(injected_failure(status)),
            Fault::SecondaryLimit(retry_after) => Err(secondary_limit(retry_after)),
            Fault::Drop => Ok(dropped()),
        })
    };
    let mut resp = match rejection {
        Some(Err(e)) => e.into_response(),
        Some(Ok(dropped)) => dropped,
        None => next.run(req).await,
    };
    let used = {
        let mut db = sh.lock();
        db.requests.push(RecordedRequest {
            method,
            path,
            status: resp.status().as_u16(),
            authorization,
            accept,
            api_version,
            at,
        });
        db.requests.len().min(5000)
    };
    let headers = [
        ("x-ratelimit-limit", "5000".to_string()),
        ("x-ratelimit-remaining", (5000 - used).to_string()),
        ("x-ratelimit-used", used.to_string()),
        (
            "x-ratelimit-reset",
            (Utc::now().timestamp() + 3600).to_string(),
        ),
        ("x-ratelimit-resource", "core".into()),
        ("x-github-request-id", format!("FAKE:{:X}", sh.id())),
        ("x-github-api-version-selected", "2022-11-28".into()),
    ];
    for (name, value) in headers {
        resp.headers_mut()
            .entry(name)
            .or_insert(HeaderValue::from_str(&value).expect("header"));
    }
    resp
}

/// GitHub's secondary rate limit: 403, with how long to wait.
fn secondary_limit(retry_after: u64) -> ApiError {
    let mut e = ApiError::new(
        403,
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    );
    e.headers = vec![("retry-after", retry_after.to_string())];
    e
}

/// A response whose body fails at once: the server drops the connection
/// before the client has an answer.
pub(crate) fn dropped() -> Response {
    /// A reader whose every read fails.
    struct Broken;
    impl tokio::io::AsyncRead for Broken {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let reset = std::io::ErrorKind::ConnectionReset;
            std::task::Poll::Ready(Err(std::io::Error::new(reset, "connection dropped")))
        }
    }
    let body = tokio_util::io::ReaderStream::new(Broken);
    Response::new(axum::body::Body::from_stream(body))
}

/// The body `fail_next` answers with, per status code.
fn injected_failure(status: u16) -> ApiError {
    let reset = (Utc::now().timestamp() + 60).to_string();
    let message = match status {
        401 => "Bad credentials",
        403 => "API rate limit exceeded for installation ID 1.",
        404 => "Not Found",
        409 => "Conflict",
        422 => "Validation Failed",
        429 => {
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        }
        502 => "Server Error",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    let mut e = ApiError::new(status, message);
    match status {
        403 => {
            e.headers = vec![
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", reset),
            ]
        }
        429 => e.headers = vec![("retry-after", "1".into())],
        _ => {}
    }
    e
}
