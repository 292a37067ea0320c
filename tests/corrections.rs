//! Corrections, entered-in-error and stale versions on a hand-built FHIR export, checked
//! value by value.

mod common;
use common::*;
use std::path::Path;

const PATIENT: &str = r#"{"resourceType":"Patient","id":"pat-1","identifier":[{"system":"urn:oid:1.3.182.4.4","value":"1893120105732"}],"gender":"female","birthDate":"2022-03-15","address":[{"city":"Wiltz"}]}"#;

fn immunization(id: &str, last_updated: &str, status: &str, date: &str) -> String {
    format!(
        r#"{{"resourceType":"Immunization","id":"{id}","meta":{{"lastUpdated":"{last_updated}"}},"status":"{status}","vaccineCode":{{"coding":[{{"system":"http://www.whocc.no/atc","code":"J07BD52"}}]}},"patient":{{"reference":"Patient/pat-1"}},"occurrenceDateTime":"{date}","lotNumber":"L1"}}"#
    )
}

fn export(dir: &Path, name: &str, immunizations: &[String]) -> String {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("Patient.ndjson"), format!("{PATIENT}\n")).unwrap();
    std::fs::write(
        d.join("Immunization.ndjson"),
        immunizations.join("\n") + "\n",
    )
    .unwrap();
    format!("fhir:{}", d.display())
}

fn rows(wh: &Path) -> String {
    sql_csv(wh, "SELECT administered_on, age_months_at_dose, status, commune, canton, birth_month FROM vaccinations ORDER BY administered_on")
}

#[test]
fn corrections_replace_entered_in_error_removes_stale_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "k");

    // Born 2022-03-15: a dose on 2023-03-14 is at 11 completed months, on 2023-03-15 at 12.
    let v1 = immunization("imm-1", "2023-03-20T10:00:00Z", "completed", "2023-03-14");
    let other = immunization("imm-2", "2023-06-01T10:00:00Z", "completed", "2023-06-01");
    assert_eq!(
        ingest(
            &wh,
            &key,
            &export(dir.path(), "a", &[v1.clone(), other.clone()])
        )
        .0,
        (3, 3, 0)
    );
    assert_eq!(
        rows(&wh),
        "administered_on,age_months_at_dose,status,commune,canton,birth_month\n\
         2023-03-14,11,completed,Wiltz,Wiltz,2022-03-01\n\
         2023-06-01,14,completed,Wiltz,Wiltz,2022-03-01\n"
    );

    // A correction moves the first dose across the 12-month boundary.
    let v2 = immunization("imm-1", "2023-04-01T08:00:00Z", "completed", "2023-03-15");
    assert_eq!(
        ingest(&wh, &key, &export(dir.path(), "b", &[v2])).0,
        (2, 2, 0)
    );
    assert_eq!(sql_u64(&wh, "SELECT count(*) FROM vaccinations"), 2);
    assert_eq!(
        sql_value(&wh, "SELECT min(age_months_at_dose) FROM vaccinations"),
        "12"
    );

    // The stale first version arriving late changes nothing.
    let before = sql_csv(&wh, "SELECT * FROM vaccinations ORDER BY event_key");
    ingest(&wh, &key, &export(dir.path(), "c", &[v1]));
    assert_eq!(
        sql_csv(&wh, "SELECT * FROM vaccinations ORDER BY event_key"),
        before
    );

    // entered-in-error removes the event; the other stays.
    let eie = immunization(
        "imm-1",
        "2023-05-01T08:00:00Z",
        "entered-in-error",
        "2023-03-15",
    );
    ingest(&wh, &key, &export(dir.path(), "d", &[eie]));
    assert_eq!(
        rows(&wh),
        "administered_on,age_months_at_dose,status,commune,canton,birth_month\n\
         2023-06-01,14,completed,Wiltz,Wiltz,2022-03-01\n"
    );

    // Within one file, the version with the latest lastUpdated wins whatever the line order.
    let late = immunization("imm-3", "2024-01-02T00:00:00Z", "completed", "2023-12-01");
    let early = immunization("imm-3", "2024-01-01T00:00:00Z", "completed", "2023-11-01");
    ingest(&wh, &key, &export(dir.path(), "e", &[late, early]));
    assert_eq!(
        sql_value(&wh, "SELECT max(administered_on) FROM vaccinations"),
        "2023-12-01"
    );
}

#[test]
fn small_batches_give_the_same_table_as_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "k");
    let mut lines = Vec::new();
    for i in 0..40 {
        let day = 1 + (i % 28);
        lines.push(immunization(
            &format!("imm-{i}"),
            "2023-01-01T00:00:00Z",
            "completed",
            &format!("2023-01-{day:02}"),
        ));
    }
    // Corrections and deletions land in later batches than their originals.
    for i in 0..10 {
        lines.push(immunization(
            &format!("imm-{i}"),
            "2023-02-01T00:00:00Z",
            "completed",
            "2023-02-01",
        ));
    }
    for i in 10..15 {
        lines.push(immunization(
            &format!("imm-{i}"),
            "2023-02-01T00:00:00Z",
            "entered-in-error",
            "2023-02-01",
        ));
    }
    let source = export(dir.path(), "x", &lines);
    let one = dir.path().join("one");
    let many = dir.path().join("many");
    ingest(&one, &key, &source);
    ok(&[
        "ingest",
        "--warehouse",
        many.to_str().unwrap(),
        "--source",
        &source,
        "--key-file",
        key.to_str().unwrap(),
        "--batch-rows",
        "7",
    ]);
    let q = "SELECT event_key, administered_on, status FROM vaccinations ORDER BY event_key";
    assert_eq!(sql_csv(&one, q), sql_csv(&many, q));
    assert_eq!(sql_u64(&many, "SELECT count(*) FROM vaccinations"), 35);
    assert_eq!(
        sql_u64(
            &many,
            "SELECT count(*) FROM vaccinations WHERE administered_on = DATE '2023-02-01'"
        ),
        10
    );
}

#[test]
fn concurrent_ingests_of_one_export_store_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "k");
    let wh = dir.path().join("wh");
    let lines: Vec<String> = (0..120)
        .map(|i| {
            immunization(
                &format!("imm-{i}"),
                "2023-01-01T00:00:00Z",
                "completed",
                &format!("2023-01-{:02}", 1 + i % 28),
            )
        })
        .collect();
    let source = export(dir.path(), "x", &lines);
    // Three writers at once, each in small batches so that their MERGEs interleave if they
    // are not kept apart.
    let children: Vec<std::process::Child> = (0..3)
        .map(|_| {
            std::process::Command::new(bin())
                .args(["ingest", "--warehouse", wh.to_str().unwrap(), "--source"])
                .arg(&source)
                .args(["--key-file", key.to_str().unwrap(), "--batch-rows", "10"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(counts(&String::from_utf8_lossy(&out.stdout)).0, 121);
    }
    assert_eq!(
        sql_value(
            &wh,
            "SELECT count(*) || ' ' || count(DISTINCT event_key) FROM vaccinations"
        ),
        "120 120"
    );
}
