//! `GET /api/coverage` (CONTRACTS.md) and its companions `/indicators`, `/curve`,
//! `/dropout` and `/timeliness` (docs/coverage.md): thin wrappers over
//! [`vaxlake_query::coverage::CoverageEngine`], which the command line uses too.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use vaxlake_query::coverage::{
    CoverageEngine, CoverageQuery, CurveQuery, DropoutQuery, TimelinessQuery,
};
use vaxlake_query::output::{render, to_json, Format, Tabular};

use super::{ApiError, ApiState, AuditRows};

fn engine(state: &ApiState) -> Result<&CoverageEngine, ApiError> {
    state
        .coverage
        .as_deref()
        .map_err(|reason| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, reason.clone()))
}

/// A malformed query string gets the same JSON error shape as every other refusal. The
/// reason names the parameter but never quotes its value: serde's text does
/// (`unknown variant \`...\``, `invalid type: string "..."`), and a value may be a
/// national number or anything else a client put in a URL; the answer and the server log
/// must not carry it.
pub(super) fn parameters<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(parameters)| parameters)
        .map_err(|rejection| ApiError::new(StatusCode::BAD_REQUEST, query_reason(&rejection)))
}

/// `Failed to deserialize query string: PATH: MESSAGE` without the value: the path (a
/// parameter name the handler declares) if it is one, and the fixed part of the message.
fn query_reason(rejection: &QueryRejection) -> String {
    let text = rejection.body_text();
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or("");
    let (name, message) = match detail.split_once(": ") {
        Some((name, message))
            if !name.is_empty()
                && name.len() <= 32
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_') =>
        {
            (Some(name), message)
        }
        _ => (None, detail),
    };
    match name {
        Some(name) => format!(
            "invalid query string: parameter {name}: {}",
            vaxlake_extract::spec::fixed_part(message)
        ),
        // The path is the client's own key (an unknown parameter): where its text ends
        // cannot be told, so nothing of it is shown.
        None if detail.contains("unknown field") => {
            "invalid query string: a parameter this endpoint does not take".into()
        }
        None => "invalid query string".into(),
    }
}

/// JSON, or CSV when the client asks for `text/csv` (the dashboards' download button).
pub(super) fn answer<A: Tabular>(
    headers: &HeaderMap,
    answer: Arc<A>,
) -> Result<Response, ApiError> {
    let wants_csv = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("text/csv"));
    let json = to_json(answer.as_ref())?;
    let rows = json
        .get("rows")
        .and_then(Value::as_array)
        .map_or(1, |rows| rows.len() as i64);
    let mut response = if wants_csv {
        let body = render(answer.as_ref(), Format::Csv)?;
        let mut response = body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        response
    } else {
        Json(json).into_response()
    };
    response.extensions_mut().insert(AuditRows(rows));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/api/coverage",
    tag = "coverage",
    params(CoverageQuery),
    responses(
        (status = 200, description = "Coverage of one indicator and cohort, by breakdown; JSON, or CSV with `Accept: text/csv`", body = vaxlake_query::coverage::CoverageAnswer),
        (status = 400, description = "Bad parameters", body = super::ErrorBody),
        (status = 404, description = "Nothing to answer from yet", body = super::ErrorBody),
    ),
)]
pub(crate) async fn coverage(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<CoverageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parameters(query)?;
    answer(&headers, engine(&state)?.coverage(&query).await?)
}

#[utoipa::path(
    get,
    path = "/api/coverage/indicators",
    tag = "coverage",
    responses(
        (status = 200, description = "The indicator catalogue", body = vaxlake_query::coverage::IndicatorList),
        (status = 400, description = "Bad parameters", body = super::ErrorBody),
        (status = 404, description = "Nothing to answer from yet", body = super::ErrorBody),
    ),
)]
pub(crate) async fn indicators(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    Ok(Json(to_json(&engine(&state)?.indicators())?).into_response())
}

#[utoipa::path(
    get,
    path = "/api/coverage/curve",
    tag = "coverage",
    params(CurveQuery),
    responses(
        (status = 200, description = "Coverage by age in months; JSON, or CSV with `Accept: text/csv`", body = vaxlake_query::coverage::CurveAnswer),
        (status = 400, description = "Bad parameters", body = super::ErrorBody),
        (status = 404, description = "Nothing to answer from yet", body = super::ErrorBody),
    ),
)]
pub(crate) async fn curve(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<CurveQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parameters(query)?;
    answer(&headers, engine(&state)?.curve(&query).await?)
}

#[utoipa::path(
    get,
    path = "/api/coverage/dropout",
    tag = "coverage",
    params(DropoutQuery),
    responses(
        (status = 200, description = "Dropout between two doses; JSON, or CSV with `Accept: text/csv`", body = vaxlake_query::coverage::DropoutAnswer),
        (status = 400, description = "Bad parameters", body = super::ErrorBody),
        (status = 404, description = "Nothing to answer from yet", body = super::ErrorBody),
    ),
)]
pub(crate) async fn dropout(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<DropoutQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parameters(query)?;
    answer(&headers, engine(&state)?.dropout(&query).await?)
}

#[utoipa::path(
    get,
    path = "/api/coverage/timeliness",
    tag = "coverage",
    params(TimelinessQuery),
    responses(
        (status = 200, description = "Timeliness of a dose; JSON, or CSV with `Accept: text/csv`", body = vaxlake_query::coverage::TimelinessAnswer),
        (status = 400, description = "Bad parameters", body = super::ErrorBody),
        (status = 404, description = "Nothing to answer from yet", body = super::ErrorBody),
    ),
)]
pub(crate) async fn timeliness(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<TimelinessQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parameters(query)?;
    answer(&headers, engine(&state)?.timeliness(&query).await?)
}
