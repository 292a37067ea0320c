//! `GET /api/health`: is the server up, and which table versions does it answer from.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::ApiState;

/// `{"status":"ok","table_version":N,"tables":{"vaccinations":N,...}}`; `table_version` is
/// the `vaccinations` version (null before the first ingest), so monitoring can alert on
/// a warehouse that stopped moving.
pub(crate) async fn health(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let warehouse = state.warehouse();
    warehouse.refresh_if_due().await;
    let versions = warehouse.versions();
    Json(json!({
        "status": "ok",
        "table_version": versions.get("vaccinations"),
        "tables": versions,
    }))
}
