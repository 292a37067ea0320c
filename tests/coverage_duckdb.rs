//! The whole coverage indicator table (`vaxlake coverage --all`) against an independent
//! recomputation in DuckDB (`tests/coverage_check.py`), on a generated registry of 30,000
//! persons ingested from every source.
//!
//! The check runs the Python of `VAXLAKE_PYTHON` (set by `scripts/test`, which installs
//! duckdb and deltalake into a virtualenv with `scripts/python-env`). Without it the test
//! says loudly that it skipped, unless `VAXLAKE_REQUIRE_PYTHON=1`, when it fails.

mod common;
use common::*;
use std::path::Path;

/// The fields of one RFC 4180 line (no line breaks inside fields in this table).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// (indicator, cohort, by, group, suppressed) of every row of the `--all` CSV.
fn rows(csv: &str) -> Vec<(String, i32, String, String, bool)> {
    // The provenance comment lines (`# key: value`) come before the header.
    let mut lines = csv.lines().skip_while(|l| l.starts_with('#'));
    let header = lines.next().expect("a header line");
    assert_eq!(
        header.trim_end(),
        "indicator,cohort,by,group,numerator,denominator,coverage,ci_low,ci_high,suppressed,flags"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f = csv_fields(l.trim_end_matches('\r'));
            assert_eq!(f.len(), 11, "{l}");
            (
                f[0].clone(),
                f[1].parse().unwrap_or_else(|_| panic!("cohort in {l}")),
                f[2].clone(),
                f[3].clone(),
                f[9] == "true",
            )
        })
        .collect()
}

/// The comparison must not be vacuous: national DTP3 is shown for 2005..2024, and most
/// national rows and many rows overall are not suppressed.
fn assert_enough_unsuppressed(csv: &str) {
    let rows = rows(csv);
    for cohort in 2005..=2024 {
        let row = rows
            .iter()
            .find(|r| r.0 == "DTP3" && r.1 == cohort && r.2 == "national")
            .unwrap_or_else(|| panic!("no national DTP3 row for {cohort}"));
        assert!(!row.4, "national DTP3 {cohort} is suppressed");
    }
    let national: Vec<_> = rows.iter().filter(|r| r.2 == "national").collect();
    let national_shown = national.iter().filter(|r| !r.4).count();
    let shown = rows.iter().filter(|r| !r.4).count();
    eprintln!(
        "coverage --all: {} rows, {shown} unsuppressed; national {} rows, {national_shown} unsuppressed",
        rows.len(),
        national.len()
    );
    assert!(
        national_shown * 10 >= national.len() * 8,
        "fewer than 80 % of national rows shown"
    );
    assert!(shown >= 1000, "only {shown} rows unsuppressed");
    for by in ["commune", "canton", "sex", "age_band"] {
        assert!(
            rows.iter().any(|r| r.2 == by && !r.4),
            "no unsuppressed row by {by}"
        );
    }
}

fn run_check(python: &str, warehouse: &Path, table: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    run_cross_check(
        python,
        "coverage_check.py",
        &[
            "--warehouse".into(),
            warehouse.into(),
            "--vaxlake-csv".into(),
            table.into(),
            "--reference-dir".into(),
            root.join("sql/reference").into(),
            "--threshold".into(),
            "8".into(),
        ],
    );
}

#[test]
fn coverage_table_matches_an_independent_duckdb_recomputation() {
    let Some(python) = cross_check_python("coverage_duckdb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(
        dir.path(),
        30_000,
        11,
        &["fhir", "csv", "population", "cases"],
    );

    let (csv, _) = ok(&[
        "coverage",
        "--warehouse",
        wh.to_str().unwrap(),
        "--all",
        "--format",
        "csv",
    ]);
    let table = dir.path().join("coverage-all.csv");
    std::fs::write(&table, &csv).unwrap();
    assert_enough_unsuppressed(&csv);
    run_check(&python, &wh, &table);
}
