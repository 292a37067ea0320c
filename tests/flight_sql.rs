//! The Arrow Flight SQL door (`serve --flight-listen`), driven by ADBC's Flight SQL driver
//! and polars from PyPI (tests/flight_check.py): answers equal the HTTP API's Arrow answers
//! column for column, the same users and roles, the row cap, refusals, and every statement
//! in the audit table.

mod common;
use common::doors::{free_port, new_user, self_signed_cert, serve_tls, Audit};
use common::*;

const MAX_ROWS: usize = 5_000;

#[test]
fn flight_sql_answers_like_the_http_api_with_the_same_policy() {
    let Some(python) =
        cross_check_python("flight_sql_answers_like_the_http_api_with_the_same_policy")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 300, 17, &["fhir", "population"]);
    let (analyst, analyst_entry) = new_user("ana", "analyst");
    let (ministry, ministry_entry) = new_user("min", "ministry");
    let (operator, operator_entry) = new_user("ops", "operator");
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
    let audit = Audit::read(server.port, &operator, "flight-sql");
    let body = &audit.body;
    let has = |user, method, outcome, sql| audit.has(user, method, outcome, sql);
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
    let text = |row, column| audit.get(row, column).as_str().unwrap_or("").to_string();
    assert!(
        audit.rows().iter().any(
            |row| audit.get(row, "rows").as_i64() == Some(MAX_ROWS as i64)
                && text(row, "parameters").contains("generate_series")
        ),
        "{body}"
    );
    // A caller not admitted never has their text stored.
    assert!(
        audit
            .rows()
            .iter()
            .filter(|row| ["unauthenticated", "forbidden"].contains(&text(row, "outcome").as_str()))
            .all(|row| text(row, "parameters").is_empty()),
        "{body}"
    );
    server.terminate();
}

#[test]
fn with_a_certificate_flight_sql_speaks_tls() {
    let Some(python) = cross_check_python("with_a_certificate_flight_sql_speaks_tls") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let (token, entry) = new_user("ana", "analyst");
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, entry).unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let flight_port = free_port();
    let flight = format!("127.0.0.1:{flight_port}");
    let _server = serve_tls(&wh, &auth, (&cert, &key), &["--flight-listen", &flight]);
    let up = (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", flight_port)).is_ok()
    });
    assert!(up, "the Flight SQL door did not open");
    let config = dir.path().join("tls.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "flight": format!("grpc+tls://localhost:{flight_port}"),
            "token": token,
            "cert": cert,
        })
        .to_string(),
    )
    .unwrap();
    run_cross_check(
        &python,
        "flight_check.py",
        &["--tls".into(), config.into_os_string()],
    );
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
