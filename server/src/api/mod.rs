//! The HTTP API: one file per front end (`health`, `sql`, `coverage`, `effectiveness`,
//! `extracts`, `pages`, `audit`) over one shared [`ApiState`]; the route table that says
//! which path goes to which of them and who may use it ([`routes`]); the audit of every
//! request ([`audit_layer`]); serving on a socket ([`serve_with`]).

mod audit;
pub(crate) mod audit_layer;
mod coverage;
mod effectiveness;
mod error;
mod extracts;
mod guard;
mod health;
pub mod openapi;
mod pages;
pub mod routes;
mod serve;
mod sql;

use std::sync::Arc;

use tokio::sync::Semaphore;
use vaxlake_query::coverage::{CoverageEngine, Suppression};
use vaxlake_query::effectiveness::EffectivenessEngine;
use vaxlake_query::Warehouse;

use crate::audit::AuditLog;
use crate::auth::{AuthConfig, Sessions};
use crate::extracts::Shelf;
use crate::status::OperatorStatus;

pub(crate) use audit_layer::AuditRows;
pub use audit_layer::ABORTED_STATUS;
pub(crate) use error::{query_error_status, ApiError, ErrorBody};
pub use routes::{router, router_with, Route, PAGES, ROUTES};
pub(crate) use serve::install_crypto_provider;
pub use serve::{
    serve, serve_router, serve_with, BodyTimeout, ServeOptions, TlsFiles, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
};

/// Requests larger than this are refused (413): a query is text, not data.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// SQL queries running at once; more are answered 429 at once rather than queued, so a
/// burst cannot pile up work the memory pool would then have to share.
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 4;

/// What every handler shares: the warehouse and the limits of the API.
pub struct ApiState {
    warehouse: Warehouse,
    sql_permits: Arc<Semaphore>,
    pub(crate) max_body_bytes: usize,
    /// How long a SQL answer may take to be handed to its client (see
    /// [`ApiState::with_answer_timeout`]).
    pub(crate) answer_timeout: std::time::Duration,
    /// The coverage engine, or why it could not start (a broken compiled-in catalogue,
    /// which the catalogue's tests catch first); the other endpoints work regardless.
    coverage: Result<Arc<CoverageEngine>, String>,
    /// The effectiveness engine, likewise.
    effectiveness: Result<Arc<EffectivenessEngine>, String>,
    operator_status: Option<OperatorStatus>,
    /// The users of `serve --auth`; `None` serves everyone (loopback only).
    pub(crate) auth: Option<AuthConfig>,
    pub(crate) sessions: Sessions,
    /// Wrong tokens per client address (see [`crate::auth::throttle`]).
    pub(crate) throttle: crate::auth::Throttle,
    /// Whether the server speaks TLS (session cookies are then `Secure`).
    pub(crate) tls: bool,
    pub(crate) audit: Option<AuditLog>,
    extracts: Option<Shelf>,
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
            answer_timeout: std::time::Duration::from_secs(300),
            coverage,
            effectiveness,
            operator_status: None,
            auth: None,
            sessions: Sessions::default(),
            throttle: Default::default(),
            tls: false,
            audit: None,
            extracts: None,
        }
    }

    /// Serves researcher extracts from `shelf` (see [`extracts`]).
    pub fn with_extracts(mut self, shelf: Shelf) -> Self {
        self.extracts = Some(shelf);
        self
    }

    /// Requires a token or session on every endpoint but health and sign-in, and applies
    /// the role table of CONTRACTS.md (see [`crate::auth::access`]).
    pub fn with_auth(mut self, config: AuthConfig) -> Self {
        self.auth = Some(config);
        self
    }

    /// Records every request in the `audit` table (see [`crate::audit`]).
    pub fn with_audit(mut self, log: AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// Marks session cookies `Secure` (the server speaks TLS).
    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// The audit trail, to close on shutdown.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// What `/api/health`, `/api/status` and `/api/freshness` add for operators (see
    /// [`OperatorStatus`]).
    pub fn with_operator_status(mut self, status: OperatorStatus) -> Self {
        self.operator_status = Some(status);
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

    /// A SQL answer keeps its query's place among [`DEFAULT_MAX_CONCURRENT_QUERIES`] until
    /// the client has taken all of it, so that slow readers cannot pile up answers in
    /// memory; one not taken within `timeout` (300 s by default; `serve` uses its request
    /// timeout) is cut and its connection closed.
    pub fn with_answer_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.answer_timeout = timeout;
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

    /// The operators' report (see [`OperatorStatus`]), `None` without one. A report that
    /// fails or takes longer than 5 s (it may ask the registry database) gives
    /// `{"error": ...}`: health must answer even when the registry is down.
    pub(crate) async fn operator_report(&self) -> Option<serde_json::Value> {
        let status = self.operator_status.as_ref()?;
        let report = status.report(&self.warehouse);
        Some(
            match tokio::time::timeout(std::time::Duration::from_secs(5), report).await {
                Ok(Ok(report)) => report,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "operator status not read");
                    serde_json::json!({ "error": error })
                }
                Err(_) => serde_json::json!({ "error": "operator status took longer than 5 s" }),
            },
        )
    }

    /// The permits of running SQL queries, shared by every door.
    pub(crate) fn sql_permits(&self) -> Arc<Semaphore> {
        self.sql_permits.clone()
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
