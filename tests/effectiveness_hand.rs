//! Vaccine effectiveness on a small hand-built registry: every number asserted here is
//! counted by hand from the registry written next to it, against docs/effectiveness.md and
//! CONTRACTS.md (`/api/effectiveness`).
//!
//! The pure-arithmetic tests run with `--suppression-threshold 1` (nothing withheld); the
//! suppression tests use the default threshold 8 (and 4 for a contrast).

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const FLU: &str = "J07BB02"; // influenza, split virion
const FLU_WHOLE: &str = "J07BB01"; // influenza, whole virus (same antigen)
const Z: f64 = 1.959964;
const ALL_SHOWN: [&str; 2] = ["--suppression-threshold", "1"];
const FROM: &str = "2024-10-01";
const TO: &str = "2024-10-31"; // 31 days; a protected day d of October gives 32 - d days

// ---------------------------------------------------------------------------------------
// The registry: the 2024 influenza season, October 2024
// ---------------------------------------------------------------------------------------
//
// Age band = year(from) − birth year = 2024 − birth year.
//
// Persons (FHIR patients have influenza doses; the others appear only in cases.csv):
//
// | person | born       | band  | doses                                  | protected from (lag 14) | days in Oct |
// |--------|------------|-------|----------------------------------------|--------------------------|-------------|
// | A      | 1955-03-01 | 65-74 | 2024-10-05                             | 10-19                    | 13          |
// | B      | 1955-06-10 | 65-74 | 2024-09-10, 2024-10-10                 | 09-24                    | 31          |
// | C      | 1955-08-20 | 65-74 | 2024-08-15 (last season: before 1 Sep) | — (08-29 if counted)     | 0 (31)      |
// | M      | 1959-12-20 | 65-74 | 2024-09-20 (64 on 1 Oct, 65 by year)   | 10-04                    | 28          |
// | D      | 1955-11-11 | 65-74 | none                                   |                          |             |
// | E      | 1980-02-02 | 18-64 | 2024-10-01 twice (two vaccines, 1 day) | 10-15                    | 17          |
// | F      | 1980-05-05 | 18-64 | 2024-10-17                             | 10-31                    | 1           |
// | G      | 1980-07-07 | 18-64 | 2024-10-20                             | 11-03 (after `to`)       | 0           |
// | I      | 1980-09-09 | 18-64 | 2024-09-20 "not-done" (does not count) |                          |             |
// | J      | 1945-01-01 | 75-84 | 2024-09-15                             | 09-29                    | 31          |
// | K      | 1945-04-04 | 75-84 | none                                   |                          |             |
// | L      | 2010-06-06 | 5-17  | none                                   |                          |             |
//
// Population, reference year 2024 (the period's middle, 2024-10-16, is in 2024; the 2023
// and 2025 rows hold other counts and must be ignored):
//   1955: 6 + 4 = 10, 1959: 2  → 65-74: 12 residents → 12 × 31 = 372 person-days
//   1980: 12 + 8 = 20          → 18-64: 20 → 620
//   1945: 5                    → 75-84: 5  → 155
//   2010: 30                   → 5-17:  30 → 930
//
// Cases (onset; "vacc" = onset on or after the protected day):
//
// | case | person | disease | onset      | hosp | died | J10 default                      |
// |------|--------|---------|------------|------|------|----------------------------------|
// | c01  | A      | J10     | 2024-10-02 |      |      | unvaccinated (before the dose)   |
// | c02  | A      | J10.1   | 2024-10-18 |      |      | unvaccinated (last day of lag)   |
// | c03  | A      | J10     | 2024-10-19 |      |      | vaccinated (the protected day)   |
// | c04  | A      | J10.0   | 2024-10-25 |      |      | vaccinated                       |
// | c05  | B      | J10     | 2024-10-20 | yes  |      | vaccinated                       |
// | c06  | C      | J10     | 2024-10-10 |      |      | unvaccinated (last season's dose)|
// | c07  | D      | J10     | 2024-10-15 | yes  | yes  | unvaccinated                     |
// | c08  | D      | J10     | 2024-09-20 |      |      | outside the period               |
// | c09  | D      | J10     | 2024-11-01 |      |      | outside the period               |
// | c10  | B      | J20     | 2024-10-22 |      |      | another disease (not even J1)    |
// | c11  | D      | J11     | 2024-10-28 |      |      | J1 only: unvaccinated            |
// | c12  | A      | J11.8   | 2024-10-30 |      |      | J1 only: vaccinated              |
// | c21  | M      | J10     | 2024-10-08 |      |      | vaccinated (protected 10-04)     |
// | c13  | E      | J10     | 2024-10-20 | yes  |      | vaccinated                       |
// | c14  | E      | J10     | 2024-10-29 |      |      | vaccinated (2nd notification)    |
// | c15  | F      | J10     | 2024-10-31 |      |      | vaccinated (protected day = to)  |
// | c16  | G      | J10     | 2024-10-25 |      |      | unvaccinated (within the lag)    |
// | c17  | I      | J10     | 2024-10-05 |      |      | unvaccinated                     |
// | c18  | I      | J10.0   | 2024-10-21 |      |      | unvaccinated                     |
// | c19  | K      | J10     | 2024-10-10 |      |      | unvaccinated                     |
// | c20  | L      | J10     | 2024-10-03 |      |      | unvaccinated                     |
//
// J10, October, defaults (lag 14, dose 1, doses since 2024-09-01):
//   65-74: a = 4 (c03 c04 c05 c21), b = 4 (c01 c02 c06 c07), T1 = 13 + 31 + 28 = 72,
//          T0 = 372 − 72 = 300
//   18-64: a = 3 (c13 c14 c15),     b = 3 (c16 c17 c18),     T1 = 17 + 1 = 18, T0 = 602
//   75-84: a = 0, b = 1 (c19), T1 = 31, T0 = 124
//   5-17:  a = 0, b = 1 (c20), T1 = 0,  T0 = 930
//   0-4, 85+: nothing at all.
//   pooled: a = 7, b = 9, T1 = 121, T0 = 1956 (= 67 residents × 31 − 121)

struct Person {
    id: &'static str,
    birth: &'static str,
    sex: &'static str,
    in_fhir: bool,
}

const PERSONS: &[Person] = &[
    Person {
        id: "A",
        birth: "1955-03-01",
        sex: "female",
        in_fhir: true,
    },
    Person {
        id: "B",
        birth: "1955-06-10",
        sex: "male",
        in_fhir: true,
    },
    Person {
        id: "C",
        birth: "1955-08-20",
        sex: "female",
        in_fhir: true,
    },
    Person {
        id: "M",
        birth: "1959-12-20",
        sex: "male",
        in_fhir: true,
    },
    Person {
        id: "D",
        birth: "1955-11-11",
        sex: "male",
        in_fhir: false,
    },
    Person {
        id: "E",
        birth: "1980-02-02",
        sex: "female",
        in_fhir: true,
    },
    Person {
        id: "F",
        birth: "1980-05-05",
        sex: "male",
        in_fhir: true,
    },
    Person {
        id: "G",
        birth: "1980-07-07",
        sex: "female",
        in_fhir: true,
    },
    Person {
        id: "I",
        birth: "1980-09-09",
        sex: "male",
        in_fhir: true,
    },
    Person {
        id: "J",
        birth: "1945-01-01",
        sex: "female",
        in_fhir: true,
    },
    Person {
        id: "K",
        birth: "1945-04-04",
        sex: "female",
        in_fhir: false,
    },
    Person {
        id: "L",
        birth: "2010-06-06",
        sex: "male",
        in_fhir: false,
    },
];

/// (immunization id, person, ATC, day); all completed but I's.
const DOSES: &[(&str, &str, &str, &str)] = &[
    ("a1", "A", FLU, "2024-10-05"),
    ("b1", "B", FLU, "2024-09-10"),
    ("b2", "B", FLU, "2024-10-10"),
    ("c1", "C", FLU, "2024-08-15"),
    ("m1", "M", FLU, "2024-09-20"),
    ("e1", "E", FLU, "2024-10-01"),
    ("e1b", "E", FLU_WHOLE, "2024-10-01"),
    ("f1", "F", FLU, "2024-10-17"),
    ("g1", "G", FLU, "2024-10-20"),
    ("j1", "J", FLU, "2024-09-15"),
    ("i1", "I", FLU, "2024-09-20"),
];

/// (case id, person, disease, onset, hospitalised, died)
const CASES: &[(&str, &str, &str, &str, bool, bool)] = &[
    ("c01", "A", "J10", "2024-10-02", false, false),
    ("c02", "A", "J10.1", "2024-10-18", false, false),
    ("c03", "A", "J10", "2024-10-19", false, false),
    ("c04", "A", "J10.0", "2024-10-25", false, false),
    ("c05", "B", "J10", "2024-10-20", true, false),
    ("c06", "C", "J10", "2024-10-10", false, false),
    ("c07", "D", "J10", "2024-10-15", true, true),
    ("c08", "D", "J10", "2024-09-20", false, false),
    ("c09", "D", "J10", "2024-11-01", false, false),
    ("c10", "B", "J20", "2024-10-22", false, false),
    ("c11", "D", "J11", "2024-10-28", false, false),
    ("c12", "A", "J11.8", "2024-10-30", false, false),
    ("c21", "M", "J10", "2024-10-08", false, false),
    ("c13", "E", "J10", "2024-10-20", true, false),
    ("c14", "E", "J10", "2024-10-29", false, false),
    ("c15", "F", "J10", "2024-10-31", false, false),
    ("c16", "G", "J10", "2024-10-25", false, false),
    ("c17", "I", "J10", "2024-10-05", false, false),
    ("c18", "I", "J10.0", "2024-10-21", false, false),
    ("c19", "K", "J10", "2024-10-10", false, false),
    ("c20", "L", "J10", "2024-10-03", false, false),
];

const POPULATION: &[&str] = &[
    "2024,Wiltz,female,1955,6",
    "2024,Wiltz,male,1955,4",
    "2024,Wiltz,male,1959,2",
    "2024,Wiltz,female,1980,12",
    "2024,Wiltz,male,1980,8",
    "2024,Wiltz,female,1945,5",
    "2024,Wiltz,male,2010,30",
    // Other reference years: not the one of the period's middle, ignored.
    "2023,Wiltz,female,1955,100",
    "2023,Wiltz,female,1980,100",
    "2025,Wiltz,female,1955,1000",
    "2025,Wiltz,male,2010,1000",
];

fn person_number(id: &str) -> String {
    let (index, person) = PERSONS
        .iter()
        .enumerate()
        .find(|(_, p)| p.id == id)
        .expect("a person");
    national_number(person.birth, index as u16 + 1)
}

/// Ingests and checks nothing was quarantined.
fn load(wh: &Path, key: &Path, source: &str) {
    let ((read, accepted, quarantined), out, err) = ingest(wh, key, source);
    assert_eq!(
        (accepted, quarantined),
        (read, 0),
        "{source} quarantined something\nstdout: {out}\nstderr: {err}"
    );
}

/// Writes the export, cases and population above under `dir` and ingests them.
fn season(dir: &Path) -> PathBuf {
    season_with(dir, POPULATION)
}

/// The same registry with other population rows.
fn season_with(dir: &Path, population: &[&str]) -> PathBuf {
    let wh = dir.join("wh");
    let key = key_file(dir, "k");

    let fhir = dir.join("fhir");
    std::fs::create_dir_all(&fhir).unwrap();
    let patients: Vec<String> = PERSONS
        .iter()
        .filter(|p| p.in_fhir)
        .map(|p| {
            format!(
                r#"{{"resourceType":"Patient","id":"{}","identifier":[{{"system":"urn:oid:1.3.182.4.4","value":"{}"}}],"gender":"{}","birthDate":"{}","address":[{{"city":"Wiltz"}}]}}"#,
                p.id,
                person_number(p.id),
                p.sex,
                p.birth
            )
        })
        .collect();
    let immunizations: Vec<String> = DOSES
        .iter()
        .map(|(id, patient, atc, date)| {
            let status = if *patient == "I" { "not-done" } else { "completed" };
            format!(
                r#"{{"resourceType":"Immunization","id":"{id}","meta":{{"lastUpdated":"2025-02-01T00:00:00Z"}},"status":"{status}","vaccineCode":{{"coding":[{{"system":"http://www.whocc.no/atc","code":"{atc}"}}]}},"patient":{{"reference":"Patient/{patient}"}},"occurrenceDateTime":"{date}","lotNumber":"L1"}}"#
            )
        })
        .collect();
    std::fs::write(fhir.join("Patient.ndjson"), patients.join("\n") + "\n").unwrap();
    std::fs::write(
        fhir.join("Immunization.ndjson"),
        immunizations.join("\n") + "\n",
    )
    .unwrap();
    load(&wh, &key, &format!("fhir:{}", fhir.display()));

    let mut cases =
        "case_id,national_id,birth_date,sex,commune,disease,onset_date,hospitalised,died\n"
            .to_string();
    for (id, person, disease, onset, hospitalised, died) in CASES {
        let p = PERSONS.iter().find(|p| p.id == *person).unwrap();
        cases.push_str(&format!(
            "{id},{},{},{},Wiltz,{disease},{onset},{hospitalised},{died}\n",
            person_number(person),
            p.birth,
            p.sex
        ));
    }
    let cases_path = dir.join("cases.csv");
    std::fs::write(&cases_path, cases).unwrap();
    load(&wh, &key, &format!("cases:{}", cases_path.display()));

    let population_path = dir.join("population.csv");
    let mut text = "reference_year,commune,sex,birth_year,count\n".to_string();
    for r in population {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&population_path, text).unwrap();
    load(
        &wh,
        &key,
        &format!("population:{}", population_path.display()),
    );
    wh
}

// ---------------------------------------------------------------------------------------
// Reading answers
// ---------------------------------------------------------------------------------------

/// `vaxlake effectiveness --warehouse W --antigen influenza --format json ARGS...`, parsed
/// (ARGS must give --disease, --from and --to), after checking that no NaN or infinity
/// slipped into the text.
fn effectiveness(wh: &Path, args: &[&str]) -> Value {
    let mut all = vec![
        "effectiveness",
        "--warehouse",
        wh.to_str().unwrap(),
        "--antigen",
        "influenza",
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let (out, _) = ok(&all);
    for bad in ["NaN", "Infinity", "inf,", "inf}"] {
        assert!(!out.contains(bad), "{bad} in the answer to {args:?}: {out}");
    }
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("effectiveness {args:?}: not JSON ({e}): {out}"))
}

/// October 2024, J10 unless `disease` says otherwise, by age band, plus `extra`.
fn october(wh: &Path, disease: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "--disease",
        disease,
        "--from",
        FROM,
        "--to",
        TO,
        "--by",
        "age_band",
    ];
    args.extend_from_slice(extra);
    effectiveness(wh, &args)
}

/// The row of one age band.
#[track_caller]
fn band<'a>(answer: &'a Value, label: &str) -> &'a Value {
    let found: Vec<&Value> = answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["age_band"] == json!(label))
        .collect();
    assert_eq!(found.len(), 1, "one row of band {label} expected: {answer}");
    found[0]
}

#[track_caller]
fn assert_close(value: &Value, expected: f64, context: &Value) {
    let got = value
        .as_f64()
        .unwrap_or_else(|| panic!("expected a number near {expected}, got {value} in {context}"));
    assert!(
        (got - expected).abs() < 1e-4,
        "expected {expected}, got {got} in {context}"
    );
}

/// Cases and person-days of one stratum.
#[derive(Clone, Copy, Debug)]
struct S {
    a: u64,
    b: u64,
    t1: f64,
    t0: f64,
}

const fn s(a: u64, b: u64, t1: u64, t0: u64) -> S {
    S {
        a,
        b,
        t1: t1 as f64,
        t0: t0 as f64,
    }
}

/// IRR = (a/T1)/(b/T0) with exp(log IRR ± z·sqrt(1/a + 1/b)).
fn irr(x: S) -> (f64, f64, f64) {
    let (a, b) = (x.a as f64, x.b as f64);
    let irr = (a / x.t1) / (b / x.t0);
    let se = (1.0 / a + 1.0 / b).sqrt();
    (irr, (irr.ln() - Z * se).exp(), (irr.ln() + Z * se).exp())
}

/// The Mantel–Haenszel rate ratio of docs/effectiveness.md: Σ a·T0/T / Σ b·T1/T, with
/// Var(log) = Σ M·T1·T0/T² / (Σ a·T0/T · Σ b·T1/T). Bands without person-time add nothing.
fn mantel_haenszel(strata: &[S]) -> (f64, f64, f64) {
    let (mut num, mut den, mut var) = (0.0, 0.0, 0.0);
    for x in strata {
        let t = x.t1 + x.t0;
        if t == 0.0 {
            continue;
        }
        num += x.a as f64 * x.t0 / t;
        den += x.b as f64 * x.t1 / t;
        var += (x.a + x.b) as f64 * x.t1 * x.t0 / (t * t);
    }
    let irr = num / den;
    let se = (var / (num * den)).sqrt();
    (irr, (irr.ln() - Z * se).exp(), (irr.ln() + Z * se).exp())
}

/// An estimate object holding exactly these counts and person-days, not suppressed.
#[track_caller]
fn assert_counts(row: &Value, x: S) {
    assert_eq!(row["suppressed"], json!(false), "not suppressed: {row}");
    assert_eq!(row["cases_vaccinated"].as_u64(), Some(x.a), "a in {row}");
    assert_eq!(row["cases_unvaccinated"].as_u64(), Some(x.b), "b in {row}");
    assert_eq!(
        row["person_days_vaccinated"].as_i64(),
        Some(x.t1 as i64),
        "T1 in {row}"
    );
    assert_eq!(
        row["person_days_unvaccinated"].as_i64(),
        Some(x.t0 as i64),
        "T0 in {row}"
    );
}

/// IRR, VE = 1 − IRR and the VE interval (1 − upper, 1 − lower) of `expected`.
#[track_caller]
fn assert_ve(row: &Value, (irr, low, high): (f64, f64, f64)) {
    assert_close(&row["irr"], irr, row);
    assert_close(&row["ve"], 1.0 - irr, row);
    assert_close(&row["ci_low"], 1.0 - high, row);
    assert_close(&row["ci_high"], 1.0 - low, row);
    assert!(row["reason"].is_null(), "no reason with an estimate: {row}");
}

/// An unsuppressed band with a single-band estimate.
#[track_caller]
fn assert_band(row: &Value, x: S) {
    assert_counts(row, x);
    assert_ve(row, irr(x));
}

/// No estimate: VE, interval and IRR null, and a reason.
#[track_caller]
fn assert_no_estimate(row: &Value) {
    for k in ["ve", "ci_low", "ci_high", "irr"] {
        assert_eq!(row.get(k), Some(&Value::Null), "{k} must be null in {row}");
    }
    assert!(
        row["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "a reason expected: {row}"
    );
}

/// Withheld: `suppressed: true`, null counts and estimate; person-days stay.
#[track_caller]
fn assert_suppressed(row: &Value, t1: u64, t0: u64) {
    assert_eq!(row["suppressed"], json!(true), "suppressed: {row}");
    for k in ["cases_vaccinated", "cases_unvaccinated"] {
        assert_eq!(row.get(k), Some(&Value::Null), "{k} must be null in {row}");
    }
    assert_no_estimate(row);
    assert_eq!(row["person_days_vaccinated"].as_u64(), Some(t1), "{row}");
    assert_eq!(row["person_days_unvaccinated"].as_u64(), Some(t0), "{row}");
}

// The J10 October strata (see the table at the top).
const OLD: S = s(4, 4, 72, 300); // 65-74
const ADULT: S = s(3, 3, 18, 602); // 18-64
const ELDER: S = s(0, 1, 31, 124); // 75-84
const YOUNG: S = s(0, 1, 0, 930); // 5-17
const POOLED: S = s(7, 9, 121, 1956);

// ---------------------------------------------------------------------------------------
// The cohort estimate
// ---------------------------------------------------------------------------------------

#[test]
fn national_number_helper_matches_the_contract_example() {
    assert_eq!(national_number("1893-12-01", 57), "1893120105732");
}

#[test]
fn person_days_cases_and_estimates_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let wh = season(dir.path());
    let answer = october(&wh, "J10", &ALL_SHOWN);

    // The parameters come back, with the seasonal default for doses_since.
    assert_eq!(answer["method"], "cohort", "{answer}");
    assert_eq!(answer["antigen"], "influenza");
    assert_eq!(answer["disease"], "J10");
    assert_eq!(answer["from"], FROM);
    assert_eq!(answer["to"], TO);
    assert_eq!(answer["lag_days"], 14);
    assert_eq!(answer["dose"], 1);
    assert_eq!(answer["doses_since"], "2024-09-01");
    assert_eq!(answer["outcome"], "any");
    assert_eq!(answer["suppression_threshold"], 1);
    assert!(
        answer["population_source"]
            .as_str()
            .is_some_and(|s| s.contains("2024")),
        "reference year 2024 expected: {answer}"
    );

    // Per band (see the table at the top).
    assert_band(band(&answer, "65-74"), OLD);
    // 65-74 by hand: IRR = (4/72)/(4/300) = 300/72 = 4.1667, SE = sqrt(1/4 + 1/4) = 0.7071.
    assert_close(&band(&answer, "65-74")["irr"], 300.0 / 72.0, &answer);
    assert_close(&band(&answer, "65-74")["ve"], 1.0 - 300.0 / 72.0, &answer);
    assert_close(
        &band(&answer, "65-74")["ci_low"],
        1.0 - 300.0 / 72.0 * (Z * 0.5f64.sqrt()).exp(), // 1 − upper IRR
        &answer,
    );
    assert_band(band(&answer, "18-64"), ADULT);

    // A band with no vaccinated case: counts and person-days, no VE, a reason.
    let elder = band(&answer, "75-84");
    assert_counts(elder, ELDER);
    assert_no_estimate(elder);
    // A band without vaccinated person-time.
    let young = band(&answer, "5-17");
    assert_counts(young, YOUNG);
    assert_no_estimate(young);
    // Bands with nobody: zeros, no estimate.
    for empty in ["0-4", "85+"] {
        let row = band(&answer, empty);
        assert_counts(row, s(0, 0, 0, 0));
        assert_no_estimate(row);
    }
    assert_eq!(answer["rows"].as_array().unwrap().len(), 6, "{answer}");

    // Overall: Mantel–Haenszel over the bands; crude: the pooled counts.
    let overall = &answer["overall"];
    assert_eq!(overall["estimator"], "mantel_haenszel", "{overall}");
    assert_counts(overall, POOLED);
    assert_ve(overall, mantel_haenszel(&[YOUNG, ADULT, OLD, ELDER]));
    // By hand: Σ a·T0/T = 3·602/620 + 4·300/372 + 0 = 2.91290 + 3.22581 = 6.13871;
    // Σ b·T1/T = 3·18/620 + 4·72/372 + 1·31/155 = 0.08710 + 0.77419 + 0.2 = 1.06129;
    // IRR_MH = 5.78419.
    assert_close(&overall["irr"], 6.138710 / 1.061290, overall);

    let crude = &answer["crude"];
    assert_eq!(crude["estimator"], "crude", "{crude}");
    assert_counts(crude, POOLED);
    // (7/121)/(9/1956) = 12.5730.
    assert_ve(crude, irr(POOLED));
    assert_close(&crude["irr"], (7.0 / 121.0) / (9.0 / 1956.0), crude);

    // Without --by: the same overall and crude, no rows.
    let plain = effectiveness(
        &wh,
        &[
            "--disease",
            "J10",
            "--from",
            FROM,
            "--to",
            TO,
            "--suppression-threshold",
            "1",
        ],
    );
    assert_eq!(plain["overall"], answer["overall"]);
    assert_eq!(plain["crude"], answer["crude"]);
    assert_eq!(plain["rows"], json!([]), "{plain}");
}

#[test]
fn disease_prefix_last_season_lag_and_dose_number() {
    let dir = tempfile::tempdir().unwrap();
    let wh = season(dir.path());

    // J1 counts J10 and J11 (c11 unvaccinated, c12 vaccinated), never J20 (c10).
    let j1 = october(&wh, "J1", &ALL_SHOWN);
    assert_band(band(&j1, "65-74"), s(5, 5, 72, 300));
    assert_band(band(&j1, "18-64"), ADULT);
    assert_counts(&j1["crude"], s(8, 10, 121, 1956));
    // J11 alone: c11 and c12 only.
    let j11 = october(&wh, "J11", &ALL_SHOWN);
    assert_band(band(&j11, "65-74"), s(1, 1, 72, 300));
    assert_counts(&j11["crude"], s(1, 1, 121, 1956));

    // Last season's dose counts when doses_since goes back to 2024-08-01: C protected from
    // 08-29 (31 days): T1 = 72 + 31 = 103, T0 = 372 − 103 = 269; c06 becomes vaccinated.
    let earlier = october(
        &wh,
        "J10",
        &[&ALL_SHOWN[..], &["--doses-since", "2024-08-01"]].concat(),
    );
    assert_eq!(earlier["doses_since"], "2024-08-01");
    assert_band(band(&earlier, "65-74"), s(5, 3, 103, 269));
    assert_band(band(&earlier, "18-64"), ADULT);

    // doses_since after B's and J's first doses (2024-10-01): B's first counted dose is
    // 10-10 (protected 10-24, 8 days), M and J drop out; A 13: T1 = 21, T0 = 351.
    // Cases: c03 c04 vaccinated, c05 (10-20 < 10-24) and c21 (M) now unvaccinated.
    let later = october(
        &wh,
        "J10",
        &[&ALL_SHOWN[..], &["--doses-since", "2024-10-01"]].concat(),
    );
    assert_band(band(&later, "65-74"), s(2, 6, 21, 351));
    let elder = band(&later, "75-84");
    assert_counts(elder, s(0, 1, 0, 155));
    assert_no_estimate(elder);

    // Lag 0: A from 10-05 (27 days), B 31, M 31 → T1 = 89, T0 = 283; c02 (10-18) is now
    // vaccinated, c01 (10-02) still not: a = 5, b = 3. 18-64: E 31, F from 10-17 (15),
    // G from 10-20 (12) → T1 = 58, T0 = 562; c16 (G, 10-25) vaccinated: a = 4, b = 2.
    let lag0 = october(&wh, "J10", &[&ALL_SHOWN[..], &["--lag-days", "0"]].concat());
    assert_eq!(lag0["lag_days"], 0);
    assert_band(band(&lag0, "65-74"), s(5, 3, 89, 283));
    assert_band(band(&lag0, "18-64"), s(4, 2, 58, 562));

    // Dose 2: only B has a second day (10-10; E's two vaccines on 10-01 are one day):
    // protected 10-24, 8 days. Every case is unvaccinated (c05 on 10-20 is before 10-24).
    let dose2 = october(&wh, "J10", &[&ALL_SHOWN[..], &["--dose", "2"]].concat());
    assert_eq!(dose2["dose"], 2);
    let old = band(&dose2, "65-74");
    assert_counts(old, s(0, 8, 8, 364));
    assert_no_estimate(old);
    let adult = band(&dose2, "18-64");
    assert_counts(adult, s(0, 6, 0, 620));
    assert_no_estimate(adult);
    assert_no_estimate(&dose2["overall"]);
    assert_no_estimate(&dose2["crude"]);
}

#[test]
fn outcomes_count_only_hospitalised_or_fatal_cases() {
    let dir = tempfile::tempdir().unwrap();
    let wh = season(dir.path());

    // Hospitalised: c05 (B, vaccinated) and c07 (D, unvaccinated) in 65-74; c13 (E,
    // vaccinated) in 18-64. Person-days do not depend on the outcome.
    let hosp = october(
        &wh,
        "J10",
        &[&ALL_SHOWN[..], &["--outcome", "hospitalised"]].concat(),
    );
    assert_eq!(hosp["outcome"], "hospitalised");
    assert_band(band(&hosp, "65-74"), s(1, 1, 72, 300));
    let adult = band(&hosp, "18-64");
    assert_counts(adult, s(1, 0, 18, 602));
    assert_no_estimate(adult); // no unvaccinated case
    assert_counts(&hosp["crude"], s(2, 1, 121, 1956));

    // Died: c07 only.
    let died = october(
        &wh,
        "J10",
        &[&ALL_SHOWN[..], &["--outcome", "died"]].concat(),
    );
    assert_counts(band(&died, "65-74"), s(0, 1, 72, 300));
    assert_counts(&died["crude"], s(0, 1, 121, 1956));
    assert_no_estimate(&died["overall"]);
}

#[test]
fn small_case_counts_are_withheld() {
    let dir = tempfile::tempdir().unwrap();
    let wh = season(dir.path());

    // Threshold 8: every band with cases has a group with 1..7 cases; pooled a = 7 too.
    let answer = october(&wh, "J10", &[]);
    assert_eq!(answer["suppression_threshold"], 8);
    assert_suppressed(band(&answer, "65-74"), 72, 300);
    assert_suppressed(band(&answer, "18-64"), 18, 602);
    assert_suppressed(band(&answer, "75-84"), 31, 124);
    assert_suppressed(band(&answer, "5-17"), 0, 930);
    assert_suppressed(&answer["overall"], 121, 1956);
    assert_suppressed(&answer["crude"], 121, 1956);
    // No cases at all is not a small count: shown (zeros), no estimate.
    let empty = band(&answer, "85+");
    assert_counts(empty, s(0, 0, 0, 0));
    assert_no_estimate(empty);
    // The screening cross-check does not give the counts back either.
    for row in [band(&answer, "65-74"), &answer["overall"]] {
        let screening = &row["screening"];
        for k in ["ve", "pcv"] {
            assert!(
                screening.get(k).is_none_or(Value::is_null),
                "{k} withheld in {screening}"
            );
        }
    }

    // Threshold 4 with J1: 65-74 holds 5 and 5 (shown), 18-64 3 and 3 (withheld); the
    // pooled 8 and 10 are shown, and the MH estimate uses every band.
    let j1 = october(&wh, "J1", &["--suppression-threshold", "4"]);
    assert_band(band(&j1, "65-74"), s(5, 5, 72, 300));
    assert_suppressed(band(&j1, "18-64"), 18, 602);
    assert_suppressed(band(&j1, "75-84"), 31, 124);
    assert_counts(&j1["crude"], s(8, 10, 121, 1956));
    assert_ve(&j1["crude"], irr(s(8, 10, 121, 1956)));
    assert_counts(&j1["overall"], s(8, 10, 121, 1956));
    assert_ve(
        &j1["overall"],
        mantel_haenszel(&[YOUNG, ADULT, s(5, 5, 72, 300), ELDER]),
    );
}

#[test]
fn screening_method_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let wh = season(dir.path());
    let answer = october(&wh, "J10", &ALL_SHOWN);
    // 65-74: PCV = 4/8 = 0.5, PPV = 72/372; VE = 1 − 1 · (300/372)/(72/372) = 1 − 300/72.
    let screening = &band(&answer, "65-74")["screening"];
    assert_close(&screening["pcv"], 0.5, screening);
    assert_close(&screening["ppv"], 72.0 / 372.0, screening);
    assert_close(&screening["ve"], 1.0 - 300.0 / 72.0, screening);
    // Pooled: PCV = 7/16, PPV = 121/2077.
    let pooled = &answer["overall"]["screening"];
    let (pcv, ppv) = (7.0 / 16.0, 121.0 / 2077.0);
    assert_close(
        &pooled["ve"],
        1.0 - pcv / (1.0 - pcv) * (1.0 - ppv) / ppv,
        pooled,
    );
}

// ---------------------------------------------------------------------------------------
// Rates by vaccination status
// ---------------------------------------------------------------------------------------

/// The rates row of one month and band.
#[track_caller]
fn rate_row<'a>(answer: &'a Value, month: &str, label: &str) -> &'a Value {
    let found: Vec<&Value> = answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["month"] == json!(month) && r["age_band"] == json!(label))
        .collect();
    assert_eq!(found.len(), 1, "one row {month} {label} expected: {answer}");
    found[0]
}

/// Cases per 100,000 person-years, `days` person-days.
fn per_100k(cases: u64, days: f64) -> f64 {
    cases as f64 / (days / 365.25) * 100_000.0
}

#[track_caller]
fn assert_rates(row: &Value, x: S) {
    assert_eq!(row["suppressed"], json!(false), "{row}");
    assert_eq!(row["cases_vaccinated"].as_u64(), Some(x.a), "{row}");
    assert_eq!(row["cases_unvaccinated"].as_u64(), Some(x.b), "{row}");
    assert_close(&row["person_years_vaccinated"], x.t1 / 365.25, row);
    assert_close(&row["person_years_unvaccinated"], x.t0 / 365.25, row);
    if x.t1 > 0.0 {
        assert_close(&row["rate_vaccinated"], per_100k(x.a, x.t1), row);
    } else {
        assert!(
            row["rate_vaccinated"].is_null(),
            "no person-time, no rate: {row}"
        );
    }
    if x.t0 > 0.0 {
        assert_close(&row["rate_unvaccinated"], per_100k(x.b, x.t0), row);
    } else {
        assert!(
            row["rate_unvaccinated"].is_null(),
            "no person-time, no rate: {row}"
        );
    }
}

#[test]
fn rates_per_100000_person_years_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let wh = season(dir.path());

    // October alone: one month, six bands.
    let october = effectiveness(
        &wh,
        &[
            &["--disease", "J10", "--from", FROM, "--to", TO, "--rates"][..],
            &ALL_SHOWN,
        ]
        .concat(),
    );
    assert_eq!(october["rows"].as_array().unwrap().len(), 6, "{october}");
    // 65-74: 4 cases over 72 person-days = 0.19713 person-years → 2,029,166.67 per 100,000
    // person-years; unvaccinated 4 over 300 days = 0.82136 py → 487,000 per 100,000.
    let old = rate_row(&october, "2024-10", "65-74");
    assert_rates(old, OLD);
    assert_close(
        &old["rate_vaccinated"],
        4.0 * 365.25 * 100_000.0 / 72.0,
        old,
    );
    assert_close(&old["rate_unvaccinated"], 487_000.0, old);
    assert_rates(rate_row(&october, "2024-10", "18-64"), ADULT);
    assert_rates(rate_row(&october, "2024-10", "75-84"), ELDER);
    assert_rates(rate_row(&october, "2024-10", "5-17"), YOUNG);

    // October and November: October's rows are the same; November (30 days):
    //   65-74: A, B, M protected all month: T1 = 90, T0 = 12 × 30 − 90 = 270; c09 (D, 11-01)
    //          is the one case, unvaccinated.
    //   18-64: E 30, F 30, G from 11-03 (28) → T1 = 88, T0 = 600 − 88 = 512; no case.
    //   75-84: J 30 → T1 = 30, T0 = 120.
    let two = effectiveness(
        &wh,
        &[
            &[
                "--disease",
                "J10",
                "--from",
                FROM,
                "--to",
                "2024-11-30",
                "--rates",
            ][..],
            &ALL_SHOWN,
        ]
        .concat(),
    );
    assert_eq!(two["rows"].as_array().unwrap().len(), 12, "{two}");
    for label in ["65-74", "18-64", "75-84", "5-17"] {
        assert_eq!(
            rate_row(&two, "2024-10", label),
            rate_row(&october, "2024-10", label)
        );
    }
    assert_rates(rate_row(&two, "2024-11", "65-74"), s(0, 1, 90, 270));
    assert_rates(rate_row(&two, "2024-11", "18-64"), s(0, 0, 88, 512));
    assert_rates(rate_row(&two, "2024-11", "75-84"), s(0, 0, 30, 120));

    // With the default threshold the October 65-74 row (4 and 4 cases) is withheld;
    // person-years stay.
    let withheld = effectiveness(
        &wh,
        &["--disease", "J10", "--from", FROM, "--to", TO, "--rates"],
    );
    let old = rate_row(&withheld, "2024-10", "65-74");
    assert_eq!(old["suppressed"], json!(true), "{old}");
    for k in [
        "cases_vaccinated",
        "cases_unvaccinated",
        "rate_vaccinated",
        "rate_unvaccinated",
    ] {
        assert!(old[k].is_null(), "{k} withheld in {old}");
    }
    assert_close(&old["person_years_vaccinated"], 72.0 / 365.25, old);
}

// ---------------------------------------------------------------------------------------
// HTTP answers as the command line does
// ---------------------------------------------------------------------------------------

#[test]
fn http_effectiveness_is_the_command_line_json() {
    let dir = tempfile::tempdir().unwrap();
    let wh = season(dir.path());
    let cli = october(&wh, "J1", &["--outcome", "any"]);
    let cli_hosp = effectiveness(
        &wh,
        &[
            "--disease",
            "J10",
            "--from",
            FROM,
            "--to",
            TO,
            "--outcome",
            "hospitalised",
        ],
    );
    let cli_rates = effectiveness(
        &wh,
        &["--disease", "J10", "--from", FROM, "--to", TO, "--rates"],
    );

    let server = serve(&wh, &[]);
    let port = server.port;
    let query =
        "/api/effectiveness?antigen=influenza&disease=J1&from=2024-10-01&to=2024-10-31&by=age_band";
    let (status, body) = http_get(port, query).expect("an answer");
    assert_eq!(status, 200, "{body}");
    let http: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(http, cli);
    // And it is the hand-counted answer (threshold 8: 65-74 holds 5 and 5 → withheld).
    assert_suppressed(band(&http, "65-74"), 72, 300);
    assert_eq!(http["suppression_threshold"], 8);

    let (status, body) = http_get(
        port,
        "/api/effectiveness?antigen=influenza&disease=J10&from=2024-10-01&to=2024-10-31&outcome=hospitalised&lag_days=14&dose=1",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), cli_hosp);

    let (status, body) = http_get(
        port,
        "/api/effectiveness/rates?antigen=influenza&disease=J10&from=2024-10-01&to=2024-10-31",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), cli_rates);

    for bad in [
        "/api/effectiveness?antigen=influenza&disease=J10&from=2024-13-01&to=2024-10-31",
        "/api/effectiveness?antigen=influenza&disease=J10&from=yesterday&to=2024-10-31",
        "/api/effectiveness?antigen=influenza&disease=10J&from=2024-10-01&to=2024-10-31",
        "/api/effectiveness?antigen=influenza&disease=J10%27%20OR%201=1&from=2024-10-01&to=2024-10-31",
        "/api/effectiveness?antigen=influenza&from=2024-10-01&to=2024-10-31",
        "/api/effectiveness?antigen=influenza&disease=J10&from=2024-10-01&to=2024-10-31&outcome=sneezed",
    ] {
        let (status, body) = http_get(port, bad).unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
        let refused: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{bad}: not JSON ({e}): {body}"));
        assert!(
            refused["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {refused}"
        );
    }
}

#[test]
fn more_vaccinated_person_time_than_the_population_gives_a_reason() {
    // The population without its 1945 row: J (born 1945, protected all October) is a
    // registry person the population does not hold. 75-84: T1 = 31, T0 = 0 − 31 = −31.
    let dir = tempfile::tempdir().unwrap();
    let population: Vec<&str> = POPULATION
        .iter()
        .copied()
        .filter(|r| !r.contains(",1945,"))
        .collect();
    let wh = season_with(dir.path(), &population);
    let answer = october(&wh, "J10", &ALL_SHOWN);
    let elder = band(&answer, "75-84");
    assert_eq!(
        elder["person_days_vaccinated"].as_i64(),
        Some(31),
        "{elder}"
    );
    assert_eq!(
        elder["person_days_unvaccinated"].as_i64(),
        Some(-31),
        "{elder}"
    );
    assert_no_estimate(elder);
    // The other bands are untouched.
    assert_band(band(&answer, "65-74"), OLD);
    assert_band(band(&answer, "18-64"), ADULT);
    // The Mantel–Haenszel sum has a band it cannot use: no overall estimate, with the reason;
    // nor a crude one, whose pooled unvaccinated time would silently include the −31.
    assert_no_estimate(&answer["overall"]);
    assert_no_estimate(&answer["crude"]);
}
