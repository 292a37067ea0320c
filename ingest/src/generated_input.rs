//! Generated input for every reader of outside data (issue 19): FHIR Patient and
//! Immunization lines, registry CSV rows (and the text a PostgreSQL registry gives for the
//! same columns), case notifications, population denominators and opt-out lists.
//!
//! Each property starts from valid records built from generated identities, mutates one of
//! them (a field replaced by a hostile value or by another field's identity, a field
//! dropped, the line truncated, an invalid UTF-8 byte, a byte order mark, CRLF) or feeds
//! arbitrary bytes, and checks what every reader owes: no panic; every record read is
//! accepted or quarantined, with a reason and its position; every untouched valid record is
//! accepted; and no identity that went in (national numbers, their birth-date digits, the
//! birth dates, names) appears in any reason. Identities carry the marker `Qzx` (names) or
//! are valid national numbers, so the scan can find them wherever they end up.

use crate::chunks::Chunk;
use crate::csv_rows::{self, Fields};
use crate::fhir::{self, ImmunizationContext, PatientIndex, DEFAULT_NATIONAL_ID_SYSTEM};
use crate::progress::Progress;
use crate::row::{Parsed, Rejected};
use chrono::{Duration, NaiveDate};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;
use vaxlake_pseudonymize::{national_id, IdKind, MasterKey, Pseudonymizer};

/// Cases per property: enough to meet every mutation of every field several times, within
/// the CI budget of a debug build.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // Shrinking stays bounded; a failure is kept as a regression file either way.
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

fn pseudonymizer() -> Pseudonymizer {
    Pseudonymizer::new(&MasterKey::from_hex(&"5a".repeat(32)).unwrap())
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 12, 31).unwrap()
}

/// A generated person: a valid national number, its birth date and names with the marker.
#[derive(Debug, Clone)]
struct Identity {
    national_id: String,
    birth: NaiveDate,
    family: String,
    given: String,
}

impl Identity {
    /// Every string that would betray this person if it appeared in a reason.
    fn betraying(&self) -> Vec<String> {
        vec![
            self.national_id.clone(),
            // The first eight digits are the birth date.
            self.national_id[..8].to_string(),
            self.birth.format("%Y-%m-%d").to_string(),
            self.family.clone(),
            self.given.clone(),
        ]
    }
}

fn identity() -> impl Strategy<Value = Identity> {
    // Born 1930-01-01 .. 2024-12-31: always before the fixed `today`.
    (0i64..34_700, 0u16..1000, "[a-z]{4,10}", "[a-z]{4,10}").prop_map(
        |(day, serial, family, given)| {
            let birth = NaiveDate::from_ymd_opt(1930, 1, 1).unwrap() + Duration::days(day);
            Identity {
                national_id: national_id::compose(birth, serial),
                birth,
                family: format!("Qzx{family}"),
                given: format!("Qzx{given}"),
            }
        },
    )
}

/// Fails the property when `text` quotes any identity of `people`.
fn assert_no_identity(text: &str, people: &[Identity]) -> Result<(), TestCaseError> {
    let lower = text.to_ascii_lowercase();
    prop_assert!(!lower.contains("qzx"), "a name marker in {text:?}");
    for person in people {
        for value in person.betraying() {
            prop_assert!(!text.contains(&value), "{value} in {text:?}");
        }
    }
    Ok(())
}

/// Every quarantined record has a reason, a position among the lines given and no identity.
fn check_rejected(
    rejected: &[Rejected],
    lines: u64,
    people: &[Identity],
) -> Result<(), TestCaseError> {
    for r in rejected {
        prop_assert!(!r.reason.trim().is_empty());
        prop_assert!((1..=lines).contains(&r.line), "line {} of {lines}", r.line);
        prop_assert!(!r.source.is_empty());
        assert_no_identity(&r.reason, people)?;
    }
    Ok(())
}

/// A value that a hostile or broken export may put where a field belongs. `other` is
/// another person's identity, so a value shifted between fields is covered.
fn hostile_value(other: Identity) -> impl Strategy<Value = Value> {
    let deep = (1usize..300).prop_map(|depth| {
        let mut v = json!("Qzxdeep");
        for _ in 0..depth {
            v = json!([v]);
        }
        v
    });
    prop_oneof![
        Just(json!(other.national_id.clone())),
        Just(json!(other.national_id.parse::<u64>().unwrap())),
        Just(json!(format!("{} {}", other.given, other.family))),
        Just(json!(other.birth.format("%Y-%m-%d").to_string())),
        Just(json!(other.national_id[..8].to_string())),
        Just(Value::Null),
        Just(json!("")),
        Just(json!(true)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e308)),
        Just(json!({ "value": other.family.clone() })),
        Just(json!([other.given.clone()])),
        Just(json!("2021-04-01 BC")),
        Just(json!("99999-12-31")),
        Just(json!("\u{feff}female")),
        Just(json!("Patient/\u{0}\u{202e}")),
        "\\PC{0,40}".prop_map(Value::from),
        "[0-9]{1,40}".prop_map(Value::from),
        deep,
    ]
}

/// What is done to one line of a valid export.
#[derive(Debug, Clone)]
enum Mutation {
    /// The field at this index of the record's mutable paths gets a hostile value.
    Replace(usize, Value),
    /// The field is dropped.
    Remove(usize),
    /// The serialised line is cut after this fraction (per mille) of its bytes.
    Truncate(u16),
    /// An invalid UTF-8 byte at this fraction (per mille) of the line.
    InvalidUtf8(u16),
    /// A JSON nesting far beyond any FHIR resource, added as an unknown field.
    DeepNesting(usize),
}

fn mutation(other: Identity) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (0usize..64, hostile_value(other)).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => (0usize..64).prop_map(Mutation::Remove),
        1 => (0u16..1000).prop_map(Mutation::Truncate),
        1 => (0u16..1000).prop_map(Mutation::InvalidUtf8),
        1 => (100usize..20_000).prop_map(Mutation::DeepNesting),
    ]
}

/// Sets (or removes, with `None`) the value at a JSON pointer.
fn set_pointer(doc: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let Some(target) = doc.pointer_mut(parent) else {
        return;
    };
    match (target, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(last.to_string(), v);
        }
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Array(items), Some(v)) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = v;
            }
        }
        (Value::Array(items), None) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// Applies `mutation` to the record `doc` (its mutable fields at `paths`), giving the line.
fn mutate(mut doc: Value, paths: &[&str], mutation: &Mutation) -> Vec<u8> {
    match mutation {
        Mutation::Replace(i, v) => set_pointer(&mut doc, paths[i % paths.len()], Some(v.clone())),
        Mutation::Remove(i) => set_pointer(&mut doc, paths[i % paths.len()], None),
        Mutation::DeepNesting(depth) => {
            let text = format!("{}1{}", "[".repeat(*depth), "]".repeat(*depth));
            let mut line = serde_json::to_vec(&doc).unwrap();
            line.pop();
            line.extend_from_slice(b",\"extension\":");
            line.extend_from_slice(text.as_bytes());
            line.push(b'}');
            return line;
        }
        _ => {}
    }
    let mut line = serde_json::to_vec(&doc).unwrap();
    match mutation {
        Mutation::Truncate(per_mille) => line.truncate(line.len() * *per_mille as usize / 1000),
        Mutation::InvalidUtf8(per_mille) => {
            let at = line.len() * *per_mille as usize / 1000;
            line.insert(at, 0xff);
        }
        _ => {}
    }
    line
}

const PATIENT_PATHS: &[&str] = &[
    "/resourceType",
    "/id",
    "/identifier",
    "/identifier/0/system",
    "/identifier/0/value",
    "/birthDate",
    "/gender",
    "/name/0/family",
    "/address",
    "/address/0/city",
    "/address/0/district",
    "/address/0/country",
    "/deceasedDateTime",
    "/meta/lastUpdated",
];

fn patient_json(person: &Identity, id: &str, commune: (&str, &str)) -> Value {
    json!({
        "resourceType": "Patient",
        "id": id,
        "meta": {"lastUpdated": "2025-01-02T03:04:05Z"},
        "identifier": [{"system": DEFAULT_NATIONAL_ID_SYSTEM, "value": person.national_id}],
        "name": [{"family": person.family, "given": [person.given]}],
        "gender": "female",
        "birthDate": person.birth.format("%Y-%m-%d").to_string(),
        "address": [{"line": [format!("1 rue {}", person.family)], "city": commune.0, "district": commune.1}],
        "telecom": [{"system": "phone", "value": format!("+352 {}", person.national_id)}],
    })
}

fn communes() -> Vec<(&'static str, &'static str)> {
    vaxlake_pseudonymize::COMMUNES
        .iter()
        .map(|c| (c.name, c.canton))
        .collect()
}

/// 1–12 persons, and the identity of someone else whose values get shifted into fields.
fn people() -> impl Strategy<Value = (Vec<Identity>, Identity)> {
    (proptest::collection::vec(identity(), 1..12), identity())
}

/// How the lines of an export are joined: LF or CRLF, with or without a byte order mark.
#[derive(Debug, Clone, Copy)]
struct Framing {
    crlf: bool,
    bom: bool,
}

fn framing() -> impl Strategy<Value = Framing> {
    (any::<bool>(), any::<bool>()).prop_map(|(crlf, bom)| Framing { crlf, bom })
}

fn join_lines(lines: &[Vec<u8>], framing: Framing) -> Vec<u8> {
    let mut data = Vec::new();
    if framing.bom {
        data.extend_from_slice(b"\xEF\xBB\xBF");
    }
    for line in lines {
        data.extend_from_slice(line);
        data.extend_from_slice(if framing.crlf { b"\r\n" } else { b"\n" });
    }
    data
}

fn chunk(data: Vec<u8>) -> Chunk {
    Chunk::new(0, 1, data)
}

fn parse_patients(data: Vec<u8>) -> fhir::PatientChunk {
    fhir::parse_patients(
        &chunk(data),
        &Arc::from("fhir:Patient.ndjson"),
        &pseudonymizer(),
        DEFAULT_NATIONAL_ID_SYSTEM,
        today(),
    )
}

/// The Patients' lines, the one at `target` mutated: (lines, which line was mutated).
fn patient_lines(persons: &[Identity], target: usize, mutation: &Mutation) -> Vec<Vec<u8>> {
    let communes = communes();
    persons
        .iter()
        .enumerate()
        .map(|(i, person)| {
            let doc = patient_json(person, &format!("pat-{i}"), communes[i % communes.len()]);
            if i == target % persons.len() {
                mutate(doc, PATIENT_PATHS, mutation)
            } else {
                serde_json::to_vec(&doc).unwrap()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Almost-valid Patient lines: the untouched ones are accepted, the mutated one is
    /// accepted or quarantined with a reason, nothing quotes an identity.
    #[test]
    fn patient_lines_one_field_mutated(
        (persons, other) in people(),
        target in 0usize..12,
        framing in framing(),
        mutation in identity().prop_flat_map(mutation),
    ) {
        let lines = patient_lines(&persons, target, &mutation);
        let out = parse_patients(join_lines(&lines, framing));
        let n = persons.len() as u64;
        prop_assert_eq!(out.read, n);
        let accepted = out.rows.iter().filter(|(_, p)| p.is_some()).count() as u64;
        prop_assert_eq!(accepted + out.rejected.len() as u64, n);
        let mut everyone = persons.clone();
        everyone.push(other.clone());
        check_rejected(&out.rejected, n, &everyone)?;
        let target_line = (target % persons.len()) as u64 + 1;
        for r in &out.rejected {
            prop_assert_eq!(r.line, target_line, "an untouched Patient was refused: {}", r.reason);
        }
    }

    /// Arbitrary bytes as a Patient export: never a panic; every line counted once.
    #[test]
    fn patient_lines_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let lines = chunk(data.clone()).lines().count() as u64;
        let out = parse_patients(data);
        prop_assert_eq!(out.read, lines);
        let accepted = out.rows.iter().filter(|(_, p)| p.is_some()).count() as u64;
        prop_assert_eq!(accepted + out.rejected.len() as u64, lines);
        check_rejected(&out.rejected, lines, &[])?;
    }
}

const IMMUNIZATION_PATHS: &[&str] = &[
    "/resourceType",
    "/id",
    "/status",
    "/meta",
    "/meta/lastUpdated",
    "/meta/source",
    "/vaccineCode",
    "/vaccineCode/coding/0/system",
    "/vaccineCode/coding/0/code",
    "/vaccineCode/coding/0/display",
    "/patient",
    "/patient/reference",
    "/occurrenceDateTime",
    "/recorded",
    "/lotNumber",
    "/performer/0/actor/reference",
    "/protocolApplied/0/doseNumberPositiveInt",
    "/identifier",
];

fn immunization_json(id: usize, patient: usize, person: &Identity, atc: &str) -> Value {
    // The dose: a year after birth, or at birth for those born in the last year.
    let day = (person.birth + Duration::days(365)).min(today());
    json!({
        "resourceType": "Immunization",
        "id": format!("imm-{id}"),
        "meta": {"lastUpdated": "2025-02-03T04:05:06Z"},
        "status": "completed",
        "vaccineCode": {"coding": [{"system": "http://www.whocc.no/atc", "code": atc, "display": "x"}]},
        "patient": {"reference": format!("Patient/pat-{patient}")},
        "occurrenceDateTime": day.format("%Y-%m-%d").to_string(),
        "recorded": "2025-02-03T04:05:06+01:00",
        "lotNumber": "LOT-1",
        "performer": [{"actor": {"reference": "Practitioner/prac-1"}}],
        "protocolApplied": [{"doseNumberPositiveInt": 1}],
        "note": [{"text": format!("{} {} had a fever", person.given, person.family)}],
    })
}

fn atc_codes() -> Vec<&'static str> {
    vaxlake_catalog::builtin()
        .unwrap()
        .vaccines
        .iter()
        .map(|v| v.atc_code.as_str())
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Almost-valid Immunization lines against a Patient index: the untouched ones are
    /// accepted, the mutated one accepted or quarantined with a reason, no identity quoted.
    #[test]
    fn immunization_lines_one_field_mutated(
        (persons, other) in people(),
        target in 0usize..24,
        framing in framing(),
        mutation in identity().prop_flat_map(mutation),
        vaccine in 0usize..1000,
    ) {
        let p = pseudonymizer();
        let patients = parse_patients(join_lines(&patient_lines(&persons, 0, &Mutation::Truncate(1000)), framing));
        prop_assert!(patients.rejected.is_empty());
        let mut index = PatientIndex::new();
        fhir::index_patients(&mut index, patients.rows);
        let ctx = ImmunizationContext {
            pseudonymizer: p,
            patients: index,
            today: today(),
            source: vec![Arc::from("fhir:Immunization.ndjson")],
        };
        let codes = atc_codes();
        // Two doses a person.
        let count = persons.len() * 2;
        let lines: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let who = i % persons.len();
                let doc = immunization_json(i, who, &persons[who], codes[(vaccine + i) % codes.len()]);
                if i == target % count {
                    mutate(doc, IMMUNIZATION_PATHS, &mutation)
                } else {
                    serde_json::to_vec(&doc).unwrap()
                }
            })
            .collect();
        let out = fhir::parse_immunizations(&chunk(join_lines(&lines, framing)), &ctx);
        let n = count as u64;
        prop_assert_eq!(out.read, n);
        prop_assert_eq!(out.rows.len() as u64 + out.rejected.len() as u64, n);
        let mut everyone = persons.clone();
        everyone.push(other);
        check_rejected(&out.rejected, n, &everyone)?;
        let target_line = (target % count) as u64 + 1;
        for r in &out.rejected {
            prop_assert_eq!(r.line, target_line, "an untouched Immunization was refused: {}", r.reason);
        }
    }

    /// Arbitrary bytes as an Immunization export: never a panic; every line counted once.
    #[test]
    fn immunization_lines_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let ctx = ImmunizationContext {
            pseudonymizer: pseudonymizer(),
            patients: PatientIndex::new(),
            today: today(),
            source: vec![Arc::from("fhir:Immunization.ndjson")],
        };
        let lines = chunk(data.clone()).lines().count() as u64;
        let out = fhir::parse_immunizations(&chunk(data), &ctx);
        prop_assert_eq!(out.read, lines);
        prop_assert_eq!(out.rows.len() as u64 + out.rejected.len() as u64, lines);
        check_rejected(&out.rejected, lines, &[])?;
    }
}

/// A 10 MB Patient line (a long free-text field) is read like any other; a 10 MB line of
/// garbage is quarantined with a short reason. Once, not per case.
#[test]
fn a_ten_megabyte_line_is_one_record() {
    let person = Identity {
        national_id: "1893120105732".into(),
        birth: NaiveDate::from_ymd_opt(1893, 12, 1).unwrap(),
        family: "Qzxfamily".into(),
        given: "Qzxgiven".into(),
    };
    let mut doc = patient_json(&person, "pat-long", communes()[0]);
    doc["text"] = json!({"div": "y".repeat(10 << 20)});
    let mut data = serde_json::to_vec(&doc).unwrap();
    data.push(b'\n');
    data.extend(std::iter::repeat_n(b'{', 10 << 20));
    let out = parse_patients(data);
    assert_eq!(out.read, 2);
    assert!(out.rows[0].1.is_some());
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].line, 2);
    assert!(
        out.rejected[0].reason.len() < 200,
        "{}",
        out.rejected[0].reason
    );
}

/// A CSV file of `header` and `rows` (already joined fields), framed as asked.
fn csv_file(header: &str, rows: &[Vec<u8>], framing: Framing) -> tempfile::NamedTempFile {
    let mut lines = vec![header.as_bytes().to_vec()];
    lines.extend(rows.iter().cloned());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), join_lines(&lines, framing)).unwrap();
    file
}

/// Runs a CSV reader over a file, collecting everything it hands on.
fn read_csv<T: Send + 'static>(
    file: &tempfile::NamedTempFile,
    columns: &'static [&'static str],
    parse: impl Fn(&Fields, u64) -> Result<T, String> + Send + 'static,
) -> Result<Parsed<T>, crate::IngestError> {
    let p = pseudonymizer();
    let mut rx = csv_rows::spawn(
        file.path(),
        "csv:generated.csv".into(),
        columns,
        Progress::hidden(),
        move |raw| fhir::record_hash(&p, raw),
        parse,
    )?;
    let mut all = Parsed::default();
    while let Some(part) = rx.blocking_recv() {
        let mut part = part?;
        all.read += part.read;
        all.rows.append(&mut part.rows);
        all.rejected.append(&mut part.rejected);
    }
    Ok(all)
}

/// What is done to one CSV row.
#[derive(Debug, Clone)]
enum CsvMutation {
    /// The field at this index gets a value without CSV syntax in it (the row keeps its
    /// shape, so every other row must still be read as it was).
    Replace(usize, String),
    /// Two fields change places (e.g. the national number lands in the vaccine code).
    Swap(usize, usize),
    /// A field is dropped, or one is added.
    Drop(usize),
    Extra(String),
    /// The row is cut after this fraction (per mille) of its bytes.
    Truncate(u16),
    /// An invalid UTF-8 byte at this fraction (per mille) of the row.
    InvalidUtf8(u16),
    /// CSV syntax in a field (quotes, a newline): the rows after it may be read differently,
    /// so only the counts and the reasons are checked.
    Syntax(usize, String),
}

fn csv_value(other: Identity) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(other.national_id.clone()),
        Just(other.national_id[..8].to_string()),
        Just(format!("{} {}", other.given, other.family)),
        Just(other.birth.format("%Y-%m-%d").to_string()),
        Just(String::new()),
        Just("99999999999999999999999".to_string()),
        Just("-2147483649".to_string()),
        Just("2147483648".to_string()),
        Just("2021-04-01 BC".to_string()),
        Just("infinity".to_string()),
        Just("\u{feff}completed".to_string()),
        Just("NaN".to_string()),
        "[^,\"\r\n]{0,30}",
        "[0-9]{1,30}",
    ]
}

fn csv_mutation(other: Identity) -> impl Strategy<Value = CsvMutation> {
    prop_oneof![
        4 => (0usize..13, csv_value(other.clone())).prop_map(|(i, v)| CsvMutation::Replace(i, v)),
        2 => (0usize..13, 0usize..13).prop_map(|(a, b)| CsvMutation::Swap(a, b)),
        1 => (0usize..13).prop_map(CsvMutation::Drop),
        1 => csv_value(other.clone()).prop_map(CsvMutation::Extra),
        1 => (0u16..1000).prop_map(CsvMutation::Truncate),
        1 => (0u16..1000).prop_map(CsvMutation::InvalidUtf8),
        1 => (0usize..13, prop_oneof![
            Just("\"".to_string()),
            Just("a\"b".to_string()),
            Just(format!("\"{}\n{}\"", other.national_id, other.family)),
            Just("x\ny".to_string()),
            "[\",\r\n a-z0-9]{0,20}",
        ]).prop_map(|(i, v)| CsvMutation::Syntax(i, v)),
    ]
}

impl CsvMutation {
    /// Whether the other rows must still be read exactly as written.
    fn keeps_the_file_shape(&self) -> bool {
        !matches!(self, CsvMutation::Syntax(..))
    }
}

fn mutate_row(mut fields: Vec<String>, mutation: &CsvMutation) -> Vec<u8> {
    let width = fields.len();
    match mutation {
        CsvMutation::Replace(i, v) | CsvMutation::Syntax(i, v) => fields[i % width] = v.clone(),
        CsvMutation::Swap(a, b) => fields.swap(a % width, b % width),
        CsvMutation::Drop(i) => {
            fields.remove(i % width);
        }
        CsvMutation::Extra(v) => fields.push(v.clone()),
        _ => {}
    }
    let mut row = fields.join(",").into_bytes();
    match mutation {
        CsvMutation::Truncate(per_mille) => row.truncate(row.len() * *per_mille as usize / 1000),
        CsvMutation::InvalidUtf8(per_mille) => {
            let at = row.len() * *per_mille as usize / 1000;
            row.insert(at, 0xff);
        }
        _ => {}
    }
    row
}

/// The rows of a CSV export, the one at `target` mutated.
fn csv_rows_of(rows: Vec<Vec<String>>, target: usize, mutation: &CsvMutation) -> Vec<Vec<u8>> {
    let count = rows.len();
    rows.into_iter()
        .enumerate()
        .map(|(i, fields)| {
            if i == target % count {
                mutate_row(fields, mutation)
            } else {
                fields.join(",").into_bytes()
            }
        })
        .collect()
}

/// The line breaks in `bytes` as the readers count them: CRLF, LF and a lone CR each one.
fn line_breaks(bytes: &[u8]) -> u64 {
    let lf = bytes.iter().filter(|b| **b == b'\n').count();
    let lone_cr = bytes
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        .count();
    (lf + lone_cr) as u64
}

/// The counts and reasons of a CSV reader's output for the file of a header and `rows`
/// (each ended by a line break), and, when the file kept its shape, that every row was read
/// and every row but the mutated one accepted.
fn check_csv<T>(
    out: &Parsed<T>,
    rows: &[Vec<u8>],
    target: usize,
    mutation: &CsvMutation,
    people: &[Identity],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.rows.len() as u64 + out.rejected.len() as u64, out.read);
    // Lines are numbered from the header (line 1); a line break in a quoted field adds one.
    let last_line = 1 + rows.iter().map(|r| 1 + line_breaks(r)).sum::<u64>();
    for r in &out.rejected {
        prop_assert!(r.line >= 2, "line {}", r.line);
        prop_assert!(r.line <= last_line, "line {}", r.line);
        prop_assert!(!r.reason.trim().is_empty());
        assert_no_identity(&r.reason, people)?;
    }
    if mutation.keeps_the_file_shape() {
        // A row made empty (cut to nothing, its only field dropped) is a blank line, which
        // CSV skips.
        let target = target % rows.len();
        let blank = rows.iter().filter(|r| r.is_empty()).count() as u64;
        prop_assert_eq!(out.read, rows.len() as u64 - blank);
        let target_line = target as u64 + 2;
        for r in &out.rejected {
            prop_assert_eq!(
                r.line,
                target_line,
                "an untouched row was refused: {}",
                r.reason
            );
        }
    }
    Ok(())
}

fn registry_row(i: usize, person: &Identity, atc: &str, commune: &str) -> Vec<String> {
    let day = (person.birth + Duration::days(400)).min(today());
    vec![
        format!("EV-{i}"),
        person.national_id.clone(),
        person.birth.format("%Y-%m-%d").to_string(),
        "male".into(),
        commune.into(),
        atc.into(),
        format!("{} vaccine", person.family),
        "LOT-9".into(),
        "1".into(),
        day.format("%Y-%m-%d").to_string(),
        "VAC-1".into(),
        "completed".into(),
        "2025-01-01T00:00:00Z".into(),
    ]
}

fn registry_parse(f: &Fields, line: u64) -> Result<crate::row::Vaccination, String> {
    let system: Arc<str> = "covid19".into();
    crate::registry_csv::parse_row(f, line, &pseudonymizer(), &system, today())
}

proptest! {
    #![proptest_config(config())]

    /// Almost-valid registry CSV (one row mutated, BOM, CRLF): counts, positions, reasons.
    #[test]
    fn registry_csv_one_row_mutated(
        (persons, other) in people(),
        target in 0usize..12,
        framing in framing(),
        mutation in identity().prop_flat_map(csv_mutation),
        vaccine in 0usize..1000,
    ) {
        let codes = atc_codes();
        let communes = communes();
        let rows = persons
            .iter()
            .enumerate()
            .map(|(i, p)| registry_row(i, p, codes[(vaccine + i) % codes.len()], communes[i % communes.len()].0))
            .collect();
        let rows = csv_rows_of(rows, target, &mutation);
        let file = csv_file(&vaxlake_catalog::sources::registry_header(), &rows, framing);
        let out = read_csv(&file, crate::registry_csv::COLUMNS, registry_parse).unwrap();
        let mut everyone = persons;
        everyone.push(other);
        check_csv(&out, &rows, target, &mutation, &everyone)?;
    }

    /// Arbitrary bytes after a valid header: never a panic; counts add up; no run-stopping
    /// error (a CSV read from a file has none but I/O).
    #[test]
    fn registry_csv_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut text = vaxlake_catalog::sources::registry_header().into_bytes();
        text.push(b'\n');
        text.extend_from_slice(&data);
        std::fs::write(file.path(), text).unwrap();
        let out = read_csv(&file, crate::registry_csv::COLUMNS, registry_parse).unwrap();
        prop_assert_eq!(out.rows.len() as u64 + out.rejected.len() as u64, out.read);
        for r in &out.rejected {
            prop_assert!(!r.reason.is_empty() && r.line >= 2);
        }
    }

    /// Arbitrary bytes as a whole file, header included: refused whole with a reason, or
    /// read with counts that add up; never a panic.
    #[test]
    fn any_csv_reader_arbitrary_file(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &data).unwrap();
        let p = pseudonymizer();
        match read_csv(&file, &["national_id"], move |f, _| crate::run::optout_key(f, &p)) {
            Ok(out) => prop_assert_eq!(out.rows.len() as u64 + out.rejected.len() as u64, out.read),
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }
}

/// The text PostgreSQL gives for the registry relation's typed columns at their edges
/// (`date` before year 1 or past 9999, `infinity`, `integer` limits, `timestamptz` through
/// the `to_char` of `select_sql`), fed to the same row parser as a database row: refused
/// with a reason, or accepted as the value it is, never misread.
#[test]
fn postgres_text_of_edge_values() {
    let person = Identity {
        national_id: "1893120105732".into(),
        birth: NaiveDate::from_ymd_opt(1893, 12, 1).unwrap(),
        family: "Qzxfamily".into(),
        given: "Qzxgiven".into(),
    };
    let base = registry_row(1, &person, "J07BN01", "Wiltz");
    let index: Vec<usize> = (0..base.len()).collect();
    let parse = |column: usize, text: &str| {
        let mut values = base.clone();
        values[column] = text.to_string();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        registry_parse(&Fields::new(refs, &index), 7)
    };
    let birth = 2;
    let administered = 9;
    let dose = 8;
    let recorded = 12;
    for (column, text) in [
        (birth, "1893-12-01 BC"),
        (birth, "infinity"),
        (birth, "-infinity"),
        (administered, "1990-01-01 BC"),
        (administered, "5874897-12-31"),
        (administered, "infinity"),
        (dose, "0"),
        (dose, "-2147483648"),
        (dose, "2147483648"),
        (recorded, "infinity"),
    ] {
        let reason = parse(column, text).unwrap_err();
        assert_no_identity(&reason, std::slice::from_ref(&person)).unwrap();
    }
    // `dose_number` at its upper limit and a `recorded_at` as `select_sql` formats it.
    assert_eq!(
        parse(dose, "2147483647").unwrap().dose_number_recorded,
        Some(i32::MAX)
    );
    let v = parse(recorded, "2021-04-01T12:00:00.000001Z").unwrap();
    assert_eq!(v.recorded_at, Some(1_617_278_400_000_001));
    // A NULL column arrives as an empty text: optional ones are absent, required refused.
    assert_eq!(parse(recorded, "").unwrap().recorded_at, None);
    assert!(parse(administered, "").is_err());
}

fn case_row(i: usize, person: &Identity, commune: &str) -> Vec<String> {
    let onset = (person.birth + Duration::days(800)).min(today());
    vec![
        format!("CASE-{i}"),
        person.national_id.clone(),
        person.birth.format("%Y-%m-%d").to_string(),
        "female".into(),
        commune.into(),
        "B05".into(),
        onset.format("%Y-%m-%d").to_string(),
        "false".into(),
        "0".into(),
    ]
}

fn population_row(i: usize, commune: &str) -> Vec<String> {
    vec![
        "2024".into(),
        commune.into(),
        ["male", "female"][i % 2].into(),
        (2024 - i as i32 % 100).to_string(),
        (i * 37).to_string(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Almost-valid case notifications.
    #[test]
    fn cases_csv_one_row_mutated(
        (persons, other) in people(),
        target in 0usize..12,
        framing in framing(),
        mutation in identity().prop_flat_map(csv_mutation),
    ) {
        let communes = communes();
        let rows = persons
            .iter()
            .enumerate()
            .map(|(i, p)| case_row(i, p, communes[i % communes.len()].0))
            .collect();
        let rows = csv_rows_of(rows, target, &mutation);
        let file = csv_file(&crate::cases::COLUMNS.join(","), &rows, framing);
        let out = read_csv(&file, crate::cases::COLUMNS, |f, line| {
            crate::cases::parse_row(f, line, &pseudonymizer(), today())
        })
        .unwrap();
        let mut everyone = persons;
        everyone.push(other);
        check_csv(&out, &rows, target, &mutation, &everyone)?;
    }

    /// Almost-valid population denominators (no identities; huge counts, bad years).
    #[test]
    fn population_csv_one_row_mutated(
        rows in 1usize..30,
        target in 0usize..30,
        framing in framing(),
        mutation in identity().prop_flat_map(csv_mutation),
    ) {
        let communes = communes();
        let rows = (0..rows).map(|i| population_row(i, communes[i % communes.len()].0)).collect();
        let rows = csv_rows_of(rows, target, &mutation);
        let file = csv_file(&crate::population::COLUMNS.join(","), &rows, framing);
        let out = read_csv(&file, crate::population::COLUMNS, crate::population::parse_row).unwrap();
        check_csv(&out, &rows, target, &mutation, &[])?;
    }

    /// Almost-valid opt-out lists: each valid number gives its person key, the others a
    /// reason that does not quote them.
    #[test]
    fn optout_csv_one_row_mutated(
        (persons, other) in people(),
        target in 0usize..12,
        framing in framing(),
        mutation in identity().prop_flat_map(csv_mutation),
    ) {
        let rows = persons.iter().map(|p| vec![p.national_id.clone()]).collect();
        let rows = csv_rows_of(rows, target, &mutation);
        let file = csv_file("national_id", &rows, framing);
        let p = pseudonymizer();
        let out = read_csv(&file, &["national_id"], move |f, _| crate::run::optout_key(f, &p)).unwrap();
        let mut everyone = persons.clone();
        everyone.push(other);
        check_csv(&out, &rows, target, &mutation, &everyone)?;
        if mutation.keeps_the_file_shape() {
            let p = pseudonymizer();
            for (i, person) in persons.iter().enumerate() {
                if i != target % persons.len() {
                    let key = p.pseudonym(IdKind::Person, &person.national_id);
                    prop_assert!(out.rows.contains(&key));
                }
            }
        }
    }
}
