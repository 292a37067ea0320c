//! End to end on a generated registry: generate → ingest every source → the warehouse holds
//! exactly what the generator planted, nothing twice, no identity in clear.

mod common;
use common::*;
use std::collections::BTreeSet;

/// National numbers that went in: Patient identifiers and the national_id column of the CSVs.
/// Every run of 13 consecutive digits in `text` (a national number hides in any of them).
fn thirteen_digit_windows(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let mut run_start = None;
    let mut out = Vec::new();
    for i in 0..=b.len() {
        let digit = i < b.len() && b[i].is_ascii_digit();
        match (digit, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(start)) => {
                for w in start..=i.saturating_sub(13) {
                    if i - w >= 13 {
                        out.push(&text[w..w + 13]);
                    }
                }
                run_start = None;
            }
            _ => {}
        }
    }
    out.into_iter()
}

#[test]
fn generated_registry_lands_exactly_and_without_identities() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "master.key");
    let (gen_out, gen_err) = ok(&[
        "generate",
        "--out",
        export.to_str().unwrap(),
        "--persons",
        "3000",
        "--seed",
        "7",
    ]);
    let m = manifest(&export);
    let mut logs = vec![gen_out, gen_err];

    // FHIR export.
    let ((read, accepted, quarantined), out, err) = ingest(
        &wh,
        &key,
        &format!("fhir:{}", export.join("fhir").display()),
    );
    logs.extend([out, err]);
    let f = &m["fhir"];
    let lines = f["patient_lines"].as_u64().unwrap() + f["immunization_lines"].as_u64().unwrap();
    assert_eq!(read, lines);
    assert_eq!(read, accepted + quarantined);
    assert_eq!(quarantined, f["expected_quarantined"].as_u64().unwrap());
    assert_eq!(
        sql_u64(&wh, "SELECT count(*) FROM vaccinations"),
        f["current_events"].as_u64().unwrap()
    );
    assert_eq!(
        sql_u64(
            &wh,
            "SELECT count(*) FROM vaccinations WHERE status = 'completed'"
        ),
        f["current_completed"].as_u64().unwrap()
    );
    assert_eq!(
        sql_u64(
            &wh,
            "SELECT count(*) FROM vaccinations WHERE status = 'not-done'"
        ),
        f["current_not_done"].as_u64().unwrap()
    );
    assert_eq!(
        sql_u64(
            &wh,
            "SELECT count(*) - count(DISTINCT event_key) FROM vaccinations"
        ),
        0
    );
    assert_eq!(sql_u64(&wh, "SELECT count(*) FROM quarantine"), quarantined);
    assert_eq!(
        sql_u64(&wh, "SELECT count(*) FROM vaccinations WHERE age_months_at_dose < 0 OR administered_on < birth_month"),
        0
    );

    // Ingesting the same export again changes nothing.
    let snapshot = "SELECT * FROM vaccinations ORDER BY event_key";
    let before = sql_csv(&wh, snapshot);
    let q_before = sql_csv(
        &wh,
        "SELECT quarantine_key, reason FROM quarantine ORDER BY quarantine_key",
    );
    let ((read2, accepted2, quarantined2), out, err) = ingest(
        &wh,
        &key,
        &format!("fhir:{}", export.join("fhir").display()),
    );
    logs.extend([out, err]);
    assert_eq!(
        (read2, accepted2, quarantined2),
        (read, accepted, quarantined)
    );
    assert_eq!(
        sql_csv(&wh, snapshot),
        before,
        "re-ingest changed the table"
    );
    assert_eq!(
        sql_csv(
            &wh,
            "SELECT quarantine_key, reason FROM quarantine ORDER BY quarantine_key"
        ),
        q_before
    );

    // The COVID system's CSV: its copies already imported into the registry count once.
    let ((read, accepted, quarantined), out, err) = ingest(
        &wh,
        &key,
        &format!("csv:{}", export.join("registry.csv").display()),
    );
    logs.extend([out, err]);
    let c = &m["csv"];
    assert_eq!(read, c["rows"].as_u64().unwrap());
    assert_eq!(
        (accepted, quarantined),
        (
            c["expected_accepted"].as_u64().unwrap(),
            c["expected_quarantined"].as_u64().unwrap()
        )
    );
    assert_eq!(
        sql_u64(&wh, "SELECT count(*) FROM vaccinations"),
        m["current_events_fhir_and_csv"].as_u64().unwrap()
    );

    // Denominators and cases.
    let ((read, _, quarantined), out, err) = ingest(
        &wh,
        &key,
        &format!("population:{}", export.join("population.csv").display()),
    );
    logs.extend([out, err]);
    assert_eq!(
        (read, quarantined),
        (m["population"]["rows"].as_u64().unwrap(), 0)
    );
    let latest = sql_u64(&wh, "SELECT max(reference_year) FROM population");
    assert_eq!(
        sql_u64(
            &wh,
            &format!("SELECT sum(count) FROM population WHERE reference_year = {latest}")
        ),
        m["population"]["residents"].as_u64().unwrap()
    );
    let ((read, accepted, quarantined), out, err) = ingest(
        &wh,
        &key,
        &format!("cases:{}", export.join("cases.csv").display()),
    );
    logs.extend([out, err]);
    assert_eq!(read, m["cases"]["rows"].as_u64().unwrap());
    assert_eq!(
        quarantined,
        m["cases"]["expected_quarantined"].as_u64().unwrap()
    );
    assert_eq!(sql_u64(&wh, "SELECT count(*) FROM cases"), accepted);
    let linked = sql_u64(
        &wh,
        "SELECT count(*) FROM cases c JOIN (SELECT DISTINCT person_key FROM vaccinations) v ON c.person_key = v.person_key",
    );
    assert!(
        linked > 0,
        "cases must link to vaccinations through person_key"
    );

    // Leak scan: no national number in any value of any table, any log or any other file.
    let ids = national_numbers(&export);
    assert!(
        ids.len() > 1000,
        "expected many national numbers, found {}",
        ids.len()
    );
    let written = everything_written(&wh);
    assert!(written.len() > 1000);
    for text in written.iter().chain(logs.iter()) {
        assert!(
            thirteen_digit_windows(text).all(|w| !ids.contains(w)),
            "a national number appears in clear in the warehouse or logs"
        );
    }
    // Nor a name or street from the Patient resources.
    let patients = std::fs::read_to_string(export.join("fhir/Patient.ndjson")).unwrap();
    let mut streets = BTreeSet::new();
    for line in patients.lines().take(500) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(s) = v["address"][0]["line"][0].as_str() {
                streets.insert(s.to_string());
            }
        }
    }
    assert!(!streets.is_empty());
    let all_text = written.join("\n");
    for s in streets.iter().take(100) {
        assert!(!all_text.contains(s.as_str()), "an address line was stored");
    }
}

#[test]
fn another_key_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "a.key");
    let other = key_file(dir.path(), "b.key");
    ok(&[
        "generate",
        "--out",
        export.to_str().unwrap(),
        "--persons",
        "300",
        "--seed",
        "3",
    ]);
    let fhir = format!("fhir:{}", export.join("fhir").display());
    ingest(&wh, &key, &fhir);
    let files_before = all_files(&wh);
    let out = run(&[
        "ingest",
        "--warehouse",
        wh.to_str().unwrap(),
        "--source",
        &fhir,
        "--key-file",
        other.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key id"), "{err}");
    let key_text = std::fs::read_to_string(&other).unwrap();
    assert!(!err.contains(key_text.trim()));
    assert_eq!(
        all_files(&wh),
        files_before,
        "a refused run must write nothing"
    );
}

#[test]
fn hostile_sql_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "a.key");
    ok(&[
        "generate",
        "--out",
        export.to_str().unwrap(),
        "--persons",
        "200",
        "--seed",
        "5",
    ]);
    ingest(
        &wh,
        &key,
        &format!("fhir:{}", export.join("fhir").display()),
    );
    let before = all_files(&wh);
    let outside = dir.path().join("outside");
    for statement in [
        "CREATE TABLE t AS SELECT 1".to_string(),
        "INSERT INTO vaccinations SELECT * FROM vaccinations".to_string(),
        "DELETE FROM vaccinations".to_string(),
        format!(
            "COPY (SELECT * FROM vaccinations) TO '{}/x.csv'",
            outside.display()
        ),
        format!(
            "CREATE EXTERNAL TABLE ext STORED AS CSV LOCATION '{}/'",
            export.display()
        ),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "DROP TABLE vaccinations".to_string(),
        format!("SELECT * FROM '{}'", export.join("registry.csv").display()),
    ] {
        let out = run(&["sql", "--warehouse", wh.to_str().unwrap(), &statement]);
        assert!(!out.status.success(), "accepted: {statement}");
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.trim_end().lines().last().unwrap_or_default();
        assert!(last.starts_with("error: "), "{statement}: {err}");
    }
    assert_eq!(all_files(&wh), before);
    assert!(!outside.exists());
}
