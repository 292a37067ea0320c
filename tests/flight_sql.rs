//! The Arrow Flight SQL door (`serve --flight-listen`), driven by ADBC's Flight SQL driver
//! and polars from PyPI (tests/flight_check.py): answers equal the HTTP API's Arrow answers
//! column for column, the same users and roles, the row cap, refusals, and every statement
//! in the audit table.

mod common;
use common::*;

use std::time::Duration;

const MAX_ROWS: usize = 5_000;

/// A fresh token for a user of `role`: (token, the auth file's `[[user]]` entry).
fn user(name: &str, role: &str) -> (String, String) {
    let out = run(&["token", "new", "--name", name, "--role", role]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr[stderr.find("[[user]]").unwrap()..].to_string(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn flight_sql_answers_like_the_http_api_with_the_same_policy() {
    let Some(python) =
        cross_check_python("flight_sql_answers_like_the_http_api_with_the_same_policy")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 300, 17, &["fhir", "population"]);
    let (analyst, analyst_entry) = user("ana", "analyst");
    let (ministry, ministry_entry) = user("min", "ministry");
    let (operator, operator_entry) = user("ops", "operator");
    let auth = dir.path().join("auth.toml");
    std::fs::write(
        &auth,
        [analyst_entry, ministry_entry, operator_entry].join("\n"),
    )
    .unwrap();
    let flight_port = free_port();
    let flight = format!("127.0.0.1:{flight_port}");
    let max_rows = MAX_ROWS.to_string();
    let mut server = serve(
        &wh,
        &[
            "--auth",
            auth.to_str().unwrap(),
            "--flight-listen",
            &flight,
            "--max-rows",
            &max_rows,
        ],
    );
    let config = serde_json::json!({
        "flight": format!("grpc://{flight}"),
        "http": format!("http://127.0.0.1:{}", server.port),
        "analyst": {"name": "ana", "token": analyst},
        "ministry": {"name": "min", "token": ministry},
        "max_rows": MAX_ROWS,
    });
    let config_file = dir.path().join("flight.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    run_cross_check(&python, "flight_check.py", &[config_file.into_os_string()]);

    // Every call is in the audit: the analyst's statements with their rows, the refusals
    // with their reasons' outcomes, the wrong tokens as unauthenticated.
    std::thread::sleep(Duration::from_millis(1_500));
    let (status, body) = http::request(
        server.port,
        "GET",
        "/api/audit?endpoint=flight-sql&limit=1000",
        &[("Authorization", &format!("Bearer {operator}"))],
        "",
    )
    .map(|answer| (answer.status, answer.text()))
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    let columns: Vec<&str> = audit["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let at = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    let rows = audit["rows"].as_array().unwrap();
    let has = |user: Option<&str>, method: &str, outcome: &str, sql: Option<&str>| {
        rows.iter().any(|row| {
            row[at("user")].as_str() == user
                && row[at("method")].as_str() == Some(method)
                && row[at("outcome")].as_str() == Some(outcome)
                && sql.is_none_or(|sql| row[at("parameters")].as_str().unwrap_or("").contains(sql))
        })
    };
    assert!(
        has(
            Some("ana"),
            "FLIGHT DoGet",
            "ok",
            Some("SELECT count(*) AS doses")
        ),
        "{body}"
    );
    assert!(
        has(
            Some("ana"),
            "FLIGHT GetFlightInfo",
            "refused",
            Some("DROP TABLE")
        ),
        "{body}"
    );
    assert!(
        has(Some("ana"), "FLIGHT DoPut", "refused", Some("DELETE")),
        "{body}"
    );
    assert!(
        has(None, "FLIGHT GetFlightInfo", "unauthenticated", None),
        "{body}"
    );
    assert!(
        has(Some("min"), "FLIGHT GetFlightInfo", "forbidden", None),
        "{body}"
    );
    // The capped answer is recorded with the rows that went out.
    assert!(
        rows.iter()
            .any(|row| row[at("rows")].as_i64() == Some(MAX_ROWS as i64)
                && row[at("parameters")]
                    .as_str()
                    .unwrap_or("")
                    .contains("generate_series")),
        "{body}"
    );
    // A caller not admitted never has their text stored.
    assert!(
        rows.iter()
            .filter(
                |row| row[at("outcome")] == "unauthenticated" || row[at("outcome")] == "forbidden"
            )
            .all(|row| row[at("parameters")].as_str().unwrap_or("").is_empty()),
        "{body}"
    );
    server.terminate();
}

#[test]
fn flight_sql_needs_auth_to_leave_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "serve",
        "--warehouse",
        dir.path().to_str().unwrap(),
        "--flight-listen",
        "0.0.0.0:0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Flight SQL binds to loopback only"),
        "{stderr}"
    );
}
