//! Staged rows, the common currency of every source, and their conversion to Arrow batches.

use crate::schema::{CASES, QUARANTINE, VACCINATIONS};
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use std::sync::Arc;

/// What a source made of a run of records: rows to write and records to quarantine.
#[derive(Debug)]
pub struct Parsed<T> {
    /// Records read (accepted + rejected).
    pub read: u64,
    pub rows: Vec<T>,
    pub rejected: Vec<Rejected>,
}

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Self {
            read: 0,
            rows: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

/// A row that may replace an earlier version of itself.
pub trait Staged {
    fn key(&self) -> &[u8; 16];
    fn version(&self) -> i64;
    /// Position in the source, so that of two versions with the same instant the later line wins.
    fn position(&self) -> u64;
    /// True when this version removes the record (FHIR `entered-in-error`).
    fn deletes(&self) -> bool {
        false
    }
}

/// Keeps the newest version of each key (ties: the later position).
pub fn newest_versions<T: Staged>(rows: Vec<T>) -> Vec<T> {
    latest_by(rows, |row| (row.version(), row.position()))
}

/// One row per key: the one `rank` puts last (the first of equals).
pub(crate) fn latest_by<T: Staged, R: Ord>(rows: Vec<T>, rank: impl Fn(&T) -> R) -> Vec<T> {
    let mut best: HashMap<[u8; 16], T> = HashMap::with_capacity(rows.len());
    for row in rows {
        match best.get(row.key()) {
            Some(kept) if rank(kept) >= rank(&row) => {}
            _ => {
                best.insert(*row.key(), row);
            }
        }
    }
    best.into_values().collect()
}

/// A pseudonymised, generalised vaccination event.
#[derive(Debug, Clone)]
pub struct Vaccination {
    pub event_key: [u8; 16],
    pub person_key: [u8; 16],
    /// Days since epoch of the first of the birth month.
    pub birth_month: i32,
    pub birth_decade: i32,
    pub sex: &'static str,
    pub commune: Option<&'static str>,
    pub canton: Option<&'static str>,
    pub administered_on: i32,
    pub age_months_at_dose: i32,
    pub vaccine_atc: &'static str,
    pub vaccine_name: &'static str,
    pub lot_number: Option<String>,
    pub dose_number_recorded: Option<i32>,
    pub status: &'static str,
    pub vaccinator_key: Option<[u8; 16]>,
    pub source_system: Arc<str>,
    pub recorded_at: Option<i64>,
    pub last_updated: i64,
    pub position: u64,
}

impl Staged for Vaccination {
    fn key(&self) -> &[u8; 16] {
        &self.event_key
    }
    fn version(&self) -> i64 {
        self.last_updated
    }
    fn position(&self) -> u64 {
        self.position
    }
    fn deletes(&self) -> bool {
        self.status == "entered-in-error"
    }
}

/// A pseudonymised case notification.
#[derive(Debug, Clone)]
pub struct Case {
    pub case_key: [u8; 16],
    pub person_key: [u8; 16],
    pub disease: String,
    pub onset_date: i32,
    pub hospitalised: bool,
    pub died: bool,
    pub birth_month: i32,
    pub sex: &'static str,
    pub commune: Option<&'static str>,
    pub canton: Option<&'static str>,
    pub age_years_at_onset: i32,
    pub position: u64,
}

impl Staged for Case {
    fn key(&self) -> &[u8; 16] {
        &self.case_key
    }
    fn version(&self) -> i64 {
        0
    }
    fn position(&self) -> u64 {
        self.position
    }
}

/// A rejected record: where it was and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Source label and file name, e.g. `fhir:Immunization.ndjson`.
    pub source: Arc<str>,
    /// 1-based line number in that file.
    pub line: u64,
    /// Why; never quotes an identity.
    pub reason: String,
    /// Keyed hash of the raw record bytes.
    pub record_hash: [u8; 16],
}

impl Staged for (Rejected, [u8; 16]) {
    fn key(&self) -> &[u8; 16] {
        &self.1
    }
    fn version(&self) -> i64 {
        0
    }
    fn position(&self) -> u64 {
        self.0.line
    }
}

fn hex16(bytes: &[u8; 16]) -> String {
    hex::encode(bytes)
}

/// Hashes the pseudonymised content of a row, field by field with separators, so that an
/// unchanged record re-ingested later is recognised and not rewritten.
struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    fn new() -> Self {
        Self(blake3::Hasher::new())
    }
    fn add(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u32).to_le_bytes());
        self.0.update(bytes);
        self
    }
    fn finish(&self) -> String {
        hex::encode(&self.0.finalize().as_bytes()[..8])
    }
}

/// The fields of a `vaccinations` row that its content hash covers, as stored. One
/// definition for ingest and for key rotation (which must recompute the hash of re-keyed
/// rows, or every re-ingest after a rotation would look like a change).
pub(crate) struct VaccinationContent<'a> {
    pub person_key: &'a str,
    pub birth_month: i32,
    pub sex: &'a str,
    pub commune: Option<&'a str>,
    pub administered_on: i32,
    pub vaccine_atc: &'a str,
    pub lot_number: Option<&'a str>,
    pub dose_number_recorded: Option<i32>,
    pub status: &'a str,
    pub vaccinator_key: Option<&'a str>,
    pub source_system: &'a str,
    pub recorded_at: Option<i64>,
}

impl VaccinationContent<'_> {
    pub(crate) fn hash(&self) -> String {
        let mut h = ContentHasher::new();
        h.add(self.person_key.as_bytes())
            .add(&self.birth_month.to_le_bytes())
            .add(self.sex.as_bytes())
            .add(self.commune.unwrap_or("").as_bytes())
            .add(&self.administered_on.to_le_bytes())
            .add(self.vaccine_atc.as_bytes())
            .add(self.lot_number.unwrap_or("").as_bytes())
            .add(&self.dose_number_recorded.unwrap_or(-1).to_le_bytes())
            .add(self.status.as_bytes())
            .add(self.vaccinator_key.unwrap_or("").as_bytes())
            .add(self.source_system.as_bytes())
            .add(&self.recorded_at.unwrap_or(i64::MIN).to_le_bytes());
        h.finish()
    }
}

/// The fields of a `cases` row that its content hash covers, as stored.
pub(crate) struct CaseContent<'a> {
    pub person_key: &'a str,
    pub disease: &'a str,
    pub onset_date: i32,
    pub hospitalised: bool,
    pub died: bool,
    pub birth_month: i32,
    pub sex: &'a str,
    pub commune: Option<&'a str>,
}

impl CaseContent<'_> {
    pub(crate) fn hash(&self) -> String {
        let mut h = ContentHasher::new();
        h.add(self.person_key.as_bytes())
            .add(self.disease.as_bytes())
            .add(&self.onset_date.to_le_bytes())
            .add(&[self.hospitalised as u8, self.died as u8])
            .add(&self.birth_month.to_le_bytes())
            .add(self.sex.as_bytes())
            .add(self.commune.unwrap_or("").as_bytes());
        h.finish()
    }
}

/// The `quarantine_key` of a rejected record: its source, line and keyed record hash, so that
/// the same bad line ingested twice is stored once.
pub(crate) fn quarantine_key(source: &str, line: u64, record_hash: &[u8; 16]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(source.as_bytes());
    h.update(&line.to_le_bytes());
    h.update(record_hash);
    let mut key = [0u8; 16];
    key.copy_from_slice(&h.finalize().as_bytes()[..16]);
    key
}

/// Builds the `vaccinations` batch. `ingested_at` is the run's start, in microseconds.
pub fn vaccinations_batch(
    rows: &[Vaccination],
    ingested_at: i64,
) -> arrow::error::Result<RecordBatch> {
    let n = rows.len();
    let mut event_key = StringBuilder::with_capacity(n, n * 32);
    let mut person_key = StringBuilder::with_capacity(n, n * 32);
    let mut birth_month = Date32Builder::with_capacity(n);
    let mut sex = StringBuilder::new();
    let mut commune = StringBuilder::new();
    let mut canton = StringBuilder::new();
    let mut administered_on = Date32Builder::with_capacity(n);
    let mut age = Int32Builder::with_capacity(n);
    let mut atc = StringBuilder::new();
    let mut name = StringBuilder::new();
    let mut lot = StringBuilder::new();
    let mut dose = Int32Builder::with_capacity(n);
    let mut status = StringBuilder::new();
    let mut vaccinator = StringBuilder::new();
    let mut source_system = StringBuilder::new();
    let mut recorded_at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut last_updated = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut ingested = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut content_hash = StringBuilder::with_capacity(n, n * 16);
    let mut decade = Int32Builder::with_capacity(n);
    for r in rows {
        let ek = hex16(&r.event_key);
        let pk = hex16(&r.person_key);
        let vk = r.vaccinator_key.as_ref().map(hex16);
        let content = VaccinationContent {
            person_key: &pk,
            birth_month: r.birth_month,
            sex: r.sex,
            commune: r.commune,
            administered_on: r.administered_on,
            vaccine_atc: r.vaccine_atc,
            lot_number: r.lot_number.as_deref(),
            dose_number_recorded: r.dose_number_recorded,
            status: r.status,
            vaccinator_key: vk.as_deref(),
            source_system: &r.source_system,
            recorded_at: r.recorded_at,
        }
        .hash();
        event_key.append_value(&ek);
        person_key.append_value(&pk);
        birth_month.append_value(r.birth_month);
        sex.append_value(r.sex);
        commune.append_option(r.commune);
        canton.append_option(r.canton);
        administered_on.append_value(r.administered_on);
        age.append_value(r.age_months_at_dose);
        atc.append_value(r.vaccine_atc);
        name.append_value(r.vaccine_name);
        lot.append_option(r.lot_number.as_deref());
        dose.append_option(r.dose_number_recorded);
        status.append_value(r.status);
        vaccinator.append_option(vk);
        source_system.append_value(&*r.source_system);
        recorded_at.append_option(r.recorded_at);
        last_updated.append_value(r.last_updated);
        ingested.append_value(ingested_at);
        content_hash.append_value(content);
        decade.append_value(r.birth_decade);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(event_key.finish()),
        Arc::new(person_key.finish()),
        Arc::new(birth_month.finish()),
        Arc::new(sex.finish()),
        Arc::new(commune.finish()),
        Arc::new(canton.finish()),
        Arc::new(administered_on.finish()),
        Arc::new(age.finish()),
        Arc::new(atc.finish()),
        Arc::new(name.finish()),
        Arc::new(lot.finish()),
        Arc::new(dose.finish()),
        Arc::new(status.finish()),
        Arc::new(vaccinator.finish()),
        Arc::new(source_system.finish()),
        Arc::new(recorded_at.finish()),
        Arc::new(last_updated.finish()),
        Arc::new(ingested.finish()),
        Arc::new(content_hash.finish()),
        Arc::new(decade.finish()),
    ];
    RecordBatch::try_new(VACCINATIONS.schema().clone(), columns)
}

/// Builds the `cases` batch; a case's version is the run's start (a later file replaces).
pub fn cases_batch(rows: &[Case], ingested_at: i64) -> arrow::error::Result<RecordBatch> {
    let n = rows.len();
    let mut case_key = StringBuilder::with_capacity(n, n * 32);
    let mut person_key = StringBuilder::with_capacity(n, n * 32);
    let mut disease = StringBuilder::new();
    let mut onset = Date32Builder::with_capacity(n);
    let mut hosp = BooleanBuilder::with_capacity(n);
    let mut died = BooleanBuilder::with_capacity(n);
    let mut birth_month = Date32Builder::with_capacity(n);
    let mut sex = StringBuilder::new();
    let mut commune = StringBuilder::new();
    let mut canton = StringBuilder::new();
    let mut age = Int32Builder::with_capacity(n);
    let mut last_updated = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut ingested = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut content_hash = StringBuilder::new();
    for r in rows {
        let pk = hex16(&r.person_key);
        let content = CaseContent {
            person_key: &pk,
            disease: &r.disease,
            onset_date: r.onset_date,
            hospitalised: r.hospitalised,
            died: r.died,
            birth_month: r.birth_month,
            sex: r.sex,
            commune: r.commune,
        }
        .hash();
        case_key.append_value(hex16(&r.case_key));
        person_key.append_value(&pk);
        disease.append_value(&r.disease);
        onset.append_value(r.onset_date);
        hosp.append_value(r.hospitalised);
        died.append_value(r.died);
        birth_month.append_value(r.birth_month);
        sex.append_value(r.sex);
        commune.append_option(r.commune);
        canton.append_option(r.canton);
        age.append_value(r.age_years_at_onset);
        last_updated.append_value(ingested_at);
        ingested.append_value(ingested_at);
        content_hash.append_value(content);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(case_key.finish()),
        Arc::new(person_key.finish()),
        Arc::new(disease.finish()),
        Arc::new(onset.finish()),
        Arc::new(hosp.finish()),
        Arc::new(died.finish()),
        Arc::new(birth_month.finish()),
        Arc::new(sex.finish()),
        Arc::new(commune.finish()),
        Arc::new(canton.finish()),
        Arc::new(age.finish()),
        Arc::new(last_updated.finish()),
        Arc::new(ingested.finish()),
        Arc::new(content_hash.finish()),
    ];
    RecordBatch::try_new(CASES.schema().clone(), columns)
}

/// Builds the `quarantine` batch. Each entry carries its key (source, line and record hash),
/// so that re-ingesting the same bad file does not quarantine its lines twice.
pub fn quarantine_batch(
    rows: &[(Rejected, [u8; 16])],
    received_at: i64,
    run_id: &str,
) -> arrow::error::Result<RecordBatch> {
    let n = rows.len();
    let mut key = StringBuilder::new();
    let mut source = StringBuilder::new();
    let mut position = Int64Builder::with_capacity(n);
    let mut reason = StringBuilder::new();
    let mut received = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut record_hash = StringBuilder::new();
    let mut run = StringBuilder::new();
    let mut content_hash = StringBuilder::new();
    for (r, k) in rows {
        key.append_value(hex16(k));
        source.append_value(&*r.source);
        position.append_value(r.line as i64);
        reason.append_value(&r.reason);
        received.append_value(received_at);
        record_hash.append_value(hex16(&r.record_hash));
        run.append_value(run_id);
        content_hash.append_value(ContentHasher::new().add(r.reason.as_bytes()).finish());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(source.finish()),
        Arc::new(position.finish()),
        Arc::new(reason.finish()),
        Arc::new(received.finish()),
        Arc::new(record_hash.finish()),
        Arc::new(run.finish()),
        Arc::new(content_hash.finish()),
    ];
    RecordBatch::try_new(QUARANTINE.schema().clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R([u8; 16], i64, u64);
    impl Staged for R {
        fn key(&self) -> &[u8; 16] {
            &self.0
        }
        fn version(&self) -> i64 {
            self.1
        }
        fn position(&self) -> u64 {
            self.2
        }
    }

    #[test]
    fn newest_version_wins_then_later_line() {
        let (a, b) = ([1; 16], [2; 16]);
        let rows = vec![
            R(a, 10, 1),
            R(a, 30, 2),
            R(a, 20, 3),
            R(b, 5, 4),
            R(b, 5, 9),
            R(b, 5, 6),
        ];
        let mut kept: Vec<_> = newest_versions(rows)
            .into_iter()
            .map(|r| (r.0[0], r.1, r.2))
            .collect();
        kept.sort();
        assert_eq!(kept, vec![(1, 30, 2), (2, 5, 9)]);
    }
}
