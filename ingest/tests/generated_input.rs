//! Whole ingest runs on generated almost-valid exports (issue 19). Each case writes a FHIR
//! export, a registry CSV, case notifications, a population file and an opt-out list made
//! of generated persons, mutates some records (an identity shifted into another field, a
//! field dropped, a line cut short, an invalid UTF-8 byte, a byte order mark, CRLF), and
//! ingests each into a fresh warehouse. Then, for every run: `read = accepted +
//! quarantined`, every record of the files is read, the quarantine holds exactly the run's
//! quarantined records, each with a reason and a position; and no identity that went in
//! appears in any file under the warehouse, any table's rows, any log line or error.
//!
//! The function-level properties of every reader, with many more cases, are in
//! `src/generated_input.rs`; these runs are few because each one commits Delta tables.

mod common;

use chrono::{Duration, NaiveDate};
use proptest::prelude::*;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use vaxlake_ingest::{ingest, IngestOptions, Source};
use vaxlake_pseudonymize::{national_id, MasterKey};

/// Everything logged while the tests run, at every level, for the identity scan.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log() -> Log {
    static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        log
    })
    .clone()
}

#[derive(Debug, Clone)]
struct Person {
    national_id: String,
    birth: NaiveDate,
    name: String,
}

fn person() -> impl Strategy<Value = Person> {
    (0i64..30_000, 0u16..1000, "[a-z]{5,9}").prop_map(|(day, serial, name)| {
        let birth = NaiveDate::from_ymd_opt(1940, 1, 1).unwrap() + Duration::days(day);
        Person {
            national_id: national_id::compose(birth, serial),
            birth,
            name: format!("Qzx{name}"),
        }
    })
}

/// What happens to one record.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Damage {
    None,
    /// Another person's national number in the field at this index.
    Shift(usize),
    /// The field at this index is left empty.
    Empty(usize),
    /// The record is cut in half.
    Cut,
    /// An invalid UTF-8 byte in the middle.
    Byte,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        2 => (0usize..16).prop_map(Damage::Shift),
        1 => (0usize..16).prop_map(Damage::Empty),
        1 => Just(Damage::Cut),
        1 => Just(Damage::Byte),
    ]
}

#[derive(Debug, Clone)]
struct Export {
    persons: Vec<(Person, Damage)>,
    stranger: Person,
    crlf: bool,
    bom: bool,
}

fn export() -> impl Strategy<Value = Export> {
    (
        proptest::collection::vec((person(), damage()), 3..25),
        person(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(persons, stranger, crlf, bom)| Export {
            persons,
            stranger,
            crlf,
            bom,
        })
}

/// Applies `damage` to a record given as fields (joined with `sep`, quoted with `quote`).
fn record(fields: &[String], damage: Damage, stranger: &Person, sep: &str, quote: &str) -> Vec<u8> {
    let mut fields = fields.to_vec();
    match damage {
        Damage::Shift(i) => {
            let n = fields.len();
            fields[i % n] = stranger.national_id.clone();
        }
        Damage::Empty(i) => {
            let n = fields.len();
            fields[i % n].clear();
        }
        _ => {}
    }
    let mut bytes = fields
        .iter()
        .map(|f| format!("{quote}{f}{quote}"))
        .collect::<Vec<_>>()
        .join(sep)
        .into_bytes();
    match damage {
        Damage::Cut => bytes.truncate(bytes.len() / 2),
        Damage::Byte => {
            let at = bytes.len() / 2;
            bytes.insert(at, 0xfe);
        }
        _ => {}
    }
    bytes
}

/// Writes the file and gives the records a reader sees in it: all but the empty ones (an
/// empty CSV line is no record; no NDJSON record here is empty).
fn write_lines(path: &Path, header: Option<&str>, records: &[Vec<u8>], e: &Export) -> u64 {
    let mut data = Vec::new();
    if e.bom {
        data.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let end: &[u8] = if e.crlf { b"\r\n" } else { b"\n" };
    if let Some(header) = header {
        data.extend_from_slice(header.as_bytes());
        data.extend_from_slice(end);
    }
    for r in records {
        data.extend_from_slice(r);
        data.extend_from_slice(end);
    }
    std::fs::write(path, data).unwrap();
    records.iter().filter(|r| !r.is_empty()).count() as u64
}

fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// A Patient as JSON members whose values are the fields `record` may damage.
fn patient(i: usize, p: &Person, damage: Damage, stranger: &Person) -> Vec<u8> {
    let values = [
        format!("pat-{i}"),
        p.national_id.clone(),
        iso(p.birth),
        "female".into(),
        "Wiltz".into(),
        p.name.clone(),
    ];
    let mut shown = values.to_vec();
    if let Damage::Shift(k) | Damage::Empty(k) = damage {
        shown[k % values.len()] = if matches!(damage, Damage::Shift(_)) {
            stranger.national_id.clone()
        } else {
            String::new()
        };
    }
    let line = format!(
        r#"{{"resourceType":"Patient","id":"{}","identifier":[{{"system":"urn:oid:1.3.182.4.4","value":"{}"}}],"birthDate":"{}","gender":"{}","address":[{{"city":"{}","line":["1 rue {}"]}}],"name":[{{"family":"{}"}}]}}"#,
        shown[0], shown[1], shown[2], shown[3], shown[4], shown[5], shown[5]
    );
    record(&[line], damage_bytes_only(damage), stranger, "", "")
}

/// The part of a damage done to bytes (fields are handled by the record's builder).
fn damage_bytes_only(damage: Damage) -> Damage {
    match damage {
        Damage::Cut | Damage::Byte => damage,
        _ => Damage::None,
    }
}

fn dose_day(p: &Person) -> NaiveDate {
    p.birth + Duration::days(100)
}

fn immunization(i: usize, p: &Person, damage: Damage, stranger: &Person) -> Vec<u8> {
    let mut values = [
        format!("imm-{i}"),
        "J07CA09".to_string(),
        format!("Patient/pat-{i}"),
        iso(dose_day(p)),
        "completed".into(),
    ];
    if let Damage::Shift(k) | Damage::Empty(k) = damage {
        let n = values.len();
        values[k % n] = if matches!(damage, Damage::Shift(_)) {
            stranger.national_id.clone()
        } else {
            String::new()
        };
    }
    let line = format!(
        r#"{{"resourceType":"Immunization","id":"{}","meta":{{"lastUpdated":"2025-01-01T00:00:00Z"}},"status":"{}","vaccineCode":{{"coding":[{{"system":"http://www.whocc.no/atc","code":"{}"}}]}},"patient":{{"reference":"{}"}},"occurrenceDateTime":"{}","note":[{{"text":"{} {}"}}]}}"#,
        values[0], values[4], values[1], values[2], values[3], p.name, p.national_id
    );
    record(&[line], damage_bytes_only(damage), stranger, "", "")
}

fn registry_fields(i: usize, p: &Person) -> Vec<String> {
    vec![
        format!("EV-{i}"),
        p.national_id.clone(),
        iso(p.birth),
        "male".into(),
        "Wiltz".into(),
        "J07BN01".into(),
        p.name.clone(),
        "LOT-1".into(),
        "1".into(),
        iso(dose_day(p)),
        "VAC-1".into(),
        "completed".into(),
        "2025-01-01T00:00:00Z".into(),
    ]
}

fn case_fields(i: usize, p: &Person) -> Vec<String> {
    vec![
        format!("CASE-{i}"),
        p.national_id.clone(),
        iso(p.birth),
        "female".into(),
        "Wiltz".into(),
        "B05".into(),
        iso(dose_day(p) + Duration::days(30)),
        "true".into(),
        "false".into(),
    ]
}

/// Every table's rows as text, and every byte of every file under the warehouse.
async fn everything_written(root: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                all.extend(std::fs::read(&path).unwrap());
            }
        }
    }
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.join("_delta_log").is_dir() {
            let table = deltalake::open_table(url::Url::from_directory_path(&path).unwrap())
                .await
                .unwrap();
            for row in common::rows_of(&table, &[]).await {
                all.extend(row.into_bytes());
                all.push(b'\n');
            }
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The run's quarantine rows: (position, reason).
async fn quarantined(root: &Path, run_id: &str) -> Vec<(i64, String)> {
    let Ok(table) =
        deltalake::open_table(url::Url::from_directory_path(root.join("quarantine")).unwrap())
            .await
    else {
        return Vec::new();
    };
    common::rows_of(&table, &[])
        .await
        .into_iter()
        .filter(|row| row.contains(&format!("run_id={run_id}")))
        .map(|row| {
            let field = |name: &str| {
                let start = row.find(&format!("{name}=")).unwrap() + name.len() + 1;
                let rest = &row[start..];
                // Reasons hold commas; the columns follow in the table's order.
                let end = [
                    "quarantine_key=",
                    "source=",
                    "position=",
                    "reason=",
                    "received_at=",
                    "record_hash=",
                    "run_id=",
                    "content_hash=",
                ]
                .iter()
                .filter_map(|next| rest.find(&format!(",{next}")))
                .min()
                .unwrap_or(rest.len());
                rest[..end].to_string()
            };
            (field("position").parse().unwrap(), field("reason"))
        })
        .collect()
}

/// Ingests every source of `e` into a fresh warehouse and checks the run invariants.
fn check_export(e: &Export) -> Result<(), TestCaseError> {
    let log = log();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("in");
    let fhir = files.join("fhir");
    std::fs::create_dir_all(&fhir).unwrap();
    let stranger = &e.stranger;
    let people = &e.persons;
    let lines = |make: &dyn Fn(usize, &Person, Damage) -> Vec<u8>| -> Vec<Vec<u8>> {
        people
            .iter()
            .enumerate()
            .map(|(i, (p, d))| make(i, p, *d))
            .collect()
    };
    let patients = write_lines(
        &fhir.join("Patient.ndjson"),
        None,
        &lines(&|i, p, d| patient(i, p, d, stranger)),
        e,
    );
    let immunizations = write_lines(
        &fhir.join("Immunization.ndjson"),
        None,
        &lines(&|i, p, d| immunization(i, p, d, stranger)),
        e,
    );
    let csv = |fields: Vec<String>, d: Damage| record(&fields, d, stranger, ",", "");
    let registry = write_lines(
        &files.join("registry.csv"),
        Some(&vaxlake_catalog::sources::registry_header()),
        &lines(&|i, p, d| csv(registry_fields(i, p), d)),
        e,
    );
    let cases = write_lines(
        &files.join("cases.csv"),
        Some("case_id,national_id,birth_date,sex,commune,disease,onset_date,hospitalised,died"),
        &lines(&|i, p, d| csv(case_fields(i, p), d)),
        e,
    );
    let optout = write_lines(
        &files.join("optout.csv"),
        Some("national_id"),
        &lines(&|_, p, d| csv(vec![p.national_id.clone()], d)),
        e,
    );
    let population = write_lines(
        &files.join("population.csv"),
        Some("reference_year,commune,sex,birth_year,count"),
        &lines(&|i, p, d| {
            use chrono::Datelike;
            let fields = vec![
                "2024".into(),
                "Wiltz".into(),
                "male".into(),
                p.birth.year().min(2024).to_string(),
                (i * 1000).to_string(),
            ];
            csv(fields, d)
        }),
        e,
    );
    let warehouse = dir.path().join("warehouse");
    let key = MasterKey::from_hex(&"7b".repeat(32)).unwrap();
    let options = IngestOptions::default().with_workers(2);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut errors = String::new();
    let sources = [
        (format!("fhir:{}", fhir.display()), patients + immunizations),
        (
            format!("csv:{}", files.join("registry.csv").display()),
            registry,
        ),
        (
            format!("cases:{}", files.join("cases.csv").display()),
            cases,
        ),
        (
            format!("population:{}", files.join("population.csv").display()),
            population,
        ),
        (
            format!("optout:{}", files.join("optout.csv").display()),
            optout,
        ),
    ];
    for (source, records) in sources {
        let source = Source::parse(&source).unwrap();
        let report = runtime.block_on(ingest(warehouse.to_str().unwrap(), &source, &key, &options));
        let report = match report {
            Ok(report) => report,
            Err(error) => {
                // Only a file without one valid record may refuse (an opt-out list whose
                // every number is damaged); the error is scanned like the rest.
                errors.push_str(&error.to_string());
                continue;
            }
        };
        prop_assert_eq!(report.read, report.accepted + report.quarantined);
        prop_assert_eq!(report.read, records, "{:?}", source.label());
        let rows = runtime.block_on(quarantined(&warehouse, &report.run_id));
        prop_assert_eq!(
            rows.len() as u64,
            report.quarantined,
            "{:?}",
            source.label()
        );
        for (position, reason) in &rows {
            prop_assert!(*position >= 1 && !reason.is_empty(), "{position} {reason}");
        }
        // Every undamaged record of the single-record sources is accepted.
        if matches!(
            source,
            Source::RegistryCsv(_) | Source::Cases(_) | Source::OptOut(_)
        ) {
            let damaged = people.iter().filter(|(_, d)| *d != Damage::None).count() as u64;
            prop_assert!(
                report.quarantined <= damaged,
                "{:?}: {} quarantined, {damaged} damaged",
                source.label(),
                report.quarantined
            );
        }
    }
    let mut produced = runtime.block_on(everything_written(&warehouse));
    produced.extend_from_slice(errors.as_bytes());
    produced.extend_from_slice(&log.0.lock().unwrap());
    prop_assert!(
        !contains(&produced.to_ascii_lowercase(), b"qzx"),
        "a name was written"
    );
    for p in people.iter().map(|(p, _)| p).chain([stranger]) {
        prop_assert!(
            !contains(&produced, p.national_id.as_bytes()),
            "national number {} was written",
            p.national_id
        );
    }
    Ok(())
}

/// Each case is five ingest runs with Delta commits (about 10 s each in a debug build on two
/// cores): one new export per CI run, `PROPTEST_CASES=N` for more; the readers' properties
/// run hundreds of cases in `src/generated_input.rs`.
fn runs() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: runs(), max_shrink_iters: 20, ..ProptestConfig::default() })]

    #[test]
    fn ingest_runs_of_almost_valid_exports(e in export()) {
        check_export(&e)?;
    }
}
