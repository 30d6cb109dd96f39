//! Deployments and their statuses, with GitHub's commit-status check on create and the
//! `auto_inactive` of older non-transient, non-production deployments on success.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{
    ApiError, ApiResult, Params, Sh, check_description, created, invalid, not_found, ok, paginate,
    parse,
};
use super::json::{deployment_json, deployment_status_json};
use super::{FakeDeployment, FakeDeploymentStatus};

#[derive(Deserialize)]
struct NewDeployment {
    #[serde(rename = "ref")]
    ref_: String,
    task: Option<String>,
    environment: Option<String>,
    description: Option<String>,
    transient_environment: Option<bool>,
    production_environment: Option<bool>,
    /// Accepted and ignored (the fake never merges the default branch into the ref).
    #[allow(dead_code)]
    auto_merge: Option<bool>,
    required_contexts: Option<Vec<String>>,
    #[serde(default)]
    payload: Value,
}

pub(super) async fn create_deployment(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let nd: NewDeployment = parse(&body)?;
    let id = sh.id();
    created(sh.with_repo(&o, &r, |repo| {
        let sha = repo.resolve(&nd.ref_);
        let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
        for s in repo.statuses.iter().filter(|s| s.sha == sha) {
            latest.insert(&s.context, &s.state);
        }
        let failing: Vec<Value> = match &nd.required_contexts {
            None => latest.iter().filter(|(_, st)| **st != "success").map(|(c, st)| json!({"context": c, "state": st})).collect(),
            Some(req) => (req.iter().map(|c| (c.as_str(), latest.get(c.as_str()).copied().unwrap_or("missing"))))
                .filter(|(_, st)| *st != "success").map(|(c, st)| json!({"context": c, "state": st})).collect(),
        };
        if !failing.is_empty() {
            let mut e = ApiError::new(409, &format!("Conflict: Commit status checks failed for {}.", nd.ref_));
            e.errors = Some(Box::new(json!([{ "contexts": failing, "resource": "Deployment", "field": "required_contexts", "code": "invalid" }])));
            return Err(e);
        }
        let environment = nd.environment.clone().unwrap_or_else(|| "production".into());
        let d = FakeDeployment {
            id,
            sha,
            ref_: nd.ref_.clone(),
            task: nd.task.clone().unwrap_or_else(|| "deploy".into()),
            production: nd.production_environment.unwrap_or(environment == "production"),
            transient: nd.transient_environment.unwrap_or(false),
            environment,
            description: nd.description.clone().unwrap_or_default(),
            payload: if nd.payload.is_null() { json!({}) } else { nd.payload.clone() },
            created_at: Utc::now(),
            statuses: vec![],
        };
        repo.deployments.push(d);
        Ok(deployment_json(&sh.base, &repo.full_name, repo.deployments.last().expect("pushed")))
    })?)
}

/// Filters: environment, sha, ref, task. Newest first.
pub(super) async fn list_deployments(
    State(sh): Sh,
    Path((o, r)): Path<(String, String)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        let matches = |d: &FakeDeployment| {
            [
                ("environment", &d.environment),
                ("sha", &d.sha),
                ("ref", &d.ref_),
                ("task", &d.task),
            ]
            .iter()
            .all(|(k, v)| q.get(*k).is_none_or(|want| want == *v))
        };
        let found = repo.deployments.iter().rev().filter(|d| matches(d));
        Ok(found
            .map(|d| deployment_json(&sh.base, &repo.full_name, d))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}

pub(super) async fn get_deployment(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
) -> ApiResult {
    ok(sh.with_repo(&o, &r, |repo| {
        let d = repo
            .deployments
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(not_found)?;
        Ok(deployment_json(&sh.base, &repo.full_name, d))
    })?)
}

#[derive(Deserialize)]
struct NewDeploymentStatus {
    state: String,
    environment_url: Option<String>,
    log_url: Option<String>,
    target_url: Option<String>,
    description: Option<String>,
    environment: Option<String>,
    auto_inactive: Option<bool>,
}

pub(super) async fn create_deployment_status(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    body: Bytes,
) -> ApiResult {
    let ns: NewDeploymentStatus = parse(&body)?;
    const STATES: [&str; 7] = [
        "error",
        "failure",
        "inactive",
        "in_progress",
        "queued",
        "pending",
        "success",
    ];
    if !STATES.contains(&ns.state.as_str()) {
        return Err(invalid(
            "DeploymentStatus",
            "state",
            "state is not included in the list",
        ));
    }
    check_description("DeploymentStatus", ns.description.as_deref())?;
    let sid = sh.id();
    created(sh.with_repo(&o, &r, |repo| {
        let idx = repo
            .deployments
            .iter()
            .position(|d| d.id == id)
            .ok_or_else(not_found)?;
        let now = Utc::now();
        let d = &mut repo.deployments[idx];
        if let Some(env) = &ns.environment {
            d.environment = env.clone();
        }
        let status = FakeDeploymentStatus {
            id: sid,
            state: ns.state.clone(),
            environment: d.environment.clone(),
            environment_url: ns.environment_url.clone().unwrap_or_default(),
            log_url: ns
                .log_url
                .clone()
                .or(ns.target_url.clone())
                .unwrap_or_default(),
            description: ns.description.clone().unwrap_or_default(),
            created_at: now,
        };
        d.statuses.push(status.clone());
        let env = d.environment.clone();
        // auto_inactive (default true), as GitHub documents it: "Adds a new inactive status to
        // all prior non-transient, non-production environment deployments with the same
        // repository and environment name as the created status's deployment. An inactive
        // status is only added to deployments that had a success state."
        if ns.state == "success" && ns.auto_inactive.unwrap_or(true) {
            for old in repo
                .deployments
                .iter_mut()
                .filter(|x| x.id < id && x.environment == env && !x.transient && !x.production)
            {
                if old.statuses.last().is_some_and(|s| s.state == "success") {
                    let s = FakeDeploymentStatus {
                        id: sh.id(),
                        state: "inactive".into(),
                        environment: env.clone(),
                        environment_url: String::new(),
                        log_url: String::new(),
                        description: String::new(),
                        created_at: now,
                    };
                    old.statuses.push(s);
                }
            }
        }
        Ok(deployment_status_json(
            &sh.base,
            &repo.full_name,
            &repo.deployments[idx],
            &status,
        ))
    })?)
}

pub(super) async fn list_deployment_statuses(
    State(sh): Sh,
    Path((o, r, id)): Path<(String, String, u64)>,
    Query(q): Params,
    uri: Uri,
) -> ApiResult {
    let items = sh.with_repo(&o, &r, |repo| {
        let d = repo
            .deployments
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(not_found)?;
        Ok(d.statuses
            .iter()
            .rev()
            .map(|s| deployment_status_json(&sh.base, &repo.full_name, d, s))
            .collect())
    })?;
    paginate(&sh.base, &uri, &q, items)
}
