//! Coverage on small hand-built registries: every number asserted here is counted by hand
//! from the registry written next to it, against docs/coverage.md and CONTRACTS.md.
//!
//! The pure-arithmetic tests run with `--suppression-threshold 1` (nothing suppressed); the
//! suppression tests use the default threshold 8.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;

const HEXA: &str = "J07CA09"; // diphtheria, tetanus, pertussis, polio, hib, hepatitis_b
const DTAP_IPV: &str = "J07CA02"; // diphtheria, tetanus, pertussis, polio (no hib, no hepB)
const MMR: &str = "J07BD52"; // measles, mumps, rubella
const FLU: &str = "J07BB02"; // influenza
const Z: f64 = 1.959964;
const ALL_SHOWN: [&str; 2] = ["--suppression-threshold", "1"];
/// lastUpdated of first versions; corrections carry later ones.
const V1: &str = "2025-02-01T00:00:00Z";

// ---------------------------------------------------------------------------------------
// Building registries by hand
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Registry {
    patients: Vec<String>,
    immunizations: Vec<String>,
}

impl Registry {
    /// A Patient; `commune: None` writes no address at all.
    fn person(&mut self, id: &str, birth: &str, sex: &str, commune: Option<&str>) {
        let serial = self.patients.len() as u16 + 1;
        let address = commune
            .map(|c| format!(r#","address":[{{"city":"{c}"}}]"#))
            .unwrap_or_default();
        self.patients.push(format!(
            r#"{{"resourceType":"Patient","id":"{id}","identifier":[{{"system":"urn:oid:1.3.182.4.4","value":"{}"}}],"gender":"{sex}","birthDate":"{birth}"{address}}}"#,
            national_number(birth, serial)
        ));
    }

    /// A completed dose, first version.
    fn dose(&mut self, id: &str, patient: &str, atc: &str, date: &str) {
        self.immunizations
            .push(immunization(id, patient, atc, date, "completed", V1));
    }

    /// Writes `DIR/name/{Patient,Immunization}.ndjson` with every Patient and the given
    /// Immunizations; returns the `fhir:` source.
    fn export_with(&self, dir: &Path, name: &str, immunizations: &[String]) -> String {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("Patient.ndjson"), self.patients.join("\n") + "\n").unwrap();
        std::fs::write(
            d.join("Immunization.ndjson"),
            immunizations.join("\n") + "\n",
        )
        .unwrap();
        format!("fhir:{}", d.display())
    }

    fn export(&self, dir: &Path, name: &str) -> String {
        self.export_with(dir, name, &self.immunizations)
    }
}

fn immunization(
    id: &str,
    patient: &str,
    atc: &str,
    date: &str,
    status: &str,
    last_updated: &str,
) -> String {
    format!(
        r#"{{"resourceType":"Immunization","id":"{id}","meta":{{"lastUpdated":"{last_updated}"}},"status":"{status}","vaccineCode":{{"coding":[{{"system":"http://www.whocc.no/atc","code":"{atc}"}}]}},"patient":{{"reference":"Patient/{patient}"}},"occurrenceDateTime":"{date}","lotNumber":"L1"}}"#
    )
}

/// Writes a population file (`reference_year,commune,sex,birth_year,count` rows); returns the
/// `population:` source.
fn population(dir: &Path, rows: &[&str]) -> String {
    let path = dir.join("population.csv");
    let mut text = "reference_year,commune,sex,birth_year,count\n".to_string();
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    format!("population:{}", path.display())
}

// ---------------------------------------------------------------------------------------
// Reading answers
// ---------------------------------------------------------------------------------------

/// `vaxlake coverage --warehouse W --format json ARGS...`, parsed.
fn coverage(wh: &Path, args: &[&str]) -> Value {
    let mut all = vec![
        "coverage",
        "--warehouse",
        wh.to_str().unwrap(),
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let (out, _) = ok(&all);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("coverage {args:?}: not JSON ({e}): {out}"))
}

/// The one national row of an answer without `by`.
#[track_caller]
fn national(answer: &Value) -> &Value {
    let rows = answer["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "one national row expected: {answer}");
    &rows[0]
}

/// The one row whose `key` equals `value`.
#[track_caller]
fn row<'a>(answer: &'a Value, key: &str, value: Value) -> &'a Value {
    let found: Vec<&Value> = answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r.get(key) == Some(&value))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one row with {key}={value} expected: {answer}"
    );
    found[0]
}

#[track_caller]
fn n_rows(answer: &Value) -> usize {
    answer["rows"].as_array().expect("rows").len()
}

fn flags(row: &Value) -> Vec<String> {
    row["flags"]
        .as_array()
        .map(|a| a.iter().map(|f| f.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
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

/// An unsuppressed cell: `numerator` of `denominator`, coverage their ratio.
#[track_caller]
fn assert_cell(row: &Value, numerator: u64, denominator: u64) {
    assert_eq!(row["suppressed"], json!(false), "not suppressed: {row}");
    assert_eq!(
        row["numerator"].as_u64(),
        Some(numerator),
        "numerator in {row}"
    );
    assert_eq!(
        row["denominator"].as_u64(),
        Some(denominator),
        "denominator in {row}"
    );
    assert_close(&row["coverage"], numerator as f64 / denominator as f64, row);
}

/// A suppressed cell: `suppressed: true`, counts, rate and interval present and null.
#[track_caller]
fn assert_suppressed(row: &Value) {
    assert_eq!(row["suppressed"], json!(true), "suppressed: {row}");
    for k in ["numerator", "denominator", "coverage", "ci_low", "ci_high"] {
        assert_eq!(row.get(k), Some(&Value::Null), "{k} must be null in {row}");
    }
}

/// 95 % Wilson score interval of `x` successes out of `n`.
fn wilson(x: f64, n: f64) -> (f64, f64) {
    let p = x / n;
    let z2 = Z * Z;
    let scale = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / scale;
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / scale;
    (centre - half, centre + half)
}

#[track_caller]
fn assert_wilson(row: &Value, x: u64, n: u64) {
    let (low, high) = wilson(x as f64, n as f64);
    assert_close(&row["ci_low"], low, row);
    assert_close(&row["ci_high"], high, row);
}

// ---------------------------------------------------------------------------------------
// The infant registry: cohort 2022, eight children, ten residents
// ---------------------------------------------------------------------------------------
//
// Ages are completed months at the dose.
//
// | person | born       | sex | commune | doses (age)                                                   |
// |--------|------------|-----|---------|----------------------------------------------------------------|
// | P1     | 2022-01-10 | F   | Wiltz   | hexa 2022-03-10 (2), 2022-05-10 (4), 2022-07-10 (6)            |
// | P2     | 2022-02-01 | M   | Wiltz   | hexa + DTaP-IPV both 2022-04-01 (2), hexa 2022-06-01 (4), hexa 2023-04-01 (14) |
// | P3     | 2022-03-15 | F   | Wiltz   | DTaP-IPV 2022-06-15 (3), 2022-08-15 (5), 2023-03-14 (11)       |
// | P4     | 2022-03-15 | M   | Wiltz   | DTaP-IPV 2022-06-15 (3), 2022-08-15 (5), 2023-03-15 (12)       |
// | P5     | 2022-04-20 | F   | Wiltz   | hexa 2022-06-20 (2), 2022-08-20 (4), 2022-11-20 (7)            |
// | P6     | 2022-05-05 | M   | Wiltz   | hexa 2022-10-05 (5), 2022-12-05 (7), 2023-05-10 (12)           |
// | P7     | 2022-06-01 | F   | (none)  | hexa 2022-08-01 (2), 2022-10-01 (4), 2022-12-01 (6)            |
// | P8     | 2022-07-01 | M   | Wiltz   | MMR 2023-07-01 (12), MMR 2025-01-15 (30)                       |
//
// Population, latest reference year 2023: Wiltz female 2022: 5, Wiltz male 2022: 5 → 10.
// (Reference year 2022 holds other counts, which must be ignored.)
//
// Pertussis days (same-day doses count once) and the age at the third day:
//   P1 6, P2 14 (04-01 is one day), P3 11, P4 12, P5 7, P6 12, P7 6; P8 none.
// First pertussis day: P1 2, P2 2, P3 3, P4 3, P5 2, P6 5, P7 2.
// P8's late MMR puts data_until at 2025-01-15, after every 2022 child's 24-month birthday
// (so no incomplete_follow_up flag on these answers).

struct Infants {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    wh: std::path::PathBuf,
    key: std::path::PathBuf,
    registry: Registry,
}

fn infants() -> Infants {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "k");
    let mut r = Registry::default();
    let w = Some("Wiltz");
    r.person("p1", "2022-01-10", "female", w);
    r.person("p2", "2022-02-01", "male", w);
    r.person("p3", "2022-03-15", "female", w);
    r.person("p4", "2022-03-15", "male", w);
    r.person("p5", "2022-04-20", "female", w);
    r.person("p6", "2022-05-05", "male", w);
    // P7 lives in Clervaux, a commune the population file below does not count. (Until
    // December 2026 P7 had no address; a person without one is not resident now and counts
    // nowhere: tests/residents_hand.rs.)
    r.person("p7", "2022-06-01", "female", Some("Clervaux"));
    r.person("p8", "2022-07-01", "male", w);

    r.dose("p1-1", "p1", HEXA, "2022-03-10");
    r.dose("p1-2", "p1", HEXA, "2022-05-10");
    r.dose("p1-3", "p1", HEXA, "2022-07-10");

    r.dose("p2-1", "p2", HEXA, "2022-04-01");
    r.dose("p2-1b", "p2", DTAP_IPV, "2022-04-01");
    r.dose("p2-2", "p2", HEXA, "2022-06-01");
    r.dose("p2-3", "p2", HEXA, "2023-04-01");

    r.dose("p3-1", "p3", DTAP_IPV, "2022-06-15");
    r.dose("p3-2", "p3", DTAP_IPV, "2022-08-15");
    r.dose("p3-3", "p3", DTAP_IPV, "2023-03-14");

    r.dose("p4-1", "p4", DTAP_IPV, "2022-06-15");
    r.dose("p4-2", "p4", DTAP_IPV, "2022-08-15");
    r.dose("p4-3", "p4", DTAP_IPV, "2023-03-15");

    r.dose("p5-1", "p5", HEXA, "2022-06-20");
    r.dose("p5-2", "p5", HEXA, "2022-08-20");
    r.dose("p5-3", "p5", HEXA, "2022-11-20");

    r.dose("p6-1", "p6", HEXA, "2022-10-05");
    r.dose("p6-2", "p6", HEXA, "2022-12-05");
    r.dose("p6-3", "p6", HEXA, "2023-05-10");

    r.dose("p7-1", "p7", HEXA, "2022-08-01");
    r.dose("p7-2", "p7", HEXA, "2022-10-01");
    r.dose("p7-3", "p7", HEXA, "2022-12-01");

    r.dose("p8-1", "p8", MMR, "2023-07-01");
    r.dose("p8-2", "p8", MMR, "2025-01-15");

    load(&wh, &key, &r.export(dir.path(), "v1"));
    load(
        &wh,
        &key,
        &population(
            dir.path(),
            &[
                "2022,Wiltz,female,2022,50",
                "2022,Wiltz,male,2022,50",
                "2023,Wiltz,female,2022,5",
                "2023,Wiltz,male,2022,5",
            ],
        ),
    );
    Infants {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        wh,
        key,
        registry: r,
    }
}

impl Infants {
    fn coverage(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&ALL_SHOWN);
        coverage(&self.wh, &all)
    }
}

#[test]
fn national_number_helper_matches_the_contract_example() {
    assert_eq!(national_number("1893-12-01", 57), "1893120105732");
}

#[test]
fn a_combination_vaccine_counts_for_every_antigen_it_contains() {
    let t = infants();
    // By 12 months (third day at < 12 completed months): P1 (6), P3 (11), P5 (7), P7 (6).
    // P1, P5 and P7 only ever had the hexavalent vaccine: it counts for all four antigens.
    // P3 had DTaP-IPV: pertussis and polio, but neither hib nor hepatitis B.
    let dtp3 = t.coverage(&["--indicator", "DTP3", "--cohort", "2022"]);
    assert_eq!(dtp3["antigen"], "pertussis");
    assert_eq!(dtp3["dose"], 3);
    assert_eq!(dtp3["age_months"], 12);
    assert_eq!(national(&dtp3)["cohort"], 2022);
    assert_cell(national(&dtp3), 4, 10); // P1, P3, P5, P7 of 10
    assert_eq!(flags(national(&dtp3)), Vec::<String>::new());

    let pol3 = t.coverage(&["--indicator", "Pol3", "--cohort", "2022"]);
    assert_eq!(pol3["antigen"], "polio");
    assert_cell(national(&pol3), 4, 10); // P1, P3, P5, P7 of 10

    let hepb3 = t.coverage(&["--indicator", "HepB3", "--cohort", "2022"]);
    assert_eq!(hepb3["antigen"], "hepatitis_b");
    assert_cell(national(&hepb3), 3, 10); // P1, P5, P7 of 10 (not P3: DTaP-IPV has no hepB)

    let hib3 = t.coverage(&["--indicator", "Hib3", "--cohort", "2022"]);
    assert_eq!(hib3["antigen"], "hib");
    assert_cell(national(&hib3), 3, 10); // P1, P5, P7 of 10
}

#[test]
fn doses_of_one_antigen_on_one_day_count_once() {
    let t = infants();
    // P2 had hexa + DTaP-IPV on 2022-04-01 and hexa on 2022-06-01 and 2023-04-01: three
    // pertussis days, the third at 14 months. Counting records instead of days would make
    // 2022-06-01 (4 months) the third dose and put P2 into DTP3 by 12 months (5, not 4).
    let dtp3 = t.coverage(&["--indicator", "DTP3", "--cohort", "2022"]);
    assert_cell(national(&dtp3), 4, 10); // P1, P3, P5, P7; not P2
                                         // By 15 months P2's third day (14) counts: P1, P3, P5, P7 + P4 (12), P6 (12) + P2 (14).
    let dtp3_15 = t.coverage(&[
        "--indicator",
        "DTP3",
        "--cohort",
        "2022",
        "--age-months",
        "15",
    ]);
    assert_eq!(dtp3_15["age_months"], 15);
    assert_cell(national(&dtp3_15), 7, 10);
    // By sex at 15 months: male P2, P4, P6 of 5 (P8 has no pertussis dose).
    let by_sex = t.coverage(&[
        "--indicator",
        "DTP3",
        "--cohort",
        "2022",
        "--age-months",
        "15",
        "--by",
        "sex",
    ]);
    assert_cell(row(&by_sex, "sex", json!("male")), 3, 5);
    assert_cell(row(&by_sex, "sex", json!("female")), 4, 5); // P1, P3, P5, P7
                                                             // DTP1: the shared day is P2's first dose; everyone but P8 has one by 12 months.
    let dtp1 = t.coverage(&["--indicator", "DTP1", "--cohort", "2022"]);
    assert_cell(national(&dtp1), 7, 10); // P1..P7 of 10
}

#[test]
fn a_dose_the_day_before_the_birthday_counts_on_the_birthday_it_does_not() {
    let t = infants();
    // P3 and P4, both born 2022-03-15: P3's third dose on 2023-03-14 is at 11 completed
    // months (< 12, counts); P4's on 2023-03-15 is at 12 (not before the 12-month birthday).
    // P6's third dose 2023-05-10 (born 2022-05-05) is also at 12.
    let by_sex = t.coverage(&["--indicator", "DTP3", "--cohort", "2022", "--by", "sex"]);
    assert_cell(row(&by_sex, "sex", json!("female")), 4, 5); // P1, P3, P5, P7
    assert_cell(row(&by_sex, "sex", json!("male")), 0, 5); // not P4, not P6 (12); P2 (14)
    assert_cell(&by_sex["total"], 4, 10);
    // By 13 months both doses at 12 count: 4 + P4 + P6 = 6.
    let dtp3_13 = t.coverage(&[
        "--indicator",
        "DTP3",
        "--cohort",
        "2022",
        "--age-months",
        "13",
    ]);
    assert_cell(national(&dtp3_13), 6, 10);
}

#[test]
fn entered_in_error_and_corrections_change_the_numbers() {
    let t = infants();
    let r = &t.registry;
    let dtp3 =
        |t: &Infants| t.coverage(&["--indicator", "DTP3", "--cohort", "2022", "--by", "sex"]);
    let before = dtp3(&t);
    assert_cell(&before["total"], 4, 10); // P1, P3, P5, P7
    assert_cell(row(&before, "sex", json!("female")), 4, 5);
    assert_cell(row(&before, "sex", json!("male")), 0, 5);

    // P5's third dose (2022-11-20) is entered in error in a later version: P5 keeps two
    // pertussis days. DTP3: P1, P3, P7 = 3; HepB3: P1, P7 = 2.
    let eie = immunization(
        "p5-3",
        "p5",
        HEXA,
        "2022-11-20",
        "entered-in-error",
        "2025-03-01T00:00:00Z",
    );
    load(&t.wh, &t.key, &r.export_with(&t.dir, "eie", &[eie]));
    let after_eie = dtp3(&t);
    assert_cell(&after_eie["total"], 3, 10);
    assert_cell(row(&after_eie, "sex", json!("female")), 3, 5); // P1, P3, P7
    assert_cell(row(&after_eie, "sex", json!("male")), 0, 5);
    let hepb3 = t.coverage(&["--indicator", "HepB3", "--cohort", "2022"]);
    assert_cell(national(&hepb3), 2, 10); // P1, P7

    // P6's third dose is corrected from 2023-05-10 (12 months) to 2023-05-04 (11 months,
    // the day before P6's 2023-05-05 birthday): P6 now counts. DTP3: P1, P3, P6, P7 = 4.
    let moved = immunization(
        "p6-3",
        "p6",
        HEXA,
        "2023-05-04",
        "completed",
        "2025-04-01T00:00:00Z",
    );
    load(
        &t.wh,
        &t.key,
        &r.export_with(&t.dir, "correction", &[moved]),
    );
    let after_move = dtp3(&t);
    assert_cell(&after_move["total"], 4, 10);
    assert_cell(row(&after_move, "sex", json!("female")), 3, 5); // P1, P3, P7
    assert_cell(row(&after_move, "sex", json!("male")), 1, 5); // P6
}

#[test]
fn a_resident_of_a_commune_without_population_counts_nationally_without_denominator() {
    let t = infants();
    // DTP3 by 12 months: P1, P3, P5 in Wiltz; P7 in Clervaux, which the population does not
    // count.
    let national_answer = t.coverage(&["--indicator", "DTP3", "--cohort", "2022"]);
    assert_cell(national(&national_answer), 4, 10); // P7 is in the national numerator

    let by_commune = t.coverage(&["--indicator", "DTP3", "--cohort", "2022", "--by", "commune"]);
    assert_eq!(n_rows(&by_commune), 2, "Wiltz and Clervaux: {by_commune}");
    let wiltz = row(&by_commune, "commune", json!("Wiltz"));
    assert_cell(wiltz, 3, 10);
    assert_eq!(flags(wiltz), Vec::<String>::new());
    let nowhere = row(&by_commune, "commune", json!("Clervaux"));
    assert_eq!(nowhere["suppressed"], json!(false), "{nowhere}");
    assert_eq!(nowhere["numerator"].as_u64(), Some(1), "{nowhere}"); // P7
    assert!(nowhere["denominator"].is_null(), "{nowhere}");
    assert!(nowhere["coverage"].is_null(), "{nowhere}");
    assert_eq!(flags(nowhere), vec!["no_denominator".to_string()]);
    assert_cell(&by_commune["total"], 4, 10);

    let by_canton = t.coverage(&["--indicator", "DTP3", "--cohort", "2022", "--by", "canton"]);
    assert_eq!(n_rows(&by_canton), 2, "{by_canton}");
    assert_cell(row(&by_canton, "canton", json!("Wiltz")), 3, 10);
    let nowhere = row(&by_canton, "canton", json!("Clervaux"));
    assert_eq!(nowhere["numerator"].as_u64(), Some(1), "{nowhere}");
    assert!(nowhere["denominator"].is_null(), "{nowhere}");
    assert_eq!(flags(nowhere), vec!["no_denominator".to_string()]);
}

#[test]
fn wilson_interval_of_one_cell() {
    let t = infants();
    let dtp3 = t.coverage(&["--indicator", "DTP3", "--cohort", "2022"]);
    let cell = national(&dtp3);
    assert_cell(cell, 4, 10);
    // p = 0.4, n = 10, z = 1.959964:
    //   centre = (0.4 + z²/20) / (1 + z²/10)            = 0.592073 / 1.384146 = 0.427753
    //   half   = z·sqrt(0.4·0.6/10 + z²/400) / (1 + z²/10) = 0.359288 / 1.384146 = 0.259573
    //   interval (0.168180, 0.687326)
    let (low, high) = wilson(4.0, 10.0);
    assert!(
        (low - 0.16818).abs() < 1e-4 && (high - 0.68732).abs() < 1e-4,
        "{low} {high}"
    );
    assert_wilson(cell, 4, 10);
}

#[test]
fn dropout_dtp1_to_dtp3_and_timeliness_of_dtp1() {
    let t = infants();
    // Dropout by 12 months: started = DTP1 by 12 = P1..P7 = 7; completed = DTP3 by 12 =
    // P1, P3, P5, P7 = 4; dropped = 7 - 4 = 3 (P2, P4, P6); dropout = 3/7.
    let dropout = t.coverage(&[
        "--indicator",
        "DTP3",
        "--dropout-from",
        "DTP1",
        "--cohort",
        "2022",
    ]);
    let cell = national(&dropout);
    assert_eq!(cell["suppressed"], json!(false), "{cell}");
    assert_eq!(cell["started"].as_u64(), Some(7), "{cell}");
    assert_eq!(cell["completed"].as_u64(), Some(4), "{cell}");
    assert_eq!(cell["dropped"].as_u64(), Some(3), "{cell}");
    assert_close(&cell["dropout"], 3.0 / 7.0, cell);
    assert_wilson(cell, 3, 7);

    // Timeliness of DTP1 (schedule age 2 months): the persons who ever had a first pertussis
    // day: P1..P7 = 7, at ages 2, 2, 3, 3, 2, 5, 2 → sorted 2 2 2 2 3 3 5, median 2;
    // timely (age <= 2): P1, P2, P5, P7 = 4 of 7.
    let timeliness = t.coverage(&["--indicator", "DTP1", "--cohort", "2022", "--timeliness"]);
    let cell = national(&timeliness);
    assert_eq!(cell["suppressed"], json!(false), "{cell}");
    assert_eq!(cell["vaccinated"].as_u64(), Some(7), "{cell}");
    assert_close(&cell["median_age_months"], 2.0, cell);
    assert_eq!(cell["timely"].as_u64(), Some(4), "{cell}");
    assert_close(&cell["timely_share"], 4.0 / 7.0, cell);
    assert_wilson(cell, 4, 7);
}

#[test]
fn curve_gives_cumulative_numerators_by_age() {
    let t = infants();
    // Ages at the third pertussis day: P1 6, P7 6, P5 7, P3 11, P4 12, P6 12, P2 14.
    // Row age_months = a counts third days at age < a.
    let curve = t.coverage(&[
        "--indicator",
        "DTP3",
        "--cohort",
        "2022",
        "--curve",
        "--max-age-months",
        "16",
    ]);
    assert_eq!(n_rows(&curve), 16, "ages 1..16: {curve}");
    for (age, numerator) in [
        (1, 0),
        (6, 0),  // nobody before 6 months
        (7, 2),  // P1, P7
        (8, 3),  // + P5
        (11, 3), // P3's dose at 11 is not < 11
        (12, 4), // + P3
        (13, 6), // + P4, P6
        (14, 6),
        (15, 7), // + P2
        (16, 7),
    ] {
        assert_cell(row(&curve, "age_months", json!(age)), numerator, 10);
    }
}

// ---------------------------------------------------------------------------------------
// Numerator above denominator
// ---------------------------------------------------------------------------------------

#[test]
fn a_numerator_above_the_denominator_is_flagged_and_still_shown() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "k");
    // Three girls born 2022 in Wiltz, each with a hexavalent dose at 2 months; the
    // population counts only 2 of them (they moved in after 1 January).
    let mut r = Registry::default();
    for i in 1..=3 {
        let p = format!("n{i}");
        r.person(&p, &format!("2022-01-0{i}"), "female", Some("Wiltz"));
        r.dose(&format!("{p}-1"), &p, HEXA, &format!("2022-03-0{i}"));
    }
    r.dose("n1-mmr", "n1", MMR, "2025-01-15"); // data_until after every 24-month birthday
    load(&wh, &key, &r.export(dir.path(), "fhir"));
    load(
        &wh,
        &key,
        &population(dir.path(), &["2023,Wiltz,female,2022,2"]),
    );

    let mut args = vec!["--indicator", "DTP1", "--cohort", "2022"];
    args.extend_from_slice(&ALL_SHOWN);
    let answer = coverage(&wh, &args);
    let cell = national(&answer);
    assert_cell(cell, 3, 2); // 3 of 2: coverage 1.5
    assert!(
        cell["ci_low"].is_null() && cell["ci_high"].is_null(),
        "{cell}"
    );
    assert_eq!(
        flags(cell),
        vec!["numerator_exceeds_denominator".to_string()]
    );
}

// ---------------------------------------------------------------------------------------
// Suppression (default threshold 8)
// ---------------------------------------------------------------------------------------
//
// Cohort 2022, population reference year 2023:
//   Wiltz female 20, Kehlen male 20, Clervaux male 30, Troisvierges male 3 → 73
//   (female 20, male 53).
// Persons, each with a hexavalent dose at 2 months (DTP1):
//   15 girls in Wiltz, 10 boys in Kehlen (the first 3 also at 4 and 6 months: DTP3),
//   12 boys in Clervaux; nobody in Troisvierges. DTP1 = 37.

fn suppression_registry(dir: &Path) -> std::path::PathBuf {
    let wh = dir.join("wh");
    let key = key_file(dir, "k");
    let mut r = Registry::default();
    for i in 1..=15 {
        let p = format!("w{i}");
        r.person(&p, &format!("2022-01-{i:02}"), "female", Some("Wiltz"));
        r.dose(&format!("{p}-1"), &p, HEXA, &format!("2022-03-{i:02}"));
    }
    for i in 1..=10 {
        let p = format!("k{i}");
        r.person(&p, &format!("2022-02-{i:02}"), "male", Some("Kehlen"));
        r.dose(&format!("{p}-1"), &p, HEXA, &format!("2022-04-{i:02}"));
        if i <= 3 {
            r.dose(&format!("{p}-2"), &p, HEXA, &format!("2022-06-{i:02}"));
            r.dose(&format!("{p}-3"), &p, HEXA, &format!("2022-08-{i:02}"));
        }
    }
    for i in 1..=12 {
        let p = format!("c{i}");
        r.person(&p, &format!("2022-03-{i:02}"), "male", Some("Clervaux"));
        r.dose(&format!("{p}-1"), &p, HEXA, &format!("2022-05-{i:02}"));
    }
    r.dose("c1-mmr", "c1", MMR, "2025-01-15"); // data_until after every 24-month birthday
    load(&wh, &key, &r.export(dir, "fhir"));
    load(
        &wh,
        &key,
        &population(
            dir,
            &[
                "2023,Wiltz,female,2022,20",
                "2023,Kehlen,male,2022,20",
                "2023,Clervaux,male,2022,30",
                "2023,Troisvierges,male,2022,3",
            ],
        ),
    );
    wh
}

#[test]
fn primary_and_secondary_suppression() {
    let dir = tempfile::tempdir().unwrap();
    let wh = suppression_registry(dir.path());

    // National DTP1: 37 of 73, 73 - 37 = 36: nothing in 1..7, shown.
    let dtp1 = coverage(&wh, &["--indicator", "DTP1", "--cohort", "2022"]);
    assert_eq!(dtp1["suppression_threshold"], 8);
    assert_cell(national(&dtp1), 37, 73);

    // National DTP3: numerator 3 (k1, k2, k3) is in 1..7: suppressed.
    let dtp3 = coverage(&wh, &["--indicator", "DTP3", "--cohort", "2022"]);
    assert_suppressed(national(&dtp3));

    // DTP1 is one publication (docs/coverage.md, "Disclosure control"): every breakdown reads
    // the same plan. Primary: commune Wiltz 15/20 and canton Wiltz 15/20 (difference 5),
    // Troisvierges 0/3 (denominator 3: its range must be the whole 0..3), female 15/20.
    // Complements, each withheld cell needing room to move by 8 (Troisvierges by 3) against
    // a withheld partner without moving a published cell:
    // - female can only trade with male (the only other sex): male 22/53 goes.
    // - Troisvierges can only trade inside canton Clervaux: commune Clervaux 12/30 goes
    //   (Troisvierges up 3 against Clervaux down 12: room 3 = its whole range).
    // - commune Clervaux then has room up min(18, Troisvierges' 0 down) = 0 and down
    //   min(12, Troisvierges' 3 up) = 3 < 8, and no sibling left: canton Clervaux goes.
    // - canton Wiltz has one commune: it must trade with another withheld canton through a
    //   withheld commune there. The order keyed by the warehouse's secret (random: the first
    //   ingest creates it) offers Capellen or Clervaux first. Capellen first: Capellen goes,
    //   and Kehlen 10/20 with it (a withheld canton whose communes were all published would
    //   be their sum); Wiltz then moves up min(5, 10) = 5 and down min(15, 10) = 10 against
    //   Capellen, and canton Clervaux trades with Wiltz or Capellen: up min(18, 15) = 15,
    //   down min(12, 10) = 10. Clervaux first: Clervaux is Wiltz's partner and, by DTP1's
    //   own plan, Capellen and Kehlen stay (the order is keyed so that nobody outside can
    //   tell complements from primary cells; see
    //   every_engine_on_one_warehouse_takes_complements_in_its_secret_order).
    // Either way every commune, canton and sex row is withheld (DTP3, below); the national
    // 37 of 73 is shown.
    // (DTP3, a later dose of the same antigen, withholds its national cell, 3 of 73, and with
    // it every row; DTP1 withholds the rows DTP3 withholds, since DTP3 ≤ DTP1 in every cell,
    // so the rows would go on that ground too. Its national cell stays: 3 ≤ DTP1 tells
    // nothing about 37.)
    let by_sex = coverage(
        &wh,
        &["--indicator", "DTP1", "--cohort", "2022", "--by", "sex"],
    );
    assert_eq!(n_rows(&by_sex), 2, "{by_sex}");
    assert_suppressed(row(&by_sex, "sex", json!("female")));
    assert_suppressed(row(&by_sex, "sex", json!("male")));
    assert_cell(&by_sex["total"], 37, 73);

    let by_commune = coverage(
        &wh,
        &["--indicator", "DTP1", "--cohort", "2022", "--by", "commune"],
    );
    assert_eq!(n_rows(&by_commune), 4, "{by_commune}");
    for commune in ["Wiltz", "Troisvierges", "Kehlen", "Clervaux"] {
        assert_suppressed(row(&by_commune, "commune", json!(commune)));
    }
    assert_cell(&by_commune["total"], 37, 73);

    let by_canton = coverage(
        &wh,
        &["--indicator", "DTP1", "--cohort", "2022", "--by", "canton"],
    );
    assert_eq!(n_rows(&by_canton), 3, "{by_canton}");
    for canton in ["Wiltz", "Capellen", "Clervaux"] {
        assert_suppressed(row(&by_canton, "canton", json!(canton)));
    }
    assert_cell(&by_canton["total"], 37, 73);

    // Dropout DTP1 → DTP3 publishes DTP1 (started) and DTP3 (completed) by commune: it
    // withholds at least what either coverage publication withholds (here everything: DTP3's
    // national 3 fails, so DTP3 withholds every row).
    let dropout = coverage(
        &wh,
        &[
            "--indicator",
            "DTP3",
            "--dropout-from",
            "DTP1",
            "--cohort",
            "2022",
            "--by",
            "commune",
        ],
    );
    // (Troisvierges has no row: nobody there started.)
    for commune in ["Wiltz", "Kehlen", "Clervaux"] {
        let cell = row(&dropout, "commune", json!(commune));
        assert_eq!(cell["suppressed"], json!(true), "{cell}");
        assert!(
            cell["started"].is_null() && cell["completed"].is_null(),
            "{cell}"
        );
    }
}

/// docs/coverage.md, "Disclosure control": a withheld national total withholds every row.
/// (Before December 2026 the rows were protected against the total only, and with the total
/// withheld the published ones stayed; but a canton row or the sexes could then still be
/// subtracted from them.)
#[test]
fn a_withheld_total_withholds_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let wh = suppression_registry(dir.path());
    // DTP3: Kehlen 3/20 and nobody else; the total 3/73 fails (numerator 3), so Wiltz 0/20 and
    // Clervaux 0/30, which pass on their own, are withheld too.
    let dtp3_by_commune = coverage(
        &wh,
        &["--indicator", "DTP3", "--cohort", "2022", "--by", "commune"],
    );
    assert_eq!(n_rows(&dtp3_by_commune), 4, "{dtp3_by_commune}");
    for commune in ["Kehlen", "Troisvierges", "Wiltz", "Clervaux"] {
        assert_suppressed(row(&dtp3_by_commune, "commune", json!(commune)));
    }
    assert_suppressed(&dtp3_by_commune["total"]);
}

// ---------------------------------------------------------------------------------------
// FLU65: seasons 1 September – 31 August
// ---------------------------------------------------------------------------------------
//
// | person | born       | influenza doses                      |
// |--------|------------|--------------------------------------|
// | F1     | 1950-05-01 | 2024-08-31                           |
// | F2     | 1952-03-10 | 2024-09-01                           |
// | F3     | 1959-07-07 | 2024-01-15, 2024-11-01               |
// | F4     | 1945-01-01 | 2023-10-01, 2023-11-01, 2024-10-15   |
// | F5     | 1960-02-02 | 2024-10-01                           |
//
// Season 2023 (2023-09-01..2024-08-31), born <= 2023 - 65 = 1958: F1 (08-31 is the season's
//   last day), F4 (twice, one person) = 2. Not F2 (09-01 is season 2024), not F3 (1959).
// Season 2024 (2024-09-01..2025-08-31), born <= 1959: F2, F3 (1959 <= 1959), F4 = 3.
//   Not F1 (its dose is in season 2023), not F5 (1960).
// Denominators: season 2023 from reference year 2024, season 2024 from 2025 (not 2023 nor
// the latest, 2026); season 2026 has no reference year 2027 and uses 2026.

#[test]
fn flu65_seasons_run_from_september_to_august() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "k");
    let mut r = Registry::default();
    let w = Some("Wiltz");
    r.person("f1", "1950-05-01", "female", w);
    r.person("f2", "1952-03-10", "male", w);
    r.person("f3", "1959-07-07", "female", w);
    r.person("f4", "1945-01-01", "male", w);
    r.person("f5", "1960-02-02", "male", w);
    r.dose("f1-1", "f1", FLU, "2024-08-31");
    r.dose("f2-1", "f2", FLU, "2024-09-01");
    r.dose("f3-1", "f3", FLU, "2024-01-15");
    r.dose("f3-2", "f3", FLU, "2024-11-01");
    r.dose("f4-1", "f4", FLU, "2023-10-01");
    r.dose("f4-2", "f4", FLU, "2023-11-01");
    r.dose("f4-3", "f4", FLU, "2024-10-15");
    r.dose("f5-1", "f5", FLU, "2024-10-01");
    load(&wh, &key, &r.export(dir.path(), "fhir"));
    let mut rows = vec![
        // Reference year 2023: not used by either season.
        "2023,Wiltz,female,1950,50",
        "2023,Wiltz,male,1945,50",
        // Reference year 2024 (season 2023): born <= 1958: 4 + 3 + 2 = 9.
        "2024,Wiltz,female,1950,4",
        "2024,Wiltz,male,1945,3",
        "2024,Wiltz,male,1952,2",
        "2024,Wiltz,female,1959,5",
        "2024,Wiltz,male,1960,6",
        // Reference year 2025 (season 2024): born <= 1959: 4 + 2 + 2 + 5 = 13.
        "2025,Wiltz,female,1950,4",
        "2025,Wiltz,male,1945,2",
        "2025,Wiltz,male,1952,2",
        "2025,Wiltz,female,1959,5",
        "2025,Wiltz,male,1960,6",
    ];
    // Reference year 2026, the latest (season 2026, born <= 1961): 5 × 40 = 200.
    rows.extend([
        "2026,Wiltz,female,1950,40",
        "2026,Wiltz,male,1945,40",
        "2026,Wiltz,male,1952,40",
        "2026,Wiltz,female,1959,40",
        "2026,Wiltz,male,1960,40",
    ]);
    load(&wh, &key, &population(dir.path(), &rows));

    let season = |cohort: &str| {
        let mut args = vec!["--indicator", "FLU65", "--cohort", cohort];
        args.extend_from_slice(&ALL_SHOWN);
        coverage(&wh, &args)
    };
    let s2023 = season("2023");
    assert_eq!(s2023["kind"], "season");
    assert_eq!(s2023["antigen"], "influenza");
    assert_eq!(national(&s2023)["season"], "2023/24");
    assert_cell(national(&s2023), 2, 9); // F1, F4 of 9
    assert!(
        s2023["population_source"]
            .as_str()
            .unwrap_or("")
            .contains("2024"),
        "{s2023}"
    );

    let s2024 = season("2024");
    assert_eq!(national(&s2024)["season"], "2024/25");
    assert_cell(national(&s2024), 3, 13); // F2, F3, F4 of 13
    assert!(
        s2024["population_source"]
            .as_str()
            .unwrap_or("")
            .contains("2025"),
        "{s2024}"
    );

    let s2026 = season("2026");
    assert_cell(national(&s2026), 0, 200); // no dose; reference year 2027 absent → 2026
}

// ---------------------------------------------------------------------------------------
// HTTP answers as the command line does
// ---------------------------------------------------------------------------------------

#[test]
fn http_coverage_is_the_command_line_json() {
    let dir = tempfile::tempdir().unwrap();
    let wh = suppression_registry(dir.path());
    let cli = coverage(
        &wh,
        &["--indicator", "DTP1", "--cohort", "2022", "--by", "sex"],
    );

    let server = serve(&wh, &[]);
    let port = server.port;
    let (status, body) =
        http_get(port, "/api/coverage?indicator=DTP1&cohort=2022&by=sex").expect("an answer");
    assert_eq!(status, 200, "{body}");
    let http: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(http, cli);
    // And it is the hand-counted answer (see primary_and_secondary_suppression).
    assert_suppressed(row(&http, "sex", json!("female")));
    assert_suppressed(row(&http, "sex", json!("male")));
    assert_cell(&http["total"], 37, 73);

    let (status, body) = http_get(port, "/api/coverage?indicator=NOPE&cohort=2022").unwrap();
    assert_eq!(status, 400, "{body}");
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert!(
        refused["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{refused}"
    );
}

// ---------------------------------------------------------------------------------------
// The complement order: one secret per warehouse, the same for every door
// ---------------------------------------------------------------------------------------
//
// docs/coverage.md, "The order complements are taken in". Cohort 2022, all girls, each
// vaccinated one with a hexavalent dose at 2 months (DTP1 by 12 months); threshold 3 (a cell
// fails when its denominator, numerator or difference is 1 or 2):
//
//   canton Clervaux: Clervaux 9/10 (1 unvaccinated: primary), Troisvierges 5/10, Wincrange 5/10
//   canton Wiltz:    Wiltz 5/10
//   national 24/40, female 24/40, canton Clervaux 19/30: all pass.
//
// Clervaux alone would be canton Clervaux minus its two published siblings, so one sibling
// goes with it. Either gives it room up min(1, 5) + down min(9, 5) = 6 ≥ 3 and gets
// min(5, 9) + min(5, 1) = 6 back; both denominators are ≥ 3. So the order alone decides:
// the sibling whose name has the smaller BLAKE3 keyed hash under the order key, which is
// derived from the warehouse's secret (or from nothing: the public order). Nothing else
// is withheld (DTP3, 0 of 10 everywhere, passes).

/// The key-derivation context of the order (query/src/coverage/engine.rs), restated.
const ORDER_CONTEXT: &str = "vaxlake 2026-12 coverage complementary suppression order";

/// Which of Troisvierges and Wincrange the order keyed by `secret` takes first.
fn first_sibling(secret: &[u8]) -> &'static str {
    let key = blake3::derive_key(ORDER_CONTEXT, secret);
    let hash = |name: &str| *blake3::keyed_hash(&key, name.as_bytes()).as_bytes();
    if hash("Troisvierges") < hash("Wincrange") {
        "Troisvierges"
    } else {
        "Wincrange"
    }
}

/// A secret (random-looking bytes) whose order differs from the public one on this case.
fn secret_against_the_public_order() -> [u8; 32] {
    (0u32..)
        .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
        .find(|secret| first_sibling(secret) != first_sibling(b""))
        .unwrap()
}

/// The registry above in `dir/wh`, its secret `secret` placed before the first ingest (as
/// a restored backup would be); returns the warehouse and every ingest's stdout and stderr.
fn order_registry(dir: &Path, secret: &[u8; 32]) -> (std::path::PathBuf, Vec<Vec<u8>>) {
    let wh = dir.join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    std::fs::write(wh.join("_vaxlake_order.secret"), secret).unwrap();
    let key = key_file(dir, "k");
    let mut r = Registry::default();
    for (commune, vaccinated) in [
        ("Clervaux", 9),
        ("Troisvierges", 5),
        ("Wincrange", 5),
        ("Wiltz", 5),
    ] {
        for i in 1..=10 {
            let p = format!("{}{i}", &commune[..3]);
            r.person(&p, &format!("2022-01-{i:02}"), "female", Some(commune));
            if i <= vaccinated {
                r.dose(&format!("{p}-1"), &p, HEXA, &format!("2022-03-{i:02}"));
            }
        }
    }
    r.dose("Wil1-mmr", "Wil1", MMR, "2025-01-15"); // data_until after every 24-month birthday
    let mut outputs = Vec::new();
    for source in [
        r.export(dir, "fhir"),
        population(
            dir,
            &[
                "2023,Clervaux,female,2022,10",
                "2023,Troisvierges,female,2022,10",
                "2023,Wincrange,female,2022,10",
                "2023,Wiltz,female,2022,10",
            ],
        ),
    ] {
        let (_, out, err) = ingest(&wh, &key, &source);
        outputs.extend([out.into_bytes(), err.into_bytes()]);
    }
    (wh, outputs)
}

/// The communes an answer withholds, sorted.
fn withheld(answer: &Value, key: &str) -> Vec<String> {
    let mut names: Vec<String> = answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["suppressed"] == json!(true))
        .map(|r| r[key].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// Fails if any of `outputs` holds `secret`: raw, in hex (either case) or as a Rust byte
/// list (what `{:?}` of the bytes would print).
#[track_caller]
fn assert_no_secret(secret: &[u8; 32], outputs: &[Vec<u8>]) {
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let decimal = format!("{:?}", &secret[..8]);
    let decimal = decimal.trim_end_matches(']');
    let needles: [&[u8]; 4] = [
        secret,
        hex.as_bytes(),
        &hex.to_uppercase().into_bytes(),
        decimal.as_bytes(),
    ];
    for (index, output) in outputs.iter().enumerate() {
        for needle in needles {
            assert!(
                !output.windows(needle.len()).any(|w| w == needle),
                "output {index} holds the complement-order secret"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_engine_on_one_warehouse_takes_complements_in_its_secret_order() {
    use vaxlake_query::coverage::{CoverageEngine, CoverageQuery, Suppression};
    use vaxlake_query::{QueryOptions, Warehouse};

    let dir = tempfile::tempdir().unwrap();
    let secret = secret_against_the_public_order();
    let (wh, _) = order_registry(dir.path(), &secret);
    // The ingest kept the secret it found (it creates one only where there is none).
    assert_eq!(
        std::fs::read(wh.join("_vaxlake_order.secret")).unwrap(),
        secret
    );

    let query: CoverageQuery =
        serde_json::from_value(json!({"indicator": "DTP1", "cohort": "2022", "by": "commune"}))
            .unwrap();
    let rule = Suppression { threshold: 3 };
    let answer = |engine: CoverageEngine| {
        let query = query.clone();
        async move {
            let answer = engine.coverage(&query).await.unwrap();
            vaxlake_query::output::to_json(answer.as_ref()).unwrap()
        }
    };
    let open = || async {
        Warehouse::open(wh.to_str().unwrap(), QueryOptions::default())
            .await
            .unwrap()
    };
    let keyed = vec!["Clervaux".to_string(), first_sibling(&secret).to_string()];
    let public = vec!["Clervaux".to_string(), first_sibling(b"").to_string()];
    assert_ne!(keyed, public, "the case distinguishes the two orders");

    // Two engines on two openings of the warehouse: the same plan, the secret's.
    let first = answer(CoverageEngine::new(open().await, rule).unwrap()).await;
    let second = answer(CoverageEngine::new(open().await, rule).unwrap()).await;
    assert_eq!(withheld(&first, "commune"), keyed, "{first}");
    assert_eq!(first["rows"], second["rows"]);
    // The public order (an empty secret) withholds the other sibling: the key is used.
    let unkeyed = CoverageEngine::new(open().await, rule)
        .unwrap()
        .with_complement_key(b"");
    let unkeyed = answer(unkeyed).await;
    assert_eq!(withheld(&unkeyed, "commune"), public, "{unkeyed}");

    // The doors: the command line and the HTTP API withhold what the engine does.
    let threshold = ["--suppression-threshold", "3"];
    let mut args = vec!["--indicator", "DTP1", "--cohort", "2022", "--by", "commune"];
    args.extend(threshold);
    let cli = coverage(&wh, &args);
    assert_eq!(withheld(&cli, "commune"), keyed, "{cli}");
    let server = serve(&wh, &threshold);
    let (status, body) = http_get(
        server.port,
        "/api/coverage?indicator=DTP1&cohort=2022&by=commune",
    )
    .expect("an answer");
    assert_eq!(status, 200, "{body}");
    let http: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(http, cli);
}

/// Every door of one generated warehouse withholds the same rows: `vaxlake coverage --by
/// commune`, `GET /api/coverage?...&by=commune` and the `--all` table; and the secret the
/// first ingest created never shows in anything they print, log or answer.
#[test]
fn the_doors_of_a_generated_warehouse_withhold_the_same_rows_and_never_show_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "master.key");
    generate(&export, 2000, 5);
    let mut outputs: Vec<Vec<u8>> = Vec::new();
    for source in [
        format!("fhir:{}", export.join("fhir").display()),
        format!("population:{}", export.join("population.csv").display()),
    ] {
        let (_, out, err) = ingest(&wh, &key, &source);
        outputs.extend([out.into_bytes(), err.into_bytes()]);
    }
    let secret: [u8; 32] = std::fs::read(wh.join("_vaxlake_order.secret"))
        .expect("the first ingest created the secret")
        .try_into()
        .expect("32 bytes");

    let all_out = run(&[
        "coverage",
        "--warehouse",
        wh.to_str().unwrap(),
        "--all",
        "--format",
        "json",
    ]);
    assert!(all_out.status.success());
    let all: Value = serde_json::from_slice(&all_out.stdout).unwrap();
    outputs.extend([all_out.stdout.clone(), all_out.stderr.clone()]);
    // The birth-cohort publications whose commune rows are partly withheld, partly shown:
    // where complementary suppression had choices to make.
    let mut mixed: std::collections::BTreeMap<(String, i64), (usize, usize)> = Default::default();
    for r in all["rows"].as_array().expect("rows") {
        if r["by"] != json!("commune") {
            continue;
        }
        let entry = mixed
            .entry((
                r["indicator"].as_str().unwrap().to_string(),
                r["cohort"].as_i64().unwrap(),
            ))
            .or_default();
        if r["suppressed"] == json!(true) {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    let cases: Vec<(String, i64)> = mixed
        .into_iter()
        .filter(|(_, (hidden, shown))| *hidden > 0 && *shown > 0)
        .map(|(case, _)| case)
        .take(6)
        .collect();
    // (On 2,000 persons a birth cohort's communes are mostly all withheld; FLU65's seasons,
    // over everyone aged 65 and more, are partly shown.)
    assert!(!cases.is_empty(), "no commune answer is partly withheld");

    let log = dir.path().join("serve.log");
    let server = serve_logged(&wh, &[], Some(&log));
    for (indicator, cohort) in &cases {
        let out = run(&[
            "coverage",
            "--warehouse",
            wh.to_str().unwrap(),
            "--format",
            "json",
            "--indicator",
            indicator,
            "--cohort",
            &cohort.to_string(),
            "--by",
            "commune",
        ]);
        assert!(out.status.success());
        let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
        outputs.extend([out.stdout, out.stderr]);
        let (status, body) = http_get(
            server.port,
            &format!("/api/coverage?indicator={indicator}&cohort={cohort}&by=commune"),
        )
        .expect("an answer");
        assert_eq!(status, 200, "{body}");
        let http: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(http, cli, "{indicator} {cohort}");
        // The --all table's commune rows of the same publication withhold the same communes.
        let mut from_all: Vec<String> = all["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["by"] == json!("commune")
                    && r["indicator"] == json!(indicator)
                    && r["cohort"] == json!(cohort)
                    && r["suppressed"] == json!(true)
            })
            .map(|r| r["group"].as_str().unwrap().to_string())
            .collect();
        from_all.sort();
        assert_eq!(withheld(&cli, "commune"), from_all, "{indicator} {cohort}");
        outputs.push(body.into_bytes());
    }
    for path in [
        "/api/health",
        "/api/coverage/indicators",
        "/api/coverage/flags",
    ] {
        let (_, body) = http_get(server.port, path).expect("an answer");
        outputs.push(body.into_bytes());
    }
    drop(server);
    outputs.push(std::fs::read(&log).unwrap());
    assert_no_secret(&secret, &outputs);
}

// ---------------------------------------------------------------------------------------
// Valid doses (docs/coverage.md, "Valid doses"): only valid doses count
// ---------------------------------------------------------------------------------------
//
// Cohort 2023, all born 2023-01-10 in Wiltz (ages in completed months):
//
// | person | sex | doses (age)                                                              |
// |--------|-----|--------------------------------------------------------------------------|
// | v1     | F   | MMR 2023-09-20 (8: MCV0, below 9 months), MMR 2024-01-15 (12)             |
// | v2     | M   | hexa 2023-03-10 (2), 2023-03-25 (15 days later: too soon), 2023-04-20 (3) |
// | v3     | F   | hexa 2023-03-10, 04-10, 05-10 (2, 3, 4); PCV the same days               |
// | v4     | M   | Rotarix 2023-03-10 (2), 2023-04-10 (3): a series of 2                     |
// | v5     | F   | J07BH01, product not recorded, 2023-03-10, 2023-04-10: a series of 3      |
// | v6     | M   | RotaTeq 2023-05-15 (4), 06-15 (5), 07-15 (6): dose 1 after month 3        |
// | v7     | F   | PCV 2023-03-10, 2023-05-10; PPSV23 2024-01-15 (12)                        |
//
// Cohort 2010, girls born 2010-02-01, HPV 9-valent, first dose 2021-02-01 (132 months):
// h1 second 2021-05-01 (3 months later: too soon for two doses), third 2021-11-01 (141);
// h2 second 2021-05-01 only; h3 second 2021-07-01 (5 months: complete at 137).
//
// Population 2024: Wiltz female 2023: 4, male 2023: 3 (cohort 2023: 7); female 2010: 3.
//
// By hand (version 1 of the definitions in brackets):
//   MCV1 = 1 (v1 at 12) [1, at 8]; MCV2 = 0 [1: v1's 12-month dose].
//   DTP1 = 2 (v2, v3); DTP3 = 1 (v3) [2: v2's third day]. Pol3, Hib3, HepB3 = 1 likewise.
//   RotaC = 1 (v4) [2: v5's two monovalent doses were a series of 2; v6 had 3].
//   PCV3 = 1 (v3) [2: v7's PPSV23 counted as a third pneumococcal day].
//   HPVc = 2 of 3 (h1 at 141, h3 at 137) [3: h2's second dose completed it].
// Invalid dose days in antigen_doses: below_minimum_age 4 (v1's MMR at 8 months for
// measles, mumps and rubella; v7's PPSV23 before 24 months); interval_too_short 6 (v2's
// 15-day hexavalent: six antigens); above_maximum_age 3 (v6's three rotavirus doses, each
// judged as a first dose).

#[test]
fn only_valid_doses_count() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "k");
    let mut r = Registry::default();
    let w = Some("Wiltz");
    for (id, sex) in [
        ("v1", "female"),
        ("v2", "male"),
        ("v3", "female"),
        ("v4", "male"),
        ("v5", "female"),
        ("v6", "male"),
        ("v7", "female"),
    ] {
        r.person(id, "2023-01-10", sex, w);
    }
    for id in ["h1", "h2", "h3"] {
        r.person(id, "2010-02-01", "female", w);
    }
    r.dose("v1-1", "v1", MMR, "2023-09-20");
    r.dose("v1-2", "v1", MMR, "2024-01-15");
    r.dose("v2-1", "v2", HEXA, "2023-03-10");
    r.dose("v2-2", "v2", HEXA, "2023-03-25");
    r.dose("v2-3", "v2", HEXA, "2023-04-20");
    for (n, date) in ["2023-03-10", "2023-04-10", "2023-05-10"]
        .iter()
        .enumerate()
    {
        r.dose(&format!("v3-h{n}"), "v3", HEXA, date);
        r.dose(&format!("v3-p{n}"), "v3", "J07AL02", date);
    }
    let named = |id: &str, patient: &str, atc: &str, name: &str, date: &str| {
        immunization(id, patient, atc, date, "completed", V1).replace(
            &format!(r#""code":"{atc}"}}"#),
            &format!(r#""code":"{atc}","display":"{name}"}}"#),
        )
    };
    r.immunizations
        .push(named("v4-1", "v4", "J07BH01", "Rotarix", "2023-03-10"));
    r.immunizations
        .push(named("v4-2", "v4", "J07BH01", "Rotarix", "2023-04-10"));
    r.dose("v5-1", "v5", "J07BH01", "2023-03-10");
    r.dose("v5-2", "v5", "J07BH01", "2023-04-10");
    for (n, date) in ["2023-05-15", "2023-06-15", "2023-07-15"]
        .iter()
        .enumerate()
    {
        r.immunizations
            .push(named(&format!("v6-{n}"), "v6", "J07BH02", "RotaTeq", date));
    }
    r.dose("v7-1", "v7", "J07AL02", "2023-03-10");
    r.dose("v7-2", "v7", "J07AL02", "2023-05-10");
    r.dose("v7-3", "v7", "J07AL01", "2024-01-15");
    r.dose("h1-1", "h1", "J07BM03", "2021-02-01");
    r.dose("h1-2", "h1", "J07BM03", "2021-05-01");
    r.dose("h1-3", "h1", "J07BM03", "2021-11-01");
    r.dose("h2-1", "h2", "J07BM03", "2021-02-01");
    r.dose("h2-2", "h2", "J07BM03", "2021-05-01");
    r.dose("h3-1", "h3", "J07BM03", "2021-02-01");
    r.dose("h3-2", "h3", "J07BM03", "2021-07-01");
    load(&wh, &key, &r.export(dir.path(), "v"));
    load(
        &wh,
        &key,
        &population(
            dir.path(),
            &[
                "2024,Wiltz,female,2023,4",
                "2024,Wiltz,male,2023,3",
                "2024,Wiltz,female,2010,3",
            ],
        ),
    );

    let numerator = |indicator: &str, cohort: &str| {
        let mut args = vec!["--indicator", indicator, "--cohort", cohort];
        args.extend_from_slice(&ALL_SHOWN);
        let answer = coverage(&wh, &args);
        let row = national(&answer).clone();
        assert_eq!(answer["definition_version"], json!(2), "{answer}");
        row["numerator"].as_u64().unwrap()
    };
    for (indicator, cohort, expected) in [
        ("MCV1", "2023", 1),
        ("MCV2", "2023", 0),
        ("DTP1", "2023", 2),
        ("DTP3", "2023", 1),
        ("Pol3", "2023", 1),
        ("Hib3", "2023", 1),
        ("HepB3", "2023", 1),
        ("RotaC", "2023", 1),
        ("PCV3", "2023", 1),
        ("HPVc", "2010", 2),
    ] {
        assert_eq!(numerator(indicator, cohort), expected, "{indicator}");
    }

    let reasons = sql_csv(
        &wh,
        "SELECT invalid_reason, count(*) AS days FROM antigen_doses \
         WHERE NOT valid GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(
        reasons,
        "invalid_reason,days\nabove_maximum_age,3\nbelow_minimum_age,4\ninterval_too_short,6\n"
    );
    // MCV1 is v1's 12-month dose: dose_seq 1 at 12 months, the 8-month one unnumbered.
    assert_eq!(
        sql_csv(
            &wh,
            "SELECT age_months_at_dose, dose_seq, valid FROM antigen_doses \
             WHERE antigen = 'measles' ORDER BY administered_on",
        ),
        "age_months_at_dose,dose_seq,valid\n8,,false\n12,1,true\n"
    );

    // The data-quality endpoint, over HTTP: invalid days by antigen and reason.
    let server = serve(&wh, &["--suppression-threshold", "1"]);
    let (status, body) = http_get(server.port, "/api/coverage/invalid_doses").unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let doses = |antigen: &str, reason: &str| {
        answer["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["antigen"] == json!(antigen) && row["reason"] == json!(reason))
            .map(|row| row["doses"].as_u64().unwrap())
    };
    assert_eq!(doses("rotavirus", "above_maximum_age"), Some(3));
    assert_eq!(doses("pertussis", "interval_too_short"), Some(1));
    assert_eq!(doses("measles", "below_minimum_age"), Some(1));
    assert_eq!(
        doses("pneumococcal_polysaccharide", "below_minimum_age"),
        Some(1)
    );
    // Valid pertussis days: v2 2, v3 3.
    assert_eq!(doses("pertussis", "valid"), Some(5));
    assert_eq!(doses("hpv", "interval_too_short"), None);
    let total = |antigen: &str| {
        answer["totals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["antigen"] == json!(antigen))
            .map(|row| row["doses"].as_u64().unwrap())
    };
    assert_eq!(total("pertussis"), Some(6));
    drop(server);

    // The same table at threshold 4, protected as one table (docs/coverage.md, "Invalid
    // doses: disclosure control"). Each antigen's days by reason:
    //   measles, mumps, rubella: below_minimum_age 1, valid 1 (total 2: below 4, so the
    //     total and both rows are withheld);
    //   the six hexavalent antigens: interval_too_short 1, valid 5 (total 6);
    //   rotavirus: above_maximum_age 3, valid 4 (total 7);
    //   pneumococcal: valid 5; pneumococcal_polysaccharide: below_minimum_age 1 (total 1);
    //   hpv: valid 7.
    // The primary rule alone withheld pertussis' 1 and rotavirus' 3 but published valid 5
    // and 4 beside totals of 6 and 7 (the hexavalent and rotavirus doses given): 6 − 5 = 1
    // and 7 − 4 = 3 exactly. Now each antigen's only other cell, valid, goes too: the
    // withheld cells hold 6 and 7 together, each anywhere in 0..6 and 0..7 (≥ 4).
    let server = serve(&wh, &["--suppression-threshold", "4"]);
    let (status, body) = http_get(server.port, "/api/coverage/invalid_doses").unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["suppression_threshold"], json!(4));
    let cell = |antigen: &str, reason: &str| {
        let row = answer["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["antigen"] == json!(antigen) && row["reason"] == json!(reason))
            .unwrap_or_else(|| panic!("{antigen} {reason}: {body}"));
        assert_eq!(row["suppressed"].as_bool().unwrap(), row["doses"].is_null());
        row["doses"].as_u64()
    };
    let total = |antigen: &str| {
        let row = answer["totals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["antigen"] == json!(antigen))
            .unwrap_or_else(|| panic!("{antigen}: {body}"));
        assert_eq!(row["suppressed"].as_bool().unwrap(), row["doses"].is_null());
        row["doses"].as_u64()
    };
    for antigen in [
        "diphtheria",
        "tetanus",
        "pertussis",
        "polio",
        "hib",
        "hepatitis_b",
    ] {
        assert_eq!(cell(antigen, "interval_too_short"), None, "{antigen}");
        assert_eq!(cell(antigen, "valid"), None, "{antigen}");
        assert_eq!(total(antigen), Some(6), "{antigen}");
    }
    assert_eq!(cell("rotavirus", "above_maximum_age"), None);
    assert_eq!(cell("rotavirus", "valid"), None);
    assert_eq!(total("rotavirus"), Some(7));
    for antigen in ["measles", "mumps", "rubella"] {
        assert_eq!(cell(antigen, "below_minimum_age"), None, "{antigen}");
        assert_eq!(cell(antigen, "valid"), None, "{antigen}");
        assert_eq!(total(antigen), None, "{antigen}");
    }
    assert_eq!(
        cell("pneumococcal_polysaccharide", "below_minimum_age"),
        None
    );
    assert_eq!(total("pneumococcal_polysaccharide"), None);
    assert_eq!(cell("pneumococcal", "valid"), Some(5));
    assert_eq!(total("pneumococcal"), Some(5));
    assert_eq!(cell("hpv", "valid"), Some(7));
    assert_eq!(total("hpv"), Some(7));
    assert_eq!(
        answer["rows"].as_array().unwrap().len(),
        3 * 2 + 6 * 2 + 2 + 1 + 1 + 1
    );
}

// ---------------------------------------------------------------------------------------
// Pooled cohorts (docs/coverage.md, "Pooled cohorts and bands")
// ---------------------------------------------------------------------------------------
//
// Wiltz (canton Wiltz) and Clervaux (canton Clervaux), 20 children born in each of 2021 and
// 2022, each cohort's population 20 (in the reference years 2023 and 2024). DTP1 at 2 months to: Wiltz 10 (2021) and 11 (2022),
// Clervaux 10 (2021) and 9 (2022). Every single-year cell has at least 8 with and 8
// without, so both years publish everything, and the pool 2021-2022 is their sum:
// Wiltz 21 of 40, Clervaux 19 of 40, national 40 of 80.

fn pooled_registry(dir: &Path) -> std::path::PathBuf {
    let wh = dir.join("wh");
    let key = key_file(dir, "k");
    let mut r = Registry::default();
    for (commune, year, vaccinated) in [
        ("Wiltz", 2021, 10),
        ("Wiltz", 2022, 11),
        ("Clervaux", 2021, 10),
        ("Clervaux", 2022, 9),
    ] {
        for i in 1..=20 {
            let p = format!("{commune}-{year}-{i}");
            r.person(&p, &format!("{year}-01-{i:02}"), "female", Some(commune));
            if i <= vaccinated {
                r.dose(&format!("{p}-1"), &p, HEXA, &format!("{year}-03-{i:02}"));
            }
        }
    }
    r.dose("late", "Wiltz-2022-20", MMR, "2025-01-15"); // data_until after every follow-up
    load(&wh, &key, &r.export(dir, "fhir"));
    load(
        &wh,
        &key,
        &population(
            dir,
            &[
                "2023,Wiltz,female,2021,20",
                "2023,Clervaux,female,2021,20",
                "2024,Wiltz,female,2022,20",
                "2024,Clervaux,female,2022,20",
            ],
        ),
    );
    wh
}

#[test]
fn pooled_cohorts_sum_each_years_cells_over_http_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let wh = pooled_registry(dir.path());
    let cli = coverage(
        &wh,
        &[
            "--indicator",
            "DTP1",
            "--cohort",
            "2021-2022",
            "--by",
            "commune",
        ],
    );
    assert_eq!(
        (cli["cohort"].clone(), cli["cohort_last"].clone()),
        (json!(2021), json!(2022))
    );
    let wiltz = row(&cli, "commune", json!("Wiltz"));
    assert_cell(wiltz, 21, 40);
    assert_eq!(wiltz["cohort_last"], json!(2022));
    assert_cell(row(&cli, "commune", json!("Clervaux")), 19, 40);
    assert_cell(&cli["total"], 40, 80);
    // Each year from its own reference year: the 1 January after the cohort's youngest
    // turns 1 (2021 → 2023, 2022 → 2024).
    assert_eq!(
        cli["population_source"],
        json!("population, reference_year 2023; population, reference_year 2024")
    );
    // One year alone is unchanged: Wiltz 2022 is 11 of 20.
    let single = coverage(
        &wh,
        &["--indicator", "DTP1", "--cohort", "2022", "--by", "commune"],
    );
    assert_cell(row(&single, "commune", json!("Wiltz")), 11, 20);
    assert!(single.get("cohort_last").is_none(), "{single}");

    let server = serve(&wh, &[]);
    let (status, body) = http_get(
        server.port,
        "/api/coverage?indicator=DTP1&cohort=2021-2022&by=commune",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), cli);
    for refused in [
        "/api/coverage?indicator=DTP1&cohort=2022-2021",
        "/api/coverage?indicator=DTP1&cohort=2015-2022",
        "/api/coverage?indicator=FLU65&cohort=2021-2022",
        "/api/coverage/curve?indicator=DTP1&cohort=2021-2022",
    ] {
        let (status, body) = http_get(server.port, refused).unwrap();
        assert_eq!(status, 400, "{refused}: {body}");
    }
}
