//! Who is counted (docs/coverage.md and docs/effectiveness.md, "Who is counted"): residents,
//! the living, the denominator's reference year, one case per episode. Every number is
//! counted by hand from the small registry written next to it.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const HEXA: &str = "J07CA09"; // diphtheria, tetanus, pertussis, polio, hib, hepatitis_b
const COVID: &str = "J07BN01"; // covid19, mRNA
const FLU: &str = "J07BB02"; // influenza
const ALL_SHOWN: [&str; 2] = ["--suppression-threshold", "1"];

/// A Patient: `address` is the JSON of `address[0]`, `extra` more fields (with a leading
/// comma) such as a `deceasedDateTime`.
fn patient(id: &str, number: &str, birth: &str, address: &str, extra: &str) -> String {
    format!(
        r#"{{"resourceType":"Patient","id":"{id}","meta":{{"lastUpdated":"2025-01-15T00:00:00Z"}},"identifier":[{{"system":"urn:oid:1.3.182.4.4","value":"{number}"}}],"gender":"female","birthDate":"{birth}","address":[{address}]{extra}}}"#
    )
}

fn dose(id: &str, patient: &str, atc: &str, date: &str) -> String {
    format!(
        r#"{{"resourceType":"Immunization","id":"{id}","meta":{{"lastUpdated":"2025-02-01T00:00:00Z"}},"status":"completed","vaccineCode":{{"coding":[{{"system":"http://www.whocc.no/atc","code":"{atc}"}}]}},"patient":{{"reference":"Patient/{patient}"}},"occurrenceDateTime":"{date}","lotNumber":"L1"}}"#
    )
}

const WILTZ: &str = r#"{"city":"Wiltz","country":"LU"}"#;
const THIONVILLE: &str = r#"{"city":"Thionville","country":"FR"}"#;
/// A town that is no commune of Luxembourg, without a country.
const ARLON: &str = r#"{"city":"Arlon"}"#;
/// A commune's name, but in Belgium: abroad all the same.
const WILTZ_BE: &str = r#"{"city":"Wiltz","country":"BE"}"#;

fn write_lines(path: &Path, header: &str, lines: &[String]) {
    let mut text = header.to_string();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

const CASES_HEADER: &str =
    "case_id,national_id,birth_date,sex,commune,disease,onset_date,hospitalised,died\n";
const POPULATION_HEADER: &str = "reference_year,commune,sex,birth_year,count\n";

/// Writes a FHIR export of `patients` and `doses`, then `cases`, `registry` rows and
/// `population` rows, and ingests them all into a new warehouse.
fn warehouse(
    dir: &Path,
    patients: &[String],
    doses: &[String],
    registry: &[String],
    cases: &[String],
    population: &[&str],
) -> PathBuf {
    let wh = dir.join("wh");
    let key = key_file(dir, "k");
    let fhir = dir.join("fhir");
    std::fs::create_dir_all(&fhir).unwrap();
    write_lines(&fhir.join("Patient.ndjson"), "", patients);
    write_lines(&fhir.join("Immunization.ndjson"), "", doses);
    load(&wh, &key, &format!("fhir:{}", fhir.display()));
    if !registry.is_empty() {
        let path = dir.join("registry.csv");
        let header = "event_id,national_id,birth_date,sex,commune,vaccine_atc,vaccine_name,lot_number,dose_number,administered_on,vaccinator_id,status,recorded_at\n";
        write_lines(&path, header, registry);
        load(&wh, &key, &format!("csv:{}", path.display()));
    }
    if !cases.is_empty() {
        let path = dir.join("cases.csv");
        write_lines(&path, CASES_HEADER, cases);
        load(&wh, &key, &format!("cases:{}", path.display()));
    }
    let path = dir.join("population.csv");
    let rows: Vec<String> = population.iter().map(|r| r.to_string()).collect();
    write_lines(&path, POPULATION_HEADER, &rows);
    load(&wh, &key, &format!("population:{}", path.display()));
    wh
}

fn json_of(args: &[&str]) -> Value {
    let (out, _) = ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

fn coverage(wh: &Path, args: &[&str]) -> Value {
    let mut all = vec![
        "coverage",
        "--warehouse",
        wh.to_str().unwrap(),
        "--format",
        "json",
    ];
    all.extend_from_slice(&ALL_SHOWN);
    all.extend_from_slice(args);
    json_of(&all)
}

fn flags(row: &Value) -> Vec<String> {
    row["flags"]
        .as_array()
        .unwrap_or_else(|| panic!("flags in {row}"))
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn age_band<'a>(answer: &'a Value, label: &str) -> &'a Value {
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["age_band"] == json!(label))
        .unwrap_or_else(|| panic!("no {label} row in {answer}"))
}

// ---------------------------------------------------------------------------------------
// Coverage
// ---------------------------------------------------------------------------------------
//
// Children (cohort 2022, DTP1 by 12 months; all doses at 2 months):
// | R1 | Wiltz, LU              | hexavalent 2022-03-15 | resident: counted                |
// | R2 | Wiltz, LU              | none                  |                                  |
// | X1 | Thionville, FR         | hexavalent 2022-03-15 | cross-border: not counted        |
// | X2 | Arlon (no country)     | hexavalent 2022-03-15 | not a commune: not counted       |
// | X3 | Wiltz, BE              | hexavalent 2022-03-15 | abroad: not counted              |
// | R3 | Wiltz, born 2024-01-05 | hexavalent 2024-03-10 | cohort 2024 (timeliness)         |
//
// Population of Wiltz, females born 2022: 10 on 1 January 2023, 4 on 1 January 2024, 50 on
// 1 January 2026. Cohort 2022 has all reached 12 months on 31 December 2023: the
// denominator is the population of 1 January 2024, 4 (not the newest file's 50).
// DTP1 2022 = 1 / 4 = 0.25. By 24 months (--age-months 24): 1 January 2025, one year from
// 2024 and from 2026: the earlier, 2024 again.
//
// Adults born 1950 (COVID19_1 by age band; 2023 − 1950 = 73 and 2024 − 1950 = 74: 65-74):
// | A1, A2, A3 | Wiltz | COVID-19 dose in 2024                                   |
// | D1         | Wiltz | dose 2024-03-01, died 2024-06-15                        |
// | D2         | Wiltz | dose 2023-05-01, died 2024-02-10                        |
// | X4         | Thionville, FR | dose 2024-04-01 (cross-border)                 |
// Population, born 1950: 2 on 1 January 2024; nothing in 2023 or 2026 for them.
// End of 2023 (population of 1 January 2024, the nearest to 2024): D2 alive on that day:
//   1 of 2.
// End of 2024 (population of 1 January 2025; 2024 and 2026 are as near: 2024): A1-A3
//   = 3 (D1 and D2 died in 2024, X4 lives abroad) of 2: above 100 %, flagged, no interval.

fn coverage_registry(dir: &Path) -> PathBuf {
    let n = |birth: &str, serial: u16| national_number(birth, serial);
    let child = "2022-01-10";
    let adult = "1950-04-04";
    let patients = vec![
        patient("R1", &n(child, 1), child, WILTZ, ""),
        patient("R2", &n(child, 2), child, WILTZ, ""),
        patient("X1", &n(child, 3), child, THIONVILLE, ""),
        patient("X2", &n(child, 4), child, ARLON, ""),
        patient("X3", &n(child, 5), child, WILTZ_BE, ""),
        patient("R3", &n("2024-01-05", 1), "2024-01-05", WILTZ, ""),
        patient("A1", &n(adult, 1), adult, WILTZ, ""),
        patient("A2", &n(adult, 2), adult, WILTZ, ""),
        patient("A3", &n(adult, 3), adult, WILTZ, ""),
        patient(
            "D1",
            &n(adult, 4),
            adult,
            WILTZ,
            r#","deceasedDateTime":"2024-06-15T08:00:00+02:00""#,
        ),
        patient(
            "D2",
            &n(adult, 5),
            adult,
            WILTZ,
            r#","deceasedDateTime":"2024-02-10""#,
        ),
        patient("X4", &n(adult, 6), adult, THIONVILLE, ""),
    ];
    let doses = vec![
        dose("r1", "R1", HEXA, "2022-03-15"),
        dose("x1", "X1", HEXA, "2022-03-15"),
        dose("x2", "X2", HEXA, "2022-03-15"),
        dose("x3", "X3", HEXA, "2022-03-15"),
        dose("r3", "R3", HEXA, "2024-03-10"),
        dose("a1", "A1", COVID, "2024-01-20"),
        dose("a2", "A2", COVID, "2024-05-20"),
        dose("a3", "A3", COVID, "2024-06-01"),
        dose("d1", "D1", COVID, "2024-03-01"),
        dose("d2", "D2", COVID, "2023-05-01"),
        dose("x4", "X4", COVID, "2024-04-01"),
    ];
    warehouse(
        dir,
        &patients,
        &doses,
        &[],
        &[],
        &[
            "2023,Wiltz,female,2022,10",
            "2024,Wiltz,female,2022,4",
            "2026,Wiltz,female,2022,50",
            "2024,Wiltz,female,1950,2",
        ],
    )
}

#[test]
fn numerators_count_residents_and_denominators_the_year_after_the_age() {
    let dir = tempfile::tempdir().unwrap();
    let wh = coverage_registry(dir.path());

    let dtp1 = coverage(&wh, &["--indicator", "DTP1", "--cohort", "2022"]);
    let row = &dtp1["rows"][0];
    assert_eq!(row["numerator"], json!(1), "{dtp1}");
    assert_eq!(row["denominator"], json!(4), "{dtp1}");
    assert_eq!(row["coverage"], json!(0.25), "{dtp1}");
    assert_eq!(
        dtp1["population_source"],
        json!("population, reference_year 2024")
    );
    let at_24 = coverage(
        &wh,
        &[
            "--indicator",
            "DTP1",
            "--cohort",
            "2022",
            "--age-months",
            "24",
        ],
    );
    assert_eq!(
        at_24["population_source"],
        json!("population, reference_year 2024"),
        "{at_24}"
    );

    // By commune: nobody without a commune is counted any more (X1-X3 live abroad).
    let by_commune = coverage(
        &wh,
        &["--indicator", "DTP1", "--cohort", "2022", "--by", "commune"],
    );
    let rows = by_commune["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{by_commune}");
    assert_eq!(rows[0]["commune"], json!("Wiltz"));
    assert_eq!(rows[0]["numerator"], json!(1));
}

#[test]
fn age_band_cells_count_the_living_and_flag_more_than_the_population() {
    let dir = tempfile::tempdir().unwrap();
    let wh = coverage_registry(dir.path());

    let end_2023 = coverage(&wh, &["--indicator", "COVID19_1", "--cohort", "2023"]);
    let cell = age_band(&end_2023, "65-74");
    assert_eq!(
        (&cell["numerator"], &cell["denominator"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(
        end_2023["population_source"],
        json!("population, reference_year 2024")
    );

    let end_2024 = coverage(&wh, &["--indicator", "COVID19_1", "--cohort", "2024"]);
    let cell = age_band(&end_2024, "65-74");
    assert_eq!(
        (&cell["numerator"], &cell["denominator"]),
        (&json!(3), &json!(2))
    );
    assert_eq!(cell["coverage"], json!(1.5), "{cell}");
    assert!(
        flags(cell).contains(&"numerator_exceeds_denominator".to_string()),
        "{cell}"
    );
    assert!(
        cell["ci_low"].is_null() && cell["ci_high"].is_null(),
        "{cell}"
    );
}

#[test]
fn timeliness_flags_a_cohort_still_in_follow_up() {
    let dir = tempfile::tempdir().unwrap();
    let wh = coverage_registry(dir.path());
    // The newest dose is of 2024-06-01; cohort 2024 reaches 12 months on 2025-12-31.
    let young = coverage(
        &wh,
        &["--indicator", "DTP1", "--cohort", "2024", "--timeliness"],
    );
    assert!(
        flags(&young["rows"][0]).contains(&"incomplete_follow_up".to_string()),
        "{young}"
    );
    let done = coverage(
        &wh,
        &["--indicator", "DTP1", "--cohort", "2022", "--timeliness"],
    );
    assert_eq!(flags(&done["rows"][0]), Vec::<String>::new(), "{done}");
}

// ---------------------------------------------------------------------------------------
// The persons table, as ingest maintains it
// ---------------------------------------------------------------------------------------

#[test]
fn persons_residence_and_death_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let n = |birth: &str, serial: u16| national_number(birth, serial);
    let b = "1980-02-02";
    let patients = vec![
        patient("P1", &n(b, 1), b, WILTZ, ""),
        patient("P2", &n(b, 2), b, THIONVILLE, ""),
        patient(
            "P3",
            &n(b, 3),
            b,
            WILTZ,
            r#","deceasedDateTime":"2024-11-20""#,
        ),
    ];
    // A registry row of someone else, from a commune not in the list.
    let registry = vec![format!(
        "CV-1,{},{b},female,Metz,J07BN01,Comirnaty,L1,1,2021-04-01,VAC-1,completed,2021-04-01T12:00:00Z",
        n(b, 4)
    )];
    let cases = vec![
        // Known only from a case: resident of Wiltz.
        format!("k1,{},{b},male,Wiltz,J10,2024-10-10,false,false", n(b, 5)),
        // Known only from a case: a town abroad.
        format!("k2,{},{b},male,Trier,J10,2024-10-10,false,false", n(b, 6)),
        // P1's case gives another place: the Patient's address stays.
        format!("k3,{},{b},female,Trier,J10,2024-10-10,false,false", n(b, 1)),
    ];
    let wh = warehouse(dir.path(), &patients, &[], &registry, &cases, &[]);

    let table = sql_csv(
        &wh,
        "SELECT known_from, coalesce(commune, '-'), resident, \
                coalesce(CAST(deceased_month AS VARCHAR), '-') \
         FROM persons ORDER BY known_from, commune NULLS LAST, deceased_month NULLS FIRST",
    );
    let lines: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "case,Wiltz,true,-",
            "case,-,false,-",
            "patient,Wiltz,true,-",
            "patient,Wiltz,true,2024-11-01",
            "patient,-,false,-",
            "registry,-,false,-",
        ],
        "{table}"
    );
    // One row per person key, no national number in it.
    assert_eq!(
        sql_u64(&wh, "SELECT count(DISTINCT person_key) FROM persons"),
        6
    );
    let everything = sql_csv(&wh, "SELECT * FROM persons");
    for serial in 1..=6 {
        assert!(!everything.contains(&n(b, serial)));
    }
}

// ---------------------------------------------------------------------------------------
// Effectiveness
// ---------------------------------------------------------------------------------------
//
// Influenza against J10, 2024-10-01 to 2024-11-30 (61 days), band 65-74 (born 1955).
// Population of 1 January 2024 (the period's middle, 2024-10-31, is in 2024): 10.
// | V1 | Wiltz      | dose 2024-09-10 (protected 09-24) | J10 10-05 and again 10-20         |
// | V2 | Wiltz      | dose 2024-09-10, died 2024-10-12  | vaccinated Oct 1-31 only (31 d)   |
// | XB | Trier, DE  | dose 2024-09-10                   | J10 10-08: cross-border, nowhere  |
// | U1 | case only  | Wiltz                              | J10 10-15: unvaccinated          |
// | U2 | case only  | Wiltz                              | J10 09-20 and 10-10: one episode |
//                                                         that began before the period
// Person-time: population 10 × 61 = 610, less V2's 30 days after death (November) = 580.
//   T1 = V1 61 + V2 31 = 92; T0 = 580 − 92 = 488.
// Episodes (90 days): V1's 10-20 repeats 10-05: a = 1 (V1); U2's episode began on 09-20,
//   before the period: b = 1 (U1). With --episode-days 0 every notification counts:
//   a = 2, b = 2.

fn effectiveness_registry(dir: &Path) -> PathBuf {
    let b = "1955-05-05";
    let n = |serial: u16| national_number(b, serial);
    let patients = vec![
        patient("V1", &n(1), b, WILTZ, ""),
        patient("V2", &n(2), b, WILTZ, r#","deceasedDateTime":"2024-10-12""#),
        patient("XB", &n(3), b, r#"{"city":"Trier","country":"DE"}"#, ""),
    ];
    let doses = vec![
        dose("v1", "V1", FLU, "2024-09-10"),
        dose("v2", "V2", FLU, "2024-09-10"),
        dose("xb", "XB", FLU, "2024-09-10"),
    ];
    let case = |id: &str, serial: u16, commune: &str, onset: &str| {
        format!(
            "{id},{},{b},female,{commune},J10,{onset},false,false",
            n(serial)
        )
    };
    let cases = vec![
        case("c1", 1, "Wiltz", "2024-10-05"),
        case("c2", 1, "Wiltz", "2024-10-20"),
        case("c3", 3, "Trier", "2024-10-08"),
        case("c4", 4, "Wiltz", "2024-10-15"),
        case("c5", 5, "Wiltz", "2024-09-20"),
        case("c6", 5, "Wiltz", "2024-10-10"),
    ];
    warehouse(
        dir,
        &patients,
        &doses,
        &[],
        &cases,
        &["2024,Wiltz,female,1955,10"],
    )
}

fn effectiveness(wh: &Path, extra: &[&str]) -> Value {
    let mut all = vec![
        "effectiveness",
        "--warehouse",
        wh.to_str().unwrap(),
        "--antigen",
        "influenza",
        "--disease",
        "J10",
        "--from",
        "2024-10-01",
        "--to",
        "2024-11-30",
        "--by",
        "age_band",
        "--format",
        "json",
    ];
    all.extend_from_slice(&ALL_SHOWN);
    all.extend_from_slice(extra);
    json_of(&all)
}

#[track_caller]
fn counts(row: &Value) -> (Value, Value, Value, Value) {
    (
        row["cases_vaccinated"].clone(),
        row["cases_unvaccinated"].clone(),
        row["person_days_vaccinated"].clone(),
        row["person_days_unvaccinated"].clone(),
    )
}

#[test]
fn residents_only_person_time_ends_at_death_and_episodes_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let wh = effectiveness_registry(dir.path());

    let answer = effectiveness(&wh, &[]);
    assert_eq!(
        counts(age_band(&answer, "65-74")),
        (json!(1), json!(1), json!(92), json!(488)),
        "{answer}"
    );
    assert_eq!(answer["episode_days"], json!(90), "{answer}");

    let every = effectiveness(&wh, &["--episode-days", "0"]);
    assert_eq!(
        counts(age_band(&every, "65-74")),
        (json!(2), json!(2), json!(92), json!(488)),
        "{every}"
    );

    // A window of 10 days: V1's 10-20 is 15 days after 10-05, a second episode; U2's 10-10
    // is 20 days after 09-20, a second episode, in the period: a = 2, b = 2. A window of 20
    // days joins both (15 and 20 days): a = 1, b = 1.
    let narrow = effectiveness(&wh, &["--episode-days", "10"]);
    assert_eq!(
        counts(age_band(&narrow, "65-74")),
        (json!(2), json!(2), json!(92), json!(488)),
        "{narrow}"
    );
    let twenty = effectiveness(&wh, &["--episode-days", "20"]);
    assert_eq!(
        counts(age_band(&twenty, "65-74")),
        (json!(1), json!(1), json!(92), json!(488)),
        "{twenty}"
    );
}
