//! The warehouse's tables: names, columns, partitioning and how rows are matched on upsert.
//! Column names are the contract of CONTRACTS.md "What analysts see".

use std::sync::{Arc, OnceLock};

use arrow_schema::{Schema, SchemaRef};

use crate::column::ColumnType::{Boolean, Date, Float64, Instant, Int32, Int64, Text};
use crate::column::Generalise::{BirthMonth, Canton, Commune, Suppress};
use crate::column::Role::{
    Date as Day, DerivedFromIdentity, FreeText, Identity, Measure, Operational, QuasiIdentifier,
};
use crate::column::{Column, IdKind};

/// How an upsert recognises "the same record" and "a newer version" of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsertKeys {
    /// Column holding the record's pseudonymous identity.
    pub key: &'static str,
    /// Column holding the version instant; a newer version replaces an older one.
    pub version: &'static str,
    /// Column holding a hash of the content, so an unchanged re-ingest rewrites nothing.
    pub content_hash: &'static str,
}

/// Who writes a table, which says whether it carries the key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Written by ingest under the warehouse key: carries [`crate::KEY_ID_PROPERTY`], and a
    /// key rotation rewrites it.
    Ingest,
    /// Written by the server (the audit log): no pseudonyms, no key id.
    Server,
}

/// A warehouse table (a Delta table under the warehouse root, in the directory of its name).
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// In the order they are stored.
    pub columns: &'static [Column],
    pub partition_columns: &'static [&'static str],
    /// `None` for tables that are replaced or appended, not upserted.
    pub upsert: Option<UpsertKeys>,
    pub writer: Writer,
    /// Registered for analysts by the query engine. An allow-list rather than "every
    /// directory": tables added later (audit, keys, extracts) must be opened on purpose.
    pub analysts: bool,
    /// Offered to researcher extracts (its [`Column::extractable`] columns).
    pub extracts: bool,
    schema: OnceLock<SchemaRef>,
}

/// How a table is laid out and used, apart from its columns.
#[derive(Clone, Copy)]
struct Layout {
    partition_columns: &'static [&'static str],
    upsert: Option<UpsertKeys>,
    writer: Writer,
    analysts: bool,
    extracts: bool,
}

/// An ingest table, not partitioned, replaced or appended, open to analysts.
const PLAIN: Layout = Layout {
    partition_columns: &[],
    upsert: None,
    writer: Writer::Ingest,
    analysts: true,
    extracts: false,
};

/// Upserted by `key`, the newest `last_updated` winning, `content_hash` spotting no-ops.
const fn upserted_by(key: &'static str) -> Option<UpsertKeys> {
    Some(UpsertKeys {
        key,
        version: "last_updated",
        content_hash: "content_hash",
    })
}

impl Table {
    const fn new(name: &'static str, columns: &'static [Column], layout: Layout) -> Table {
        Table {
            name,
            columns,
            partition_columns: layout.partition_columns,
            upsert: layout.upsert,
            writer: layout.writer,
            analysts: layout.analysts,
            extracts: layout.extracts,
            schema: OnceLock::new(),
        }
    }

    /// The Arrow schema, built once from [`Table::columns`].
    pub fn schema(&self) -> &SchemaRef {
        self.schema.get_or_init(|| {
            Arc::new(Schema::new(
                self.columns.iter().map(Column::field).collect::<Vec<_>>(),
            ))
        })
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The columns holding pseudonyms, with the kind each was made as.
    pub fn identity_columns(&self) -> impl Iterator<Item = (&'static str, IdKind)> {
        self.columns
            .iter()
            .filter_map(|c| c.id_kind().map(|kind| (c.name, kind)))
    }

    /// The columns computed from pseudonyms, recomputed after re-keying.
    pub fn derived_columns(&self) -> impl Iterator<Item = &'static str> {
        self.columns
            .iter()
            .filter(|c| c.role == DerivedFromIdentity)
            .map(|c| c.name)
    }
}

/// The `birth_decade` partition value of a person born on `birth` (1987 → 1980).
pub fn birth_decade(birth: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    birth.year().div_euclid(10) * 10
}

const fn req(name: &'static str, t: crate::ColumnType, role: crate::Role) -> Column {
    Column::required(name, t, role)
}

const fn opt(name: &'static str, t: crate::ColumnType, role: crate::Role) -> Column {
    Column::optional(name, t, role)
}

/// One row per current vaccination event. Partitioned by birth decade: ten partitions at
/// national scale keep files large (tens of MB), coverage queries select cohorts and so prune
/// partitions, and a correction touches only the partitions of the persons it concerns.
pub static VACCINATIONS: Table = Table::new(
    "vaccinations",
    &[
        req("event_key", Text, Identity(IdKind::Event)),
        req("person_key", Text, Identity(IdKind::Person)),
        req("birth_month", Date, QuasiIdentifier(BirthMonth)),
        req("sex", Text, QuasiIdentifier(Suppress)),
        opt("commune", Text, QuasiIdentifier(Commune)),
        opt("canton", Text, QuasiIdentifier(Canton)),
        req("administered_on", Date, Day),
        req("age_months_at_dose", Int32, Measure),
        req("vaccine_atc", Text, Measure),
        // The name as typed at the source; the ATC code says which vaccine it is.
        req("vaccine_name", Text, FreeText),
        opt("lot_number", Text, FreeText),
        opt("dose_number_recorded", Int32, Measure),
        req("status", Text, Measure),
        opt("vaccinator_key", Text, Identity(IdKind::Practitioner)),
        req("source_system", Text, Operational),
        opt("recorded_at", Instant, Operational),
        req("last_updated", Instant, Operational),
        req("ingested_at", Instant, Operational),
        // Over person_key and vaccinator_key among others.
        req("content_hash", Text, DerivedFromIdentity),
        req("birth_decade", Int32, Operational),
    ],
    Layout {
        partition_columns: &["birth_decade"],
        upsert: upserted_by("event_key"),
        extracts: true,
        ..PLAIN
    },
);

/// Case notifications, linked to vaccinations through `person_key`.
pub static CASES: Table = Table::new(
    "cases",
    &[
        req("case_key", Text, Identity(IdKind::Case)),
        req("person_key", Text, Identity(IdKind::Person)),
        req("disease", Text, Measure),
        req("onset_date", Date, Day),
        req("hospitalised", Boolean, Measure),
        req("died", Boolean, Measure),
        req("birth_month", Date, QuasiIdentifier(BirthMonth)),
        req("sex", Text, QuasiIdentifier(Suppress)),
        opt("commune", Text, QuasiIdentifier(Commune)),
        opt("canton", Text, QuasiIdentifier(Canton)),
        req("age_years_at_onset", Int32, Measure).internal(),
        req("last_updated", Instant, Operational),
        req("ingested_at", Instant, Operational),
        req("content_hash", Text, DerivedFromIdentity),
    ],
    Layout {
        upsert: upserted_by("case_key"),
        extracts: true,
        ..PLAIN
    },
);

/// One row per person: where they live (or that they do not live in Luxembourg), whether
/// they died, as the latest record of them says (CONTRACTS.md "Validity, residence and
/// disclosure"). Every ingest source maintains it: FHIR Patients, registry rows, and case
/// notifications for persons known from nothing else. Coverage numerators and effectiveness
/// person-time count residents only, and person-time ends at death (docs/coverage.md, "Who
/// is counted").
pub static PERSONS: Table = Table::new(
    "persons",
    &[
        req("person_key", Text, Identity(IdKind::Person)),
        req("birth_month", Date, QuasiIdentifier(BirthMonth)),
        req("sex", Text, QuasiIdentifier(Suppress)),
        opt("commune", Text, QuasiIdentifier(Commune)),
        opt("canton", Text, QuasiIdentifier(Canton)),
        // The latest address is in a commune of sql/reference/communes.csv.
        req("resident", Boolean, Measure),
        // First of the month of death; null when alive or not known to have died.
        opt("deceased_month", Date, Day),
        // The instant of the record the row comes from (Patient.meta.lastUpdated, a
        // registry row's recorded_at, a case's onset date).
        req("last_updated", Instant, Operational),
        // patient | registry | case: which kind of record the row comes from.
        req("known_from", Text, Operational),
        // What upserts compare: `last_updated`, except for a person known only from case
        // notifications, whose rank sits 1,000 years earlier so that any Patient or
        // registry row of the person replaces it whatever its date (a later notification
        // still replaces an earlier one), and for a row recording a death, 1,000 years
        // later: a death is final, whatever record comes after it.
        req("ranked_at", Instant, Operational),
        req("ingested_at", Instant, Operational),
        // A hash of the attributes alone (no pseudonym: nothing to redo on key rotation).
        req("content_hash", Text, Operational),
    ],
    Layout {
        upsert: Some(UpsertKeys {
            key: "person_key",
            version: "ranked_at",
            content_hash: "content_hash",
        }),
        ..PLAIN
    },
);

/// Rejected records: where they were and why, never what they said. `record_hash` (keyed)
/// lets an operator confirm which line of a file was meant without storing the line.
pub static QUARANTINE: Table = Table::new(
    "quarantine",
    &[
        // A hash over source, position and record_hash.
        req("quarantine_key", Text, DerivedFromIdentity),
        req("source", Text, Operational),
        req("position", Int64, Operational),
        req("reason", Text, Operational),
        req("received_at", Instant, Operational),
        // The keyed hash of the raw record (a Resource pseudonym).
        req("record_hash", Text, Identity(IdKind::Resource)),
        req("run_id", Text, Operational),
        // A hash of the reason alone.
        req("content_hash", Text, Operational),
    ],
    Layout {
        upsert: Some(UpsertKeys {
            key: "quarantine_key",
            version: "received_at",
            content_hash: "content_hash",
        }),
        ..PLAIN
    },
);

/// Residents on 1 January of `reference_year`: the coverage denominators. A file replaces
/// the reference years it contains.
pub static POPULATION: Table = Table::new(
    "population",
    &[
        req("reference_year", Int32, Measure),
        req("commune", Text, QuasiIdentifier(Commune)),
        req("canton", Text, QuasiIdentifier(Canton)),
        req("sex", Text, QuasiIdentifier(Suppress)),
        req("birth_year", Int32, Measure),
        req("count", Int64, Measure),
        req("ingested_at", Instant, Operational),
    ],
    PLAIN,
);

/// One row per ingest run: the history operators and the data-quality dashboard read.
pub static INGEST_RUNS: Table = Table::new(
    "ingest_runs",
    &[
        req("run_id", Text, Operational),
        req("source", Text, Operational),
        req("started_at", Instant, Operational),
        req("finished_at", Instant, Operational),
        req("read", Int64, Operational),
        req("accepted", Int64, Operational),
        req("quarantined", Int64, Operational),
        // The public id of the key of each past run: history, not a pseudonym.
        req("key_id", Text, Operational),
    ],
    PLAIN,
);

/// Persons who objected to research use of their data (`optout:FILE`): only their person
/// keys. Each load replaces the whole list; extracts leave these persons out.
pub static OPTOUT: Table = Table::new(
    "optout",
    &[
        req("person_key", Text, Identity(IdKind::Person)),
        req("ingested_at", Instant, Operational),
    ],
    Layout {
        analysts: false,
        ..PLAIN
    },
);

/// Who asked the server what, when, and how it went (CONTRACTS.md, Audit).
pub static AUDIT: Table = Table::new(
    "audit",
    &[
        req("at", Instant, Operational),
        opt("user", Text, Operational),
        req("role", Text, Operational),
        req("method", Text, Operational),
        req("endpoint", Text, Operational),
        req("parameters", Text, Operational),
        req("status", Int32, Operational),
        req("outcome", Text, Operational),
        opt("rows", Int64, Operational),
        req("duration_ms", Float64, Operational),
    ],
    Layout {
        writer: Writer::Server,
        analysts: false,
        ..PLAIN
    },
);

/// The coverage facts: one row per person, antigen and day with a completed dose of a vaccine
/// holding the antigen, judged by the dose rules, with the person's attributes from
/// `persons` (DESIGN.md, "Engineering notes": coverage is a filter and a sum over a
/// materialised `antigen_doses`, not a recomputation from the events).
///
/// Written by the ingest after every run, for the persons the run changed, as rows of weight
/// −1 (a person's old facts) and +1 (the new ones): the table is append-only between
/// `vaxlake maintain` runs, so the coverage engine keeps its counts by adding up only the
/// files a commit added, and the current facts are the rows whose weights sum above zero.
/// Each commit carries, as application transactions, the `vaccinations` and `persons`
/// versions it reflects (`vaxlake_ingest::facts`).
pub static DOSE_FACTS: Table = Table::new(
    "dose_facts",
    &[
        req("person_key", Text, Identity(IdKind::Person)),
        req("antigen", Text, Measure),
        req("administered_on", Date, Day),
        opt("age_months_at_dose", Int32, Measure),
        req("valid", Boolean, Measure),
        opt("invalid_reason", Text, Measure),
        // 1, 2, 3, ... among the person's valid days of the antigen; null when invalid.
        opt("dose_seq", Int32, Measure),
        // The valid dose that completes the longest product series given (vaccine_series.csv).
        req("completes_series", Boolean, Measure),
        // The valid dose that completes the schedule (schedules.csv).
        req("completes_schedule", Boolean, Measure),
        // The person's first valid day of the antigen in its season (1 September–31 August).
        req("first_in_season", Boolean, Measure),
        // From `persons`: false for a person it does not know or who lives abroad.
        req("resident", Boolean, Measure),
        opt("birth_year", Int32, Measure),
        opt("commune", Text, QuasiIdentifier(Commune)),
        opt("canton", Text, QuasiIdentifier(Canton)),
        opt("sex", Text, QuasiIdentifier(Suppress)),
        opt("death_year", Int32, Measure),
        // +1 for a fact, −1 for its retraction.
        req("weight", Int32, Measure),
    ],
    PLAIN,
);

/// Every table, the ingest's first (in the order ingest, rotation and maintenance visit
/// them), then the server's.
pub static TABLES: &[&Table] = &[
    &VACCINATIONS,
    &CASES,
    &PERSONS,
    &QUARANTINE,
    &POPULATION,
    &INGEST_RUNS,
    &OPTOUT,
    &DOSE_FACTS,
    &AUDIT,
];

/// The table called `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().copied().find(|t| t.name == name)
}

/// Every table written by the ingest. All of them carry the key id in their metadata (a
/// table created by an ingest is created under its key), so a key rotation updates them all.
pub fn warehouse_tables() -> impl Iterator<Item = &'static Table> {
    TABLES
        .iter()
        .copied()
        .filter(|t| t.writer == Writer::Ingest)
}

/// The Delta tables the query engine registers for analysts when present, by directory
/// name: the tables opened to them, then the views (a table materialised under a view's
/// name replaces the view).
pub fn analyst_tables() -> impl Iterator<Item = &'static str> {
    TABLES
        .iter()
        .filter(|t| t.analysts)
        .map(|t| t.name)
        .chain(crate::VIEWS.iter().map(|v| v.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_list_round_trips() {
        let mut names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        for name in &names {
            assert_eq!(table(name).unwrap().name, *name);
        }
        assert!(table("nope").is_none());
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TABLES.len(), "a table name twice");
        for t in TABLES {
            let schema = t.schema();
            let back: Vec<(&str, crate::ColumnType, bool)> = schema
                .fields()
                .iter()
                .map(|f| {
                    let c = t.column(f.name()).unwrap();
                    assert_eq!(f.data_type(), &c.column_type.data_type());
                    (c.name, c.column_type, f.is_nullable())
                })
                .collect();
            let columns: Vec<(&str, crate::ColumnType, bool)> = t
                .columns
                .iter()
                .map(|c| (c.name, c.column_type, c.nullable))
                .collect();
            assert_eq!(back, columns, "{}", t.name);
            for c in t.partition_columns {
                assert!(t.column(c).is_some(), "{}.{c}", t.name);
            }
            if let Some(u) = t.upsert {
                for c in [u.key, u.version, u.content_hash] {
                    assert!(t.column(c).is_some(), "{}.{c}", t.name);
                }
            }
        }
    }

    #[test]
    fn the_ingest_tables_and_the_analysts_allow_list() {
        let written: Vec<&str> = warehouse_tables().map(|t| t.name).collect();
        assert_eq!(
            written,
            [
                "vaccinations",
                "cases",
                "persons",
                "quarantine",
                "population",
                "ingest_runs",
                "optout",
                "dose_facts"
            ]
        );
        let mut open: Vec<&str> = analyst_tables().collect();
        open.sort();
        assert_eq!(
            open,
            [
                "antigen_doses",
                "cases",
                "dose_facts",
                "ingest_runs",
                "persons",
                "population",
                "quarantine",
                "vaccinations"
            ]
        );
    }

    #[test]
    fn birth_decades() {
        let day = |y| chrono::NaiveDate::from_ymd_opt(y, 6, 1).unwrap();
        assert_eq!(birth_decade(day(1987)), 1980);
        assert_eq!(birth_decade(day(2000)), 2000);
    }
}
