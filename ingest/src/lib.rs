//! Ingest: read a registry export, validate it, pseudonymise it and write it to the
//! warehouse's Delta tables.
//!
//! Every source (`fhir.rs`, `registry_csv.rs`, `population.rs`, `cases.rs`) turns its input
//! into the same staged rows; [`table`] writes them with one atomic Delta commit per batch.
//! Rejected records go to the `quarantine` table with their position and a reason that never
//! quotes an identity.
//! [`rekey`] rotates the warehouse to a new key chain (`vaxlake key rotate`). Both report
//! their progress to a [`ProgressObserver`] of the caller's, if any.
//!
//! ```no_run
//! # async fn f() -> Result<(), vaxlake_ingest::IngestError> {
//! use vaxlake_ingest::{ingest, IngestOptions, Source};
//! let key = vaxlake_pseudonymize::MasterKey::load(std::path::Path::new("key.hex")).unwrap();
//! let report = ingest("/data/warehouse", &Source::parse("fhir:/exports/2026-11-23").unwrap(), &key, &IngestOptions::default()).await?;
//! println!("read={} accepted={} quarantined={}", report.read, report.accepted, report.quarantined);
//! # Ok(()) }
//! ```

mod cases;
mod catalogue;
mod chunks;
mod csv_rows;
mod dates;
mod error;
pub mod facts;
mod fhir;
#[cfg(test)]
mod generated_input;
pub mod lease;
pub mod maintain;
mod order_secret;
pub mod persons;
mod population;
pub mod postgres;
pub mod progress;
mod registry_csv;
mod rekey;
mod row;
mod run;
pub mod schema;
mod source;
pub mod table;

pub use catalogue::{vaccine, Vaccine};
pub use error::IngestError;
pub use maintain::{
    maintain, rewrite_lock, LockMode, MaintainOptions, MaintainReport, TableMaintenance,
};
pub use order_secret::ensure_order_secret;
pub use postgres::{PostgresSource, StopFlag};
pub use progress::{Progress, ProgressObserver};
pub use rekey::{rekey, RekeyOptions, RekeyOutcome, RekeyReport, TableRekey};
pub use run::{check_key_everywhere, ingest, IngestOptions, IngestReport};
pub use source::Source;
pub use table::{warehouse_url, KEY_ID_PROPERTY, KEY_ROTATED_FROM_PROPERTY};
