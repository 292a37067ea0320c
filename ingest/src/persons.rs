//! The `persons` table: one row per person key, the latest word of any source on where the
//! person lives (or that they live abroad) and whether they died (CONTRACTS.md "Validity,
//! residence and disclosure"; docs/coverage.md "Who is counted").
//!
//! Every source stages a [`PersonRow`] per record it reads; a run keeps the newest per person
//! ([`LatestPersons`]) and upserts them once it has written its own table, newest wins by
//! `ranked_at`. A record of death is final: it ranks above every record without one, in
//! whatever order the sources are ingested (a registry row, which has no death field, dated
//! after a Patient's last update must not bring the person back to life).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::Date32Type;

use crate::error::Result;
use crate::row::{latest_by, Staged};
use crate::schema::PERSONS;

/// Which kind of record a person's row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownFrom {
    /// A FHIR Patient resource: address, death.
    Patient,
    /// A registry row (CSV export or the registry database).
    Registry,
    /// A case notification: used only for a person no other record knows.
    Case,
}

impl KnownFrom {
    fn as_str(self) -> &'static str {
        match self {
            KnownFrom::Patient => "patient",
            KnownFrom::Registry => "registry",
            KnownFrom::Case => "case",
        }
    }
}

/// How far a row is ranked from its own date: a case-derived row that far back, so a Patient
/// or registry row of the same person always replaces it; a row recording a death that far
/// forward, so no record without one replaces it.
const CASE_RANK_OFFSET_MICROS: i64 = 1_000 * 365 * 86_400 * 1_000_000;

/// A person as one record describes them, pseudonymised and generalised.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonRow {
    pub person_key: [u8; 16],
    /// Days since epoch of the first of the birth month.
    pub birth_month: i32,
    pub sex: &'static str,
    pub commune: Option<&'static str>,
    pub canton: Option<&'static str>,
    pub resident: bool,
    /// Days since epoch of the first of the month of death.
    pub deceased_month: Option<i32>,
    /// Microseconds since epoch: the record's own date.
    pub last_updated: i64,
    pub known_from: KnownFrom,
    pub position: u64,
}

impl PersonRow {
    /// The instant upserts compare (see the `ranked_at` column in the catalogue).
    pub fn ranked_at(&self) -> i64 {
        match self.known_from {
            KnownFrom::Case => self.last_updated - CASE_RANK_OFFSET_MICROS,
            _ if self.deceased_month.is_some() => self.last_updated + CASE_RANK_OFFSET_MICROS,
            _ => self.last_updated,
        }
    }

    fn content_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        let field = |h: &mut blake3::Hasher, bytes: &[u8]| {
            h.update(&(bytes.len() as u32).to_le_bytes());
            h.update(bytes);
        };
        field(&mut h, &self.birth_month.to_le_bytes());
        field(&mut h, self.sex.as_bytes());
        field(&mut h, self.commune.unwrap_or("").as_bytes());
        field(&mut h, self.canton.unwrap_or("").as_bytes());
        field(&mut h, &[self.resident as u8]);
        field(
            &mut h,
            &self.deceased_month.unwrap_or(i32::MIN).to_le_bytes(),
        );
        field(&mut h, self.known_from.as_str().as_bytes());
        hex::encode(&h.finalize().as_bytes()[..8])
    }
}

impl Staged for PersonRow {
    fn key(&self) -> &[u8; 16] {
        &self.person_key
    }
    fn version(&self) -> i64 {
        self.ranked_at()
    }
    fn position(&self) -> u64 {
        self.position
    }
}

/// The newest row per person seen so far in a run (about 100 bytes a person).
#[derive(Debug, Default)]
pub struct LatestPersons {
    rows: HashMap<[u8; 16], PersonRow>,
}

impl LatestPersons {
    pub fn add(&mut self, row: PersonRow) {
        let rank = |r: &PersonRow| (r.ranked_at(), r.position);
        match self.rows.get_mut(&row.person_key) {
            Some(kept) => {
                let death = kept.deceased_month;
                if rank(&row) > rank(kept) {
                    *kept = row;
                }
                kept.deceased_month = kept.deceased_month.or(death);
            }
            None => {
                self.rows.insert(row.person_key, row);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn into_rows(self) -> Vec<PersonRow> {
        latest_by(self.rows.into_values().collect(), |r| {
            (r.ranked_at(), r.position)
        })
    }
}

/// Persons whose death the table already records, by key: a later record without a death
/// keeps it.
pub async fn known_deaths(table: &crate::table::Table) -> Result<HashMap<String, i32>> {
    let batches = table
        .query("SELECT person_key, deceased_month FROM target WHERE deceased_month IS NOT NULL")
        .await?;
    let mut deaths = HashMap::new();
    for batch in batches {
        let keys = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
        let keys = keys.as_string::<i32>();
        let months = batch.column(1).as_primitive::<Date32Type>();
        for i in 0..batch.num_rows() {
            if months.is_valid(i) {
                deaths.insert(keys.value(i).to_string(), months.value(i));
            }
        }
    }
    Ok(deaths)
}

/// Builds the `persons` batch; `ingested_at` is the run's start. `deaths` fills in the month
/// of death of rows that do not state one.
pub fn persons_batch(
    rows: &[PersonRow],
    deaths: &HashMap<String, i32>,
    ingested_at: i64,
) -> arrow::error::Result<RecordBatch> {
    let n = rows.len();
    let mut person_key = StringBuilder::with_capacity(n, n * 32);
    let mut birth_month = Date32Builder::with_capacity(n);
    let mut sex = StringBuilder::new();
    let mut commune = StringBuilder::new();
    let mut canton = StringBuilder::new();
    let mut resident = BooleanBuilder::with_capacity(n);
    let mut deceased = Date32Builder::with_capacity(n);
    let micros = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut last_updated, mut ranked_at, mut ingested) = (micros(), micros(), micros());
    let mut known_from = StringBuilder::new();
    let mut content_hash = StringBuilder::with_capacity(n, n * 16);
    for r in rows {
        let key = hex::encode(r.person_key);
        let mut r = r.clone();
        r.deceased_month = r.deceased_month.or_else(|| deaths.get(&key).copied());
        person_key.append_value(&key);
        birth_month.append_value(r.birth_month);
        sex.append_value(r.sex);
        commune.append_option(r.commune);
        canton.append_option(r.canton);
        resident.append_value(r.resident);
        deceased.append_option(r.deceased_month);
        last_updated.append_value(r.last_updated);
        known_from.append_value(r.known_from.as_str());
        ranked_at.append_value(r.ranked_at());
        ingested.append_value(ingested_at);
        content_hash.append_value(r.content_hash());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(person_key.finish()),
        Arc::new(birth_month.finish()),
        Arc::new(sex.finish()),
        Arc::new(commune.finish()),
        Arc::new(canton.finish()),
        Arc::new(resident.finish()),
        Arc::new(deceased.finish()),
        Arc::new(last_updated.finish()),
        Arc::new(known_from.finish()),
        Arc::new(ranked_at.finish()),
        Arc::new(ingested.finish()),
        Arc::new(content_hash.finish()),
    ];
    RecordBatch::try_new(PERSONS.schema().clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: u8, last_updated: i64, from: KnownFrom, death: Option<i32>) -> PersonRow {
        PersonRow {
            person_key: [key; 16],
            birth_month: 0,
            sex: "female",
            commune: Some("Wiltz"),
            canton: Some("Wiltz"),
            resident: true,
            deceased_month: death,
            last_updated,
            known_from: from,
            position: 0,
        }
    }

    #[test]
    fn any_dated_record_beats_a_case_and_a_death_is_kept() {
        let mut latest = LatestPersons::default();
        // A case in 2030 is still older than a Patient updated in 1990.
        latest.add(row(1, 1_900_000_000_000_000, KnownFrom::Case, None));
        latest.add(row(1, 600_000_000_000_000, KnownFrom::Patient, Some(7000)));
        // A registry row of 2020 does not replace the Patient recording a death.
        latest.add(row(1, 1_600_000_000_000_000, KnownFrom::Registry, None));
        let rows = latest.into_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].known_from, KnownFrom::Patient);
        assert_eq!(rows[0].deceased_month, Some(7000));
        // In the other order too.
        let mut latest = LatestPersons::default();
        latest.add(row(2, 1_600_000_000_000_000, KnownFrom::Registry, None));
        latest.add(row(2, 600_000_000_000_000, KnownFrom::Patient, Some(7000)));
        assert_eq!(latest.into_rows()[0].deceased_month, Some(7000));
    }
}
