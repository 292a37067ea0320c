//! `vaxlake effectiveness --by age_band` against an independent recomputation in DuckDB
//! (`tests/effectiveness_check.py`: every band's cases and person-days by vaccination
//! status, the per-band, Mantel–Haenszel and crude VE with their intervals), on a generated
//! registry of 30,000 persons ingested from FHIR, population and cases.
//!
//! The check runs the Python of `VAXLAKE_PYTHON` (set by `scripts/test`, which installs
//! duckdb and deltalake into a virtualenv with `scripts/python-env`). Without it the test
//! says loudly that it skipped, unless `VAXLAKE_REQUIRE_PYTHON=1`, when it fails.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

/// Season 2024/25 (its 1 January population, reference year 2025, is in the export).
const SEASON: [&str; 4] = ["--from", "2024-10-01", "--to", "2025-04-30"];

/// Runs `vaxlake effectiveness` with `extra` options, writes the answer to `dir/name` and
/// returns it.
fn answer(wh: &Path, dir: &Path, name: &str, extra: &[&str]) -> (Value, std::path::PathBuf) {
    let mut args = vec![
        "effectiveness",
        "--warehouse",
        wh.to_str().unwrap(),
        "--antigen",
        "influenza",
        "--disease",
        "J1",
    ];
    args.extend_from_slice(&SEASON);
    args.extend_from_slice(&[
        "--by",
        "age_band",
        "--suppression-threshold",
        "1",
        "--format",
        "json",
    ]);
    args.extend_from_slice(extra);
    let (out, _) = ok(&args);
    let path = dir.join(name);
    std::fs::write(&path, &out).unwrap();
    (serde_json::from_str(&out).expect("JSON"), path)
}

/// The comparison must not be vacuous: six bands, cases on both sides of most of them,
/// and an overall estimate.
fn assert_not_vacuous(v: &Value, min_cases: u64) {
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 6, "{v}");
    let with_both = rows
        .iter()
        .filter(|r| {
            r["cases_vaccinated"].as_u64().unwrap_or(0) > 0
                && r["cases_unvaccinated"].as_u64().unwrap_or(0) > 0
        })
        .count();
    assert!(
        with_both >= 3,
        "only {with_both} bands with cases on both sides: {v}"
    );
    let o = &v["overall"];
    let cases = o["cases_vaccinated"].as_u64().unwrap() + o["cases_unvaccinated"].as_u64().unwrap();
    assert!(cases >= min_cases, "only {cases} cases: {v}");
    assert!(o["ve"].as_f64().is_some(), "no overall VE: {v}");
}

fn run_check(python: &str, warehouse: &Path, answer: &Path, extra: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args: Vec<std::ffi::OsString> = vec![
        "--warehouse".into(),
        warehouse.into(),
        "--reference-dir".into(),
        root.join("sql/reference").into(),
    ];
    args.extend(
        ["--antigen", "influenza", "--disease", "J1"]
            .iter()
            .chain(&SEASON)
            .chain(&["--threshold", "1", "--quiet"])
            .chain(extra)
            .map(Into::into),
    );
    args.extend(["--vaxlake-json".into(), answer.into()]);
    run_cross_check(python, "effectiveness_check.py", &args);
}

#[test]
fn effectiveness_matches_an_independent_duckdb_recomputation() {
    let Some(python) = cross_check_python("effectiveness_duckdb") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 30_000, 11, &["fhir", "population", "cases"]);

    // The defaults: first dose, any outcome.
    let (v, path) = answer(&wh, dir.path(), "default.json", &[]);
    assert_not_vacuous(&v, 200);
    run_check(&python, &wh, &path, &[]);

    // Non-default: hospitalised cases only; and protection from the second dose counted
    // since the 1 September of the previous season, with a 7-day lag.
    let (_, path) = answer(
        &wh,
        dir.path(),
        "hospitalised.json",
        &["--outcome", "hospitalised"],
    );
    run_check(&python, &wh, &path, &["--outcome", "hospitalised"]);
    let extra = [
        "--dose",
        "2",
        "--doses-since",
        "2023-09-01",
        "--lag-days",
        "7",
    ];
    let (_, path) = answer(&wh, dir.path(), "dose2.json", &extra);
    run_check(&python, &wh, &path, &extra);
}
