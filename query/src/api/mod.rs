//! The HTTP API: one file per front end (`health`, `sql`, `coverage`; later
//! `effectiveness`) over one shared [`Warehouse`].

mod audit;
pub mod auth;
mod coverage;
mod effectiveness;
pub mod extracts;
mod health;
mod pages;
mod sql;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use tokio::sync::Semaphore;

use crate::audit::{AuditLog, AuditRecord};
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
    /// The users of `serve --auth`; `None` serves everyone (loopback only).
    auth: Option<auth::AuthConfig>,
    sessions: auth::Sessions,
    /// Whether the server speaks TLS (session cookies are then `Secure`).
    tls: bool,
    audit: Option<AuditLog>,
    extracts: Option<Arc<dyn extracts::ExtractShelf>>,
}

/// Rows an answer carried, for the audit (set by handlers as a response extension).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuditRows(pub i64);

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
            auth: None,
            sessions: auth::Sessions::default(),
            tls: false,
            audit: None,
            extracts: None,
        }
    }

    /// Serves researcher extracts from `shelf` (see [`extracts`]).
    pub fn with_extracts(mut self, shelf: Arc<dyn extracts::ExtractShelf>) -> Self {
        self.extracts = Some(shelf);
        self
    }

    /// Requires a token or session on every endpoint but health and sign-in, and applies
    /// the role table of CONTRACTS.md (see [`auth::allowed`]).
    pub fn with_auth(mut self, config: auth::AuthConfig) -> Self {
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

    /// The operators' report (see [`OperatorStatus`]), `None` without a probe. A probe that
    /// fails or takes longer than 5 s (it may ask the registry database) gives
    /// `{"error": ...}`: health must answer even when the registry is down.
    pub(crate) async fn operator_report(&self) -> Option<serde_json::Value> {
        let probe = self.operator_status.as_ref()?;
        Some(
            match tokio::time::timeout(std::time::Duration::from_secs(5), probe()).await {
                Ok(Ok(report)) => report,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "operator status not read");
                    serde_json::json!({ "error": error })
                }
                Err(_) => serde_json::json!({ "error": "operator status took longer than 5 s" }),
            },
        )
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

/// The handler of each route of [`auth::ROUTES`].
fn handler(path: &str) -> MethodRouter<Arc<ApiState>> {
    match path {
        "/api/health" => get(health::health),
        "/api/sql" => post(sql::sql),
        "/api/coverage" => get(coverage::coverage),
        "/api/coverage/indicators" => get(coverage::indicators),
        "/api/coverage/curve" => get(coverage::curve),
        "/api/coverage/dropout" => get(coverage::dropout),
        "/api/coverage/timeliness" => get(coverage::timeliness),
        "/api/coverage/flags" => get(pages::coverage_flags),
        "/api/effectiveness" => get(effectiveness::effectiveness),
        "/api/effectiveness/rates" => get(effectiveness::rates),
        "/api/freshness" => get(pages::freshness),
        "/api/geography" => get(pages::geography),
        "/api/audit" => get(audit::audit),
        "/api/status" => get(pages::status),
        "/api/status/quarantine" => get(pages::quarantine),
        "/api/status/ingests" => get(pages::ingests),
        "/api/extracts" => get(extracts::list),
        "/api/extracts/{project}/{id}/{file}" => get(extracts::download),
        "/login" => get(auth::login_page).post(auth::login),
        "/logout" => get(auth::logout).post(auth::logout),
        other => panic!("auth::ROUTES lists {other} but the router has no handler for it"),
    }
}

/// The API's routes with the default [`ServeOptions`] (see [`router_with`]).
pub fn router(state: Arc<ApiState>) -> Router {
    router_with(state, &ServeOptions::default())
        .expect("the default options have no CORS origin to refuse")
}

/// The API's routes, to serve alone ([`serve`]) or merged with the dashboards' router, with
/// the request timeout and CORS origins of `options`. Every request goes through the audit
/// (outermost, so that refusals, CORS preflights and timed-out or abandoned requests are
/// recorded too), then CORS, the request timeout, the auth and the body limit. The routes
/// are exactly those of [`auth::ROUTES`], each with its access rule; the dashboards' files
/// ([`auth::PAGES`]) are the fallback.
pub fn router_with(state: Arc<ApiState>, options: &ServeOptions) -> std::io::Result<Router> {
    let max_body_bytes = state.max_body_bytes;
    let mut app = Router::new();
    for (path, _) in auth::ROUTES {
        app = app.route(path, handler(path));
    }
    let timeout = options.request_timeout;
    let mut app = app
        .fallback(pages::asset)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(from_fn_with_state(state.clone(), auth::authorize))
        .layer(from_fn(move |request: Request, next: Next| {
            request_timeout(timeout, request, next)
        }));
    if !options.cors_origins.is_empty() {
        let origins = options
            .cors_origins
            .iter()
            .map(|origin| {
                HeaderValue::from_str(origin).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("not a valid CORS origin: {origin:?}"),
                    )
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT]),
        );
    }
    Ok(app
        .layer(from_fn_with_state(state.clone(), audit_request))
        .with_state(state))
}

/// 405, with the JSON reason of every other error (axum adds the `Allow` header).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not answer {method}", uri.path()),
    )
}

/// Answers 503 with a JSON reason when the request is not answered within `limit` (the
/// handler's future is dropped, which cancels its query).
async fn request_timeout(limit: std::time::Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the request was not answered within {} s; try again later or ask for less",
                limit.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// The caller, as the auth found it, for the audit of a request whose answer never comes.
#[derive(Clone, Default)]
pub(crate) struct CallerSlot(Arc<std::sync::Mutex<Option<auth::Caller>>>);

impl CallerSlot {
    pub(crate) fn set(&self, caller: auth::Caller) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(caller);
    }

    fn get(&self) -> Option<auth::Caller> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The audit status of a request that got no answer: the client went away, or the server
/// dropped it (nginx's "client closed request").
pub const ABORTED_STATUS: u16 = 499;

/// A request being audited. Dropped before [`PendingAudit::finish`] (the client went away,
/// or the connection was dropped mid-request), it records the request as `aborted`.
struct PendingAudit {
    log: AuditLog,
    slot: CallerSlot,
    started: std::time::Instant,
    record: Option<AuditRecord>,
}

impl PendingAudit {
    /// The record, completed with the caller (from the answer, else as the auth found it).
    fn complete(
        &mut self,
        caller: Option<auth::Caller>,
        status: u16,
        outcome: &str,
        rows: Option<i64>,
    ) -> Option<AuditRecord> {
        let mut record = self.record.take()?;
        let caller = caller.or_else(|| self.slot.get());
        record.user = caller.as_ref().and_then(|c| c.name()).map(str::to_string);
        record.role = caller
            .as_ref()
            .map_or("anonymous", |c| c.role())
            .to_string();
        record.status = status;
        record.outcome = outcome.to_string();
        record.rows = rows;
        record.duration_ms = self.started.elapsed().as_secs_f64() * 1e3;
        Some(record)
    }

    /// The record of the answered request. Read before waiting on the audit queue: a
    /// response is not `Sync`, so a future holding `&Response` across an await is not `Send`.
    fn answered(&mut self, response: &Response) -> Option<AuditRecord> {
        let status = response.status().as_u16();
        let caller = response.extensions().get::<auth::Caller>().cloned();
        let rows = response.extensions().get::<AuditRows>().map(|rows| rows.0);
        self.complete(caller, status, crate::audit::outcome(status), rows)
    }
}

impl Drop for PendingAudit {
    fn drop(&mut self) {
        if let Some(record) = self.complete(None, ABORTED_STATUS, "aborted", None) {
            self.log.record_now(record);
        }
    }
}

/// Records the request in the audit trail once it is answered, or as `aborted` when it is
/// dropped unanswered. A handler that panics is answered 500 (and recorded so). The SQL
/// text of `/api/sql` is read from the body here (bounded by the body limit); no other body
/// is recorded (the sign-in form holds a token).
async fn audit_request(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(log) = state.audit.clone() else {
        return next.run(request).await;
    };
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let at_micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    let endpoint = request.uri().path().to_string();
    let mut pending = PendingAudit {
        log,
        slot,
        started: std::time::Instant::now(),
        record: Some(AuditRecord {
            at_micros,
            user: None,
            role: "anonymous".into(),
            method: request.method().to_string(),
            endpoint: endpoint.clone(),
            parameters: crate::audit::redact_digits(request.uri().query().unwrap_or("")),
            status: ABORTED_STATUS,
            outcome: "aborted".into(),
            rows: None,
            duration_ms: 0.0,
        }),
    };
    let request = if request.method() == axum::http::Method::POST && endpoint == "/api/sql" {
        let (parts, body) = request.into_parts();
        match axum::body::to_bytes(body, state.max_body_bytes).await {
            Ok(bytes) => {
                let sql = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("sql").and_then(|s| s.as_str()).map(str::to_string))
                    .unwrap_or_else(|| "<body is not {\"sql\": ...}>".to_string());
                set_parameters(&mut pending, &sql);
                Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
            }
            Err(_) => {
                set_parameters(&mut pending, "<body larger than the limit>");
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is larger than {} bytes",
                        state.max_body_bytes
                    ),
                )
                .into_response())
            }
        }
    } else {
        Ok(request)
    };
    let response = match request {
        Ok(request) => {
            use futures::FutureExt;
            match std::panic::AssertUnwindSafe(next.run(request))
                .catch_unwind()
                .await
            {
                Ok(response) => response,
                Err(_) => {
                    tracing::error!(%endpoint, "a handler panicked");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal error: the request failed; it is recorded in the server log",
                    )
                    .into_response()
                }
            }
        }
        Err(refused) => refused,
    };
    if let Some(record) = pending.answered(&response) {
        pending.log.record(record).await;
    }
    response
}

fn set_parameters(pending: &mut PendingAudit, text: &str) {
    if let Some(record) = pending.record.as_mut() {
        record.parameters = crate::audit::redact_digits(text);
    }
}

/// Serves the API on `listen` until `shutdown` completes, then lets running requests
/// finish. For the dashboards or non-default limits, build the router yourself and use
/// [`serve_with`].
pub async fn serve(
    warehouse: Warehouse,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(listen)?;
    serve_with(
        listener,
        router(Arc::new(ApiState::new(warehouse))),
        &ServeOptions::default(),
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
    serve_with(
        listener.into_std()?,
        app,
        &ServeOptions::default(),
        shutdown,
    )
    .await
}

/// Certificate chain and private key files (PEM) for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// How the server treats connections: TLS, and the time limits that keep slow or idle
/// clients from holding connections (a slowloris sends headers a byte at a time).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub tls: Option<TlsFiles>,
    /// A connection must send its request headers within this.
    pub header_timeout: std::time::Duration,
    /// A whole request must be answered within this (queries have their own, shorter limit);
    /// applied by [`router_with`], inside the audit, which records the 503.
    pub request_timeout: std::time::Duration,
    /// After the shutdown signal, running requests get this long to finish.
    pub shutdown_grace: std::time::Duration,
    /// Browser origins allowed to call the API from their pages (CORS). Empty (the
    /// default): no CORS headers, so browsers keep other sites' pages out. Applied by
    /// [`router_with`].
    pub cors_origins: Vec<String>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            header_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(300),
            shutdown_grace: std::time::Duration::from_secs(30),
            cors_origins: Vec::new(),
        }
    }
}

/// Serves `app` on `listener` with `options` until `shutdown` completes, then stops accepting
/// and gives running requests [`ServeOptions::shutdown_grace`] to finish. The request timeout
/// and CORS origins of `options` are the router's (build `app` with [`router_with`] and the
/// same options): they must sit inside the audit, so that their answers are recorded.
pub async fn serve_with(
    listener: std::net::TcpListener,
    app: Router,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let grace = options.shutdown_grace;
    let signal = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.graceful_shutdown(Some(grace));
    });
    let service = app.into_make_service();
    match &options.tls {
        Some(files) => {
            // One process-wide crypto provider (ring, as for the registry client); a second
            // install is a no-op error.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(
                &files.certificate,
                &files.key,
            )
            .await
            .map_err(|error| {
                std::io::Error::new(
                    error.kind(),
                    format!(
                        "cannot load the TLS certificate {} and key {}: {error}",
                        files.certificate.display(),
                        files.key.display()
                    ),
                )
            })?;
            let server = with_timeouts(
                axum_server::from_tcp_rustls(listener, config)?,
                handle,
                options,
            );
            tracing::info!(%address, "serving the vaxlake API over TLS");
            server.serve(service).await?;
        }
        None => {
            let server = with_timeouts(axum_server::from_tcp(listener)?, handle, options);
            tracing::info!(%address, "serving the vaxlake API");
            server.serve(service).await?;
        }
    }
    tracing::info!("API stopped");
    Ok(())
}

/// `server` with the shutdown handle and the header timeouts of `options`, plain or TLS.
fn with_timeouts<A>(
    server: axum_server::Server<SocketAddr, A>,
    handle: axum_server::Handle<SocketAddr>,
    options: &ServeOptions,
) -> axum_server::Server<SocketAddr, A> {
    let mut server = server
        .handle(handle)
        .first_request_timeout(options.header_timeout);
    server
        .http_builder()
        .http1()
        .header_read_timeout(options.header_timeout);
    server
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
            // An identity typed into a request (a national number in SQL) is not echoed.
            Json(serde_json::json!({ "error": crate::audit::redact_digits(&self.message) })),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The router registers exactly the routes of [`auth::ROUTES`], so every route has its
    /// access rule; here every rule has its handler (else the router would not build).
    #[test]
    fn every_route_has_a_rule_and_a_handler() {
        let mut seen = std::collections::HashSet::new();
        for (path, _) in auth::ROUTES {
            assert!(seen.insert(*path), "{path} listed twice");
            assert!(auth::access(path).is_some());
            let _ = handler(path);
        }
        for (path, _) in auth::PAGES {
            assert!(
                !path.starts_with("/api/"),
                "{path}: pages are not API routes"
            );
        }
    }

    #[test]
    #[should_panic(expected = "no handler")]
    fn a_rule_without_a_handler_stops_the_router() {
        let _ = handler("/api/not-a-route");
    }
}
