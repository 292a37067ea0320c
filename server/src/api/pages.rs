//! What the dashboards need beyond the analysis endpoints and their own files
//! ([`crate::dashboards`]): data freshness, the cantons and communes for the tile map, the
//! coverage cells above 100 %, and (operators only, see [`super::ROUTES`]) quarantine counts
//! and the ingest history.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use vaxlake_query::QueryAnswer;

use super::{ApiError, ApiState, AuditRows};

/// One SQL answer as a list of objects (column name → value).
fn objects(answer: &QueryAnswer) -> Result<Vec<Value>, ApiError> {
    let json = answer.to_json()?;
    let columns: Vec<String> = answer.column_names();
    Ok(json["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let mut object = Map::new();
            for (i, name) in columns.iter().enumerate() {
                object.insert(name.clone(), row[i].clone());
            }
            Value::Object(object)
        })
        .collect())
}

async fn first_value(state: &ApiState, table: &str, sql: &str) -> Result<Value, ApiError> {
    if !state.warehouse().versions().contains_key(table) {
        return Ok(Value::Null);
    }
    let answer = state.warehouse().sql(sql).await?.to_json()?;
    Ok(answer["rows"][0][0].clone())
}

/// `GET /api/freshness`: how current the figures are, for everyone who reads them.
#[utoipa::path(
    get,
    path = "/api/freshness",
    tag = "coverage",
    responses(
        (status = 200, description = "How current the figures are: last ingest, newest dose day, table versions, registry lag", body = serde_json::Value),
    ),
)]
pub(crate) async fn freshness(State(state): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let warehouse = state.warehouse();
    warehouse.refresh_if_due().await;
    let versions = warehouse.versions();
    // The operators' report already holds the last ingest and the registry lag (it asks
    // the registry database); without one, the last ingest is read here.
    let report = state.operator_report().await;
    let last_ingest = match report.as_ref().map(|r| &r["last_ingest"]) {
        Some(Value::String(time)) => Value::String(time.clone()),
        _ => {
            first_value(
                &state,
                "ingest_runs",
                "SELECT max(finished_at) AS t FROM ingest_runs",
            )
            .await?
        }
    };
    let data_until = first_value(
        &state,
        "vaccinations",
        "SELECT max(administered_on) AS d FROM vaccinations",
    )
    .await?;
    let registry = report.map_or(Value::Null, |r| r["registry"].clone());
    Ok(Json(json!({
        "last_ingest": last_ingest,
        "table_version": versions.get("vaccinations"),
        "tables": versions,
        "data_until": data_until,
        "registry": registry,
    })))
}

/// `GET /api/geography`: the cantons and their communes (`sql/reference/communes.csv`).
#[utoipa::path(
    get,
    path = "/api/geography",
    tag = "coverage",
    responses(
        (status = 200, description = "The cantons and their communes", body = serde_json::Value),
    ),
)]
pub(crate) async fn geography(State(state): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let answer = state
        .warehouse()
        .sql("SELECT canton, commune FROM communes ORDER BY canton, commune")
        .await?;
    let mut cantons: Vec<(String, Vec<Value>)> = Vec::new();
    for row in objects(&answer)? {
        let canton = row["canton"].as_str().unwrap_or_default().to_string();
        match cantons.last_mut() {
            Some((name, communes)) if *name == canton => communes.push(row["commune"].clone()),
            _ => cantons.push((canton, vec![row["commune"].clone()])),
        }
    }
    Ok(Json(json!({
        "cantons": cantons
            .into_iter()
            .map(|(canton, communes)| json!({"canton": canton, "communes": communes}))
            .collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FlagsQuery {
    /// Only this birth cohort.
    cohort: Option<i32>,
}

/// `GET /api/coverage/flags[?cohort=Y]`: published cells (suppressed ones never appear) whose
/// numerator exceeds their denominator, from the same cells as `vaxlake coverage --all`,
/// with the provenance of every coverage answer (`table_versions`, `suppression_threshold`,
/// `population_source`; each row's `definition_version` and `population_source`).
#[utoipa::path(
    get,
    path = "/api/coverage/flags",
    tag = "coverage",
    params(FlagsQuery),
    responses(
        (status = 200, description = "Published cells whose numerator exceeds their denominator", body = serde_json::Value),
        (status = 400, description = "Bad parameters", body = super::ErrorBody),
    ),
)]
pub(crate) async fn coverage_flags(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<FlagsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = super::coverage::parameters(query)?;
    let engine = state
        .coverage
        .as_deref()
        .map_err(|reason| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, reason.clone()))?;
    let mut answer = vaxlake_query::output::to_json(&engine.flags(query.cohort).await?)?;
    let count = answer["rows"].as_array().map_or(0, Vec::len) as i64;
    if let Some(map) = answer.as_object_mut() {
        map.insert(
            "explanation".into(),
            Value::String(FLAGS_EXPLANATION.into()),
        );
    }
    let mut response = Json(answer).into_response();
    response.extensions_mut().insert(AuditRows(count));
    Ok(response)
}

const FLAGS_EXPLANATION: &str = "More persons vaccinated than the population estimate counts: the denominator (the population file's estimate for that birth cohort and place) is smaller than the number of residents the registry saw vaccinated there, e.g. after people moved in since the estimate, or because the registry records a person's latest commune while the estimate counts residents on its reference date. The figure is shown as computed, without a confidence interval.";

/// `GET /api/coverage/invalid_doses`: dose days that do not count (docs/coverage.md, "Valid
/// doses"), by antigen and reason, from `antigen_doses`, with each antigen's valid days
/// beside them for scale and its total (`totals`). The dashboards show them to the ministry,
/// so the table is protected as one publication (docs/coverage.md, "Invalid doses:
/// disclosure control"): counts between 1 and the threshold − 1 are withheld, and with them
/// enough other cells of the antigen that no withheld count follows from its total. The
/// answer names the threshold like every coverage answer, for the "suppressed (< N)" label.
#[utoipa::path(
    get,
    path = "/api/coverage/invalid_doses",
    tag = "coverage",
    responses(
        (status = 200, description = "Dose days that do not count, by antigen and reason, with disclosure control", body = vaxlake_query::coverage::InvalidDosesAnswer),
    ),
)]
pub(crate) async fn invalid_doses(
    State(state): State<Arc<ApiState>>,
) -> Result<Response, ApiError> {
    let engine = state
        .coverage
        .as_deref()
        .map_err(|reason| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, reason.clone()))?;
    let answer = engine.invalid_doses().await?;
    let count = answer.rows.len() as i64;
    let mut response = Json(vaxlake_query::output::to_json(answer.as_ref())?).into_response();
    response.extensions_mut().insert(AuditRows(count));
    Ok(response)
}

/// `GET /api/status` (operators): what `vaxlake status` prints.
#[utoipa::path(
    get,
    path = "/api/status",
    tag = "operators",
    responses(
        (status = 200, description = "Table versions and the ingest report", body = serde_json::Value),
    ),
)]
pub(crate) async fn status(State(state): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let warehouse = state.warehouse();
    warehouse.refresh_if_due().await;
    let mut answer = json!({ "tables": warehouse.versions() });
    if let Some(report) = state.operator_report().await {
        answer["ingest"] = report;
    }
    Ok(Json(answer))
}

/// `GET /api/status/quarantine` (operators): quarantined records by day received and reason.
#[utoipa::path(
    get,
    path = "/api/status/quarantine",
    tag = "operators",
    responses(
        (status = 200, description = "Quarantined records by day received and reason", body = serde_json::Value),
    ),
)]
pub(crate) async fn quarantine(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    rows_of(
        &state,
        "quarantine",
        "SELECT CAST(CAST(received_at AS DATE) AS VARCHAR) AS day, reason, count(*) AS count \
         FROM quarantine GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await
}

/// `GET /api/status/ingests` (operators): the ingest runs, newest first.
#[utoipa::path(
    get,
    path = "/api/status/ingests",
    tag = "operators",
    responses(
        (status = 200, description = "The ingest runs, newest first", body = serde_json::Value),
    ),
)]
pub(crate) async fn ingests(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    rows_of(
        &state,
        "ingest_runs",
        "SELECT run_id, source, started_at, finished_at, read, accepted, quarantined \
         FROM ingest_runs ORDER BY started_at DESC LIMIT 1000",
    )
    .await
}

async fn rows_of(state: &ApiState, table: &str, sql: &str) -> Result<Response, ApiError> {
    state.warehouse().refresh_if_due().await;
    let rows = if state.warehouse().versions().contains_key(table) {
        objects(&state.warehouse().sql(sql).await?)?
    } else {
        Vec::new()
    };
    let count = rows.len() as i64;
    let mut response = Json(json!({ "rows": rows })).into_response();
    response.extensions_mut().insert(AuditRows(count));
    Ok(response)
}
