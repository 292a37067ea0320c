//! The PostgreSQL door (`serve --pg-listen`), driven by Debian's `psql` and by psycopg 3
//! (tests/pg_door_check.py): answers equal the HTTP API's, psql's catalog commands work,
//! SCRAM sign-in with the token as password, refusals (wrong password, a role without
//! SQL, DDL), TLS required when the server has a certificate, and the audit.

mod common;
use common::doors::{free_port, new_user, self_signed_cert, serve_tls, Audit};
use common::*;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

const MAX_ROWS: usize = 5_000;

/// Debian's `psql`: beside the server binaries, else on the PATH.
fn psql_bin() -> PathBuf {
    let beside = common::pg::bin_dir().join("psql");
    match beside.is_file() {
        true => beside,
        false => PathBuf::from("psql"),
    }
}

/// `psql` with `password`, `-c command` on `vaxlake` as `user`.
fn psql(port: u16, user: &str, password: &str, sslmode: &str, command: &str) -> Output {
    std::process::Command::new(psql_bin())
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", command])
        .arg(format!(
            "host=localhost hostaddr=127.0.0.1 port={port} dbname=vaxlake user={user} sslmode={sslmode} connect_timeout=10"
        ))
        .env("PGPASSWORD", password)
        .output()
        .expect("psql runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    wh: PathBuf,
    auth: PathBuf,
    analyst: String,
    ministry: String,
    operator: String,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 300, 19, &["fhir", "population"]);
    let (analyst, a) = new_user("ana", "analyst");
    let (ministry, m) = new_user("min", "ministry");
    let (operator, o) = new_user("ops", "operator");
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, [a, m, o].join("\n")).unwrap();
    Setup {
        _dir: dir,
        wh,
        auth,
        analyst,
        ministry,
        operator,
    }
}

#[test]
fn psql_and_psycopg_get_the_http_apis_answers_under_the_same_policy() {
    let s = setup();
    let pg_port = free_port();
    let pg = format!("127.0.0.1:{pg_port}");
    let max_rows = MAX_ROWS.to_string();
    let mut server = serve(
        &s.wh,
        &[
            "--auth",
            s.auth.to_str().unwrap(),
            "--pg-listen",
            &pg,
            "--max-rows",
            &max_rows,
        ],
    );

    // A plain query equals the HTTP API's answer.
    let out = psql(
        pg_port,
        "ana",
        &s.analyst,
        "disable",
        "SELECT count(*) FROM vaccinations",
    );
    assert!(out.status.success(), "{}", text(&out));
    let (status, body) = http::request(
        server.port,
        "POST",
        "/api/sql",
        &[
            ("Authorization", &format!("Bearer {}", s.analyst)),
            ("Content-Type", "application/json"),
        ],
        r#"{"sql": "SELECT count(*) FROM vaccinations"}"#,
    )
    .map(|answer| (answer.status, answer.text()))
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let http: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        http["rows"][0][0].to_string(),
        "{}",
        text(&out)
    );

    // psql's catalog commands.
    let out = psql(pg_port, "ana", &s.analyst, "disable", "\\dt");
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("vaccinations") && listed.contains("population"),
        "{}",
        text(&out)
    );
    let out = psql(pg_port, "ana", &s.analyst, "disable", "\\d vaccinations");
    assert!(out.status.success(), "{}", text(&out));
    let described = String::from_utf8_lossy(&out.stdout);
    assert!(
        described.contains("administered_on") && described.contains("date"),
        "{}",
        text(&out)
    );
    let out = psql(pg_port, "ana", &s.analyst, "disable", "\\d");
    assert!(out.status.success(), "{}", text(&out));

    // Refusals: a wrong password, a role without SQL, DDL (the sandbox's own reason).
    let out = psql(pg_port, "ana", "vxl_wrong", "disable", "SELECT 1");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("password authentication failed"),
        "{}",
        text(&out)
    );
    let out = psql(pg_port, "nobody", "vxl_wrong", "disable", "SELECT 1");
    assert!(
        text(&out).contains("password authentication failed"),
        "{}",
        text(&out)
    );
    let out = psql(pg_port, "min", &s.ministry, "disable", "SELECT 1");
    assert!(
        text(&out).contains("ministry role may not run SQL"),
        "{}",
        text(&out)
    );
    let out = psql(
        pg_port,
        "ana",
        &s.analyst,
        "disable",
        "DROP TABLE vaccinations",
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("refused: DROP TABLE is not allowed"),
        "{}",
        text(&out)
    );

    // psycopg: parameters, cursors, types, more refusals.
    if let Some(python) =
        cross_check_python("psql_and_psycopg_get_the_http_apis_answers_under_the_same_policy")
    {
        let config = serde_json::json!({
            "host": "127.0.0.1",
            "port": pg_port,
            "http": format!("http://127.0.0.1:{}", server.port),
            "analyst": {"name": "ana", "token": s.analyst},
            "ministry": {"name": "min", "token": s.ministry},
            "sslmode": "disable",
            "max_rows": MAX_ROWS,
        });
        let file = s.wh.parent().unwrap().join("pg.json");
        std::fs::write(&file, config.to_string()).unwrap();
        run_cross_check(&python, "pg_door_check.py", &[file.into_os_string()]);
    }

    // The audit: statements with their user, outcome and rows; sign-ins too.
    let audit = Audit::read(server.port, &s.operator, "postgres");
    let body = &audit.body;
    let has = |user, method, outcome, sql| audit.has(user, method, outcome, sql);
    assert!(has(Some("ana"), "POSTGRES connect", "ok", None), "{body}");
    assert!(
        has(None, "POSTGRES connect", "unauthenticated", None),
        "{body}"
    );
    assert!(
        has(Some("min"), "POSTGRES connect", "forbidden", None),
        "{body}"
    );
    assert!(
        has(
            Some("ana"),
            "POSTGRES Query",
            "ok",
            Some("SELECT count(*) FROM vaccinations")
        ),
        "{body}"
    );
    assert!(
        has(Some("ana"), "POSTGRES Query", "refused", Some("DROP TABLE")),
        "{body}"
    );
    assert!(
        audit
            .rows()
            .iter()
            .any(|row| audit.get(row, "method") == "POSTGRES Query"
                && audit.get(row, "rows").as_i64() == Some(1)),
        "{body}"
    );
    server.terminate();
}

#[test]
fn with_a_certificate_the_postgres_door_takes_tls_only() {
    let s = setup();
    let (cert, key) = self_signed_cert(s.wh.parent().unwrap());
    let pg_port = free_port();
    let pg = format!("127.0.0.1:{pg_port}");
    let _server = serve_tls(&s.wh, &s.auth, (&cert, &key), &["--pg-listen", &pg]);
    let mut answered = None;
    for _ in 0..300 {
        let out = psql(pg_port, "ana", &s.analyst, "require", "SELECT 1");
        if out.status.success() {
            answered = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = answered.expect("psql over TLS was answered");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    // Verified against the certificate, as an analyst would configure it.
    let out = std::process::Command::new(psql_bin())
        .args(["-X", "-A", "-t", "-c", "SELECT 2"])
        .arg(format!(
            "host=localhost hostaddr=127.0.0.1 port={pg_port} dbname=vaxlake user=ana sslmode=verify-full sslrootcert={}",
            cert.display()
        ))
        .env("PGPASSWORD", &s.analyst)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = psql(pg_port, "ana", &s.analyst, "disable", "SELECT 1");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("accepts TLS connections only"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_postgres_door_needs_auth() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "serve",
        "--warehouse",
        dir.path().to_str().unwrap(),
        "--pg-listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--auth"),
        "{out:?}"
    );
}
