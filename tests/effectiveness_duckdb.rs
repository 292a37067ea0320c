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
                "\n*** effectiveness_duckdb SKIPPED: VAXLAKE_PYTHON is not set; \
                 run scripts/test for the DuckDB cross-check ***\n"
            );
            None
        }
    }
}

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
    let out = Command::new(python)
        .arg(root.join("tests/effectiveness_check.py"))
        .arg("--warehouse")
        .arg(warehouse)
        .arg("--reference-dir")
        .arg(root.join("sql/reference"))
        .args(["--antigen", "influenza", "--disease", "J1"])
        .args(SEASON)
        .args(["--threshold", "1", "--quiet"])
        .args(extra)
        .arg("--vaxlake-json")
        .arg(answer)
        .output()
        .expect("the cross-check runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("effectiveness_check.py {extra:?} stderr:\n{stderr}");
    assert!(
        out.status.success(),
        "effectiveness_check.py {extra:?} disagrees with vaxlake ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

#[test]
fn effectiveness_matches_an_independent_duckdb_recomputation() {
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
        format!("population:{}", export.join("population.csv").display()),
        format!("cases:{}", export.join("cases.csv").display()),
    ] {
        let ((read, accepted, quarantined), _, _) = ingest(&wh, &key, &source);
        assert_eq!(read, accepted + quarantined, "{source}");
        assert!(accepted > 0, "{source} accepted nothing");
    }

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
