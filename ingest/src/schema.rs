//! The warehouse's tables, as the catalogue describes them (`vaxlake_catalog::tables`: the
//! one description of every table, which query, extract and the server read too).

pub use vaxlake_catalog::{
    birth_decade, warehouse_tables, Table as TableSpec, UpsertKeys, CASES, INGEST_RUNS, OPTOUT,
    PERSONS, POPULATION, QUARANTINE, VACCINATIONS,
};
