//! What every handler shares: GitHub-style errors, body parsing and pagination.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Shared;

const DOCS: &str = "https://docs.github.com/rest";

#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) errors: Option<Box<Value>>,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub(super) fn new(status: u16, message: &str) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            message: message.into(),
            errors: None,
            headers: vec![],
        }
    }
}

pub(super) fn not_found() -> ApiError {
    ApiError::new(404, "Not Found")
}

/// GitHub's 422 shape for a rejected field.
pub(super) fn invalid(resource: &str, field: &str, message: &str) -> ApiError {
    let mut e = ApiError::new(422, "Validation Failed");
    let error =
        json!({ "resource": resource, "code": "custom", "field": field, "message": message });
    e.errors = Some(Box::new(json!([error])));
    e
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "message": self.message, "documentation_url": DOCS, "status": self.status.as_str() });
        if let Some(errors) = self.errors {
            body["errors"] = *errors;
        }
        let mut resp = (self.status, Json(body)).into_response();
        for (k, v) in self.headers {
            resp.headers_mut()
                .insert(k, HeaderValue::from_str(&v).expect("header value"));
        }
        resp
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}
pub(super) fn created(v: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// 400 for malformed JSON, 422 for a body of the wrong shape (like GitHub).
pub(super) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::new(400, "Problems parsing JSON"))?;
    serde_json::from_value(v).map_err(|e| ApiError::new(422, &format!("Invalid request.\n\n{e}")))
}

pub(super) fn check_description(resource: &str, description: Option<&str>) -> Result<(), ApiError> {
    match description {
        Some(d) if d.chars().count() > 140 => Err(invalid(
            resource,
            "description",
            "description is too long (maximum is 140 characters)",
        )),
        _ => Ok(()),
    }
}

pub(super) type Sh = State<Arc<Shared>>;

pub(super) type Params = Query<HashMap<String, String>>;

/// Slices `items` by `per_page`/`page` and adds GitHub's `Link` header.
pub(super) fn paginate(
    base: &str,
    uri: &Uri,
    q: &HashMap<String, String>,
    items: Vec<Value>,
) -> ApiResult {
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let page_items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let others: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("page="))
        .collect();
    let link = |n: usize, rel: &str| {
        let query = others
            .iter()
            .copied()
            .chain([format!("page={n}").as_str()])
            .collect::<Vec<_>>()
            .join("&");
        format!(
            "<{}{}?{query}>; rel=\"{rel}\"",
            base.trim_end_matches('/'),
            uri.path()
        )
    };
    let mut links = vec![];
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    let mut resp = Json(page_items).into_response();
    if !links.is_empty() {
        resp.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&links.join(", ")).expect("link"),
        );
    }
    Ok(resp)
}
