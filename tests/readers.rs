//! The warehouse stays readable by other tools, untouched (issue 17, part 4): the Delta
//! tables read with `deltalake` and with polars (PyPI) give one coverage figure, FLU65 for
//! a season, equal to the API's (tests/readers_check.py computes it in polars).

mod common;
use common::*;

#[test]
fn deltalake_and_polars_readers_compute_the_apis_coverage_figure() {
    let Some(python) =
        cross_check_python("deltalake_and_polars_readers_compute_the_apis_coverage_figure")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 4_000, 29, &["fhir", "population"]);
    let mut server = serve(&wh, &[]);
    let mut checked = 0;
    for season in [2023, 2024] {
        let (status, body) = http_get(
            server.port,
            &format!("/api/coverage?indicator=FLU65&cohort={season}"),
        )
        .expect("an answer");
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let row = &answer["rows"][0];
        assert_eq!(answer["rows"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(row["suppressed"], false, "{body}");

        let out = std::process::Command::new(&python)
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers_check.py"))
            .arg(&wh)
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/reference"))
            .arg(season.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "readers_check.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let readers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        println!("season {season}: API {row}, readers {readers}");
        assert!(readers["numerator"].as_u64().unwrap() > 0, "{readers}");
        assert_eq!(readers["numerator"], row["numerator"], "season {season}");
        assert_eq!(
            readers["denominator"], row["denominator"],
            "season {season}"
        );
        assert_eq!(
            answer["population_source"].as_str().unwrap(),
            format!("population, reference_year {}", readers["population_year"]),
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
    server.terminate();
}
