//! The one description of every vaxlake table, read by ingest, rekey, extract, query and
//! the server alike, so that adding a column is one edit (DESIGN.md, "Layout").
//!
//! - [`tables`]: each warehouse table's columns with their [`Role`] (identity key and
//!   pseudonym kind, quasi-identifier, date, measure, ...), Arrow types and nullability,
//!   partitioning and upsert keys.
//! - [`keys`]: the key-id table property and the check that every table carries one key.
//! - [`order_secret`]: the warehouse's complement-order secret (its object name and type).
//! - [`reference`]: the reference data of `sql/reference/` (vaccines → antigens, communes →
//!   cantons, indicators, vaccine series), parsed once with line-numbered errors.
//! - [`validity`]: which doses count (dose_rules.csv, schedules.csv), the one implementation
//!   the coverage engine and the `antigen_doses` view share.
//! - [`views`]: the views of `sql/views/`.
//! - [`sources`]: the column lists of the input formats (CONTRACTS.md "Registry CSV").
//!
//! ```
//! let vaccinations = vaxlake_catalog::table("vaccinations").unwrap();
//! assert_eq!(vaccinations.schema().field(0).name(), "event_key");
//! assert_eq!(vaxlake_catalog::builtin().unwrap().vaccine("j07bd52").unwrap().antigens.len(), 3);
//! ```

pub mod column;
pub mod error;
pub mod keys;
pub mod order_secret;
pub mod reference;
pub mod sources;
pub mod tables;
pub mod validity;
pub mod views;

pub use column::{Column, ColumnType, Generalise, IdKind, Role};
pub use error::CatalogError;
pub use keys::{
    check_keys, key_id, KeyError, StoredKey, KEY_ID_PROPERTY, KEY_ROTATED_FROM_PROPERTY,
};
pub use order_secret::{OrderSecret, OrderSecretError, ORDER_SECRET_LEN, ORDER_SECRET_OBJECT};
pub use reference::{
    builtin, Commune, DoseRule, Indicator, Kind, Reference, Schedule, Series, Vaccine, ValidityRule,
};
pub use tables::{
    analyst_tables, birth_decade, table, warehouse_tables, Table, UpsertKeys, AUDIT, CASES,
    DOSE_FACTS, INGEST_RUNS, OPTOUT, PERSONS, POPULATION, QUARANTINE, TABLES, VACCINATIONS,
};
pub use views::{view, View, VIEWS};
