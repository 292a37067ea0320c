//! The warehouse's tables: names, Arrow schemas, partitioning and how rows are matched on
//! upsert. The one place that says what a table looks like (DESIGN.md: shared types live in
//! one place); column names are the contract of CONTRACTS.md "What analysts see".

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, LazyLock};

/// How an upsert recognises "the same record" and "a newer version" of it.
#[derive(Debug, Clone, Copy)]
pub struct UpsertKeys {
    /// Column holding the record's pseudonymous identity.
    pub key: &'static str,
    /// Column holding the version instant; a newer version replaces an older one.
    pub version: &'static str,
    /// Column holding a hash of the content, so an unchanged re-ingest rewrites nothing.
    pub content_hash: &'static str,
}

/// A warehouse table.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: &'static str,
    pub schema: SchemaRef,
    pub partition_columns: &'static [&'static str],
    /// `None` for tables that are replaced or appended, not upserted.
    pub upsert: Option<UpsertKeys>,
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn field(name: &str, data_type: DataType, nullable: bool) -> Field {
    Field::new(name, data_type, nullable)
}

/// The `birth_decade` partition value of a person born on `birth` (1987 → 1980).
pub fn birth_decade(birth: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    birth.year().div_euclid(10) * 10
}

/// One row per current vaccination event. Partitioned by birth decade: ten partitions at
/// national scale keep files large (tens of MB), coverage queries select cohorts and so prune
/// partitions, and a correction touches only the partitions of the persons it concerns.
pub static VACCINATIONS: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "vaccinations",
    schema: Arc::new(Schema::new(vec![
        field("event_key", DataType::Utf8, false),
        field("person_key", DataType::Utf8, false),
        field("birth_month", DataType::Date32, false),
        field("sex", DataType::Utf8, false),
        field("commune", DataType::Utf8, true),
        field("canton", DataType::Utf8, true),
        field("administered_on", DataType::Date32, false),
        field("age_months_at_dose", DataType::Int32, false),
        field("vaccine_atc", DataType::Utf8, false),
        field("vaccine_name", DataType::Utf8, false),
        field("lot_number", DataType::Utf8, true),
        field("dose_number_recorded", DataType::Int32, true),
        field("status", DataType::Utf8, false),
        field("vaccinator_key", DataType::Utf8, true),
        field("source_system", DataType::Utf8, false),
        field("recorded_at", utc_micros(), true),
        field("last_updated", utc_micros(), false),
        field("ingested_at", utc_micros(), false),
        field("content_hash", DataType::Utf8, false),
        field("birth_decade", DataType::Int32, false),
    ])),
    partition_columns: &["birth_decade"],
    upsert: Some(UpsertKeys {
        key: "event_key",
        version: "last_updated",
        content_hash: "content_hash",
    }),
});

/// Case notifications, linked to vaccinations through `person_key`.
pub static CASES: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "cases",
    schema: Arc::new(Schema::new(vec![
        field("case_key", DataType::Utf8, false),
        field("person_key", DataType::Utf8, false),
        field("disease", DataType::Utf8, false),
        field("onset_date", DataType::Date32, false),
        field("hospitalised", DataType::Boolean, false),
        field("died", DataType::Boolean, false),
        field("birth_month", DataType::Date32, false),
        field("sex", DataType::Utf8, false),
        field("commune", DataType::Utf8, true),
        field("canton", DataType::Utf8, true),
        field("age_years_at_onset", DataType::Int32, false),
        field("last_updated", utc_micros(), false),
        field("ingested_at", utc_micros(), false),
        field("content_hash", DataType::Utf8, false),
    ])),
    partition_columns: &[],
    upsert: Some(UpsertKeys {
        key: "case_key",
        version: "last_updated",
        content_hash: "content_hash",
    }),
});

/// Rejected records: where they were and why, never what they said. `record_hash` (keyed)
/// lets an operator confirm which line of a file was meant without storing the line.
pub static QUARANTINE: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "quarantine",
    schema: Arc::new(Schema::new(vec![
        field("quarantine_key", DataType::Utf8, false),
        field("source", DataType::Utf8, false),
        field("position", DataType::Int64, false),
        field("reason", DataType::Utf8, false),
        field("received_at", utc_micros(), false),
        field("record_hash", DataType::Utf8, false),
        field("run_id", DataType::Utf8, false),
        field("content_hash", DataType::Utf8, false),
    ])),
    partition_columns: &[],
    upsert: Some(UpsertKeys {
        key: "quarantine_key",
        version: "received_at",
        content_hash: "content_hash",
    }),
});

/// Residents on 1 January of `reference_year`: the coverage denominators. A file replaces
/// the reference years it contains.
pub static POPULATION: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "population",
    schema: Arc::new(Schema::new(vec![
        field("reference_year", DataType::Int32, false),
        field("commune", DataType::Utf8, false),
        field("canton", DataType::Utf8, false),
        field("sex", DataType::Utf8, false),
        field("birth_year", DataType::Int32, false),
        field("count", DataType::Int64, false),
        field("ingested_at", utc_micros(), false),
    ])),
    partition_columns: &[],
    upsert: None,
});

/// One row per ingest run: the history operators and the data-quality dashboard read.
pub static INGEST_RUNS: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "ingest_runs",
    schema: Arc::new(Schema::new(vec![
        field("run_id", DataType::Utf8, false),
        field("source", DataType::Utf8, false),
        field("started_at", utc_micros(), false),
        field("finished_at", utc_micros(), false),
        field("read", DataType::Int64, false),
        field("accepted", DataType::Int64, false),
        field("quarantined", DataType::Int64, false),
        field("key_id", DataType::Utf8, false),
    ])),
    partition_columns: &[],
    upsert: None,
});

/// Persons who objected to research use of their data (`optout:FILE`): only their person
/// keys. Each load replaces the whole list; extracts leave these persons out.
pub static OPTOUT: LazyLock<TableSpec> = LazyLock::new(|| TableSpec {
    name: "optout",
    schema: Arc::new(Schema::new(vec![
        field("person_key", DataType::Utf8, false),
        field("ingested_at", utc_micros(), false),
    ])),
    partition_columns: &[],
    upsert: None,
});

/// Every table of the warehouse. All of them carry the key id in their metadata (a table
/// created by an ingest is created under its key), so a key rotation updates them all.
pub fn warehouse_tables() -> [&'static TableSpec; 6] {
    [
        &VACCINATIONS,
        &CASES,
        &QUARANTINE,
        &POPULATION,
        &INGEST_RUNS,
        &OPTOUT,
    ]
}
