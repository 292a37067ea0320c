//! Access control end to end (CONTRACTS.md, Access): tokens made by `vaxlake token new`, the
//! whole role × endpoint matrix with and without (or with a wrong) token, browser sign-in,
//! the audit row of every request, HTTP hardening, TLS, and no identity or token in what
//! the server answers, logs or writes.

mod common;
use common::http::Answer;
use common::*;

use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

const NATIONAL_NUMBER: &str = "1893120105732";

struct Tokens {
    analyst: String,
    ministry: String,
    researcher: String,
    operator: String,
}

/// Makes four users with `vaxlake token new` and writes their entries to an auth file.
fn auth_file(dir: &Path) -> (PathBuf, Tokens) {
    let mut file = String::new();
    let mut token = |name: &str, role: &str, project: Option<&str>| {
        let mut args = vec!["token", "new", "--name", name, "--role", role];
        if let Some(project) = project {
            args.extend(["--project", project]);
        }
        let out = run(&args);
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let entry = &stderr[stderr.find("[[user]]").expect("an auth entry")..];
        assert!(
            !entry.contains(&token),
            "the entry holds the hash, not the token"
        );
        file.push_str(entry);
        token
    };
    let tokens = Tokens {
        analyst: token("ana", "analyst", None),
        ministry: token("min", "ministry", None),
        researcher: token("rex", "researcher", Some("P-2026-014")),
        operator: token("ops", "operator", None),
    };
    let path = dir.join("auth.toml");
    std::fs::write(&path, file).unwrap();
    (path, tokens)
}

/// One request, answered as the server sent it.
fn raw(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    http::request(port, method, path, headers, body).unwrap()
}

fn status_of(response: &Answer) -> u16 {
    response.status
}

fn body_of(response: &Answer) -> &str {
    std::str::from_utf8(&response.body).unwrap()
}

fn header_of<'a>(response: &'a Answer, name: &str) -> Option<&'a str> {
    response.header(name)
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Nobody,
    Wrong,
    Analyst,
    Ministry,
    Researcher,
    Operator,
}

impl Who {
    fn token(self, t: &Tokens) -> Option<String> {
        match self {
            Who::Nobody => None,
            Who::Wrong => {
                Some("vxl_0000000000000000000000000000000000000000000000000000000000000000".into())
            }
            Who::Analyst => Some(t.analyst.clone()),
            Who::Ministry => Some(t.ministry.clone()),
            Who::Researcher => Some(t.researcher.clone()),
            Who::Operator => Some(t.operator.clone()),
        }
    }

    fn name(self) -> Option<&'static str> {
        match self {
            Who::Analyst => Some("ana"),
            Who::Ministry => Some("min"),
            Who::Researcher => Some("rex"),
            Who::Operator => Some("ops"),
            Who::Nobody | Who::Wrong => None,
        }
    }
}

fn call(port: u16, tokens: &Tokens, who: Who, method: &str, path: &str, body: &str) -> Answer {
    let bearer = who.token(tokens).map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    raw(port, method, path, &headers, body)
}

/// Audit rows as JSON arrays, read with `vaxlake audit` (all of them).
fn audit_rows(wh: &Path) -> Vec<Vec<Value>> {
    let (out, _) = ok(&[
        "audit",
        "--warehouse",
        wh.to_str().unwrap(),
        "--format",
        "json",
        "--limit",
        "10000",
    ]);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        answer["columns"],
        serde_json::json!([
            "at",
            "user",
            "role",
            "method",
            "endpoint",
            "parameters",
            "status",
            "outcome",
            "rows",
            "duration_ms"
        ])
    );
    answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().clone())
        .collect()
}

#[test]
fn every_role_gets_exactly_what_the_contract_allows_and_every_request_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 1500, 7, &["fhir", "population", "cases"]);
    let (auth, tokens) = auth_file(dir.path());
    let log = dir.path().join("serve.log");
    let mut server = serve_logged(&wh, &["--auth", auth.to_str().unwrap()], Some(&log));
    let port = server.port;

    use Who::*;
    let everyone = [Nobody, Wrong, Analyst, Ministry, Researcher, Operator];
    let sql = r#"{"sql":"SELECT count(*) AS n FROM vaccinations"}"#;
    // (method, path, body, who may)
    let analysis: &[Who] = &[Analyst, Ministry, Operator];
    let endpoints: Vec<(&str, &str, &str, &[Who])> = vec![
        ("POST", "/api/sql", sql, &[Analyst]),
        ("GET", "/api/coverage?indicator=DTP3&cohort=2023&by=canton", "", analysis),
        ("GET", "/api/coverage/indicators", "", analysis),
        ("GET", "/api/coverage/curve?indicator=MCV1&cohort=2022", "", analysis),
        ("GET", "/api/coverage/dropout?from=DTP1&to=DTP3&cohort=2023", "", analysis),
        ("GET", "/api/coverage/timeliness?indicator=MCV1&cohort=2022", "", analysis),
        ("GET", "/api/effectiveness?antigen=influenza&disease=J1&from=2024-10-01&to=2025-04-30&by=age_band", "", analysis),
        ("GET", "/api/effectiveness/rates?antigen=influenza&disease=J1&from=2024-10-01&to=2025-04-30", "", analysis),
        ("GET", "/api/coverage/flags", "", analysis),
        ("GET", "/api/freshness", "", analysis),
        ("GET", "/api/geography", "", analysis),
        ("GET", "/", "", analysis),
        ("GET", "/api/extracts", "", &[Researcher, Operator]),
        ("GET", "/api/audit?limit=5", "", &[Operator]),
        ("GET", "/api/status", "", &[Operator]),
        ("GET", "/api/status/quarantine", "", &[Operator]),
        ("GET", "/api/status/ingests", "", &[Operator]),
        // Paths no rule lists: refused to every role (nothing is open by default).
        ("GET", "/api/nope", "", &[]),
        ("GET", "/api/coverage/", "", &[]),
        ("GET", "/favicon.ico", "", &[]),
    ];
    let mut expected_audit: Vec<(Option<&str>, String, u16)> = Vec::new();
    for (method, path, body, may) in &endpoints {
        for who in everyone {
            let response = call(port, &tokens, who, method, path, body);
            let status = status_of(&response);
            let allowed = may
                .iter()
                .any(|m| std::mem::discriminant(m) == std::mem::discriminant(&who));
            let page = !path.starts_with("/api/");
            // Not a browser opening a page (no Accept: text/html): 401, pages included.
            let wanted = match who {
                Nobody | Wrong => 401,
                _ if allowed => 200,
                _ => 403,
            };
            assert_eq!(status, wanted, "{who:?} {method} {path}: {response}");
            let endpoint = path.split('?').next().unwrap().to_string();
            expected_audit.push((who.name(), endpoint, status));
            if page && status == 200 {
                continue;
            }
            let answer: Value = serde_json::from_str(body_of(&response))
                .unwrap_or_else(|e| panic!("{who:?} {path}: not JSON ({e}): {response}"));
            if wanted != 200 {
                // A JSON reason and nothing else.
                assert_eq!(answer.as_object().unwrap().len(), 1, "{response}");
                assert!(
                    answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{response}"
                );
            }
        }
    }

    // A browser opening a page without a session is sent to the sign-in form (an extension
    // of the 401); an API call asking for HTML still gets the 401 and its JSON reason.
    let html = [("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")];
    for (path, wanted) in [("/", 303), ("/api/coverage/indicators", 401)] {
        let response = raw(port, "GET", path, &html, "");
        assert_eq!(status_of(&response), wanted, "{path}: {response}");
        if wanted == 303 {
            assert_eq!(header_of(&response, "location"), Some("/login"));
        } else {
            let answer: Value = serde_json::from_str(body_of(&response)).unwrap();
            assert!(answer["error"].is_string(), "{response}");
        }
        expected_audit.push((None, path.to_string(), wanted));
    }
    // A method a route does not answer: 405 with a JSON reason, as every other error.
    let response = call(
        port,
        &tokens,
        Analyst,
        "DELETE",
        "/api/coverage/indicators",
        "",
    );
    assert_eq!(status_of(&response), 405, "{response}");
    assert!(header_of(&response, "allow").is_some_and(|allow| allow.contains("GET")));
    let answer: Value = serde_json::from_str(body_of(&response)).unwrap();
    assert!(answer["error"].is_string(), "{response}");
    expected_audit.push((Some("ana"), "/api/coverage/indicators".into(), 405));

    // What the dashboards read besides the analysis endpoints.
    let json_of = |who, path| -> Value {
        let response = call(port, &tokens, who, "GET", path, "");
        assert_eq!(status_of(&response), 200, "{response}");
        serde_json::from_str(body_of(&response)).unwrap()
    };
    let geography = json_of(Ministry, "/api/geography");
    assert_eq!(
        geography["cantons"].as_array().unwrap().len(),
        12,
        "{geography}"
    );
    // Cells above 100 % carry the provenance of every coverage answer.
    let flags = json_of(Ministry, "/api/coverage/flags");
    assert!(flags["table_versions"]["vaccinations"].is_i64(), "{flags}");
    assert!(flags["suppression_threshold"].is_u64(), "{flags}");
    assert!(flags.get("population_source").is_some(), "{flags}");
    for row in flags["rows"].as_array().unwrap() {
        assert!(row["definition_version"].is_u64(), "{row}");
        assert!(row["population_source"].is_string(), "{row}");
    }
    expected_audit.push((Some("min"), "/api/coverage/flags".into(), 200));
    let freshness = json_of(Ministry, "/api/freshness");
    assert!(freshness["last_ingest"].is_string(), "{freshness}");
    assert!(freshness["data_until"].is_string(), "{freshness}");
    assert!(freshness["table_version"].is_i64(), "{freshness}");
    let runs = json_of(Operator, "/api/status/ingests");
    assert_eq!(
        runs["rows"].as_array().unwrap().len(),
        3,
        "one run per source: {runs}"
    );
    let quarantined: u64 = json_of(Operator, "/api/status/quarantine")["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["count"].as_u64().unwrap())
        .sum();
    let runs_quarantined: u64 = runs["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["quarantined"].as_u64().unwrap())
        .sum();
    assert_eq!(quarantined, runs_quarantined);
    for (who, path) in [
        (Ministry, "/api/geography"),
        (Ministry, "/api/freshness"),
        (Operator, "/api/status/ingests"),
        (Operator, "/api/status/quarantine"),
    ] {
        expected_audit.push((who.name(), path.to_string(), 200));
    }

    // Health: the bare status to anyone, the details to operators only.
    for who in everyone {
        let response = call(port, &tokens, who, "GET", "/api/health", "");
        assert_eq!(status_of(&response), 200, "{who:?}");
        let answer: Value = serde_json::from_str(body_of(&response)).unwrap();
        if matches!(who, Operator) {
            assert!(answer["tables"]["vaccinations"].is_i64(), "{answer}");
            assert!(answer["ingest"]["last_ingest"].is_string(), "{answer}");
        } else {
            assert_eq!(answer, serde_json::json!({"status": "ok"}), "{who:?}");
        }
        expected_audit.push((who.name(), "/api/health".into(), 200));
    }

    // An analyst's query naming a national number: answered, but the number is neither
    // echoed in an error nor written to the audit or the logs.
    let leaky_ok = format!(
        r#"{{"sql":"SELECT count(*) AS n FROM vaccinations WHERE person_key = '{NATIONAL_NUMBER}'"}}"#
    );
    let response = call(port, &tokens, Analyst, "POST", "/api/sql", &leaky_ok);
    assert_eq!(status_of(&response), 200, "{response}");
    let leaky_bad =
        format!(r#"{{"sql":"SELECT CAST('{NATIONAL_NUMBER}x' AS INT) + nope FROM vaccinations"}}"#);
    let response = call(port, &tokens, Analyst, "POST", "/api/sql", &leaky_bad);
    assert_eq!(status_of(&response), 400, "{response}");
    assert!(!body_of(&response).contains(NATIONAL_NUMBER), "{response}");
    assert!(
        response
            .headers
            .iter()
            .all(|(_, value)| !value.contains(NATIONAL_NUMBER)),
        "{response}"
    );
    expected_audit.push((Some("ana"), "/api/sql".into(), 200));
    expected_audit.push((Some("ana"), "/api/sql".into(), 400));

    // Operators read the audit over HTTP too (what was committed so far).
    std::thread::sleep(Duration::from_millis(2500));
    let response = call(
        port,
        &tokens,
        Operator,
        "GET",
        "/api/audit?user=ana&limit=1000",
        "",
    );
    assert_eq!(status_of(&response), 200, "{response}");
    let answer: Value = serde_json::from_str(body_of(&response)).unwrap();
    let seen = answer["rows"].as_array().unwrap();
    assert!(
        !seen.is_empty() && seen.iter().all(|row| row[1] == "ana"),
        "{answer}"
    );
    expected_audit.push((Some("ops"), "/api/audit".into(), 200));

    // A clean stop commits every audit record still queued.
    assert!(server.terminate().success());
    // Newest first: oldest first from here on.
    let rows: Vec<Vec<Value>> = audit_rows(&wh).into_iter().rev().collect();
    let mut recorded: Vec<(Option<String>, String, u16)> = rows
        .iter()
        .map(|row| {
            (
                row[1].as_str().map(str::to_string),
                row[4].as_str().unwrap().to_string(),
                row[6].as_u64().unwrap() as u16,
            )
        })
        .collect();
    // serve's own start-up polls of /api/health are anonymous: set them aside.
    assert!(
        recorded.len() >= expected_audit.len(),
        "{} recorded, {} made: {recorded:#?}",
        recorded.len(),
        expected_audit.len()
    );
    let startup_polls = recorded.len() - expected_audit.len();
    let polls: Vec<_> = recorded.drain(..startup_polls).collect();
    for poll in &polls {
        assert_eq!(poll, &(None, "/api/health".to_string(), 200));
    }
    let mut wanted: Vec<(Option<String>, String, u16)> = expected_audit
        .into_iter()
        .map(|(user, endpoint, status)| (user.map(str::to_string), endpoint, status))
        .collect();
    recorded.sort();
    wanted.sort();
    assert_eq!(
        recorded, wanted,
        "the audit holds exactly the requests made"
    );
    for row in &rows {
        let role = row[2].as_str().unwrap();
        let user = row[1].as_str();
        let expected_role = match user {
            Some("ana") => "analyst",
            Some("min") => "ministry",
            Some("rex") => "researcher",
            Some("ops") => "operator",
            _ => "anonymous",
        };
        assert_eq!(role, expected_role, "{row:?}");
        assert!(row[9].as_f64().unwrap() >= 0.0);
    }
    let sql_rows: Vec<&Vec<Value>> = rows
        .iter()
        .filter(|row| row[4] == "/api/sql" && row[6] == 200 && row[1] == "ana")
        .collect();
    assert!(sql_rows
        .iter()
        .any(|row| row[5] == "SELECT count(*) AS n FROM vaccinations" && row[8] == 1));
    assert!(sql_rows
        .iter()
        .any(|row| row[5].as_str().unwrap().contains("person_key = '<digits>'")));
    let coverage_row = rows
        .iter()
        .find(|row| row[4] == "/api/coverage" && row[6] == 200)
        .unwrap();
    assert_eq!(coverage_row[5], "indicator=DTP3&cohort=2023&by=canton");
    assert!(coverage_row[8].as_i64().unwrap() >= 1);

    // Nothing the server wrote or logged holds the national number or a token.
    let mut written: Vec<(String, Vec<u8>)> = all_files(&wh)
        .into_iter()
        .map(|path| (path.display().to_string(), std::fs::read(path).unwrap()))
        .collect();
    written.push(("serve log".into(), std::fs::read(&log).unwrap()));
    for (what, secret) in [
        ("the national number", NATIONAL_NUMBER),
        ("the analyst's token", &tokens.analyst),
        ("the ministry's token", &tokens.ministry),
        ("the researcher's token", &tokens.researcher),
        ("the operator's token", &tokens.operator),
    ] {
        for (name, bytes) in &written {
            let at = bytes
                .windows(secret.len())
                .position(|w| w == secret.as_bytes());
            assert!(
                at.is_none(),
                "{name} holds {what}: {}",
                String::from_utf8_lossy(&bytes[at.unwrap().saturating_sub(300)..at.unwrap()])
            );
        }
    }
}

#[test]
fn browsers_sign_in_with_a_session_cookie_that_logout_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, tokens) = auth_file(dir.path());
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let server = serve(&wh, &["--auth", auth.to_str().unwrap()]);
    let port = server.port;
    let form = [("Content-Type", "application/x-www-form-urlencoded")];

    // A page without a session sends the browser to the sign-in form; anything but a
    // browser's page navigation (an asset, a script's request) gets the 401.
    let page = raw(port, "GET", "/", &[("Accept", "text/html")], "");
    assert_eq!(status_of(&page), 303, "{page}");
    assert_eq!(header_of(&page, "location"), Some("/login"));
    for (path, accept) in [("/", "*/*"), ("/app.js", "*/*"), ("/", "application/json")] {
        let refused = raw(port, "GET", path, &[("Accept", accept)], "");
        assert_eq!(status_of(&refused), 401, "{path} {accept}: {refused}");
        assert!(body_of(&refused).contains("\"error\""), "{refused}");
    }
    let login = raw(port, "GET", "/login", &[], "");
    assert_eq!(status_of(&login), 200);
    assert!(body_of(&login).contains("<form method=\"post\" action=\"/login\">"));

    // The form may not be framed by another page, and pairs itself with this browser.
    assert_eq!(header_of(&login, "x-frame-options"), Some("DENY"));
    let policy = header_of(&login, "content-security-policy").unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(header_of(&login, "cache-control"), Some("no-store"));
    let pairing = header_of(&login, "set-cookie").unwrap();
    for attribute in [
        "vaxlake_login=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/login",
    ] {
        assert!(pairing.contains(attribute), "{pairing}");
    }

    let wrong = sign_in(port, "vxl_nope");
    assert_eq!(status_of(&wrong), 401);
    assert!(!header_of(&wrong, "set-cookie").is_some_and(|c| c.contains("vaxlake_session")));

    // A sign-in posted by another page: without the form's pairing (login CSRF: signing the
    // victim in as the attacker), or from another origin, even with the right token.
    let forged = raw(
        port,
        "POST",
        "/login",
        &form,
        &format!("token={}", tokens.ministry),
    );
    assert_eq!(status_of(&forged), 403, "{forged}");
    assert!(!header_of(&forged, "set-cookie").is_some_and(|c| c.contains("vaxlake_session")));
    let elsewhere = sign_in_with(port, &tokens.ministry, &[("Origin", "http://127.0.0.1:1")]);
    assert_eq!(status_of(&elsewhere), 403, "{elsewhere}");

    let signed = sign_in_with(
        port,
        &tokens.ministry,
        &[("Origin", &format!("http://127.0.0.1:{port}"))],
    );
    assert_eq!(status_of(&signed), 303, "{signed}");
    let cookie = header_of(&signed, "set-cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "no TLS here: {cookie}");
    assert!(!cookie.contains(&tokens.ministry));
    let session = cookie.split(';').next().unwrap().to_string();
    let with_session = [("Cookie", session.as_str())];

    let allowed = raw(port, "GET", "/api/coverage/indicators", &with_session, "");
    assert_eq!(status_of(&allowed), 200, "{allowed}");
    let json_with_session = [
        ("Cookie", session.as_str()),
        ("Content-Type", "application/json"),
    ];
    let refused = raw(
        port,
        "POST",
        "/api/sql",
        &json_with_session,
        r#"{"sql":"SELECT 1"}"#,
    );
    assert_eq!(
        status_of(&refused),
        403,
        "a ministry session may not run SQL: {refused}"
    );
    // A session's writes must come from this server's pages: JSON (which no other page can
    // send without asking first), and not from another origin.
    let analyst = sign_in(port, &tokens.analyst);
    let analyst = header_of(&analyst, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    for (content_type, origin, wanted) in [
        ("application/json", None, 200),
        ("text/plain", None, 415),
        ("application/x-www-form-urlencoded", None, 415),
        ("application/json", Some("http://127.0.0.1:1"), 403),
        ("application/json", Some("null"), 403),
    ] {
        let mut headers = vec![("Cookie", analyst.as_str()), ("Content-Type", content_type)];
        if let Some(origin) = origin {
            headers.push(("Origin", origin));
        }
        let answer = raw(port, "POST", "/api/sql", &headers, r#"{"sql":"SELECT 1"}"#);
        assert_eq!(
            status_of(&answer),
            wanted,
            "{content_type} {origin:?}: {answer}"
        );
    }
    // A bearer token is no browser's ambient authority: any content type, any origin.
    let bearer = format!("Bearer {}", tokens.analyst);
    let scripted = raw(
        port,
        "POST",
        "/api/sql",
        &[
            ("Authorization", bearer.as_str()),
            ("Origin", "http://127.0.0.1:1"),
        ],
        r#"{"sql":"SELECT 1"}"#,
    );
    assert_eq!(status_of(&scripted), 200, "{scripted}");

    let out = raw(port, "POST", "/logout", &with_session, "");
    assert_eq!(status_of(&out), 303);
    assert!(header_of(&out, "set-cookie").unwrap().contains("Max-Age=0"));
    let after = raw(port, "GET", "/api/coverage/indicators", &with_session, "");
    assert_eq!(status_of(&after), 401, "the session ended: {after}");
    let forged = raw(
        port,
        "GET",
        "/api/coverage/indicators",
        &[("Cookie", "vaxlake_session=00ff")],
        "",
    );
    assert_eq!(status_of(&forged), 401);
}

/// One request on a bare socket with the `Host` header given (HTTP client libraries set their
/// own): its status and the whole answer.
fn with_host(port: u16, request_line: &str, host: &str, body: &str) -> (u16, String) {
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let request = format!(
        "{request_line} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = socket.read_to_string(&mut response);
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    (status, response)
}

/// Signs in as a browser does: the form first (its pairing cookie and hidden field), then the
/// post with both.
fn sign_in(port: u16, token: &str) -> Answer {
    sign_in_with(port, token, &[])
}

/// [`sign_in`] with more headers on the post.
fn sign_in_with(port: u16, token: &str, extra: &[(&str, &str)]) -> Answer {
    let form = raw(port, "GET", "/login", &[], "");
    let pairing = header_of(&form, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let value = pairing.split_once('=').unwrap().1.to_string();
    let mut headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", pairing.as_str()),
    ];
    headers.extend_from_slice(extra);
    raw(
        port,
        "POST",
        "/login",
        &headers,
        &format!("csrf={value}&token={token}"),
    )
}

#[test]
fn serve_refuses_bad_configurations_and_hardens_http() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();

    // Without --auth, only loopback.
    let out = run(&[
        "serve",
        "--warehouse",
        wh.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auth"));
    // A broken auth file is refused at start, naming the entry.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[user]]\nname = \"x\"\nrole = \"admin\"\ntoken_blake3 = \"00\"\n",
    )
    .unwrap();
    let out = run(&[
        "serve",
        "--warehouse",
        wh.to_str().unwrap(),
        "--auth",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.toml"),
        "{out:?}"
    );
    // A researcher token needs its project.
    let out = run(&["token", "new", "--name", "r", "--role", "researcher"]);
    assert!(!out.status.success());

    let server = serve(&wh, &["--header-timeout-secs", "1"]);
    let port = server.port;
    // A body over the limit: 413 with a reason. Sent on a bare socket: the server answers
    // and closes before the body is all written, which an HTTP client library reports as a
    // broken pipe instead of the answer.
    let big = format!(r#"{{"sql":"SELECT '{}'"}}"#, "x".repeat(2 << 20));
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST /api/sql HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    socket.write_all(head.as_bytes()).unwrap();
    let _ = socket.write_all(big.as_bytes());
    let mut response = String::new();
    let _ = socket.read_to_string(&mut response);
    let status: u16 = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no status line in {:?}",
                &response[..200.min(response.len())]
            )
        });
    assert_eq!(status, 413, "{}", &response[..200.min(response.len())]);
    assert!(response.contains("larger than"));
    // No CORS unless asked for.
    let response = raw(
        port,
        "GET",
        "/api/health",
        &[("Origin", "https://elsewhere.example")],
        "",
    );
    assert_eq!(status_of(&response), 200);
    assert!(header_of(&response, "access-control-allow-origin").is_none());
    // No frames, no sniffing, no referrer, on every answer.
    assert_eq!(header_of(&response, "x-frame-options"), Some("DENY"));
    assert_eq!(
        header_of(&response, "x-content-type-options"),
        Some("nosniff")
    );
    assert!(header_of(&response, "content-security-policy")
        .is_some_and(|policy| policy.contains("frame-ancestors 'none'")));
    // Without --auth, a page of another name resolved to 127.0.0.1 (DNS rebinding) reads
    // nothing: only localhost and IP addresses are answered.
    for (host, wanted) in [
        (format!("evil.example:{port}"), 421),
        (format!("127.0.0.1.nip.io:{port}"), 421),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
    ] {
        let (status, answer) = with_host(port, "GET /api/health", &host, "");
        assert_eq!(status, wanted, "Host: {host}: {answer}");
    }
    let (status, answer) = with_host(
        port,
        "POST /api/sql",
        "evil.example",
        r#"{"sql":"SELECT 1"}"#,
    );
    assert_eq!(status, 421, "{answer}");
    assert!(answer.contains("DNS-rebinding"), "{answer}");
    // Nor can a page post a query as a form or text (no preflight), or from another origin.
    let own = format!("http://127.0.0.1:{port}");
    for (content_type, origin, wanted) in [
        ("application/json", Some(own.as_str()), 200),
        ("application/json", None, 200),
        ("text/plain", None, 415),
        ("text/plain;charset=UTF-8", Some("http://evil.example"), 403),
        ("application/json", Some("http://localhost:1"), 403),
    ] {
        let mut headers = vec![("Content-Type", content_type)];
        if let Some(origin) = origin {
            headers.push(("Origin", origin));
        }
        let answer = raw(
            port,
            "POST",
            "/api/sql",
            &headers,
            r#"{"sql":"SELECT 1 AS one"}"#,
        );
        assert_eq!(
            status_of(&answer),
            wanted,
            "{content_type} {origin:?}: {answer}"
        );
    }
    // A client that never finishes its headers is cut off, and the server goes on.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the half-sent request held its connection for {:?}",
        started.elapsed()
    );
    assert_eq!(http_get(port, "/api/health").unwrap().0, 200);
    drop(server);

    let cors = serve(&wh, &["--cors-origin", "https://dash.example"]);
    let response = raw(
        cors.port,
        "GET",
        "/api/health",
        &[("Origin", "https://dash.example")],
        "",
    );
    assert_eq!(
        header_of(&response, "access-control-allow-origin"),
        Some("https://dash.example")
    );
}

/// Sends `request` and closes the connection after `wait`, before any answer.
fn abandon(port: u16, request: &str, wait: Duration) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    std::thread::sleep(wait);
    let _ = s.shutdown(std::net::Shutdown::Both);
}

fn sql_request(token: &str, sql: &str) -> String {
    let body = serde_json::json!({ "sql": sql }).to_string();
    format!(
        "POST /api/sql HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Requests no handler answers are audited as well: a client that goes away mid-query, the
/// request timeout's 503, a 405, a CORS preflight; with the caller the auth found.
/// Guessing tokens gets an address locked out (429, logged, audited); what callers who were
/// not admitted send is not kept (20 anonymous 100 kB queries add a few hundred bytes); a
/// token put in `/login`'s query string is not stored; a sign-in is audited under its user;
/// `/api/audit` cuts long texts.
#[test]
fn guessing_is_locked_out_and_the_audit_keeps_nothing_of_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let (auth, tokens) = auth_file(dir.path());
    let log = dir.path().join("serve.log");
    let mut server = serve_logged(&wh, &["--auth", auth.to_str().unwrap()], Some(&log));
    let port = server.port;

    // Without a credential the body is not even read; with a wrong one only its size is kept.
    let filler = format!(r#"{{"sql":"SELECT '{}'"}}"#, "x".repeat(100_000));
    for who in [Who::Nobody; 19].into_iter().chain([Who::Wrong]) {
        let answer = call(port, &tokens, who, "POST", "/api/sql", &filler);
        assert_eq!(status_of(&answer), 401, "{answer}");
    }
    let secret = "vxl_pasted_into_the_address_bar";
    let page = raw(port, "GET", &format!("/login?token={secret}"), &[], "");
    assert_eq!(status_of(&page), 200);
    assert_eq!(status_of(&sign_in(port, &tokens.ministry)), 303);
    // An analyst's long query is kept whole; /api/audit shows its first 2,000 characters.
    let long_sql = format!(r#"{{"sql":"SELECT 1 AS one -- {}"}}"#, "y".repeat(10_000));
    let answer = call(port, &tokens, Who::Analyst, "POST", "/api/sql", &long_sql);
    assert_eq!(status_of(&answer), 200, "{answer}");
    let mut shown = None;
    for _ in 0..100 {
        let answer = call(
            port,
            &tokens,
            Who::Operator,
            "GET",
            "/api/audit?user=ana&endpoint=/api/sql",
            "",
        );
        assert_eq!(status_of(&answer), 200, "{answer}");
        let rows: Value = serde_json::from_str(body_of(&answer)).unwrap();
        if let Some(text) = rows["rows"][0][5].as_str() {
            shown = Some(text.to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let shown = shown.expect("the analyst's query reaches the audit within 20 s");
    assert_eq!(shown.chars().count(), 2001, "{}", &shown[..100]);
    assert!(shown.starts_with("SELECT 1 AS one -- yyy") && shown.ends_with('…'));

    // Ten different wrong tokens from one address within a minute (the right tokens since the
    // one above forgave it): locked out, the right token included, with Retry-After; another
    // address would not be (unit-tested).
    for i in 0..10 {
        let wrong = format!("Bearer vxl_guess_{i:02}");
        let answer = raw(
            port,
            "GET",
            "/api/coverage/indicators",
            &[("Authorization", wrong.as_str())],
            "",
        );
        assert_eq!(status_of(&answer), 401, "guess {i}: {answer}");
    }
    let locked = call(
        port,
        &tokens,
        Who::Analyst,
        "GET",
        "/api/coverage/indicators",
        "",
    );
    assert_eq!(status_of(&locked), 429, "{locked}");
    assert!(header_of(&locked, "retry-after").is_some_and(|s| s.parse::<u64>().unwrap() > 200));
    assert!(
        body_of(&locked).contains("too many wrong tokens"),
        "{locked}"
    );
    assert_eq!(
        status_of(&sign_in(port, &tokens.analyst)),
        429,
        "the sign-in form too"
    );
    assert!(server.terminate().success());

    let rows = audit_rows(&wh);
    let stranger_bytes: usize = rows
        .iter()
        .filter(|row| row[2] == "anonymous")
        .map(|row| row[5].as_str().unwrap().len())
        .sum();
    let strangers = rows.iter().filter(|row| row[2] == "anonymous").count();
    assert!(strangers >= 20 + 10 + 2, "{strangers} anonymous rows");
    assert!(
        stranger_bytes < 60 * strangers,
        "{stranger_bytes} bytes kept of {strangers} strangers' requests"
    );
    let anonymous_sql: Vec<&Value> = rows
        .iter()
        .filter(|row| row[4] == "/api/sql" && row[2] == "anonymous")
        .map(|row| &row[5])
        .collect();
    let sent = "SELECT ''".len() + 100_000;
    let kept = format!("<{sent} bytes not stored: caller not signed in>");
    assert_eq!(anonymous_sql.len(), 20);
    assert_eq!(anonymous_sql.iter().filter(|p| **p == "").count(), 19);
    assert_eq!(anonymous_sql.iter().filter(|p| **p == &kept).count(), 1);
    let audit_text = serde_json::to_string(&rows).unwrap();
    assert!(
        !audit_text.contains(secret),
        "a token from a query string was stored"
    );
    assert!(!audit_text.contains("vxl_guess"));
    assert!(rows.iter().any(|row| row[4] == "/login"
        && row[3] == "GET"
        && row[5].as_str().unwrap().contains("not stored")));
    assert!(
        rows.iter().any(|row| row[4] == "/login"
            && row[3] == "POST"
            && row[6] == 303
            && row[1] == "min"
            && row[2] == "ministry"),
        "the sign-in is audited under its user"
    );
    let throttled = rows.iter().filter(|row| row[7] == "throttled").count();
    assert_eq!(throttled, 2, "the refused token and the refused sign-in");
    let analyst_sql = rows.iter().find(|row| row[1] == "ana").unwrap();
    assert_eq!(
        analyst_sql[5].as_str().unwrap().len(),
        "SELECT 1 AS one -- ".len() + 10_000,
        "kept whole"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("locked out"), "the lockout is logged");
    assert!(!log.contains("vxl_guess") && !log.contains(secret));
}

#[test]
fn unanswered_requests_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (auth, tokens) = auth_file(dir.path());
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let mut server = serve(
        &wh,
        &[
            "--auth",
            auth.to_str().unwrap(),
            "--request-timeout-secs",
            "2",
            "--cors-origin",
            "https://dash.example",
        ],
    );
    let port = server.port;
    // Runs until the query timeout (60 s) unless cancelled.
    let slow = "SELECT sum(a.value * b.value) AS s FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b";

    // The client goes away mid-query: no answer, but an audit row (and the query stops:
    // the server answers the next request at once).
    abandon(
        port,
        &sql_request(&tokens.analyst, slow),
        Duration::from_millis(700),
    );
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(http_get(port, "/api/health").unwrap().0, 200);
    assert!(started.elapsed() < Duration::from_secs(5));

    // The request timeout: 503 with a JSON reason, recorded like any answer.
    let response = raw(
        port,
        "POST",
        "/api/sql",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {}", tokens.analyst)),
        ],
        &serde_json::json!({ "sql": slow }).to_string(),
    );
    assert_eq!(status_of(&response), 503, "{response}");
    let answer: Value = serde_json::from_str(body_of(&response)).unwrap();
    assert_eq!(answer.as_object().unwrap().len(), 1, "{response}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("not answered within"),
        "{response}"
    );

    // A method the route does not answer: 405 with a JSON reason.
    let response = raw(port, "DELETE", "/api/health", &[], "");
    assert_eq!(status_of(&response), 405, "{response}");
    assert!(body_of(&response).contains("\"error\""), "{response}");

    // A CORS preflight (answered by the CORS layer, before the auth).
    let response = raw(
        port,
        "OPTIONS",
        "/api/sql",
        &[
            ("Origin", "https://dash.example"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
        "",
    );
    assert_eq!(
        header_of(&response, "access-control-allow-origin"),
        Some("https://dash.example"),
        "{response}"
    );
    let preflight_status = status_of(&response);

    assert!(server.terminate().success());
    let rows = audit_rows(&wh);
    let find = |method: &str, endpoint: &str, status: u64| {
        rows.iter()
            .find(|row| row[3] == method && row[4] == endpoint && row[6] == status)
            .unwrap_or_else(|| panic!("no {method} {endpoint} {status} in {rows:#?}"))
    };
    let aborted = find("POST", "/api/sql", 499);
    assert_eq!(aborted[7], "aborted", "{aborted:?}");
    assert_eq!(aborted[1], "ana", "the caller is known: {aborted:?}");
    assert_eq!(aborted[2], "analyst");
    assert!(
        aborted[5].as_str().unwrap().contains("generate_series"),
        "{aborted:?}"
    );
    assert!(aborted[8].is_null());
    let timed_out = find("POST", "/api/sql", 503);
    assert_eq!(timed_out[1], "ana", "{timed_out:?}");
    assert_eq!(timed_out[7], "error");
    assert!(timed_out[9].as_f64().unwrap() >= 2000.0, "{timed_out:?}");
    assert_eq!(find("DELETE", "/api/health", 405)[7], "refused");
    let preflight = find("OPTIONS", "/api/sql", u64::from(preflight_status));
    assert_eq!(preflight[2], "anonymous");
}

/// `token new` writes an entry the auth file reads back whatever the name and project hold
/// (quotes, backslashes, TOML syntax), and refuses control characters.
#[test]
fn token_entries_hold_any_printable_name() {
    let dir = tempfile::tempdir().unwrap();
    let name = r#"O"Brien \ [[user]] role = "operator" 'x'"#;
    let project = r#"P "2026" \ #014"#;
    let mut file = String::new();
    let mut tokens = Vec::new();
    for (name, role, project) in [
        (name, "operator", None),
        ("rex", "researcher", Some(project)),
    ] {
        let mut args = vec!["token", "new", "--name", name, "--role", role];
        if let Some(project) = project {
            args.extend(["--project", project]);
        }
        let (token, stderr) = ok(&args);
        // The entry starts on its own line (the name, shown above it, may hold "[[user]]").
        let at = stderr.find("\n[[user]]\n").expect("an entry") + 1;
        file.push_str(&stderr[at..]);
        tokens.push(token.trim().to_string());
    }
    for bad in ["a\nname = \"x\"", "tab\there", "esc\u{1b}[0m", ""] {
        let out = run(&["token", "new", "--name", bad, "--role", "analyst"]);
        assert!(!out.status.success(), "{bad:?} accepted");
    }
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, &file).unwrap();
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let mut server = serve(&wh, &["--auth", auth.to_str().unwrap()]);
    let get = |token: &str, path: &str| {
        let bearer = format!("Bearer {token}");
        raw(
            server.port,
            "GET",
            path,
            &[("Authorization", bearer.as_str())],
            "",
        )
    };
    // The odd name is an operator (not a name smuggled in as a role).
    let health = get(&tokens[0], "/api/health");
    let answer: Value = serde_json::from_str(body_of(&health)).unwrap();
    assert!(answer.get("tables").is_some(), "operator details: {health}");
    assert_eq!(status_of(&get(&tokens[1], "/api/extracts")), 200);
    assert!(server.terminate().success());
    let rows = audit_rows(&wh);
    assert!(
        rows.iter()
            .any(|row| row[1] == name && row[2] == "operator"),
        "{rows:?}"
    );
}

#[test]
fn tls_serves_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = common::doors::self_signed_cert(dir.path());
    let (auth, tokens) = auth_file(dir.path());
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(&wh).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(bin())
        .args([
            "serve",
            "--warehouse",
            wh.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "--auth",
            auth.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let curl = |args: &[&str]| {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                cert.to_str().unwrap(),
            ])
            .args(args)
            .output()
            .expect("curl is installed (.ci/run installs it)")
    };
    let url = |path: &str| format!("https://localhost:{port}{path}");
    let mut up = false;
    for _ in 0..200 {
        let out = curl(&[
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            &url("/api/health"),
        ]);
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), r#"{"status":"ok"}"#);
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "the TLS server did not answer");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let set_cookie = |out: &std::process::Output| {
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .unwrap_or_else(|| panic!("no cookie: {text}"))
            .to_string()
    };
    // The sign-in form pairs itself with the browser by a cookie, Secure too.
    let form = curl(&["--resolve", &resolve, "-i", &url("/login")]);
    let pairing = set_cookie(&form);
    assert!(pairing.contains("; Secure"), "{pairing}");
    let pairing = pairing["set-cookie:".len()..]
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let value = pairing.split_once('=').unwrap().1.to_string();
    let out = curl(&[
        "--resolve",
        &resolve,
        "-i",
        "-X",
        "POST",
        "-H",
        &format!("Cookie: {pairing}"),
        "--data",
        &format!("csrf={value}&token={}", tokens.operator),
        &url("/login"),
    ]);
    let cookie = set_cookie(&out);
    assert!(cookie.contains("vaxlake_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Plain HTTP to the TLS port gets no answer.
    assert!(http_get(port, "/api/health").is_none_or(|(status, _)| status != 200));
    let _ = child.kill();
    let _ = child.wait();
}
