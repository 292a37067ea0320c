//! The generated export checked from the outside: determinism, the manifest against the files
//! (recounted by an independent, deliberately naive "ingest"), national numbers, ATC codes,
//! COVID copies, and a few realism bounds.

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use vaxlake_generate::{generate, GenerateError, GenerateOptions, Manifest};
use vaxlake_pseudonymize::national_id;

const FILES: [&str; 6] = [
    "fhir/Patient.ndjson",
    "fhir/Immunization.ndjson",
    "registry.csv",
    "population.csv",
    "cases.csv",
    "manifest.json",
];
const NATIONAL_ID_SYSTEM: &str = "urn:oid:1.3.182.4.4";
const COVID_SYSTEM: &str = "urn:vaxlake:source-system:covid19";
const EXPORT_DATE: &str = "2025-12-31";

/// A scratch directory under target/tmp, removed when dropped (the shared export in a
/// static is never dropped and stays there).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("vaxlake-generate-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Generated {
    _dir: TempDir,
    path: PathBuf,
    manifest: Manifest,
}

fn generated(persons: u64, seed: u64) -> Generated {
    let dir = TempDir::new();
    let path = dir.path().join("out");
    let manifest = generate(
        &GenerateOptions::default()
            .with_persons(persons)
            .with_seed(seed),
        &path,
    )
    .unwrap();
    Generated {
        _dir: dir,
        path,
        manifest,
    }
}

/// The export most tests read: 2000 persons, seed 1.
fn small() -> &'static Generated {
    static G: OnceLock<Generated> = OnceLock::new();
    G.get_or_init(|| generated(2000, 1))
}

/// An export large enough for commune figures and planted counts: 30,000 persons, seed 1
/// (about 300 births a year; a commune of 5,000 residents holds some 30 children of
/// twelve birth cohorts).
fn medium() -> &'static Generated {
    static G: OnceLock<Generated> = OnceLock::new();
    G.get_or_init(|| generated(30_000, 1))
}

/// Commune → canton, read from the reference list.
fn reference_communes() -> HashMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/reference/communes.csv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect()
}

fn read(g: &Generated, file: &str) -> String {
    std::fs::read_to_string(g.path.join(file)).unwrap()
}

fn known_atc() -> HashSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/reference/vaccines.csv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}

fn patient_nid(p: &Value) -> Option<String> {
    p["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == NATIONAL_ID_SYSTEM)
        .and_then(|i| i["value"].as_str())
        .map(String::from)
}

fn atc_of(imm: &Value) -> Option<&str> {
    imm["vaccineCode"]["coding"]
        .as_array()?
        .iter()
        .find(|c| c["system"] == "http://www.whocc.no/atc")
        .and_then(|c| c["code"].as_str())
}

fn covid_event_id(imm: &Value) -> Option<&str> {
    imm["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == COVID_SYSTEM)
        .and_then(|i| i["value"].as_str())
}

#[derive(Default, Debug)]
struct Recount {
    patient_quarantined: u64,
    immunization_quarantined: u64,
    patients_accepted: u64,
    /// Event key → (latest lastUpdated, status of that version).
    fhir_latest: HashMap<String, (String, String)>,
    covid_copies: u64,
    age_boundary_corrections: u64,
}

/// What a correct ingest does with the FHIR folder, written without the generator's code.
fn recount_fhir(g: &Generated) -> Recount {
    let atc = known_atc();
    let mut r = Recount::default();
    // Patient id → Some(birthDate) when accepted, None when quarantined for its number.
    let mut patients: HashMap<String, Option<String>> = HashMap::new();
    for line in read(g, "fhir/Patient.ndjson").lines() {
        let Ok(p) = serde_json::from_str::<Value>(line) else {
            r.patient_quarantined += 1;
            continue;
        };
        let id = p["id"].as_str().unwrap().to_string();
        let valid = patient_nid(&p).is_some_and(|n| national_id::validate(&n).is_ok());
        if valid {
            r.patients_accepted += 1;
            patients.insert(id, Some(p["birthDate"].as_str().unwrap().to_string()));
        } else {
            r.patient_quarantined += 1;
            patients.insert(id, None);
        }
    }
    let mut first_dates: HashMap<String, String> = HashMap::new();
    for line in read(g, "fhir/Immunization.ndjson").lines() {
        let Ok(imm) = serde_json::from_str::<Value>(line) else {
            r.immunization_quarantined += 1;
            continue;
        };
        let reference = str_at(&imm, &["patient", "reference"]).unwrap();
        let pid = reference.strip_prefix("Patient/").unwrap();
        let Some(Some(birth)) = patients.get(pid) else {
            r.immunization_quarantined += 1;
            continue;
        };
        let date = imm["occurrenceDateTime"].as_str().unwrap();
        let code = atc_of(&imm).unwrap();
        if !atc.contains(code) || date < birth.as_str() || date > EXPORT_DATE {
            r.immunization_quarantined += 1;
            continue;
        }
        let id = imm["id"].as_str().unwrap();
        let key = match covid_event_id(&imm) {
            Some(event) => {
                r.covid_copies += 1;
                event.to_string()
            }
            None => format!("fhir:{id}"),
        };
        let updated = str_at(&imm, &["meta", "lastUpdated"]).unwrap().to_string();
        let status = imm["status"].as_str().unwrap().to_string();
        // Corrections that move a young child's dose into another month of age.
        if let Some(first) = first_dates.get(id) {
            let b = chrono::NaiveDate::parse_from_str(birth, "%Y-%m-%d").unwrap();
            let months = |d: &str| {
                let d = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
                vaxlake_pseudonymize::age_in_completed_months(b, d)
            };
            if months(first) != months(date) {
                r.age_boundary_corrections += 1;
            }
        } else {
            first_dates.insert(id.to_string(), date.to_string());
        }
        // A later line of the same event is a later version.
        let entry = r.fhir_latest.entry(key).or_default();
        assert!(
            updated > entry.0,
            "{id}: a later line with an earlier or equal lastUpdated"
        );
        *entry = (updated, status);
    }
    r
}

fn current(latest: &HashMap<String, (String, String)>) -> HashSet<&String> {
    latest
        .iter()
        .filter(|(_, (_, status))| status != "entered-in-error")
        .map(|(k, _)| k)
        .collect()
}

struct CsvRecount {
    quarantined: u64,
    rows: u64,
    latest: HashMap<String, (chrono::DateTime<chrono::FixedOffset>, String)>,
    /// First row of each valid event: (national id, atc, administered_on, lot, dose number).
    first: HashMap<String, [String; 5]>,
}

fn recount_csv(g: &Generated) -> CsvRecount {
    let atc = known_atc();
    let text = read(g, "registry.csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "event_id,national_id,birth_date,sex,commune,vaccine_atc,vaccine_name,lot_number,dose_number,administered_on,vaccinator_id,status,recorded_at"
    );
    let mut r = CsvRecount {
        quarantined: 0,
        rows: 0,
        latest: HashMap::new(),
        first: HashMap::new(),
    };
    for line in lines {
        r.rows += 1;
        assert!(!line.contains('"'), "no field needs quoting: {line}");
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 13 {
            r.quarantined += 1;
            continue;
        }
        let date = chrono::NaiveDate::parse_from_str(f[9], "%Y-%m-%d");
        let birth = chrono::NaiveDate::parse_from_str(f[2], "%Y-%m-%d").unwrap();
        let ok = national_id::validate(f[1]).is_ok()
            && atc.contains(f[5])
            && date.is_ok_and(|d| d >= birth);
        if !ok {
            r.quarantined += 1;
            continue;
        }
        let recorded = chrono::DateTime::parse_from_rfc3339(f[12]).unwrap();
        if let Some(previous) = r.latest.get(f[0]) {
            assert!(
                recorded > previous.0,
                "{}: a later row with an earlier recorded_at",
                f[0]
            );
        }
        r.latest
            .insert(f[0].to_string(), (recorded, f[11].to_string()));
        r.first
            .entry(f[0].to_string())
            .or_insert_with(|| [f[1], f[5], f[9], f[7], f[8]].map(String::from));
    }
    r
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = small();
    let b = generated(2000, 1);
    for f in FILES {
        assert!(
            std::fs::read(a.path.join(f)).unwrap() == std::fs::read(b.path.join(f)).unwrap(),
            "{f} differs between two runs with the same seed"
        );
    }
    assert_eq!(a.manifest, b.manifest);
    let c = generated(2000, 2);
    for f in [
        "fhir/Patient.ndjson",
        "fhir/Immunization.ndjson",
        "registry.csv",
        "cases.csv",
    ] {
        assert!(
            std::fs::read(a.path.join(f)).unwrap() != std::fs::read(c.path.join(f)).unwrap(),
            "{f} is the same for seeds 1 and 2"
        );
    }
}

#[test]
fn manifest_file_is_the_returned_manifest() {
    let g = small();
    let m: Manifest = serde_json::from_str(&read(g, "manifest.json")).unwrap();
    assert_eq!(m, g.manifest);
    let v: Value = serde_json::from_str(&read(g, "manifest.json")).unwrap();
    for path in [
        &["fhir", "bad", "immunizations_of_invalid_patients"][..],
        &["fhir", "current_not_done"],
        &["csv", "bad", "bad_field_count"],
        &["population", "emigrated_patients"],
        &["cases", "true_ve_influenza"],
        &["current_events_fhir_and_csv"],
        &["distinct_patients_accepted"],
        &["communes", "national_refusal"],
        &["communes", "pockets"],
        &["communes", "tiny", "name"],
        &["communes", "tiny", "canton_communes_with_residents"],
    ] {
        assert!(
            path.iter().try_fold(&v, |v, k| v.get(k)).is_some(),
            "manifest lacks {path:?}"
        );
    }
    assert_eq!(v["export_date"], "2025-12-31");
    assert_eq!(v["cases"]["true_ve_influenza"], 0.5);
}

#[test]
fn manifest_line_counts_match_files() {
    let g = small();
    let m = &g.manifest;
    let lines = |f: &str| read(g, f).lines().count() as u64;
    assert_eq!(m.fhir.patient_lines, lines("fhir/Patient.ndjson"));
    assert_eq!(m.fhir.immunization_lines, lines("fhir/Immunization.ndjson"));
    assert_eq!(m.csv.rows, lines("registry.csv") - 1);
    assert_eq!(m.population.rows, lines("population.csv") - 1);
    assert_eq!(m.cases.rows, lines("cases.csv") - 1);
    for f in FILES {
        let bytes = std::fs::read(g.path.join(f)).unwrap();
        assert!(std::str::from_utf8(&bytes).is_ok(), "{f} is not UTF-8");
        assert!(bytes.ends_with(b"\n"), "{f} does not end with a newline");
        assert!(
            !bytes.windows(2).any(|w| w == b"\n\n"),
            "{f} has an empty line"
        );
    }
    assert_eq!(
        m.fhir.expected_accepted + m.fhir.expected_quarantined,
        m.fhir.patient_lines + m.fhir.immunization_lines
    );
    assert_eq!(
        m.csv.expected_accepted + m.csv.expected_quarantined,
        m.csv.rows
    );
    assert_eq!(
        m.cases.expected_accepted + m.cases.expected_quarantined,
        m.cases.rows
    );
}

#[test]
fn every_kind_of_bad_record_is_planted() {
    let m = &small().manifest;
    let b = &m.fhir.bad;
    for (name, n) in [
        ("broken_json_patient", b.broken_json_patient),
        ("broken_json_immunization", b.broken_json_immunization),
        (
            "invalid_check_digit_patients",
            b.invalid_check_digit_patients,
        ),
        (
            "immunizations_of_invalid_patients",
            b.immunizations_of_invalid_patients,
        ),
        ("unknown_atc", b.unknown_atc),
        ("dose_before_birth", b.dose_before_birth),
        ("dose_in_future", b.dose_in_future),
        ("missing_patient", b.missing_patient),
        ("csv invalid_check_digit", m.csv.bad.invalid_check_digit),
        ("csv unknown_atc", m.csv.bad.unknown_atc),
        ("csv dose_before_birth", m.csv.bad.dose_before_birth),
        ("csv bad_date", m.csv.bad.bad_date),
        ("csv bad_field_count", m.csv.bad.bad_field_count),
        ("cases invalid_national_id", m.cases.bad.invalid_national_id),
        ("cases bad_onset_date", m.cases.bad.bad_onset_date),
        ("corrections", m.fhir.corrections),
        ("entered_in_error", m.fhir.entered_in_error),
        ("not_done", m.fhir.not_done),
        ("same_day_duplicates", m.fhir.same_day_duplicates),
        ("covid_copies", m.fhir.covid_copies),
        ("csv corrections", m.csv.corrections),
        ("csv entered_in_error", m.csv.entered_in_error),
        ("never_in_registry", m.population.never_in_registry),
        ("emigrated_patients", m.population.emigrated_patients),
        ("cross_border_patients", m.population.cross_border_patients),
        ("deceased_patients", m.population.deceased_patients),
    ] {
        assert!(n >= 1, "nothing planted for {name}");
    }
    // Even the smallest export plants each bad kind at least once.
    let tiny = generated(100, 7).manifest;
    let tb = &tiny.fhir.bad;
    for n in [
        tb.broken_json_patient,
        tb.invalid_check_digit_patients,
        tb.immunizations_of_invalid_patients,
        tb.unknown_atc,
        tb.dose_before_birth,
        tb.dose_in_future,
        tb.missing_patient,
        tiny.csv.bad.invalid_check_digit,
        tiny.csv.bad.bad_field_count,
        tiny.cases.bad.bad_onset_date,
    ] {
        assert!(n >= 1, "{tiny:#?}");
    }
}

#[test]
fn national_numbers_are_valid_except_the_planted_ones() {
    let g = small();
    let mut valid = 0;
    let mut invalid = 0;
    let mut broken = 0;
    let mut seen = HashSet::new();
    for line in read(g, "fhir/Patient.ndjson").lines() {
        let Ok(p) = serde_json::from_str::<Value>(line) else {
            broken += 1;
            continue;
        };
        let nid = patient_nid(&p).unwrap();
        assert!(seen.insert(nid.clone()), "national number {nid} repeats");
        match national_id::validate(&nid) {
            Ok(()) => {
                valid += 1;
                let birth = national_id::birth_date(&nid).unwrap().to_string();
                assert_eq!(p["birthDate"], birth.as_str());
            }
            Err(_) => invalid += 1,
        }
    }
    let m = &g.manifest;
    assert_eq!(broken, m.fhir.bad.broken_json_patient);
    assert_eq!(invalid, m.fhir.bad.invalid_check_digit_patients);
    assert_eq!(valid, m.distinct_patients_accepted);
    assert!(invalid >= 1 && valid > 1500);
}

#[test]
fn independent_recount_matches_the_manifest() {
    let g = small();
    let m = &g.manifest;
    let f = recount_fhir(g);
    assert_eq!(f.patient_quarantined, m.fhir.patient_quarantined);
    assert_eq!(f.immunization_quarantined, m.fhir.immunization_quarantined);
    assert_eq!(
        f.patient_quarantined + f.immunization_quarantined,
        m.fhir.expected_quarantined
    );
    assert_eq!(f.patients_accepted, m.distinct_patients_accepted);
    let fhir_current = current(&f.fhir_latest);
    assert_eq!(fhir_current.len() as u64, m.fhir.current_events);
    let not_done = f
        .fhir_latest
        .values()
        .filter(|(_, s)| s == "not-done")
        .count() as u64;
    assert_eq!(not_done, m.fhir.current_not_done);
    assert_eq!(
        m.fhir.current_completed + m.fhir.current_not_done,
        m.fhir.current_events
    );
    assert_eq!(f.covid_copies, m.fhir.covid_copies);
    assert!(
        f.age_boundary_corrections >= 1,
        "no correction crosses a month of age"
    );

    let c = recount_csv(g);
    assert_eq!(c.rows, m.csv.rows);
    assert_eq!(c.quarantined, m.csv.expected_quarantined);
    let csv_current = current_csv(&c);
    assert_eq!(csv_current.len() as u64, m.csv.current_events);

    let both: HashSet<&String> = fhir_current.union(&csv_current).copied().collect();
    assert_eq!(both.len() as u64, m.current_events_fhir_and_csv);

    // Cases.
    let text = read(g, "cases.csv");
    let mut quarantined = 0;
    let mut by_disease: HashMap<String, u64> = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 9, "{line}");
        if national_id::validate(f[1]).is_err()
            || chrono::NaiveDate::parse_from_str(f[6], "%Y-%m-%d").is_err()
        {
            quarantined += 1;
            continue;
        }
        assert!(["true", "false"].contains(&f[7]) && ["true", "false"].contains(&f[8]));
        *by_disease.entry(f[5].to_string()).or_default() += 1;
    }
    assert_eq!(quarantined, m.cases.expected_quarantined);
    assert_eq!(by_disease, m.cases.by_disease.clone().into_iter().collect());
}

fn current_csv(c: &CsvRecount) -> HashSet<&String> {
    c.latest
        .iter()
        .filter(|(_, (_, status))| status != "entered-in-error")
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn valid_records_use_reference_atc_codes() {
    let g = small();
    let atc = known_atc();
    let mut unknown = 0;
    for line in read(g, "fhir/Immunization.ndjson").lines() {
        let Ok(imm) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let code = atc_of(&imm).unwrap();
        if !atc.contains(code) {
            unknown += 1;
        }
    }
    assert_eq!(unknown, g.manifest.fhir.bad.unknown_atc);
    let c = recount_csv(g);
    assert!(c.first.values().all(|row| atc.contains(&row[1])));
}

#[test]
fn covid_copies_share_event_ids_with_csv_rows() {
    let g = small();
    let csv = recount_csv(g);
    let mut nids: HashMap<String, String> = HashMap::new();
    for line in read(g, "fhir/Patient.ndjson").lines() {
        if let Ok(p) = serde_json::from_str::<Value>(line) {
            nids.insert(
                p["id"].as_str().unwrap().to_string(),
                patient_nid(&p).unwrap(),
            );
        }
    }
    let mut copies = 0;
    for line in read(g, "fhir/Immunization.ndjson").lines() {
        let Ok(imm) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(event) = covid_event_id(&imm) else {
            continue;
        };
        copies += 1;
        assert_eq!(str_at(&imm, &["meta", "source"]), Some("covid19"));
        let row = csv
            .first
            .get(event)
            .unwrap_or_else(|| panic!("{event} is not a valid registry.csv event"));
        let pid = str_at(&imm, &["patient", "reference"])
            .unwrap()
            .strip_prefix("Patient/")
            .unwrap();
        assert_eq!(&nids[pid], &row[0], "{event}: another person");
        assert_eq!(atc_of(&imm).unwrap(), row[1]);
        assert_eq!(imm["occurrenceDateTime"], row[2].as_str());
        assert_eq!(imm["lotNumber"], row[3].as_str());
        assert_eq!(
            imm["protocolApplied"][0]["doseNumberPositiveInt"].to_string(),
            row[4]
        );
        assert_eq!(imm["status"], "completed");
    }
    assert_eq!(copies, g.manifest.fhir.covid_copies);
    let share = copies as f64 / csv.first.len() as f64;
    assert!(
        (0.05..0.16).contains(&share),
        "copies are {share:.3} of COVID events"
    );
}

#[test]
fn population_counts_every_resident() {
    let g = small();
    let m = &g.manifest;
    let text = read(g, "population.csv");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "reference_year,commune,sex,birth_year,count"
    );
    let mut totals: HashMap<&str, u64> = HashMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 5);
        assert!(
            vaxlake_pseudonymize::canton_of(f[1]).is_some(),
            "{} is not a commune",
            f[1]
        );
        assert!(["male", "female", "other", "unknown"].contains(&f[2]));
        let year: i32 = f[3].parse().unwrap();
        assert!((1930..=2025).contains(&year));
        let n: u64 = f[4].parse().unwrap();
        assert!(n > 0);
        *totals.entry(f[0]).or_default() += n;
    }
    // 1 January 2026: the 2,000 residents generated, less those who died in 2025.
    assert!(m.population.deceased_patients >= 1);
    assert_eq!(totals["2026"], 2000 - m.population.deceased_patients);
    assert_eq!(
        m.population.residents,
        2000 - m.population.deceased_patients
    );
    assert_eq!(totals["2025"], m.population.totals["2025"]);
    assert!(totals["2025"] != totals["2026"]);
}

#[test]
fn options_are_checked() {
    let dir = TempDir::new();
    let err = generate(&GenerateOptions::default().with_persons(10), dir.path()).unwrap_err();
    assert!(matches!(err, GenerateError::InvalidOptions(_)), "{err}");
    assert_eq!(
        GenerateOptions::default(),
        GenerateOptions {
            persons: 670_000,
            seed: 1
        }
    );
}

/// What an analyst reads of the FHIR folder for childhood coverage, without the generator's
/// code: accepted Patients and the dates of their current completed doses per ATC code.
struct Childhood {
    /// Patient id → (birthDate, gender, address city).
    births: HashMap<String, (String, String, String)>,
    /// (Patient id, ATC code) → dates of completed doses (latest versions only).
    doses: HashMap<(String, String), Vec<String>>,
}

fn childhood(g: &Generated) -> Childhood {
    let mut births: HashMap<String, (String, String, String)> = HashMap::new();
    for line in read(g, "fhir/Patient.ndjson").lines() {
        if let Ok(p) = serde_json::from_str::<Value>(line) {
            if patient_nid(&p).is_some_and(|n| national_id::validate(&n).is_ok()) {
                let id = p["id"].as_str().unwrap().to_string();
                births.insert(
                    id,
                    (
                        p["birthDate"].as_str().unwrap().into(),
                        p["gender"].as_str().unwrap().into(),
                        p["address"][0]["city"].as_str().unwrap().into(),
                    ),
                );
            }
        }
    }
    let mut latest: HashMap<String, (String, Value)> = HashMap::new();
    for line in read(g, "fhir/Immunization.ndjson").lines() {
        let Ok(imm) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let id = imm["id"].as_str().unwrap().to_string();
        let updated = str_at(&imm, &["meta", "lastUpdated"]).unwrap().to_string();
        if latest.get(&id).is_none_or(|(u, _)| &updated > u) {
            latest.insert(id, (updated, imm));
        }
    }
    let mut doses: HashMap<(String, String), Vec<String>> = HashMap::new();
    for (_, imm) in latest.values() {
        let pid = str_at(imm, &["patient", "reference"])
            .unwrap()
            .trim_start_matches("Patient/");
        let Some((birth, _, _)) = births.get(pid) else {
            continue;
        };
        // The ingest quarantines doses dated before birth or after the export.
        let day = imm["occurrenceDateTime"].as_str().unwrap();
        if imm["status"] != "completed" || day < birth.as_str() || day > EXPORT_DATE {
            continue;
        }
        let atc = atc_of(imm).unwrap().to_string();
        doses
            .entry((pid.to_string(), atc))
            .or_default()
            .push(imm["occurrenceDateTime"].as_str().unwrap().to_string());
    }
    Childhood { births, doses }
}

fn months_between(birth: &str, day: &str) -> i32 {
    let b = chrono::NaiveDate::parse_from_str(birth, "%Y-%m-%d").unwrap();
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    vaxlake_pseudonymize::age_in_completed_months(b, d)
}

/// Distinct dose days of a vaccine group before `age_months` (completed months).
fn dose_days_before(
    doses: &HashMap<(String, String), Vec<String>>,
    pid: &str,
    birth: &str,
    atcs: &[&str],
    age_months: i32,
) -> usize {
    let mut days: Vec<&String> = atcs
        .iter()
        .filter_map(|a| doses.get(&(pid.to_string(), a.to_string())))
        .flatten()
        .filter(|d| months_between(birth, d) < age_months)
        .collect();
    days.sort();
    days.dedup();
    days.len()
}

const HEXAVALENT: [&str; 1] = ["J07CA09"];
const MEASLES: [&str; 2] = ["J07BD52", "J07BD54"];

/// Childhood coverage of one commune: children of some birth cohorts in population.csv
/// (reference year 2025) and, of the Patients living there, those with DTP3 by 12 months
/// and MCV1 by 24 months.
#[derive(Debug, Default, Clone, Copy)]
struct CommuneCoverage {
    children: u64,
    dtp3: u64,
    mcv1: u64,
}

fn coverage_by_commune(
    g: &Generated,
    cohorts: std::ops::RangeInclusive<i32>,
) -> HashMap<String, CommuneCoverage> {
    let mut out: HashMap<String, CommuneCoverage> = HashMap::new();
    for line in read(g, "population.csv").lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[0] == "2025" && cohorts.contains(&f[3].parse::<i32>().unwrap()) {
            out.entry(f[1].to_string()).or_default().children += f[4].parse::<u64>().unwrap();
        }
    }
    let Childhood { births, doses } = childhood(g);
    for (pid, (birth, _, city)) in &births {
        if !cohorts.contains(&birth[..4].parse::<i32>().unwrap()) {
            continue;
        }
        // Patients abroad or emigrated are in no commune's denominator.
        let Some(c) = out.get_mut(city) else {
            continue;
        };
        c.dtp3 += u64::from(dose_days_before(&doses, pid, birth, &HEXAVALENT, 12) >= 3);
        c.mcv1 += u64::from(dose_days_before(&doses, pid, birth, &MEASLES, 24) >= 1);
    }
    out
}

/// Coverage and demography within what an epidemiologist expects (wide bounds: 5000 persons).
#[test]
fn realism_at_5000_persons() {
    let g = generated(5000, 3);
    let m = &g.manifest;
    let never = m.population.never_in_registry as f64 / 5000.0;
    assert!((0.015..0.045).contains(&never), "never in registry {never}");

    let Childhood { births, doses } = childhood(&g);
    let count_by = |pid: &str, birth: &str, atcs: &[&str], age_months: i32| {
        dose_days_before(&doses, pid, birth, atcs, age_months)
    };
    // Cohorts 2015–2022, denominators from population.csv.
    let pop = read(&g, "population.csv");
    let denominator: u64 = pop
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("2025,"))
        .filter(|l| (2015..=2022).contains(&l.split(',').nth(3).unwrap().parse::<i32>().unwrap()))
        .map(|l| l.split(',').nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    let (mut dtp3, mut mcv1, mut mcv2) = (0u64, 0u64, 0u64);
    for (pid, (birth, _, _)) in &births {
        if !("2015".."2023").contains(&&birth[..4]) {
            continue;
        }
        dtp3 += u64::from(count_by(pid, birth, &["J07CA09"], 12) >= 3);
        mcv1 += u64::from(count_by(pid, birth, &["J07BD52", "J07BD54"], 24) >= 1);
        mcv2 += u64::from(count_by(pid, birth, &["J07BD52", "J07BD54"], 36) >= 2);
    }
    let rate = |n: u64| n as f64 / denominator as f64;
    eprintln!(
        "REALISM dtp3 {} mcv1 {} mcv2 {}",
        rate(dtp3),
        rate(mcv1),
        rate(mcv2)
    );
    assert!(
        (8.0 * 30.0..8.0 * 70.0).contains(&(denominator as f64)),
        "cohorts 2015–2022: {denominator}"
    );
    assert!((0.91..0.99).contains(&rate(dtp3)), "DTP3 {}", rate(dtp3));
    assert!((0.92..0.995).contains(&rate(mcv1)), "MCV1 {}", rate(mcv1));
    assert!((0.82..0.96).contains(&rate(mcv2)), "MCV2 {}", rate(mcv2));
    assert!(rate(mcv2) < rate(mcv1) && rate(dtp3) < 1.0);

    // Influenza 2024/25 coverage among patients aged 65+.
    let (mut old, mut vaccinated) = (0u64, 0u64);
    for (pid, (birth, _, _)) in &births {
        if birth.as_str() > "1959-09-01" {
            continue;
        }
        old += 1;
        let flu = doses.get(&(pid.clone(), "J07BB02".to_string()));
        if flu.is_some_and(|d| {
            d.iter()
                .any(|d| ("2024-09-01".."2025-05-01").contains(&d.as_str()))
        }) {
            vaccinated += 1;
        }
    }
    let flu = vaccinated as f64 / old as f64;
    assert!((0.33..0.58).contains(&flu), "influenza 65+ {flu}");
    // Influenza cases: vaccinated persons are a minority of cases (coverage < 50 % and VE 0.5).
    assert!(m.cases.influenza_cases_vaccinated < m.cases.influenza_cases_unvaccinated);
    assert!(m.cases.by_disease.get("J10").copied().unwrap_or(0) > 50);
}

/// Commune coverage as an analyst computes it from the files (DTP3 by 12 months, MCV1 by
/// 24 months, cohorts 2012–2023 pooled as small-area statistics do): most communes between
/// 85 and 98 %, the planted pockets lower, the nation where it was.
#[test]
fn commune_coverage_varies_like_real_coverage() {
    let g = medium();
    let m = &g.manifest;
    let cov = coverage_by_commune(g, 2012..=2023);
    let pockets: HashSet<&str> = m.communes.pockets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pockets.len(), 4, "{:?}", m.communes.pockets);
    let rate = |n: u64, d: u64| n as f64 / d as f64;

    // National figures in the realism window of `realism_at_5000_persons`.
    let total = cov
        .values()
        .fold(CommuneCoverage::default(), |a, c| CommuneCoverage {
            children: a.children + c.children,
            dtp3: a.dtp3 + c.dtp3,
            mcv1: a.mcv1 + c.mcv1,
        });
    let national_dtp3 = rate(total.dtp3, total.children);
    let national_mcv1 = rate(total.mcv1, total.children);
    assert!(
        (0.91..0.99).contains(&national_dtp3),
        "DTP3 {national_dtp3}"
    );
    assert!(
        (0.92..0.995).contains(&national_mcv1),
        "MCV1 {national_mcv1}"
    );

    // Most ordinary communes with 30 children or more lie between 85 and 98 %.
    let sized: Vec<(&String, &CommuneCoverage)> =
        cov.iter().filter(|(_, c)| c.children >= 30).collect();
    let ordinary: Vec<f64> = sized
        .iter()
        .filter(|(name, _)| !pockets.contains(name.as_str()))
        .map(|(_, c)| rate(c.dtp3, c.children))
        .collect();
    let within = ordinary
        .iter()
        .filter(|r| (0.85..=0.98).contains(*r))
        .count();
    assert!(
        ordinary.len() >= 20,
        "{} communes of 30 children",
        ordinary.len()
    );
    assert!(
        within as f64 >= 0.7 * ordinary.len() as f64,
        "{within} of {} ordinary communes within 85-98 %: {ordinary:?}",
        ordinary.len()
    );

    // The pockets: at least one measurable pocket below 85 %, and together clearly below
    // the other communes (refusal 12-22 % against about 1 %).
    let measured: Vec<(String, f64)> = sized
        .iter()
        .filter(|(name, _)| pockets.contains(name.as_str()))
        .map(|(name, c)| (name.to_string(), rate(c.dtp3, c.children)))
        .collect();
    assert!(
        measured.iter().any(|(_, r)| *r < 0.85),
        "no pocket with 30 children below 85 %: {measured:?}"
    );
    let pooled = |in_pockets: bool| {
        let (n, d) = cov
            .iter()
            .filter(|(name, _)| pockets.contains(name.as_str()) == in_pockets)
            .fold((0, 0), |(n, d), (_, c)| (n + c.dtp3, d + c.children));
        rate(n, d)
    };
    let (pocket_dtp3, other_dtp3) = (pooled(true), pooled(false));
    assert!(
        pocket_dtp3 < 0.87 && other_dtp3 - pocket_dtp3 > 0.08,
        "pockets {pocket_dtp3}, other communes {other_dtp3}"
    );
    for p in &m.communes.pockets {
        assert!((0.78..=0.88).contains(&p.coverage_factor), "{p:?}");
        assert_eq!(reference_communes()[&p.name], p.canton);
    }
    assert!((m.communes.national_refusal - 0.0155).abs() < 1e-9);
    assert!(m.communes.ordinary_refusal[1] < 0.06);
}

/// The tiny commune: its canton has residents in exactly two communes, one of them tiny,
/// recounted from population.csv and the Patients' addresses.
#[test]
fn tiny_commune_recounted_from_the_files() {
    let g = medium();
    let t = &g.manifest.communes.tiny;
    let reference = reference_communes();
    assert_eq!(reference[&t.name], t.canton);
    assert_eq!(reference[&t.partner], t.canton);
    // Residents on 1 January 2026 per commune of the canton, and those born 2016-2025.
    let mut residents: HashMap<String, u64> = HashMap::new();
    let mut recent = 0u64;
    for line in read(g, "population.csv").lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[0] != "2026" || reference[f[1]] != t.canton {
            continue;
        }
        let n: u64 = f[4].parse().unwrap();
        *residents.entry(f[1].to_string()).or_default() += n;
        if f[1] == t.name && f[3].parse::<i32>().unwrap() >= 2016 {
            recent += n;
        }
    }
    let mut with_residents: Vec<&String> = residents.keys().collect();
    with_residents.sort();
    let mut expected = vec![&t.name, &t.partner];
    expected.sort();
    assert_eq!(with_residents, expected);
    let mut listed = t.canton_communes_with_residents.clone();
    listed.sort();
    assert_eq!(with_residents, listed.iter().collect::<Vec<_>>());
    assert_eq!(residents[&t.name], t.residents);
    assert_eq!(recent as f64 / 10.0, t.births_per_year);
    // Tiny beside its partner (300 against 2,200 reference residents).
    assert!(t.residents >= 1);
    assert!(
        (t.residents as f64) < 0.25 * residents[&t.partner] as f64,
        "{residents:?}"
    );
    // The canton's other communes: in the reference list, in no file of the export.
    assert!(!t.communes_without_residents.is_empty());
    for empty in &t.communes_without_residents {
        assert_eq!(reference[empty], t.canton);
        for file in [
            "population.csv",
            "fhir/Patient.ndjson",
            "registry.csv",
            "cases.csv",
        ] {
            let text = read(g, file);
            assert!(
                !text.contains(&format!(",{empty},")) && !text.contains(&format!("\"{empty}\"")),
                "{empty} in {file}"
            );
        }
    }
}

/// Each planted situation recounted from the written files, without the generator's code:
/// cross-border workers and their cases, deaths, repeat notifications, and the doses that
/// break the dose rules (MCV0, DTP doses too close, early second HPV doses).
#[test]
fn planted_situations_recounted_from_the_files() {
    let g = medium();
    let m = &g.manifest;

    let (mut abroad, mut deceased) = (0u64, 0u64);
    for line in read(g, "fhir/Patient.ndjson").lines() {
        let Ok(p) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        abroad += u64::from(p["address"][0]["country"] != "LU");
        deceased += u64::from(p.get("deceasedDateTime").is_some());
    }
    assert_eq!(abroad, m.population.cross_border_patients);
    assert_eq!(deceased, m.population.deceased_patients);
    assert!(abroad >= 100 && deceased >= 50, "{abroad} {deceased}");

    // Cases: accepted rows; a notification of the same person and disease within 90 days
    // of the episode's first is a repeat.
    let communes = reference_communes();
    let mut episodes: HashMap<(String, String), Vec<(chrono::NaiveDate, bool)>> = HashMap::new();
    for line in read(g, "cases.csv").lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let Ok(onset) = chrono::NaiveDate::parse_from_str(f[6], "%Y-%m-%d") else {
            continue;
        };
        if national_id::validate(f[1]).is_err() {
            continue;
        }
        let abroad = !communes.contains_key(f[4]);
        episodes
            .entry((f[1].to_string(), f[5].to_string()))
            .or_default()
            .push((onset, abroad));
    }
    let (mut repeats, mut cross_border_cases) = (0u64, 0u64);
    for rows in episodes.values_mut() {
        rows.sort();
        let mut start: Option<chrono::NaiveDate> = None;
        for &(onset, abroad) in rows.iter() {
            if start.is_some_and(|s| (onset - s).num_days() <= 90) {
                repeats += 1;
            } else {
                start = Some(onset);
                cross_border_cases += u64::from(abroad);
            }
        }
    }
    assert_eq!(repeats, m.cases.repeat_notifications);
    assert_eq!(cross_border_cases, m.cases.cross_border_cases);
    assert!(
        repeats >= 5 && cross_border_cases >= 5,
        "{repeats} {cross_border_cases}"
    );

    // Doses against the dose rules, from the current completed doses of accepted Patients.
    let Childhood { births, doses } = childhood(g);
    let date = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let days_of = |pid: &str, atcs: &[&str]| {
        let mut days: Vec<chrono::NaiveDate> = atcs
            .iter()
            .filter_map(|a| doses.get(&(pid.to_string(), a.to_string())))
            .flatten()
            .map(|d| date(d))
            .collect();
        days.sort();
        days.dedup();
        days
    };
    let (mut mcv0, mut dtp_too_close, mut hpv_early, mut hpv_third) = (0u64, 0u64, 0u64, 0u64);
    for (pid, (birth, _, _)) in &births {
        // Measles before 9 completed months.
        mcv0 += days_of(pid, &MEASLES)
            .iter()
            .filter(|d| months_between(birth, &d.to_string()) < 9)
            .count() as u64;
        // A DTP dose less than 28 - 4 days after the previous valid one.
        let mut last_valid: Option<chrono::NaiveDate> = None;
        for d in days_of(pid, &HEXAVALENT) {
            match last_valid {
                Some(v) if (d - v).num_days() < 24 => dtp_too_close += 1,
                _ => last_valid = Some(d),
            }
        }
        // A second HPV dose less than 5 months - 4 days after the first.
        let hpv = days_of(pid, &["J07BM03"]);
        if hpv.len() >= 2 {
            let five_months = hpv[0].checked_add_months(chrono::Months::new(5)).unwrap();
            if hpv[1] < five_months - chrono::Days::new(4) {
                hpv_early += 1;
                hpv_third += u64::from(hpv.len() >= 3);
            }
        }
    }
    // What the files hold, exactly; the planted counts differ by the few doses that the
    // generator's own corrections move or remove (about 1.3 % of lines).
    let planted = &m.invalid_doses;
    let found = &planted.in_the_files;
    for (name, recount, found, planted) in [
        ("mcv0", mcv0, found.mcv0, planted.mcv0),
        (
            "dtp_too_close",
            dtp_too_close,
            found.dtp_too_close,
            planted.dtp_too_close,
        ),
        (
            "hpv_second_too_early",
            hpv_early,
            found.hpv_second_too_early,
            planted.hpv_second_too_early,
        ),
        (
            "hpv_third",
            hpv_third,
            found.hpv_third_after_early_second,
            planted.hpv_third_after_early_second,
        ),
    ] {
        assert!(planted >= 10, "{name}: only {planted} planted");
        assert_eq!(recount, found, "{name}: in the files, in the manifest");
        assert!(
            found.abs_diff(planted) <= (planted / 3).max(3),
            "{name}: {found} found, {planted} planted"
        );
    }
}
