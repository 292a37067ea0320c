//! `vaxlake serve`: the HTTP API over the warehouse, until a signal. Only wiring: the flags
//! become a `vaxlake_server::ServerConfig`, and the server does the rest.

use anyhow::{bail, Result};
use vaxlake_server::api::{ServeOptions, TlsFiles};
use vaxlake_server::auth::AuthConfig;
use vaxlake_server::{Server, ServerConfig};

use crate::cli::{ServeArgs, WarehouseArg};
use crate::signal::shutdown_signal;

/// Runs `vaxlake serve` (and the end of `vaxlake demo`).
pub async fn run(args: ServeArgs) -> Result<()> {
    let ServeArgs {
        warehouse: WarehouseArg { warehouse },
        listen,
        suppression_threshold: threshold,
        source,
        table,
        auth,
        tls_cert,
        tls_key,
        cors_origin,
        header_timeout_secs,
        request_timeout_secs,
        max_connections,
        max_header_bytes,
        body_timeout_secs,
        send_timeout_secs,
        flight_listen,
        pg_listen,
        query_limits,
        cluster,
    } = args;
    if threshold == 0 {
        bail!("--suppression-threshold must be at least 1 (1 withholds nothing)");
    }
    let registry = source
        .as_deref()
        .map(|source| super::status::registry_source(source, table.as_deref()))
        .transpose()?;
    let auth = auth.as_deref().map(AuthConfig::load).transpose()?;
    if auth.is_none() && !listen.ip().is_loopback() {
        bail!("without --auth, serve binds to loopback only (got {listen}); give --auth FILE (see `vaxlake token new`) to serve other hosts");
    }
    if let Some(flight) = flight_listen.filter(|address| !address.ip().is_loopback()) {
        if auth.is_none() {
            bail!("without --auth, Flight SQL binds to loopback only (got --flight-listen {flight}); give --auth FILE to serve other hosts");
        }
    }
    let tls = match (tls_cert, tls_key) {
        (Some(certificate), Some(key)) => Some(TlsFiles { certificate, key }),
        _ => None,
    };
    let config = query_limits
        .server_config(ServerConfig::new(warehouse.as_str(), listen), &cluster)
        .with_suppression(vaxlake_query::coverage::Suppression { threshold })
        .with_registry(registry)
        .with_auth(auth)
        .with_flight_listen(flight_listen)
        .with_pg_listen(pg_listen)
        .with_serve_options(ServeOptions {
            tls,
            header_timeout: std::time::Duration::from_secs(header_timeout_secs.max(1)),
            request_timeout: std::time::Duration::from_secs(request_timeout_secs.max(1)),
            // The server raises these to their least (1, 8192) itself.
            max_connections,
            max_header_bytes,
            body_timeout: std::time::Duration::from_secs(body_timeout_secs.max(1)),
            send_timeout: std::time::Duration::from_secs(send_timeout_secs.max(1)),
            cors_origins: cors_origin,
            ..ServeOptions::default()
        });
    let server = Server::bind(config).await?;
    let scheme = if server.tls() { "https" } else { "http" };
    match server.users() {
        Some(users) => {
            eprintln!("serving {warehouse} on {scheme}://{listen}/ for {users} users (--auth)")
        }
        None => eprintln!(
            "serving {warehouse} on {scheme}://{listen}/ (unauthenticated: loopback only)"
        ),
    }
    if let Some(flight) = server.flight_address() {
        let scheme = if server.tls() { "grpc+tls" } else { "grpc" };
        eprintln!("serving Arrow Flight SQL on {scheme}://{flight}");
    }
    if let Some(pg) = server.pg_address() {
        let tls = if server.tls() { " (TLS only)" } else { "" };
        eprintln!("serving PostgreSQL on {pg}{tls}: database vaxlake, user and token from --auth");
    }
    server.run(shutdown_signal()).await?;
    Ok(())
}
