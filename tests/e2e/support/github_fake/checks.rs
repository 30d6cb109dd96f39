//! Check runs: creating and updating one on a commit, reading it, and
//! listing a commit's. Request bodies are checked as GitHub checks them:
//! required fields, the status, conclusion and annotation-level enums, a
//! conclusion exactly when completed, columns only on one-line
//! annotations, and at most 50 annotations per request (an update's are
//! added to the run's).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult, Params, Sh, created, invalid, not_found, ok, parse};
use super::json::ts;
use super::{FakeAnnotation, FakeCheckRun};

const STATUSES: [&str; 6] = [
    "queued",
    "in_progress",
    "completed",
    "waiting",
    "requested",
    "pending",
];
const CONCLUSIONS: [&str; 8] = [
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
];
const LEVELS: [&str; 3] = ["notice", "warning", "failure"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    name: Option<String>,
    head_sha: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    // Taken as GitHub takes them, not kept.
    #[allow(dead_code)]
    details_url: Option<String>,
    #[allow(dead_code)]
    external_id: Option<String>,
    #[allow(dead_code)]
    started_at: Option<String>,
    #[allow(dead_code)]
    completed_at: Option<String>,
    output: Option<Output>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Output {
    title: Option<String>,
    summary: Option<String>,
    text: Option<String>,
    #[serde(default)]
    annotations: Vec<FakeAnnotation>,
}

fn check(body: &Body) -> Result<(), ApiError> {
    let fail = |field: &str, message: &str| Err(invalid("CheckRun", field, message));
    if let Some(status) = &body.status
        && !STATUSES.contains(&status.as_str())
    {
        return fail("status", "status is not included in the list");
    }
    if let Some(conclusion) = &body.conclusion
        && !CONCLUSIONS.contains(&conclusion.as_str())
    {
        return fail("conclusion", "conclusion is not included in the list");
    }
    if body.status.as_deref() == Some("completed") && body.conclusion.is_none() {
        return fail(
            "conclusion",
            "conclusion is required when status is completed",
        );
    }
    let Some(output) = &body.output else {
        return Ok(());
    };
    if output.title.as_deref().is_none_or(str::is_empty) {
        return fail("output.title", "title is required");
    }
    match &output.summary {
        None => return fail("output.summary", "summary is required"),
        Some(s) if s.chars().count() > 65_535 => {
            return fail(
                "output.summary",
                "summary is too long (maximum is 65535 characters)",
            );
        }
        _ => {}
    }
    if output
        .text
        .as_ref()
        .is_some_and(|t| t.chars().count() > 65_535)
    {
        return fail(
            "output.text",
            "text is too long (maximum is 65535 characters)",
        );
    }
    if output.annotations.len() > 50 {
        return fail(
            "output.annotations",
            "too many annotations (maximum is 50 per request)",
        );
    }
    for note in &output.annotations {
        if note.path.is_empty() || note.message.is_empty() {
            return fail("output.annotations", "path and message are required");
        }
        if !LEVELS.contains(&note.annotation_level.as_str()) {
            return fail(
                "output.annotations",
                "annotation_level is not included in the list",
            );
        }
        if note.start_line == 0 || note.end_line < note.start_line {
            return fail("output.annotations", "start_line and end_line are invalid");
        }
        let columns = note.start_column.is_some() || note.end_column.is_some();
        if columns && note.start_line != note.end_line {
            return fail(
                "output.annotations",
                "start_column and end_column may only be given when start_line equals end_line",
            );
        }
    }
    Ok(())
}

fn run_json(base: &str, full: &str, run: &FakeCheckRun) -> Value {
    json!({
        "id": run.id, "node_id": format!("CR_fake{}", run.id), "name": run.name,
        "head_sha": run.head_sha, "external_id": "", "status": run.status,
        "conclusion": run.conclusion, "url": format!("{base}repos/{full}/check-runs/{}", run.id),
        "html_url": format!("https://github.com/{full}/runs/{}", run.id), "details_url": null,
        "started_at": ts(&run.created_at), "completed_at": run.conclusion.as_ref().map(|_| ts(&run.updated_at)),
        "output": { "title": run.title, "summary": run.summary, "text": null,
            "annotations_count": run.annotations.len(),
            "annotations_url": format!("{base}repos/{full}/check-runs/{}/annotations", run.id) },
        "check_suite": { "id": 1 }, "app": { "id": 29_310, "slug": "pullstack", "name": "pullstack" },
        "pull_requests": [],
    })
}

pub(super) async fn create_check_run(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body: Body = parse(&body)?;
    let (Some(name), Some(head_sha)) = (body.name.clone(), body.head_sha.clone()) else {
        return Err(invalid(
            "CheckRun",
            "name",
            "name and head_sha are required",
        ));
    };
    if head_sha.len() != 40 || !head_sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("CheckRun", "head_sha", "No commit found for SHA"));
    }
    check(&body)?;
    let id = sh.id();
    let now = Utc::now();
    let v = sh.with_repo(&o, &r, |repo| {
        let output = body.output.unwrap_or(Output {
            title: None,
            summary: None,
            text: None,
            annotations: vec![],
        });
        let run = FakeCheckRun {
            id,
            name,
            head_sha,
            status: body.status.unwrap_or_else(|| {
                if body.conclusion.is_some() {
                    "completed"
                } else {
                    "queued"
                }
                .into()
            }),
            conclusion: body.conclusion,
            title: output.title,
            summary: output.summary,
            annotations: output.annotations,
            created_at: now,
            updated_at: now,
            requests: 1,
        };
        let v = run_json(&sh.base, &repo.full_name, &run);
        repo.check_runs.push(run);
        Ok(v)
    })?;
    created(v)
}

pub(super) async fn update_check_run(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> ApiResult {
    let body: Body = parse(&body)?;
    if body.head_sha.is_some() {
        return Err(invalid(
            "CheckRun",
            "head_sha",
            "head_sha cannot be changed",
        ));
    }
    check(&body)?;
    let v = sh.with_repo(&o, &r, |repo| {
        let full = repo.full_name.clone();
        let run = repo
            .check_runs
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(not_found)?;
        if let Some(name) = body.name {
            run.name = name;
        }
        if let Some(conclusion) = body.conclusion {
            run.conclusion = Some(conclusion);
            run.status = "completed".into();
        }
        if let Some(status) = body.status {
            run.status = status;
        }
        if let Some(output) = body.output {
            run.title = output.title;
            run.summary = output.summary;
            run.annotations.extend(output.annotations);
        }
        run.updated_at = Utc::now();
        run.requests += 1;
        Ok(run_json(&sh.base, &full, run))
    })?;
    ok(v)
}

pub(super) async fn get_check_run(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
) -> ApiResult {
    let v = sh.with_repo(&o, &r, |repo| {
        let run = repo
            .check_runs
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(not_found)?;
        Ok(run_json(&sh.base, &repo.full_name, run))
    })?;
    ok(v)
}

/// A commit's check runs, newest first, filtered by `check_name`.
pub(super) async fn list_check_runs(
    State(sh): Sh,
    Path((o, r, git_ref)): Path<(String, String, String)>,
    Query(q): Params,
) -> ApiResult {
    let v = sh.with_repo(&o, &r, |repo| {
        let sha = repo.resolve(&git_ref);
        let runs: Vec<Value> = (repo.check_runs.iter().rev())
            .filter(|c| c.head_sha == sha)
            .filter(|c| q.get("check_name").is_none_or(|n| *n == c.name))
            .map(|c| run_json(&sh.base, &repo.full_name, c))
            .collect();
        Ok(json!({ "total_count": runs.len(), "check_runs": runs }))
    })?;
    ok(v)
}
