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
use crate::sql_door::SqlDoor;
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
    flight_listen: Option<SocketAddr>,
    pg_listen: Option<SocketAddr>,
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
            flight_listen: None,
            pg_listen: None,
        }
    }

    /// Also answer the PostgreSQL protocol on this address (off by default): database
    /// `vaxlake`, the auth file's users with their tokens as passwords (SCRAM-SHA-256), TLS
    /// only when the HTTP API has TLS. Needs [`ServerConfig::with_auth`].
    pub fn with_pg_listen(mut self, listen: Option<SocketAddr>) -> Self {
        self.pg_listen = listen;
        self
    }

    /// Also answer Arrow Flight SQL on this address (off by default), with the same users,
    /// sandbox, audit and TLS certificate as the HTTP API.
    pub fn with_flight_listen(mut self, listen: Option<SocketAddr>) -> Self {
        self.flight_listen = listen;
        self
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
    flight_listener: Option<std::net::TcpListener>,
    pg_listener: Option<std::net::TcpListener>,
    config: ServerConfig,
}

impl Server {
    /// Opens the warehouse, starts the audit trail and binds the socket.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let warehouse = Warehouse::open(&config.warehouse, config.query.clone()).await?;
        let audit = AuditLog::start(warehouse.root())?;
        let listener = bind(config.listen)?;
        let flight_listener = config.flight_listen.map(bind).transpose()?;
        if config.pg_listen.is_some() && config.auth.is_none() {
            return Err(ServerError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the PostgreSQL door needs --auth: its users sign in with their tokens, and there is no default user",
            )));
        }
        let pg_listener = config.pg_listen.map(bind).transpose()?;
        Ok(Server {
            warehouse,
            audit,
            listener,
            flight_listener,
            pg_listener,
            config,
        })
    }

    /// How many users may sign in; `None` when the server answers everyone.
    pub fn users(&self) -> Option<usize> {
        self.config.auth.as_ref().map(|auth| auth.users().len())
    }

    /// The address Flight SQL answers on, when it does (the port chosen for port 0).
    pub fn flight_address(&self) -> Option<SocketAddr> {
        self.flight_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The address the PostgreSQL protocol answers on, when it does.
    pub fn pg_address(&self) -> Option<SocketAddr> {
        self.pg_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
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
            flight_listener,
            pg_listener,
            config,
        } = self;
        let tls = config.serve.tls.is_some();
        let operator_status = OperatorStatus::new(config.registry);
        let mut state = ApiState::new(warehouse)
            .with_max_concurrent_queries(config.max_concurrent_queries)
            .with_answer_timeout(config.serve.request_timeout)
            .with_suppression(config.suppression)
            .with_operator_status(operator_status)
            .with_tls(tls)
            .with_audit(audit.clone());
        if let Some(auth) = config.auth {
            state = state.with_auth(auth);
        }
        if let Ok(dir) = vaxlake_extract::extracts_dir_for(state.warehouse().root()) {
            let shelf = Shelf::new(dir);
            shelf.expire_in_background(EXPIRE_EXTRACTS_EVERY);
            state = state.with_extracts(shelf);
        }
        let state = Arc::new(state);
        state.warm_in_background(WARM_EVERY);
        // One shutdown signal for every door.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let signal = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let flight = flight_listener.map(|listener| {
            let door = SqlDoor::new(state.clone(), "flight-sql");
            let tls = config.serve.tls.clone();
            let stopped = signal(stopped.clone());
            tokio::spawn(async move {
                crate::flight::serve(listener, door, tls.as_ref(), stopped).await
            })
        });
        let postgres = pg_listener.map(|listener| {
            let door = SqlDoor::new(state.clone(), "postgres");
            let tls = config.serve.tls.clone();
            let stopped = signal(stopped.clone());
            tokio::spawn(async move {
                crate::postgres::serve(listener, door, tls.as_ref(), stopped).await
            })
        });
        // The request timeout and CORS sit inside the audit, which records their answers too.
        let app = router_with(state, &config.serve)?;
        let served = serve_with(listener, app, &config.serve, signal(stopped)).await;
        let joined = |task: Option<tokio::task::JoinHandle<std::io::Result<()>>>| async move {
            match task {
                Some(task) => task
                    .await
                    .unwrap_or_else(|error| Err(std::io::Error::other(error))),
                None => Ok(()),
            }
        };
        let flight_served = joined(flight).await;
        let postgres_served = joined(postgres).await;
        // Every request answered is recorded before the process exits.
        audit.close().await;
        served?;
        flight_served?;
        postgres_served?;
        Ok(())
    }
}

fn bind(address: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    std::net::TcpListener::bind(address).map_err(|source| ServerError::Listen { address, source })
}
