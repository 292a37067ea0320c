//! A bounded soak (issue 19, section 3; the long one is `scripts/bench --only soak`): 20
//! concurrent clients mix coverage, effectiveness, SQL and the dashboards' API calls against
//! `vaxlake serve --auth` for 40 s while `vaxlake ingest --follow` pulls a PostgreSQL registry
//! that a writer keeps changing. Checked: no answer but 200 (and 429 from SQL, the server
//! saying "retry"), every request in the audit table, the server's memory not growing
//! through the run, and every answer consistent with one table version.

mod common;
use common::pg::{PgServer, REGISTRY_COLUMNS};
use common::*;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 20;
/// How long the load runs: 40 s in CI; `VAXLAKE_SOAK_SECONDS` runs longer (docs/reliability.md).
fn load() -> Duration {
    Duration::from_secs(
        std::env::var("VAXLAKE_SOAK_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(40),
    )
}
const USER: &str = "soak-analyst";

/// Three scans of `vaccinations` in one query: one table version gives `total = parts`.
const CONSISTENCY_SQL: &str = "SELECT (SELECT count(*) FROM vaccinations) AS total, \
    (SELECT count(*) FROM vaccinations WHERE administered_on < DATE '2024-01-01') \
    + (SELECT count(*) FROM vaccinations WHERE administered_on >= DATE '2024-01-01') \
    + (SELECT count(*) FROM vaccinations WHERE administered_on IS NULL) AS parts";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// What one answer must satisfy on its own; `Err` says what it broke.
fn check(name: &str, body: &serde_json::Value, totals: &Mutex<Vec<u64>>) -> Result<(), String> {
    match name {
        "coverage" => {
            let rows = body["rows"].as_array().ok_or("no rows")?;
            if rows.is_empty() {
                return Err("no coverage rows".into());
            }
            for row in rows {
                let flagged = row["flags"].as_array().is_some_and(|flags| {
                    flags.iter().any(|f| f == "numerator_exceeds_denominator")
                });
                if let (Some(n), Some(d)) = (row["numerator"].as_u64(), row["denominator"].as_u64())
                {
                    if n > d && !flagged {
                        return Err(format!("numerator {n} > denominator {d} unflagged: {row}"));
                    }
                }
                if row["suppressed"] == true && !row["numerator"].is_null() {
                    return Err(format!("a suppressed cell with a count: {row}"));
                }
            }
            if body["table_versions"].is_null() {
                return Err("no table_versions".into());
            }
        }
        "effectiveness" => {
            let overall = &body["overall"];
            for field in ["person_days_vaccinated", "person_days_unvaccinated"] {
                if overall[field].as_f64().is_some_and(|days| days < 0.0) {
                    return Err(format!("negative {field}: {overall}"));
                }
            }
            if overall["ve"].as_f64().is_some_and(|ve| ve > 1.0) {
                return Err(format!("VE above 1: {overall}"));
            }
        }
        "sql" => {
            let row = &body["rows"][0];
            let (total, parts) = (row[0].as_u64(), row[1].as_u64());
            if total.is_none() || total != parts {
                return Err(format!(
                    "total {total:?} != sum of parts {parts:?}: two table versions in one answer"
                ));
            }
            totals.lock().unwrap().push(total.unwrap());
        }
        _ => {}
    }
    Ok(())
}

#[test]
fn twenty_clients_while_follow_commits() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let wh = generated_warehouse(dir.path(), 3000, 23, &["fhir", "population", "cases"]);
    // The export generated_warehouse made is under dir/export; the registry starts with a
    // third of the COVID-19 system's rows and the writer adds the rest while the load runs.
    let registry = PgServer::start();
    registry.create_registry();
    registry.load_registry_csv(&export.join("registry.csv"));
    let cols = REGISTRY_COLUMNS.join(", ");
    registry.psql(
        "CREATE TABLE held AS SELECT * FROM vaccination_events
           WHERE change_seq > (SELECT max(change_seq) / 3 FROM vaccination_events);
         DELETE FROM vaccination_events WHERE event_id IN (SELECT event_id FROM held);",
    );
    let held: u64 = registry.psql("SELECT count(*) FROM held").parse().unwrap();
    assert!(held > 1000, "only {held} registry rows held back");

    let made = run(&["token", "new", "--name", USER, "--role", "analyst"]);
    assert!(made.status.success());
    let token = String::from_utf8_lossy(&made.stdout)
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let entry = String::from_utf8_lossy(&made.stderr).into_owned();
    let auth = dir.path().join("auth.toml");
    std::fs::write(
        &auth,
        &entry[entry.find("[[user]]").expect("an auth entry")..],
    )
    .unwrap();

    let key = dir.path().join("master.key");
    let follow_log = std::fs::File::create(dir.path().join("follow.err")).unwrap();
    let mut follow = Command::new(bin())
        .args([
            "ingest",
            "--warehouse",
            wh.to_str().unwrap(),
            "--source",
            &format!("postgres:{}", registry.reader_conn_string()),
            "--key-file",
            key.to_str().unwrap(),
            "--follow",
            "--every",
            "2",
        ])
        .env(
            "VAXLAKE_LOG",
            "info,datafusion=warn,deltalake=warn,deltalake_core=warn",
        )
        .env_remove("VAXLAKE_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(follow_log)
        .spawn()
        .unwrap();

    let mut server = serve(&wh, &["--auth", auth.to_str().unwrap()]);
    let port = server.port;
    let pid = server.pid();

    let mix: Vec<(&str, &str, &str)> = vec![
        (
            "coverage",
            "GET",
            "/api/coverage?indicator=DTP3&cohort=2023&by=canton",
        ),
        (
            "coverage",
            "GET",
            "/api/coverage?indicator=MCV1&cohort=2022",
        ),
        (
            "coverage",
            "GET",
            "/api/coverage?indicator=DTP1&cohort=2024&by=sex",
        ),
        (
            "effectiveness",
            "GET",
            "/api/effectiveness?antigen=influenza&disease=J1&from=2024-10-01&to=2025-04-30",
        ),
        ("sql", "POST", "/api/sql"),
        ("dashboard", "GET", "/api/freshness"),
        ("dashboard", "GET", "/api/coverage/indicators"),
        ("dashboard", "GET", "/api/geography"),
    ];
    let sql_body = serde_json::json!({ "sql": CONSISTENCY_SQL }).to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(BTreeMap::<(String, u16), u64>::new()));

    // The registry keeps changing: 150 held rows move in every second.
    let writer = {
        let stop = stop.clone();
        let conn = registry.conn_string();
        let psql = registry.psql_bin();
        let cols = cols.clone();
        std::thread::spawn(move || {
            let mut moved = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sql = format!(
                    "WITH moved AS (DELETE FROM held WHERE event_id IN \
                       (SELECT event_id FROM held ORDER BY change_seq LIMIT 150) RETURNING *) \
                     INSERT INTO vaccination_events ({cols}) SELECT {cols} FROM moved ORDER BY change_seq"
                );
                let out = Command::new(&psql)
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &conn, "-c", &sql])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                moved += 150;
                std::thread::sleep(Duration::from_secs(1));
            }
            moved
        })
    };

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (stop, totals, failures, statuses) = (
                stop.clone(),
                totals.clone(),
                failures.clone(),
                statuses.clone(),
            );
            let (mix, token, sql_body) = (mix.clone(), token.clone(), sql_body.clone());
            std::thread::spawn(move || {
                let auth = format!("Bearer {token}");
                let mut sent = 0u64;
                let mut i = client;
                while !stop.load(Ordering::Relaxed) {
                    let (name, method, path) = mix[i % mix.len()];
                    i += 1;
                    let body = if method == "POST" {
                        sql_body.as_str()
                    } else {
                        ""
                    };
                    let answer = http::request(
                        port,
                        method,
                        path,
                        &[
                            ("Authorization", &auth),
                            ("Content-Type", "application/json"),
                            ("Accept", "application/json"),
                        ],
                        body,
                    );
                    sent += 1;
                    let answer = match answer {
                        Ok(answer) => answer,
                        Err(error) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{path}: no answer: {error}"));
                            continue;
                        }
                    };
                    *statuses
                        .lock()
                        .unwrap()
                        .entry((name.to_string(), answer.status))
                        .or_default() += 1;
                    match answer.status {
                        200 => {
                            let parsed = serde_json::from_slice::<serde_json::Value>(&answer.body);
                            let verdict = parsed
                                .map_err(|e| e.to_string())
                                .and_then(|body| check(name, &body, &totals));
                            if let Err(why) = verdict {
                                failures.lock().unwrap().push(format!("{path}: {why}"));
                            }
                        }
                        429 if name == "sql" => {}
                        status => failures
                            .lock()
                            .unwrap()
                            .push(format!("{path}: {status} {}", answer.text())),
                    }
                }
                sent
            })
        })
        .collect();

    let mut rss = Vec::new();
    let load = load();
    while started.elapsed() < load {
        rss.push(rss_kib(pid));
        std::thread::sleep(Duration::from_secs(1));
    }
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let moved = writer.join().unwrap();
    let elapsed = started.elapsed();

    let _ = Command::new("kill")
        .args(["-TERM", &follow.id().to_string()])
        .status();
    let follow_status = follow.wait().unwrap();
    assert!(server.terminate().success(), "serve did not stop cleanly");

    let statuses = statuses.lock().unwrap().clone();
    let totals = totals.lock().unwrap().clone();
    let mut versions = totals.clone();
    versions.sort_unstable();
    versions.dedup();
    let third = rss.len() / 3;
    let early = rss[..third].iter().max().copied().unwrap_or(0);
    let late = rss[rss.len() - third..].iter().max().copied().unwrap_or(0);
    eprintln!(
        "soak: {CLIENTS} clients, {:.1} s, {sent} requests ({:.1}/s), statuses {statuses:?}; \
         registry rows moved in {moved}; vaccinations counts seen {} distinct ({:?}..{:?}); \
         RSS KiB every second {rss:?}; max first third {early}, last third {late}",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        versions.len(),
        versions.first(),
        versions.last()
    );
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        follow_status.success(),
        "ingest --follow ended {follow_status}"
    );
    assert!(
        versions.len() >= 3,
        "the load saw only {} versions of vaccinations: the follow did not commit during it",
        versions.len()
    );
    assert!(
        late <= early + early / 2 + 64 * 1024,
        "RSS grew through the run: max {early} KiB in the first third, {late} KiB in the last"
    );

    // Every request is in the audit, once.
    let audit = ok(&[
        "audit",
        "--warehouse",
        wh.to_str().unwrap(),
        "--user",
        USER,
        "--limit",
        "1000000",
        "--format",
        "json",
    ])
    .0;
    let audit: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let recorded = audit["rows"].as_array().unwrap().len() as u64;
    assert_eq!(
        recorded, sent,
        "the clients sent {sent} requests, the audit holds {recorded}"
    );
}
