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
use std::process::Command;

/// The Python to run the cross-check with, or `None` to skip.
fn python() -> Option<String> {
    match std::env::var("VAXLAKE_PYTHON") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("VAXLAKE_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "VAXLAKE_REQUIRE_PYTHON=1 but VAXLAKE_PYTHON is not set (run scripts/test)"
            );
            eprintln!(
                "\n*** coverage_duckdb SKIPPED: VAXLAKE_PYTHON is not set; \
                 run scripts/test for the DuckDB cross-check ***\n"
            );
            None
        }
    }
}

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
    let mut lines = csv.lines();
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
    let out = Command::new(python)
        .arg(root.join("tests/coverage_check.py"))
        .arg("--warehouse")
        .arg(warehouse)
        .arg("--vaxlake-csv")
        .arg(table)
        .arg("--reference-dir")
        .arg(root.join("sql/reference"))
        .arg("--threshold")
        .arg("8")
        .output()
        .expect("the cross-check runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("coverage_check.py stdout:\n{stdout}");
    eprintln!("coverage_check.py stderr:\n{stderr}");
    assert!(
        out.status.success(),
        "coverage_check.py disagrees with vaxlake ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

#[test]
fn coverage_table_matches_an_independent_duckdb_recomputation() {
    let Some(python) = python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "master.key");
    ok(&[
        "generate",
        "--out",
        export.to_str().unwrap(),
        "--persons",
        "30000",
        "--seed",
        "11",
    ]);
    for source in [
        format!("fhir:{}", export.join("fhir").display()),
        format!("csv:{}", export.join("registry.csv").display()),
        format!("population:{}", export.join("population.csv").display()),
        format!("cases:{}", export.join("cases.csv").display()),
    ] {
        let ((read, accepted, quarantined), _, _) = ingest(&wh, &key, &source);
        assert_eq!(read, accepted + quarantined, "{source}");
        assert!(accepted > 0, "{source} accepted nothing");
    }

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
