//! Serving a router on a socket: plain or TLS, with the connection time limits and a
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use vaxlake_query::Warehouse;

use super::{router, ApiState};

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
            install_crypto_provider();
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

/// Installs the process-wide TLS crypto provider (ring, as for the registry client) that
/// every door's TLS uses; installing it again is a no-op.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
