//! `vaxlake serve` as one call: open the warehouse, start the audit trail, bind the socket
//! ([`Server::bind`]), then answer until the shutdown signal and commit the audit's last
//! records ([`Server::run`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use vaxlake_ingest::postgres::PostgresSource;
use vaxlake_query::coverage::Suppression;
use vaxlake_query::{QueryError, QueryOptions, Warehouse};

use crate::api::{router_with, serve_with, ApiState, ServeOptions, DEFAULT_MAX_CONCURRENT_QUERIES};
use crate::audit::AuditLog;
use crate::auth::AuthConfig;
use crate::extracts::Shelf;
use crate::status::OperatorStatus;

/// How often expired extracts are swept while the server runs.
const EXPIRE_EXTRACTS_EVERY: Duration = Duration::from_secs(3600);
/// How often the coverage counts of new table versions are read ahead of the dashboards.
const WARM_EVERY: Duration = Duration::from_secs(5);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The warehouse could not be opened, or its audit trail not started.
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A bad option (a CORS origin), the TLS files, or the socket while serving.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What to serve and how. Start from [`ServerConfig::new`] and change what you need with
/// the `with_*` methods.
pub struct ServerConfig {
    warehouse: String,
    listen: SocketAddr,
    query: QueryOptions,
    suppression: Suppression,
    max_concurrent_queries: usize,
    registry: Option<PostgresSource>,
    auth: Option<AuthConfig>,
    serve: ServeOptions,
}

impl ServerConfig {
    /// The warehouse at `warehouse` (as [`Warehouse::open`] takes it) on `listen`, with the
    /// defaults of CONTRACTS.md: no auth (so loopback only: the caller checks), suppression
    /// threshold 8, no TLS, no CORS.
    pub fn new(warehouse: impl Into<String>, listen: SocketAddr) -> Self {
        ServerConfig {
            warehouse: warehouse.into(),
            listen,
            query: QueryOptions::default(),
            suppression: Suppression::default(),
            max_concurrent_queries: DEFAULT_MAX_CONCURRENT_QUERIES,
            registry: None,
            auth: None,
            serve: ServeOptions::default(),
        }
    }

    /// The SQL sandbox's limits (memory, spill, time, rows).
    pub fn with_query_options(mut self, options: QueryOptions) -> Self {
        self.query = options;
        self
    }

    /// The disclosure threshold of every aggregate answer.
    pub fn with_suppression(mut self, rule: Suppression) -> Self {
        self.suppression = rule;
        self
    }

    /// See [`DEFAULT_MAX_CONCURRENT_QUERIES`].
    pub fn with_max_concurrent_queries(mut self, queries: usize) -> Self {
        self.max_concurrent_queries = queries;
        self
    }

    /// The registry whose watermark and lag operators see.
    pub fn with_registry(mut self, registry: Option<PostgresSource>) -> Self {
        self.registry = registry;
        self
    }

    /// The users who may sign in; `None` answers everyone.
    pub fn with_auth(mut self, auth: Option<AuthConfig>) -> Self {
        self.auth = auth;
        self
    }

    /// TLS, connection time limits, CORS origins.
    pub fn with_serve_options(mut self, options: ServeOptions) -> Self {
        self.serve = options;
        self
    }
}

/// A server with its warehouse open, its audit trail started and its socket bound, not yet
/// answering.
pub struct Server {
    warehouse: Warehouse,
    audit: AuditLog,
    listener: std::net::TcpListener,
    config: ServerConfig,
}

impl Server {
    /// Opens the warehouse, starts the audit trail and binds the socket.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let warehouse = Warehouse::open(&config.warehouse, config.query.clone()).await?;
        let audit = AuditLog::start(warehouse.root())?;
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| ServerError::Listen {
                address: config.listen,
                source,
            })?;
        Ok(Server {
            warehouse,
            audit,
            listener,
            config,
        })
    }

    /// How many users may sign in; `None` when the server answers everyone.
    pub fn users(&self) -> Option<usize> {
        self.config.auth.as_ref().map(|auth| auth.users().len())
    }

    /// Whether the server speaks TLS.
    pub fn tls(&self) -> bool {
        self.config.serve.tls.is_some()
    }

    /// Answers until `shutdown` completes, lets running requests finish, then commits every
    /// answered request to the audit trail before returning.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            warehouse,
            audit,
            listener,
            config,
        } = self;
        let tls = config.serve.tls.is_some();
        let operator_status = OperatorStatus::new(config.registry);
        let mut state = ApiState::new(warehouse)
            .with_max_concurrent_queries(config.max_concurrent_queries)
            .with_suppression(config.suppression)
            .with_operator_status(operator_status)
            .with_tls(tls)
            .with_audit(audit.clone());
        if let Some(auth) = config.auth {
            state = state.with_auth(auth);
        }
        if let Ok(root) = state.warehouse().root().to_file_path() {
            let shelf = Shelf::new(root.join("extracts"));
            shelf.expire_in_background(EXPIRE_EXTRACTS_EVERY);
            state = state.with_extracts(shelf);
        }
        let state = Arc::new(state);
        state.warm_in_background(WARM_EVERY);
        // The request timeout and CORS sit inside the audit, which records their answers too.
        let app = router_with(state, &config.serve)?;
        let served = serve_with(listener, app, &config.serve, shutdown).await;
        // Every request answered is recorded before the process exits.
        audit.close().await;
        served?;
        Ok(())
    }
}
