//! `GET /api/effectiveness` (CONTRACTS.md) and `/api/effectiveness/rates`
//! (docs/effectiveness.md): thin wrappers over [`vaxlake_query::effectiveness::EffectivenessEngine`],
//! which the command line uses too.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use vaxlake_query::effectiveness::{EffectivenessEngine, EffectivenessQuery};

use super::coverage::{answer, parameters};
use super::{ApiError, ApiState};

fn engine(state: &ApiState) -> Result<&EffectivenessEngine, ApiError> {
    state
        .effectiveness
        .as_deref()
        .map_err(|reason| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, reason.clone()))
}

#[utoipa::path(
    get,
    path = "/api/effectiveness",
    tag = "effectiveness",
    params(EffectivenessQuery),
    responses(
        (status = 200, description = "Vaccine effectiveness by the cohort method; JSON, or CSV with `Accept: text/csv`", body = vaxlake_query::effectiveness::EffectivenessAnswer),
        (status = 400, description = "Bad parameters", body = super::ErrorBody),
        (status = 404, description = "Nothing to answer from yet", body = super::ErrorBody),
    ),
)]
pub(crate) async fn effectiveness(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<EffectivenessQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parameters(query)?;
    answer(&headers, engine(&state)?.effectiveness(&query).await?)
}

#[utoipa::path(
    get,
    path = "/api/effectiveness/rates",
    tag = "effectiveness",
    params(EffectivenessQuery),
    responses(
        (status = 200, description = "Incidence rates by month and age band; JSON, or CSV with `Accept: text/csv`", body = vaxlake_query::effectiveness::RatesAnswer),
        (status = 400, description = "Bad parameters", body = super::ErrorBody),
        (status = 404, description = "Nothing to answer from yet", body = super::ErrorBody),
    ),
)]
pub(crate) async fn rates(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    query: Result<Query<EffectivenessQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = parameters(query)?;
    answer(&headers, engine(&state)?.rates(&query).await?)
}
