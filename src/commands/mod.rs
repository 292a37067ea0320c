//! What each `vaxlake` command does, one module per command; the flags are in `cli`.

pub mod access;
pub mod cluster;
pub mod coverage;
pub mod demo;
pub mod effectiveness;
pub mod extract;
pub mod follow;
pub mod generate;
pub mod ingest;
pub mod key;
pub mod maintain;
pub mod query_limits;
pub mod serve;
pub mod sql;
pub mod status;
mod suppressed;
