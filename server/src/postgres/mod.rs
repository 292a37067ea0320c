//! The PostgreSQL door (`vaxlake serve --pg-listen ADDR`): psql, DBeaver, R (RPostgres),
//! psycopg and BI tools connect as to a PostgreSQL database named `vaxlake`, with the auth
//! file's user name and their bearer token as password. Same users and roles, same
//! sandbox, limits and audit as `/api/sql` (see [`crate::sql_door`]).
//!
//! Built from parts, measured against `datafusion-postgres` 0.19's own server and chosen so:
//! - the wire protocol is `pgwire` 0.41's (framing, TLS negotiation, extended protocol,
//!   portals and cursors);
//! - `pg_catalog`, the PostgreSQL-compatibility rewrites of client queries (psql's `\d`,
//!   DBeaver's and Metabase's catalog queries) and the Arrow-to-PostgreSQL encoding are
//!   `datafusion-postgres`' own crates (`datafusion-pg-catalog`, `arrow-pg`);
//! - the rest is ours, because `datafusion-postgres`' server does what this door must not:
//!   it runs every statement on one shared session (no per-query memory share, time limit
//!   or row cap; `SET` changes the server for everyone), it signs in anyone with a no-op
//!   startup handler unless given another, and when the TLS files do not load it logs a
//!   warning and serves plaintext. `pgwire`'s own SCRAM needs a password equivalent on
//!   the server, so SCRAM is ours too ([`scram`]).
//!
//! Here: only SCRAM-SHA-256 against the verifier in the auth file (no cleartext, no empty
//! password, no default user); with `--tls-cert` every connection must be TLS and one that
//! did not ask is refused with that reason; every statement goes through
//! `Warehouse::sql_stream_in` on a copy of the warehouse's session that also holds
//! `pg_catalog`; `SET`, `SHOW` and transaction statements are answered per connection and
//! change nothing; `COPY` is refused (see docs/clients.md).

mod handler;
mod scram;
mod session;
mod startup;

use std::future::Future;
use std::sync::Arc;

pub use scram::{verifier as scram_verifier, ScramVerifier};

use crate::api::TlsFiles;
use crate::sql_door::SqlDoor;

/// Serves the PostgreSQL protocol on `listener` until `shutdown` completes. With `tls`,
/// every connection must negotiate TLS with that certificate.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    door: SqlDoor,
    tls: Option<&TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    // A TLS file that does not load stops the server: never a silent fall back to plaintext.
    let acceptor = tls.map(tls_acceptor).transpose()?;
    let handlers = Arc::new(handler::Handlers::new(door, acceptor.is_some()));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, address) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "postgres door: accept failed");
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let (acceptor, handlers) = (acceptor.clone(), handlers.clone());
                connections.spawn(async move {
                    if let Err(error) = pgwire::tokio::process_socket(socket, acceptor, handlers).await {
                        tracing::debug!(%error, %address, "postgres connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Open sessions end with the server; their statements' audit rows are written as
    // they are dropped.
    connections.shutdown().await;
    Ok(())
}

fn tls_acceptor(files: &TlsFiles) -> std::io::Result<pgwire::tokio::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::api::install_crypto_provider();
    let invalid = |what: &str, error: rustls::pki_types::pem::Error| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {error}"))
    };
    let certificates = CertificateDer::pem_file_iter(&files.certificate)
        .map_err(|error| invalid("the TLS certificate", error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid("the TLS certificate", error))?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|error| invalid("the TLS key", error))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}
