//! The Arrow Flight SQL door (`vaxlake serve --flight-listen ADDR`): analysts in pandas,
//! polars or R (ADBC's Flight SQL driver) get query results as Arrow record batches,
//! streamed as the engine makes them, with no JSON in between. Same users and tokens, same
//! sandbox and limits, same audit as `/api/sql` (see [`crate::sql_door`]).
//!
//! Built on `arrow-flight`'s Flight SQL server at the workspace's arrow version; the
//! transport (gRPC, HTTP/2, TLS) is tonic's.

mod auth;
mod service;

use std::future::Future;

use arrow_flight::flight_service_server::FlightServiceServer;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::api::TlsFiles;
use crate::sql_door::SqlDoor;
pub(crate) use service::FlightSqlDoor;

/// Serves Flight SQL on `listener` until `shutdown` completes; TLS with `tls`'s certificate
/// when given (the HTTP API's, so one certificate covers the server).
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    door: SqlDoor,
    tls: Option<&TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(files) = tls {
        crate::api::install_crypto_provider();
        let certificate = std::fs::read(&files.certificate)?;
        let key = std::fs::read(&files.key)?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(certificate, key)))
            .map_err(std::io::Error::other)?;
    }
    let service = FlightServiceServer::new(FlightSqlDoor::new(door));
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
        .map_err(std::io::Error::other)
}
