//! `GET /api/audit` (operators): the audit trail, newest first, filtered by `user`,
//! `endpoint`, `outcome` and `since`, at most `limit` rows (default 100; `truncated` says
//! when there were more).

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{ApiError, ApiState, AuditRows};
use crate::audit::{read, AuditFilter};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParameters {
    user: Option<String>,
    endpoint: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/audit",
    tag = "operators",
    params(AuditParameters),
    responses(
        (status = 200, description = "The audit trail, newest first (at most 10,000 rows per answer, each row's parameters or SQL text cut at 2,000 characters with `…`; `truncated` says whether `limit` cut it); JSON, or CSV with `Accept: text/csv`", body = vaxlake_query::output::RowsBody),
        (status = 400, description = "Bad parameters", body = super::ErrorBody),
    ),
)]
pub(crate) async fn audit(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    parameters: Result<Query<AuditParameters>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = super::coverage::parameters(parameters)?;
    let filter = AuditFilter {
        user: p.user,
        endpoint: p.endpoint,
        outcome: p.outcome,
        since: p.since,
        // One answer holds at most `MAX_API_ROWS`; `vaxlake audit` (local) may ask for more.
        limit: Some(p.limit.unwrap_or(100).min(crate::audit::MAX_API_ROWS)),
        max_text: Some(crate::audit::MAX_API_TEXT),
    };
    let answer = read(state.warehouse().root(), &filter).await?;
    let rows = answer.num_rows() as i64;
    let truncated = answer.truncated;
    let wants_csv = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("text/csv"));
    let mut response = if wants_csv {
        let mut response = answer.to_csv()?.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
        );
        response
    } else {
        Json(answer.to_json()?).into_response()
    };
    // As `/api/sql`: whether `limit` cut the answer, also for CSV (JSON says `truncated`).
    response.headers_mut().insert(
        "x-vaxlake-truncated",
        HeaderValue::from_static(if truncated { "true" } else { "false" }),
    );
    response.extensions_mut().insert(AuditRows(rows));
    Ok(response)
}
