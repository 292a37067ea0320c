//! `GET /api/extracts` and `GET /api/extracts/{project}/{id}/{file}`: researchers list and
//! download their own project's released extracts; operators see every extract, and may read
//! an unreleased extract's manifest (to review it) but none of its data files. Every
//! download goes through the audit like any request. The files are kept on the extract
//! stage's [`Shelf`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::{ApiError, ApiState, AuditRows};
use crate::auth::{Caller, Role};
use crate::extracts::Shelf;

fn shelf(state: &ApiState) -> Result<&Shelf, ApiError> {
    state
        .extracts
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "this server keeps no extracts"))
}

/// The researcher's project, `None` for operators (and the unauthenticated loopback mode).
fn own_project(caller: &Caller) -> Result<Option<&str>, ApiError> {
    match caller {
        Caller::User {
            role: Role::Researcher,
            project,
            ..
        } => project
            .as_deref()
            .map(Some)
            .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "no project is assigned to you")),
        _ => Ok(None),
    }
}

#[utoipa::path(
    get,
    path = "/api/extracts",
    tag = "extracts",
    responses(
        (status = 200, description = "The extracts on the shelf (researchers: their project's released ones)", body = serde_json::Value),
        (status = 403, description = "No project is assigned to you", body = super::ErrorBody),
    ),
)]
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let project = own_project(&caller)?;
    let mut extracts = shelf(&state)?
        .list(project)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if project.is_some() {
        extracts.retain(|e| e["released"] == Value::Bool(true));
    }
    let count = extracts.len() as i64;
    let mut response = Json(json!({ "extracts": extracts })).into_response();
    response.extensions_mut().insert(AuditRows(count));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/extracts/{project}/{id}/{file}",
    tag = "extracts",
    params(("project" = String, Path, description = "The project"), ("id" = String, Path, description = "The extract"), ("file" = String, Path, description = "The file")),
    responses(
        (status = 200, description = "One file of an extract", content_type = "application/octet-stream"),
        (status = 403, description = "Another project's extract, or (operators) a data file of an extract not yet released", body = super::ErrorBody),
        (status = 404, description = "No such file, or not released", body = super::ErrorBody),
        (status = 409, description = "The extract is inconsistent", body = super::ErrorBody),
    ),
)]
pub(crate) async fn download(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path((project, id, file)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let own = own_project(&caller)?;
    if own.is_some_and(|own| own != project) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "you may fetch only your own project's extracts",
        ));
    }
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no file {file} in extract {id}"),
        )
    };
    let (path, released) = shelf(&state)?
        .file(&project, &id, &file)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?
        .ok_or_else(not_found)?;
    if !released {
        // Researchers do not learn that an unreleased extract exists.
        if own.is_some() {
            return Err(not_found());
        }
        // Operators review the manifest (what was asked, the counts, the k-anonymity report)
        // before the second approval, but the data leave only once two operators agreed: one
        // operator alone downloading them would undo the four-eyes rule.
        if file != "manifest.json" {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "extract {id} is not released: its data files are served after the second \
                     operator's approval (vaxlake extract approve); its manifest.json is served now"
                ),
            ));
        }
    }
    let bytes = tokio::fs::read(&path).await.map_err(|_| not_found())?;
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => "application/vnd.apache.parquet",
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response.extensions_mut().insert(AuditRows(1));
    Ok(response)
}
