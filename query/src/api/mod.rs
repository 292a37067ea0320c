//! The HTTP API: one file per front end (`health`, `sql`, `coverage`; later
//! `effectiveness`) over one shared [`Warehouse`].

mod coverage;
mod effectiveness;
mod health;
mod sql;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::Semaphore;

use crate::coverage::{CoverageEngine, Suppression};
use crate::effectiveness::EffectivenessEngine;
use crate::{QueryError, Warehouse};

/// Requests larger than this are refused (413): a query is text, not data.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// SQL queries running at once; more are answered 429 at once rather than queued, so a
/// burst cannot pile up work the memory pool would then have to share.
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 4;

/// The answer of an [`OperatorStatus`] probe: the operators' part of `/api/health`, or why
/// it could not be read.
pub type StatusFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<serde_json::Value, String>> + Send>>;

/// Reads what operators watch (last ingest, quarantine counts, the registry lag). Given by
/// the program that serves, since the watermark lives with the ingest stage, which this
/// crate does not depend on.
pub type OperatorStatus = Arc<dyn Fn() -> StatusFuture + Send + Sync>;

/// What every handler shares: the warehouse and the limits of the API.
pub struct ApiState {
    warehouse: Warehouse,
    sql_permits: Arc<Semaphore>,
    max_body_bytes: usize,
    /// The coverage engine, or why it could not start (a broken compiled-in catalogue,
    /// which the catalogue's tests catch first); the other endpoints work regardless.
    coverage: Result<Arc<CoverageEngine>, String>,
    /// The effectiveness engine, likewise.
    effectiveness: Result<Arc<EffectivenessEngine>, String>,
    operator_status: Option<OperatorStatus>,
}

impl ApiState {
    /// API state with the default limits.
    pub fn new(warehouse: Warehouse) -> Self {
        let coverage = coverage_engine(&warehouse, Suppression::default());
        let effectiveness = effectiveness_engine(&warehouse, Suppression::default());
        ApiState {
            warehouse,
            sql_permits: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_QUERIES)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            coverage,
            effectiveness,
            operator_status: None,
        }
    }

    /// What `/api/health` adds for operators (see [`OperatorStatus`]).
    pub fn with_operator_status(mut self, probe: OperatorStatus) -> Self {
        self.operator_status = Some(probe);
        self
    }

    /// The disclosure threshold of every aggregate answer (CONTRACTS.md: 8 by default).
    pub fn with_suppression(mut self, rule: Suppression) -> Self {
        self.coverage = coverage_engine(&self.warehouse, rule);
        self.effectiveness = effectiveness_engine(&self.warehouse, rule);
        self
    }

    /// See [`DEFAULT_MAX_CONCURRENT_QUERIES`].
    pub fn with_max_concurrent_queries(mut self, queries: usize) -> Self {
        self.sql_permits = Arc::new(Semaphore::new(queries.max(1)));
        self
    }

    /// See [`DEFAULT_MAX_BODY_BYTES`].
    pub fn with_max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Keeps the coverage counts of the newest table versions read, checking every `every`,
    /// so that dashboards never wait for a cold read after an ingest. Runs until the
    /// runtime stops; a failed read is logged and tried again at the next tick.
    pub fn warm_in_background(self: &Arc<Self>, every: std::time::Duration) {
        let state = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                if let Ok(engine) = &state.coverage {
                    if let Err(error) = engine.warm().await {
                        tracing::debug!(%error, "coverage counts not read");
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
    }

    /// The warehouse the API answers from.
    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }
}

fn coverage_engine(
    warehouse: &Warehouse,
    rule: Suppression,
) -> Result<Arc<CoverageEngine>, String> {
    CoverageEngine::new(warehouse.clone(), rule)
        .map(Arc::new)
        .map_err(|error| error.to_string())
}

fn effectiveness_engine(
    warehouse: &Warehouse,
    rule: Suppression,
) -> Result<Arc<EffectivenessEngine>, String> {
    EffectivenessEngine::new(warehouse.clone(), rule)
        .map(Arc::new)
        .map_err(|error| error.to_string())
}

/// The API's routes, to serve alone ([`serve`]) or merged with the dashboards' router.
pub fn router(state: Arc<ApiState>) -> Router {
    let max_body_bytes = state.max_body_bytes;
    Router::new()
        .route("/api/health", get(health::health))
        .route("/api/sql", post(sql::sql))
        .route("/api/coverage", get(coverage::coverage))
        .route("/api/coverage/indicators", get(coverage::indicators))
        .route("/api/coverage/curve", get(coverage::curve))
        .route("/api/coverage/dropout", get(coverage::dropout))
        .route("/api/coverage/timeliness", get(coverage::timeliness))
        .route("/api/effectiveness", get(effectiveness::effectiveness))
        .route("/api/effectiveness/rates", get(effectiveness::rates))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Serves the API on `listen` until `shutdown` completes, then lets running requests
/// finish. For the dashboards or non-default limits, build the router yourself and use
/// [`serve_router`].
pub async fn serve(
    warehouse: Warehouse,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    serve_router(
        listener,
        router(Arc::new(ApiState::new(warehouse))),
        shutdown,
    )
    .await
}

/// Serves `app` on an already bound listener (e.g. port 0 in tests) until `shutdown`.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(address = %listener.local_addr()?, "serving the vaxlake API");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("API stopped");
    Ok(())
}

/// An error answer: a status and `{"error": "<reason>"}`, nothing else.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        let status = match &error {
            QueryError::Refused(_) | QueryError::Sql(_) | QueryError::Invalid(_) => {
                StatusCode::BAD_REQUEST
            }
            QueryError::Unavailable(_) => StatusCode::NOT_FOUND,
            // 503, not 408: the client was not slow, the query was; retrying later with the
            // same query may succeed when the server is less busy.
            QueryError::Timeout(_) | QueryError::ResourcesExhausted(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            QueryError::Warehouse { .. } | QueryError::Format(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
