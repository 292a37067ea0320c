//! `postgres:` against a real PostgreSQL server: the same rows as the registry's CSV export,
//! exactly once across runs, updates and entered-in-error applied (whatever their
//! `recorded_at`), bad rows quarantined with the watermark still moving, the watermark in the
//! Delta log, `status`, and `--follow` stopping on errors retrying cannot fix.

mod common;
use common::pg::PgServer;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn pull(wh: &Path, key: &Path, conn: &str) -> (u64, u64, u64) {
    ingest(wh, key, &format!("postgres:{conn}")).0
}

fn events(wh: &Path) -> String {
    sql_csv(
        wh,
        "SELECT event_key, content_hash, status, administered_on FROM vaccinations ORDER BY event_key",
    )
}

#[test]
fn pulls_exactly_once_and_matches_the_csv_export() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    generate(&export, 400, 3);
    let registry_csv = export.join("registry.csv");
    let server = PgServer::start();
    server.create_registry();
    server.load_registry_csv(&registry_csv);
    let rows: u64 = server
        .psql("SELECT count(*) FROM vaccination_events")
        .parse()
        .unwrap();
    assert!(rows > 100, "{rows}");
    let key = key_file(dir.path(), "k");
    // The read-only role, as in production; its password comes from the connection string.
    let conn = server.reader_conn_string();

    // First pull: every row of the registry, once.
    let wh = dir.path().join("wh");
    let (read, accepted, quarantined) = pull(&wh, &key, &conn);
    assert_eq!(read, rows);
    assert_eq!(read, accepted + quarantined);

    // The same events as ingesting the CSV export (rows a typed registry cannot hold were
    // never in the database, and are quarantined on the CSV side only).
    let from_csv = dir.path().join("wh-csv");
    ingest(&from_csv, &key, &format!("csv:{}", registry_csv.display()));
    assert_eq!(events(&wh), events(&from_csv));

    // Nothing new: nothing read, nothing written.
    let version = sql_u64(&wh, "SELECT count(*) FROM vaccinations");
    assert_eq!(pull(&wh, &key, &conn), (0, 0, 0));
    assert_eq!(sql_u64(&wh, "SELECT count(*) FROM vaccinations"), version);

    // A correction and an entered-in-error in the registry (later recorded_at): one pull
    // applies both; a row with an unknown ATC code is quarantined, and the watermark moves
    // past it (the next pull reads nothing).
    let ids: Vec<String> = server
        .psql("SELECT event_id FROM vaccination_events WHERE status = 'completed' ORDER BY change_seq LIMIT 2")
        .lines()
        .map(str::to_string)
        .collect();
    server.psql(&format!(
        "UPDATE vaccination_events SET administered_on = administered_on + 1, recorded_at = recorded_at + interval '1 day' WHERE event_id = '{}';
         UPDATE vaccination_events SET status = 'entered-in-error', recorded_at = recorded_at + interval '1 day' WHERE event_id = '{}';
         INSERT INTO vaccination_events (event_id, national_id, birth_date, sex, commune, vaccine_atc, vaccine_name, lot_number, dose_number, administered_on, vaccinator_id, status, recorded_at)
           SELECT 'bad-1', national_id, birth_date, sex, commune, 'J07ZZ99', 'unknown', lot_number, 1, administered_on, vaccinator_id, 'completed', now()
           FROM vaccination_events WHERE event_id = '{}';",
        ids[0], ids[1], ids[0]
    ));
    let before = sql_u64(&wh, "SELECT count(*) FROM vaccinations");
    let quarantine = "SELECT count(*) FROM quarantine WHERE source = 'postgres:vaccination_events'";
    let quarantined_before = sql_u64(&wh, quarantine);
    assert_eq!(pull(&wh, &key, &conn), (3, 2, 1));
    assert_eq!(
        sql_u64(&wh, "SELECT count(*) FROM vaccinations"),
        before - 1,
        "the entered-in-error event is removed"
    );
    assert_eq!(pull(&wh, &key, &conn), (0, 0, 0));
    assert_eq!(sql_u64(&wh, quarantine), quarantined_before + 1);

    // A batch of nothing but a bad row still moves the watermark (an empty Delta commit
    // carrying it), so the row is not read again.
    server.psql(&format!(
        "INSERT INTO vaccination_events (event_id, national_id, birth_date, sex, commune, vaccine_atc, vaccine_name, lot_number, dose_number, administered_on, vaccinator_id, status, recorded_at)
           SELECT 'bad-2', national_id, birth_date, sex, commune, 'J07ZZ99', 'unknown', lot_number, 1, administered_on, vaccinator_id, 'completed', now()
           FROM vaccination_events WHERE event_id = '{}';",
        ids[0]
    ));
    assert_eq!(pull(&wh, &key, &conn), (1, 0, 1));
    assert_eq!(pull(&wh, &key, &conn), (0, 0, 0));
    assert_eq!(sql_u64(&wh, quarantine), quarantined_before + 2);

    // A gap in change_seq that no open registry transaction can fill (a number taken by a
    // statement that committed nothing) is passed at once, even behind a row recorded just
    // now; a gap held by an open transaction is covered by postgres_crash.rs.
    server.psql(&format!(
        "SELECT nextval('vaccination_events_change_seq');
         INSERT INTO vaccination_events (event_id, national_id, birth_date, sex, commune, vaccine_atc, vaccine_name, lot_number, dose_number, administered_on, vaccinator_id, status, recorded_at)
           SELECT 'late-1', national_id, birth_date, sex, commune, vaccine_atc, vaccine_name, lot_number, 1, administered_on, vaccinator_id, 'completed', now()
           FROM vaccination_events WHERE event_id = '{}';",
        ids[0]
    ));
    assert_eq!(
        pull(&wh, &key, &conn),
        (1, 1, 0),
        "a gap nobody holds is passed"
    );

    // The watermark is the registry's head; status shows it and no lag.
    let head = server.psql("SELECT max(change_seq) FROM vaccination_events");
    let (out, _) = ok(&[
        "status",
        "--warehouse",
        wh.to_str().unwrap(),
        "--source",
        &format!("postgres:{conn}"),
    ]);
    assert!(out.contains(&format!("watermark {head}\n")), "{out}");
    assert!(out.contains("lag_rows 0\n"), "{out}");

    // Operators see the same in /api/health, and the lag as rows arrive in the registry.
    let source = format!("postgres:{conn}");
    let api = serve(&wh, &["--source", &source]);
    let health = || {
        let (code, body) = http_get(api.port, "/api/health").unwrap();
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let caught_up = health();
    let ingest_status = &caught_up["ingest"];
    assert_eq!(
        ingest_status["registry"]["watermark"].to_string(),
        head,
        "{caught_up}"
    );
    assert_eq!(ingest_status["registry"]["lag_rows"], 0, "{caught_up}");
    assert_eq!(
        ingest_status["quarantine"]["total"].as_u64(),
        Some(sql_u64(&wh, "SELECT count(*) FROM quarantine")),
        "{caught_up}"
    );
    assert!(ingest_status["last_ingest"].is_string(), "{caught_up}");
    assert!(ingest_status["last_commit"].is_string(), "{caught_up}");
    assert_eq!(ingest_status["registry"]["lag_seconds"], 0, "{caught_up}");
    // Rows recorded (backdated) months ago arrive now: the lag counts how long they have
    // been waiting (at most since the warehouse's last commit), not how old they claim to be.
    server.psql(&format!(
        "INSERT INTO vaccination_events (event_id, national_id, birth_date, sex, commune, vaccine_atc, vaccine_name, lot_number, dose_number, administered_on, vaccinator_id, status, recorded_at)
           SELECT 'later-' || n, national_id, birth_date, sex, commune, vaccine_atc, vaccine_name, lot_number, 1, administered_on, vaccinator_id, 'completed', now() - interval '90 days'
           FROM vaccination_events, generate_series(1, 3) AS n WHERE event_id = '{}';",
        ids[0]
    ));
    std::thread::sleep(Duration::from_millis(1100));
    let behind = health();
    assert_eq!(behind["ingest"]["registry"]["lag_rows"], 3, "{behind}");
    let lag_seconds = behind["ingest"]["registry"]["lag_seconds"]
        .as_i64()
        .unwrap();
    assert!((1..3600).contains(&lag_seconds), "{behind}");
    assert!(!behind.to_string().contains(common::pg::READER_PASSWORD));
    drop(api);

    // Nothing vaxlake wrote names the connection string's password.
    for file in all_files(&wh) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(common::pg::READER_PASSWORD.len() + 9)
                .any(|w| w == format!("password={}", common::pg::READER_PASSWORD).as_bytes()),
            "{} holds the password",
            file.display()
        );
    }
}

/// The connection string can come from VAXLAKE_POSTGRES, out of the process list; a wrong
/// password is a clear error that does not echo the string.
#[test]
fn connection_from_the_environment_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = PgServer::start();
    server.create_registry();
    let key = key_file(dir.path(), "k");
    let wh = dir.path().join("wh");
    let out = std::process::Command::new(bin())
        .args([
            "ingest",
            "--warehouse",
            wh.to_str().unwrap(),
            "--source",
            "postgres:",
            "--key-file",
            key.to_str().unwrap(),
        ])
        .env("VAXLAKE_POSTGRES", server.reader_conn_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("read=0 accepted=0 quarantined=0\n"));

    let wrong = server.reader_conn_string().replace(
        &format!("password={}", common::pg::READER_PASSWORD),
        "password=not-the-password",
    );
    let out = run(&[
        "ingest",
        "--warehouse",
        wh.to_str().unwrap(),
        "--source",
        &format!("postgres:{wrong}"),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to the registry database"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}

/// Rows pulled from the registry are its current state and supersede what the warehouse
/// holds: an update that keeps `recorded_at`, moves it back or clears it is applied, and so
/// is an entered-in-error recorded earlier than the stored row.
#[test]
fn registry_updates_apply_whatever_their_recorded_at() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    generate(&export, 100, 5);
    let server = PgServer::start();
    server.create_registry();
    server.load_registry_csv(&export.join("registry.csv"));
    let key = key_file(dir.path(), "k");
    let conn = server.reader_conn_string();
    let wh = dir.path().join("wh");
    let (read, _, _) = pull(&wh, &key, &conn);
    assert!(read > 10, "{read}");
    // Four events of our own, copies of an accepted one, each with its own lot number.
    let model = server.psql(
        "SELECT event_id FROM vaccination_events WHERE status = 'completed' AND recorded_at IS NOT NULL ORDER BY change_seq LIMIT 1",
    );
    server.psql(&format!(
        "INSERT INTO vaccination_events (event_id, national_id, birth_date, sex, commune, vaccine_atc, vaccine_name, lot_number, dose_number, administered_on, vaccinator_id, status, recorded_at)
           SELECT 'upd-' || n, national_id, birth_date, sex, commune, vaccine_atc, vaccine_name, 'LOT-' || n, dose_number, administered_on, vaccinator_id, 'completed', recorded_at
           FROM vaccination_events, generate_series(1, 4) AS n WHERE event_id = '{model}';"
    ));
    assert_eq!(pull(&wh, &key, &conn), (4, 4, 0));
    let ids: Vec<String> = (1..=4).map(|n| format!("upd-{n}")).collect();
    let lot = |name: &str| {
        sql_u64(
            &wh,
            &format!("SELECT count(*) FROM vaccinations WHERE lot_number = '{name}'"),
        )
    };
    let total = || sql_u64(&wh, "SELECT count(*) FROM vaccinations");
    let before = total();

    // Same recorded_at, an earlier one, none at all: each is applied.
    server.psql(&format!(
        "UPDATE vaccination_events SET lot_number = 'SAME-TIME' WHERE event_id = '{}';
         UPDATE vaccination_events SET lot_number = 'EARLIER', recorded_at = recorded_at - interval '30 days' WHERE event_id = '{}';
         UPDATE vaccination_events SET lot_number = 'NO-TIME', recorded_at = NULL WHERE event_id = '{}';",
        ids[0], ids[1], ids[2]
    ));
    assert_eq!(pull(&wh, &key, &conn), (3, 3, 0));
    assert_eq!(
        (lot("SAME-TIME"), lot("EARLIER"), lot("NO-TIME")),
        (1, 1, 1)
    );
    assert_eq!(total(), before, "corrections replace, never add");
    assert_eq!(
        sql_u64(
            &wh,
            "SELECT count(*) FROM vaccinations WHERE lot_number = 'NO-TIME' AND recorded_at IS NULL"
        ),
        1
    );

    // A second correction of the same event, still with the same recorded_at, wins again.
    server.psql(&format!(
        "UPDATE vaccination_events SET lot_number = 'SAME-TIME-2' WHERE event_id = '{}';",
        ids[0]
    ));
    assert_eq!(pull(&wh, &key, &conn), (1, 1, 0));
    assert_eq!((lot("SAME-TIME"), lot("SAME-TIME-2")), (0, 1));

    // An unchanged row (an update that changed nothing vaxlake keeps) changes nothing.
    let events_before = events(&wh);
    server.psql(&format!(
        "UPDATE vaccination_events SET lot_number = lot_number WHERE event_id = '{}';",
        ids[3]
    ));
    assert_eq!(pull(&wh, &key, &conn), (1, 1, 0));
    assert_eq!(events(&wh), events_before);

    // entered-in-error recorded earlier than the stored row still deletes it.
    server.psql(&format!(
        "UPDATE vaccination_events SET status = 'entered-in-error', recorded_at = recorded_at - interval '1 day' WHERE event_id = '{}';",
        ids[1]
    ));
    assert_eq!(pull(&wh, &key, &conn), (1, 1, 0));
    assert_eq!(lot("EARLIER"), 0);
    assert_eq!(total(), before - 1);
    assert_eq!(pull(&wh, &key, &conn), (0, 0, 0));
}

/// Runs vaxlake with `env`, for at most `limit` (then kills it); returns its exit status
/// (`None` when it had to be killed), stdout and stderr.
fn run_within(
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String, String) {
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let mut child = std::process::Command::new(bin())
        .args(args)
        .env_remove("VAXLAKE_POSTGRES")
        .env_remove("VAXLAKE_KEY_FILE")
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status,
        std::fs::read_to_string(out_path).unwrap(),
        std::fs::read_to_string(err_path).unwrap(),
    )
}

/// `--follow` retries what may pass but stops at once, non-zero, with a one-line reason, on
/// what retrying cannot fix: a wrong password, a relation that does not exist. The reason
/// never quotes the connection string or its password. `--every 0` is refused.
#[test]
fn follow_stops_on_errors_retrying_cannot_fix() {
    let dir = tempfile::tempdir().unwrap();
    let server = PgServer::start();
    server.create_registry();
    let key = key_file(dir.path(), "k");
    let wh = dir.path().join("wh");
    let follow = |source: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec![
            "ingest",
            "--warehouse",
            wh.to_str().unwrap(),
            "--source",
            source,
            "--key-file",
            key.to_str().unwrap(),
            "--follow",
            "--every",
            "1",
        ];
        args.extend_from_slice(extra);
        let started = Instant::now();
        let (status, out, err) = run_within(&args, env, Duration::from_secs(60));
        let status = status.unwrap_or_else(|| {
            panic!("--follow {extra:?} was still running after 60 s\nstdout: {out}\nstderr: {err}")
        });
        assert!(!status.success(), "{status}\nstderr: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}\nstderr: {err}",
            started.elapsed()
        );
        let last = err.lines().last().unwrap_or_default().to_string();
        (last, err)
    };

    let wrong = server.reader_conn_string().replace(
        &format!("password={}", common::pg::READER_PASSWORD),
        "password=not-the-password",
    );
    let (reason, stderr) = follow(&format!("postgres:{wrong}"), &[], &[]);
    assert!(reason.starts_with("error: "), "{stderr}");
    assert!(
        reason.contains("password authentication failed"),
        "{stderr}"
    );
    for secret in ["not-the-password", "password=", wrong.as_str()] {
        assert!(!stderr.contains(secret), "{secret:?} in {stderr}");
    }

    // From the environment, with a relation that does not exist.
    let right = server.reader_conn_string();
    let (reason, stderr) = follow(
        "postgres:",
        &["--table", "no_such_relation"],
        &[("VAXLAKE_POSTGRES", right.as_str())],
    );
    assert!(reason.starts_with("error: "), "{stderr}");
    assert!(reason.contains("no_such_relation"), "{stderr}");
    assert!(reason.contains("does not exist"), "{stderr}");
    for secret in ["password=", right.as_str()] {
        assert!(!stderr.contains(secret), "{secret:?} in {stderr}");
    }

    // A poll interval of 0 is refused before anything runs.
    let out = run(&[
        "ingest",
        "--warehouse",
        wh.to_str().unwrap(),
        "--source",
        "postgres:",
        "--follow",
        "--every",
        "0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 1 second"), "{stderr}");
}
