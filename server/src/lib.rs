//! Every door into the vaxlake warehouse. Today the HTTP API ([`api`]): its route table,
//! handlers and serving; who may use what ([`auth`]); the audit trail of every request
//! ([`audit`]); the ministry's dashboards compiled in; the operators' status report
//! ([`status`]); researchers' extracts ([`extracts`]). The answers themselves come from
//! `vaxlake-query`, which knows nothing of HTTP.
//!
//! `vaxlake serve` is [`Server::bind`] then [`Server::run`]:
//!
//! ```no_run
//! # async fn example() -> Result<(), vaxlake_server::ServerError> {
//! use vaxlake_server::{Server, ServerConfig};
//! let config = ServerConfig::new("/srv/vaxlake", "127.0.0.1:8080".parse().unwrap());
//! let server = Server::bind(config).await?;
//! server.run(async { tokio::signal::ctrl_c().await.ok(); }).await?;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod audit;
pub mod auth;
mod dashboards;
pub mod extracts;
mod flight;
mod postgres;
mod server;
mod sql_door;
pub mod status;

pub use server::{Server, ServerConfig, ServerError};
