//! `GET /api/health`: is the server up, which table versions does it answer from and, for
//! operators, how the ingest is doing.

use std::sync::Arc;

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::ApiState;
use crate::auth::Caller;

/// For operators (and everyone when the server runs without `--auth`):
/// `{"status":"ok","table_version":N,"tables":{"vaccinations":N,...},"ingest":{...}}`;
/// `table_version` is the `vaccinations` version (null before the first ingest), so
/// monitoring can alert on a warehouse that stopped moving. `ingest` (last ingest,
/// quarantine counts by reason, registry watermark and lag) comes from the operator probe
/// when one is configured.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "`{\"status\":\"ok\"}` to anyone; table versions and the ingest report to operators", body = serde_json::Value),
    ),
)]
pub(crate) async fn health(
    State(state): State<Arc<ApiState>>,
    caller: Option<Extension<Caller>>,
) -> Json<Value> {
    // CONTRACTS.md: `{"status":"ok"}` to anyone, more only to operators.
    if !caller.is_some_and(|Extension(caller)| caller.is_operator()) {
        return Json(json!({"status": "ok"}));
    }
    let warehouse = state.warehouse();
    warehouse.refresh_if_due().await;
    let versions = warehouse.versions();
    let mut answer = json!({
        "status": "ok",
        "table_version": versions.get("vaccinations"),
        "tables": versions,
    });
    if let Some(report) = state.operator_report().await {
        answer["ingest"] = report;
    }
    Json(answer)
}
