//! `vaxlake serve` as a user meets it: a real process on a real socket.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn post_sql(port: u16, sql: &str, accept: &str) -> (u16, String) {
    let body = serde_json::json!({ "sql": sql }).to_string();
    let answer = http::request(
        port,
        "POST",
        "/api/sql",
        &[("Content-Type", "application/json"), ("Accept", accept)],
        &body,
    )
    .expect("an answer");
    (answer.status, answer.text())
}

#[test]
fn health_and_sql_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "k");
    generate(&export, 300, 9);
    ingest(
        &wh,
        &key,
        &format!("fhir:{}", export.join("fhir").display()),
    );
    let expected = sql_u64(&wh, "SELECT count(*) FROM vaccinations");

    let server = serve(&wh, &[]);
    let port = server.port;
    let health = http_get(port, "/api/health").expect("an answer");
    assert_eq!(health.0, 200);
    let health: serde_json::Value = serde_json::from_str(&health.1).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["table_version"].as_i64().is_some(), "{health}");

    let (status, body) = post_sql(
        port,
        "SELECT count(*) AS n FROM vaccinations",
        "application/json",
    );
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["columns"], serde_json::json!(["n"]));
    assert_eq!(answer["rows"][0][0].as_u64(), Some(expected));

    let (status, body) = post_sql(port, "SELECT count(*) AS n FROM vaccinations", "text/csv");
    assert_eq!(status, 200);
    assert_eq!(body.replace("\r\n", "\n"), format!("n\n{expected}\n"));

    let (status, body) = post_sql(port, "DROP TABLE vaccinations", "application/json");
    assert_eq!(status, 400);
    let refused: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(refused["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(sql_u64(&wh, "SELECT count(*) FROM vaccinations"), expected);
}

fn get(port: u16, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(port, path).expect("an answer");
    (status, serde_json::from_str(&body).expect("a JSON answer"))
}

/// Coverage answers are cached per table version: an ingest that adds the population
/// (a new Delta table) changes the next answer of the running server without a restart.
#[test]
fn coverage_answers_follow_a_new_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let wh = dir.path().join("wh");
    let key = key_file(dir.path(), "k");
    generate(&export, 2000, 5);
    ingest(
        &wh,
        &key,
        &format!("fhir:{}", export.join("fhir").display()),
    );
    let server = serve(&wh, &["--suppression-threshold", "1"]);
    let port = server.port;
    let path = "/api/coverage?indicator=DTP1&cohort=2023";
    let (status, before) = get(port, path);
    assert_eq!(status, 200, "{before}");
    let numerator = before["rows"][0]["numerator"].as_u64().unwrap();
    assert!(numerator > 0, "{before}");
    assert_eq!(before["rows"][0]["denominator"], serde_json::Value::Null);
    assert_eq!(before["rows"][0]["flags"][0], "no_denominator", "{before}");
    // The same question again comes from the cache and is the same answer.
    assert_eq!(get(port, path), (200, before.clone()));

    // The denominator the population file gives: births of 2023 in the reference year
    // nearest the 1 January after the whole cohort is 12 months old (the youngest, born
    // 31 December 2023, is on 31 December 2024): 2025, which the generated file holds.
    let population = std::fs::read_to_string(export.join("population.csv")).unwrap();
    let rows: Vec<Vec<&str>> = population
        .lines()
        .skip(1)
        .map(|line| line.split(',').collect())
        .collect();
    let latest = "2025";
    assert!(
        rows.iter().any(|r| r[0] == latest),
        "no 2025 population rows"
    );
    let births: u64 = rows
        .iter()
        .filter(|r| r[0] == latest && r[3] == "2023")
        .map(|r| r[4].parse::<u64>().unwrap())
        .sum();
    assert!(births > 0);

    ingest(
        &wh,
        &key,
        &format!("population:{}", export.join("population.csv").display()),
    );
    let started = Instant::now();
    let after = loop {
        let (status, answer) = get(port, path);
        assert_eq!(status, 200, "{answer}");
        if !answer["rows"][0]["denominator"].is_null() {
            break answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the answer never saw the new population table: {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(after["rows"][0]["numerator"].as_u64(), Some(numerator));
    assert_eq!(after["rows"][0]["denominator"].as_u64(), Some(births));
    assert_ne!(after["table_versions"], before["table_versions"]);
    assert_eq!(
        after["population_source"],
        format!("population, reference_year {latest}")
    );
}
