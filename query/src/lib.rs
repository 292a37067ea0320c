//! The query side of vaxlake: one DataFusion session over the warehouse's Delta tables,
//! the read-only SQL sandbox analysts go through, the coverage and effectiveness engines
//! (siblings sharing disclosure control, Arrow row access and one answer cache) and the output
//! formats. A pure library: the doors into it (HTTP and the others) live in `vaxlake-server`.
//!
//! ```no_run
//! # async fn example() -> Result<(), vaxlake_query::QueryError> {
//! use vaxlake_query::{QueryOptions, Warehouse};
//! let warehouse = Warehouse::open("/srv/vaxlake", QueryOptions::default()).await?;
//! let answer = warehouse.sql("SELECT antigen, count(*) FROM antigen_doses GROUP BY antigen").await?;
//! println!("{}", answer.to_table()?);
//! # Ok(())
//! # }
//! ```

mod answer_cache;
mod arrow_rows;
mod bounded;
pub mod cluster;
mod cooperative;
pub mod coverage;
mod dates;
pub mod disclosure;
pub mod effectiveness;
mod error;
pub mod latest;
#[cfg(test)]
mod logic_tests;
mod order_secret;
pub mod output;
mod population;
mod query_memory;
mod reference;
pub mod sandbox;
mod validity_window;
mod views;
mod warehouse;
mod window_memory;
mod wrap_nodes;

pub use error::QueryError;
pub use output::{QueryAnswer, QueryStream};
pub use warehouse::{table_exists, QueryOptions, Warehouse, AUDIT_TABLE, DEFAULT_TABLES};
