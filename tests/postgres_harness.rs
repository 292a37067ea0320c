//! The throwaway PostgreSQL of the `postgres:` ingest tests (tests/common/pg.rs) is a real
//! registry: typed columns, the change_seq outbox, a read-only role, and nothing left behind.

mod common;

use common::pg::PgServer;
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[test]
fn throwaway_registry_server_holds_a_generated_registry() {
    let pg = PgServer::start();
    pg.create_registry();
    assert_eq!(pg.psql("SELECT count(*) FROM vaccination_events"), "0");

    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    common::ok(&[
        "generate",
        "--out",
        export.to_str().unwrap(),
        "--persons",
        "300",
    ]);
    let loaded = pg.load_registry_csv(&export.join("registry.csv"));

    // Every row a typed table can hold is loaded: all but the bad dates and field counts.
    let m = common::manifest(&export);
    let csv = &m["csv"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let expected = n(&csv["rows"]) - n(&csv["bad"]["bad_date"]) - n(&csv["bad"]["bad_field_count"]);
    assert!(n(&csv["bad"]["bad_date"]) > 0 && n(&csv["bad"]["bad_field_count"]) > 0);
    assert_eq!(loaded, expected, "rows loaded from registry.csv");
    // Corrections and entered-in-error rows updated their event's row.
    let repeats = n(&csv["corrections"]) + n(&csv["entered_in_error"]);
    assert!(repeats > 0, "the generated file has corrections");
    let count: u64 = pg
        .psql("SELECT count(*) FROM vaccination_events")
        .parse()
        .unwrap();
    assert_eq!(count, loaded - repeats);
    assert_eq!(
        pg.psql(
            "SELECT count(DISTINCT change_seq), count(*) FILTER (WHERE change_seq > 0), \
             count(*) FILTER (WHERE administered_on IS NULL OR recorded_at IS NULL) \
             FROM vaccination_events"
        ),
        format!("{count}|{count}|0")
    );

    // Types: the first data row round-trips, its timestamp's offset included.
    let first = std::fs::read_to_string(export.join("registry.csv")).unwrap();
    let f: Vec<&str> = first.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(f.len(), 13, "{f:?}");
    assert_eq!(
        pg.psql(&format!(
            "SELECT national_id = '{}' AND birth_date = '{}'::date AND dose_number = {} \
             AND administered_on = '{}'::date AND recorded_at = '{}'::timestamptz \
             FROM vaccination_events WHERE event_id = '{}'",
            f[1], f[2], f[8], f[9], f[12], f[0]
        )),
        "t",
        "row {f:?}"
    );
    let types = pg.psql(
        "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_name = 'vaccination_events'",
    );
    assert_eq!(
        types,
        "event_id:text,national_id:text,birth_date:date,sex:text,commune:text,vaccine_atc:text,\
         vaccine_name:text,lot_number:text,dose_number:integer,administered_on:date,\
         vaccinator_id:text,status:text,recorded_at:timestamp with time zone,change_seq:bigint"
    );

    // The outbox: an UPDATE and an INSERT each take a change_seq above every earlier one.
    let max: i64 = pg
        .psql("SELECT max(change_seq) FROM vaccination_events")
        .parse()
        .unwrap();
    let bumped: i64 = pg
        .psql(&format!(
            "UPDATE vaccination_events SET status = 'entered-in-error' \
             WHERE event_id = '{}' RETURNING change_seq",
            f[0]
        ))
        .parse()
        .unwrap();
    assert!(bumped > max, "update: change_seq {bumped} <= {max}");
    let inserted: i64 = pg
        .psql(
            "INSERT INTO vaccination_events (event_id, status, change_seq) \
             VALUES ('CV-test', 'completed', 0) RETURNING change_seq",
        )
        .parse()
        .unwrap();
    assert!(
        inserted > bumped,
        "insert: change_seq {inserted} <= {bumped}"
    );

    // The read-only role: SELECT only, and only with its password.
    let reader = pg.reader_conn_string();
    assert_eq!(
        pg.psql_conn(&reader, "SELECT count(*) FROM vaccination_events"),
        (count + 1).to_string()
    );
    for write in [
        "INSERT INTO vaccination_events (event_id, change_seq) VALUES ('x', 1)",
        "UPDATE vaccination_events SET status = 'x'",
        "DELETE FROM vaccination_events",
        "CREATE TABLE t (x int)",
    ] {
        let err = pg.try_psql(&reader, write).expect_err(write);
        assert!(err.contains("permission denied"), "{write}: {err}");
    }
    let wrong = reader.replace("password=reader", "password=wrong");
    let err = pg
        .try_psql(&wrong, "SELECT 1")
        .expect_err("a wrong password is refused");
    assert!(err.contains("password authentication failed"), "{err}");

    // Dropping stops the server and removes its directory.
    let (dir, pid, port) = (pg.dir().to_path_buf(), pg.pid(), pg.port());
    assert!(alive(pid));
    drop(pg);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < deadline, "postmaster {pid} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still answers"
    );
}

/// Runs and is not a zombie waiting for its parent.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(false)
}
