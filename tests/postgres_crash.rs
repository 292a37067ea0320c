//! `postgres:` under stress, against a real PostgreSQL server: an ingest killed (SIGKILL) at
//! random moments while the registry keeps changing loses and repeats nothing; two ingests
//! racing on one warehouse never commit the same batch twice; `--follow` stops cleanly on
//! SIGTERM; readers never see half a batch.

mod common;
use common::pg::{PgServer, REGISTRY_COLUMNS};
use common::*;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LOG: &str = "info,datafusion=warn,deltalake=warn,deltalake_core=warn,buoyant_kernel=warn,delta_kernel=warn,object_store=warn,hyper=warn,h2=warn,reqwest=warn";

/// SplitMix64: a seeded, dependency-free generator (the moments of the kills, the writes).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A registry server loaded with a generated export, of which the rows past the first
/// `kept` (in `change_seq` order) were moved into the table `held`, for a writer to insert
/// later (they get new `change_seq`s then).
struct Registry {
    dir: tempfile::TempDir,
    server: PgServer,
    key: PathBuf,
    conn: String,
    held: Vec<String>,
}

impl Registry {
    fn new(persons: u32, seed: u64, kept: f64) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        generate(&export, persons, seed);
        let server = PgServer::start();
        server.create_registry();
        server.load_registry_csv(&export.join("registry.csv"));
        let total: u64 = server
            .psql("SELECT count(*) FROM vaccination_events")
            .parse()
            .unwrap();
        let offset = ((total as f64) * kept) as u64;
        server.psql(&format!(
            "CREATE TABLE held AS SELECT * FROM vaccination_events
               WHERE change_seq >= coalesce((SELECT change_seq FROM vaccination_events ORDER BY change_seq OFFSET {offset} LIMIT 1), 9223372036854775807);
             DELETE FROM vaccination_events WHERE event_id IN (SELECT event_id FROM held);"
        ));
        let held: Vec<String> = server
            .psql("SELECT event_id FROM held ORDER BY change_seq")
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        let key = key_file(dir.path(), "k");
        let conn = server.reader_conn_string();
        Registry {
            dir,
            server,
            key,
            conn,
            held,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn source(&self) -> String {
        format!("postgres:{}", self.conn)
    }

    /// SQL inserting these held events into the registry.
    fn insert_sql(ids: &[String]) -> String {
        if ids.is_empty() {
            return String::new();
        }
        let cols = REGISTRY_COLUMNS.join(", ");
        let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
        format!(
            "INSERT INTO vaccination_events ({cols}) SELECT {cols} FROM held WHERE event_id IN ({}) ORDER BY change_seq;\n",
            list.join(", ")
        )
    }

    fn head(&self) -> i64 {
        self.server
            .psql("SELECT coalesce(max(change_seq), 0) FROM vaccination_events")
            .parse()
            .unwrap()
    }

    fn rows(&self) -> u64 {
        self.server
            .psql("SELECT count(*) FROM vaccination_events")
            .parse()
            .unwrap()
    }

    /// `vaxlake ingest` as a child process, stdout and stderr to files under the temporary
    /// directory (named `name.out`, `name.err`).
    fn spawn_ingest(
        &self,
        wh: &(impl WarehouseLocation + ?Sized),
        name: &str,
        follow: bool,
        batch_rows: u32,
    ) -> Child {
        let mut args = vec![
            "ingest".to_string(),
            "--warehouse".into(),
            wh.location(),
            "--source".into(),
            self.source(),
            "--batch-rows".into(),
            batch_rows.to_string(),
            "--key-file".into(),
            self.key.to_str().unwrap().into(),
        ];
        if follow {
            args.extend(["--follow".into(), "--every".into(), "1".into()]);
        }
        Command::new(bin())
            .args(&args)
            .env("VAXLAKE_LOG", LOG)
            .env_remove("VAXLAKE_KEY_FILE")
            .env_remove("VAXLAKE_POSTGRES")
            // On object storage a killed run's lock is a lease the next run waits out.
            .env("VAXLAKE_LEASE_SECONDS", "1")
            .stdin(Stdio::null())
            .stdout(File::create(self.path(&format!("{name}.out"))).unwrap())
            .stderr(File::create(self.path(&format!("{name}.err"))).unwrap())
            .spawn()
            .expect("vaxlake starts")
    }

    fn output_of(&self, name: &str) -> (String, String) {
        let read = |ext: &str| {
            std::fs::read_to_string(self.path(&format!("{name}.{ext}"))).unwrap_or_default()
        };
        (read("out"), read("err"))
    }

    fn status(&self, wh: &(impl WarehouseLocation + ?Sized)) -> String {
        ok(&[
            "status",
            "--warehouse",
            &wh.location(),
            "--source",
            &self.source(),
        ])
        .0
    }

    /// The watermark and lag_rows `vaxlake status` reports.
    fn watermark_and_lag(&self, wh: &(impl WarehouseLocation + ?Sized)) -> (i64, i64) {
        let out = self.status(wh);
        let field = |name: &str| -> i64 {
            out.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in status: {out}"))
                .trim()
                .parse()
                .unwrap()
        };
        (field("watermark "), field("lag_rows "))
    }
}

fn events(wh: &(impl WarehouseLocation + ?Sized)) -> String {
    sql_csv(
        wh,
        "SELECT event_key, content_hash, status, administered_on FROM vaccinations ORDER BY event_key",
    )
}

fn positions(wh: &(impl WarehouseLocation + ?Sized)) -> Vec<i64> {
    sql_csv(
        wh,
        "SELECT position FROM quarantine WHERE source = 'postgres:vaccination_events' ORDER BY position",
    )
    .lines()
    .skip(1)
    .filter(|l| !l.trim().is_empty())
    .map(|l| l.trim().parse().unwrap())
    .collect()
}

/// No event twice in `vaccinations`, no quarantined record twice, and every logged run
/// balanced (read = accepted + quarantined).
fn assert_no_duplicates(wh: &(impl WarehouseLocation + ?Sized)) {
    assert_eq!(
        sql_u64(wh, "SELECT count(*) FROM vaccinations"),
        sql_u64(wh, "SELECT count(DISTINCT event_key) FROM vaccinations"),
        "an event_key is duplicated in {}",
        wh.location()
    );
    assert_eq!(
        sql_u64(wh, "SELECT count(*) FROM quarantine"),
        sql_u64(wh, "SELECT count(DISTINCT quarantine_key) FROM quarantine"),
        "a quarantined record is duplicated in {}:\n{}",
        wh.location(),
        sql_csv(
            wh,
            "SELECT position, reason, run_id FROM quarantine WHERE position IN \
             (SELECT position FROM quarantine GROUP BY position HAVING count(*) > 1) ORDER BY position"
        )
    );
    assert_eq!(
        sql_u64(
            wh,
            "SELECT count(*) FROM ingest_runs WHERE \"read\" <> accepted + quarantined"
        ),
        0,
        "an unbalanced run in ingest_runs:\n{}",
        sql_csv(wh, "SELECT * FROM ingest_runs ORDER BY started_at")
    );
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {name} {}", child.id());
}

/// SIGKILL at random moments while the registry changes; after a last
/// catch-up the warehouse is exactly a clean pull of the final registry.
#[test]
fn crash_at_random_points_loses_and_duplicates_nothing() {
    let reg = Registry::new(2000, CRASH_SEED, 0.4);
    let wh = reg.path("wh");
    crash_at_random_points(&reg, &wh.location(), 24);
}

/// The same on a warehouse on S3 (a loopback S3 server, tests/common/s3.rs): a killed run's
/// lock is a lease object the next run waits out and takes over, and Delta's commits are
/// conditional puts; nothing may be lost or repeated either.
#[test]
fn crash_at_random_points_on_s3_loses_and_duplicates_nothing() {
    let Some(moto) = common::s3::server("postgres_crash (S3)") else {
        return;
    };
    let reg = Registry::new(2000, CRASH_SEED, 0.4);
    let wh = moto.bucket("crash");
    crash_at_random_points(&reg, &wh, 10);
}

const CRASH_SEED: u64 = 20_251_123;

fn crash_at_random_points(reg: &Registry, wh: &str, kills_planned: usize) {
    let started = Instant::now();
    const SEED: u64 = CRASH_SEED;
    assert!(reg.held.len() > 1000, "{}", reg.held.len());
    let stop = AtomicBool::new(false);
    let mut kills = Vec::new();

    let (inserted, transactions) = std::thread::scope(|s| {
        // The registry's application: small transactions, one at a time (so change_seq
        // becomes visible in order), inserting the held rows, correcting existing events
        // (a later administered_on, with a later recorded_at or, as registries do too, the same
        // one) and now and then entering one in error.
        let writer = s.spawn(|| {
            let mut rng = Rng(SEED ^ 0x5EED);
            let (mut next, mut transactions) = (0usize, 0u64);
            while !stop.load(Ordering::SeqCst) {
                let mut sql = String::from("BEGIN;\n");
                let k = rng.range(1, 10) as usize;
                let end = (next + k).min(reg.held.len());
                sql.push_str(&Registry::insert_sql(&reg.held[next..end]));
                next = end;
                let pick = |salt: u64, n: u64| {
                    format!(
                        "SELECT event_id FROM vaccination_events WHERE status = 'completed' \
                         AND recorded_at IS NOT NULL AND administered_on < current_date - 10 \
                         ORDER BY md5(event_id || '{salt}') LIMIT {n}"
                    )
                };
                let corrections = rng.range(0, 4);
                if corrections > 0 {
                    let recorded = if rng.range(0, 2) == 0 {
                        ", recorded_at = recorded_at + interval '1 day'"
                    } else {
                        ""
                    };
                    sql.push_str(&format!(
                        "UPDATE vaccination_events SET administered_on = administered_on + 1{recorded} \
                         WHERE event_id IN ({});\n",
                        pick(rng.next(), corrections)
                    ));
                }
                if rng.range(0, 8) == 0 {
                    sql.push_str(&format!(
                        "UPDATE vaccination_events SET status = 'entered-in-error', \
                         recorded_at = recorded_at + interval '1 day' WHERE event_id IN ({});\n",
                        pick(rng.next(), 1)
                    ));
                }
                sql.push_str("COMMIT;\n");
                reg.server.psql(&sql);
                transactions += 1;
                std::thread::sleep(Duration::from_millis(rng.range(5, 40)));
            }
            (next, transactions)
        });

        let mut rng = Rng(SEED);
        for i in 0..kills_planned {
            let name = format!("follow-{i}");
            let mut child = reg.spawn_ingest(wh, &name, true, 200);
            let ms = rng.range(50, 1500);
            std::thread::sleep(Duration::from_millis(ms));
            if let Some(status) = child.try_wait().unwrap() {
                stop.store(true, Ordering::SeqCst);
                let (out, err) = reg.output_of(&name);
                panic!("the follow ingest {i} stopped by itself ({status}) before its kill\nstdout: {out}\nstderr: {err}");
            }
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert!(!status.success(), "{status}");
            kills.push(ms);
        }
        stop.store(true, Ordering::SeqCst);
        writer.join().expect("the writer thread")
    });
    let kill_phase = started.elapsed();
    // The killed runs did commit batches (the watermark moved while they were being killed).
    let (watermark_after_kills, lag_after_kills) = reg.watermark_and_lag(&wh);
    assert!(watermark_after_kills > 0, "no batch ever committed");

    // One normal run catches up; a second one finds nothing.
    let (caught_up, out, err) = ingest(&wh, &reg.key, &reg.source());
    assert_eq!(caught_up.0, caught_up.1 + caught_up.2, "{out}\n{err}");
    assert_eq!(ingest(&wh, &reg.key, &reg.source()).0, (0, 0, 0));

    // The same as one clean pull of the final registry with the same key.
    let clean = reg.path("clean");
    let (pulled, _, _) = ingest(&clean, &reg.key, &reg.source());
    assert_eq!(pulled.0, reg.rows());
    let (got, want) = (events(&wh), events(&clean));
    if got != want {
        let got: BTreeSet<&str> = got.lines().collect();
        let want: BTreeSet<&str> = want.lines().collect();
        panic!(
            "the warehouse differs from a clean pull\nonly after the crashes: {:?}\nonly in the clean pull: {:?}",
            got.difference(&want).take(20).collect::<Vec<_>>(),
            want.difference(&got).take(20).collect::<Vec<_>>()
        );
    }
    assert_no_duplicates(&wh);
    assert_no_duplicates(&clean);

    // Quarantine: the clean pull's positions are exactly those of the crashed warehouse that
    // are still current versions of registry rows; the crashed warehouse's others are earlier
    // versions of rows since corrected (a quarantined row keeps its position, its change_seq).
    let current: BTreeSet<i64> = reg
        .server
        .psql("SELECT change_seq FROM vaccination_events")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let crashed: Vec<i64> = positions(&wh);
    let crashed_set: BTreeSet<i64> = crashed.iter().copied().collect();
    assert_eq!(
        crashed.len(),
        crashed_set.len(),
        "a position quarantined twice"
    );
    let clean_set: BTreeSet<i64> = positions(&clean).into_iter().collect();
    assert!(!clean_set.is_empty(), "the generated registry has bad rows");
    let still_current: BTreeSet<i64> = crashed_set.intersection(&current).copied().collect();
    assert_eq!(still_current, clean_set);

    // Independently of any pull: the warehouse holds exactly the registry's current rows
    // that are not entered-in-error and whose current version was not quarantined, with
    // their current values (dose dates moved by the writer's updates, statuses).
    let mut want_rows: Vec<String> = reg
        .server
        .psql(
            "SELECT change_seq, administered_on, status FROM vaccination_events \
             WHERE status <> 'entered-in-error'",
        )
        .lines()
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let mut parts = l.splitn(3, '|');
            let seq: i64 = parts.next()?.parse().ok()?;
            let rest = format!("{},{}", parts.next()?, parts.next()?);
            (!still_current.contains(&seq)).then_some(rest)
        })
        .collect();
    let mut got_rows: Vec<String> =
        sql_csv(&wh, "SELECT administered_on, status FROM vaccinations")
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
    want_rows.sort();
    got_rows.sort();
    assert!(want_rows.len() > 100, "{} rows", want_rows.len());
    assert_eq!(
        got_rows.len(),
        want_rows.len(),
        "rows in the warehouse vs valid current rows in the registry"
    );
    assert!(
        got_rows == want_rows,
        "the warehouse's dose dates and statuses differ from the registry's current rows"
    );

    // status: caught up, the watermark is the registry's head.
    let head = reg.head();
    let status = reg.status(&wh);
    assert!(status.contains(&format!("watermark {head}\n")), "{status}");
    assert!(status.contains("lag_rows 0\n"), "{status}");

    let versions = sql_u64(&wh, "SELECT count(*) FROM ingest_runs");
    eprintln!(
        "crash test on {wh}: {kills_planned} kills after {kills:?} ms; writer: {transactions} transactions, \
         {inserted} of {} held rows inserted; watermark after the kills {watermark_after_kills} \
         (lag {lag_after_kills} rows), catch-up read {caught_up:?}; head {head}; \
         {versions} runs logged; {} positions quarantined ({} still current); \
         kill phase {:.1}s, total {:.1}s",
        reg.held.len(),
        crashed_set.len(),
        clean_set.len(),
        kill_phase.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// two ingests started together on one warehouse and registry, in rounds; each
/// round first adds rows to the registry, the first of them bad (an unknown ATC code), so that
/// both racers quarantine rows of the same batch. (The tables exist before the first round:
/// racing their creation is `two_ingests_racing_on_a_fresh_warehouse`.)
#[test]
fn two_ingests_cannot_commit_the_same_batch() {
    let reg = Registry::new(600, 5, 0.3);
    let wh = reg.path("wh");
    ingest(&wh, &reg.key, &reg.source());
    let rounds = 4;
    let chunk = reg.held.len().div_ceil(rounds);
    let mut outcomes = Vec::new();
    for (round, ids) in reg.held.chunks(chunk).enumerate() {
        reg.server.psql(&format!(
            "{}{}",
            bad_rows_sql(&format!("bad-{round}"), 3),
            Registry::insert_sql(ids)
        ));
        // Rows above the watermark: what the two ingests have to share.
        let new_rows = reg.watermark_and_lag(&wh).1 as u64;
        let names = [format!("race-{round}-a"), format!("race-{round}-b")];
        let mut children: Vec<Child> = names
            .iter()
            .map(|name| reg.spawn_ingest(&wh, name, false, 40))
            .collect();
        let statuses: Vec<ExitStatus> = children
            .iter_mut()
            .map(|c| wait_timeout(c, Duration::from_secs(120)).expect("an ingest hangs"))
            .collect();
        let mut reads = Vec::new();
        for (name, status) in names.iter().zip(&statuses) {
            let (out, err) = reg.output_of(name);
            if status.success() {
                let (read, accepted, quarantined) = counts(&out);
                assert_eq!(read, accepted + quarantined, "{out}");
                reads.push(read);
                outcomes.push(format!("{name}: ok read={read}"));
            } else {
                let last = err
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                let lower = err.to_lowercase();
                assert!(
                    lower.contains("conflict") || lower.contains("concurrent"),
                    "{name} failed ({status}) without naming a commit conflict\nstdout: {out}\nstderr: {err}"
                );
                outcomes.push(format!("{name}: failed ({status}): {last}"));
            }
        }
        if reads.is_empty() {
            let (_, a) = reg.output_of(&names[0]);
            let (_, b) = reg.output_of(&names[1]);
            panic!(
                "both ingests failed: {outcomes:#?}\n--- {} stderr ---\n{a}\n--- {} stderr ---\n{b}",
                names[0], names[1]
            );
        }
        if reads.len() == 2 {
            // Both succeeded: each batch was committed by one of them only.
            assert_eq!(reads[0] + reads[1], new_rows, "{outcomes:#?}");
        } else {
            assert!(reads[0] <= new_rows, "{outcomes:#?}");
        }
        assert_no_duplicates(&wh);

        // A loser may have left batches unread: one more run catches up, then the warehouse
        // equals a clean pull of the registry as it is now.
        let (caught_up, _, _) = ingest(&wh, &reg.key, &reg.source());
        outcomes.push(format!("round {round} catch-up read={}", caught_up.0));
        assert_eq!(ingest(&wh, &reg.key, &reg.source()).0, (0, 0, 0));
        let clean = reg.path(&format!("clean-{round}"));
        ingest(&clean, &reg.key, &reg.source());
        assert_eq!(events(&wh), events(&clean), "round {round}: {outcomes:#?}");
        assert_eq!(positions(&wh), positions(&clean), "round {round}");
        assert_no_duplicates(&wh);
        let (watermark, lag) = reg.watermark_and_lag(&wh);
        assert_eq!((watermark, lag), (reg.head(), 0));
    }
    eprintln!("race outcomes: {outcomes:#?}");
}

/// `n` rows with an unknown ATC code (quarantined), copied from a registry row.
fn bad_rows_sql(tag: &str, n: usize) -> String {
    let cols = REGISTRY_COLUMNS.join(", ");
    (0..n)
        .map(|i| {
            let values = REGISTRY_COLUMNS
                .map(|c| match c {
                    "event_id" => format!("'{tag}-{i}'"),
                    "vaccine_atc" => "'J07ZZ99'".to_string(),
                    "recorded_at" => "'2024-01-02T03:04:05Z'".to_string(),
                    other => other.to_string(),
                })
                .join(", ");
            format!(
                "INSERT INTO vaccination_events ({cols}) SELECT {values} FROM vaccination_events \
                 WHERE status = 'completed' ORDER BY change_seq LIMIT 1;\n"
            )
        })
        .collect()
}

/// Two ingests started together on a fresh warehouse: at least one succeeds and every table
/// is created once (a retried CREATE TABLE commit would land at version 1 with another table
/// id, and the process that created version 0 would then fail with "Metadata changed since
/// last commit").
#[test]
fn two_ingests_racing_on_a_fresh_warehouse() {
    let reg = Registry::new(300, 6, 1.0);
    reg.server.psql(&Registry::insert_sql(&reg.held));
    for attempt in 0..6 {
        let wh = reg.path(&format!("wh-{attempt}"));
        let names = [format!("fresh-{attempt}-a"), format!("fresh-{attempt}-b")];
        let mut children: Vec<Child> = names
            .iter()
            .map(|name| reg.spawn_ingest(&wh, name, false, 40))
            .collect();
        let ok_count = children
            .iter_mut()
            .map(|c| wait_timeout(c, Duration::from_secs(120)).expect("an ingest hangs"))
            .filter(ExitStatus::success)
            .count();
        let (_, a) = reg.output_of(&names[0]);
        let (_, b) = reg.output_of(&names[1]);
        assert!(
            ok_count > 0,
            "attempt {attempt}: both failed\n--- a ---\n{a}\n--- b ---\n{b}\n{:?}",
            std::fs::read_dir(wh.join("quarantine/_delta_log"))
                .map(|d| d.count())
                .unwrap_or(0)
        );
        for table in ["vaccinations", "quarantine", "ingest_runs"] {
            let creates = std::fs::read_dir(wh.join(table).join("_delta_log"))
                .unwrap()
                .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
                .filter(|text| text.contains("\"CREATE TABLE\""))
                .count();
            assert_eq!(
                creates, 1,
                "attempt {attempt}: {table} was created {creates} times"
            );
        }
    }
}

/// SIGTERM stops `--follow` with exit 0 and its totals as the last line.
#[test]
fn follow_stops_cleanly_on_sigterm() {
    let reg = Registry::new(300, 9, 0.0);
    assert_eq!(reg.rows(), 0);
    let wh = reg.path("wh");
    let mut child = reg.spawn_ingest(&wh, "follow", true, 100);
    std::thread::sleep(Duration::from_millis(500));
    reg.server.psql(&Registry::insert_sql(&reg.held));
    let rows = reg.rows();
    assert!(rows > 100, "{rows}");
    let head = reg.head();
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (out, err) = reg.output_of("follow");
            panic!("--follow stopped by itself ({status})\nstdout: {out}\nstderr: {err}");
        }
        if wh.join("vaccinations").exists() && reg.watermark_and_lag(&wh) == (head, 0) {
            break;
        }
        assert!(
            Instant::now() < until,
            "--follow did not catch up: {}",
            reg.output_of("follow").1
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let term = Instant::now();
    signal(&child, "-TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(10));
    let (out, err) = reg.output_of("follow");
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("--follow did not stop within 10 s of SIGTERM\nstderr: {err}")
    });
    let stopped_in = term.elapsed();
    assert!(status.success(), "{status}\nstdout: {out}\nstderr: {err}");
    let (read, accepted, quarantined) = counts(&out);
    assert_eq!(read, accepted + quarantined, "{out}");
    assert_eq!(read, rows, "{out}");
    assert!(stopped_in < Duration::from_secs(5), "{stopped_in:?}");
    assert!(err.contains("stopped on signal"), "{err}");
    assert_no_duplicates(&wh);
    eprintln!(
        "sigterm: stopped in {:.2}s; {}",
        stopped_in.as_secs_f64(),
        out.lines().last().unwrap()
    );
}

/// while `--follow` commits batches, every query sees whole batches only: the row
/// count equals the distinct event count, and (inserts only) never goes down.
#[test]
fn readers_always_see_a_consistent_version() {
    let reg = Registry::new(1000, 13, 0.1);
    let wh = reg.path("wh");
    // Creates the tables, so that readers can open them from the start.
    ingest(&wh, &reg.key, &reg.source());
    let mut child = reg.spawn_ingest(&wh, "follow", true, 50);
    let done = AtomicBool::new(false);
    let mut seen: Vec<u64> = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng(13);
            let mut next = 0;
            while next < reg.held.len() {
                let end = (next + rng.range(5, 60) as usize).min(reg.held.len());
                reg.server.psql(&Registry::insert_sql(&reg.held[next..end]));
                next = end;
                std::thread::sleep(Duration::from_millis(rng.range(20, 150)));
            }
            done.store(true, Ordering::SeqCst);
        });
        let until = Instant::now() + Duration::from_secs(120);
        let mut caught_up = false;
        while !caught_up || seen.len() < 20 {
            if let Some(status) = child.try_wait().unwrap() {
                let (out, err) = reg.output_of("follow");
                panic!("--follow stopped ({status})\nstdout: {out}\nstderr: {err}");
            }
            assert!(Instant::now() < until, "timed out; seen {seen:?}");
            let out = sql_csv(
                &wh,
                "SELECT count(*) AS n, count(DISTINCT event_key) AS d FROM vaccinations",
            );
            let line = out.lines().nth(1).expect("one row");
            let (n, d) = line.split_once(',').unwrap();
            let (n, d): (u64, u64) = (n.trim().parse().unwrap(), d.trim().parse().unwrap());
            assert_eq!(n, d, "a duplicated event is visible: {seen:?}");
            if let Some(&last) = seen.last() {
                assert!(
                    n >= last,
                    "the count went down from {last} to {n}: {seen:?}"
                );
            }
            seen.push(n);
            if done.load(Ordering::SeqCst) && !caught_up {
                caught_up = reg.watermark_and_lag(&wh).1 == 0;
            }
        }
    });
    signal(&child, "-TERM");
    let status = wait_timeout(&mut child, Duration::from_secs(10));
    let (out, err) = reg.output_of("follow");
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\nstdout: {out}\nstderr: {err}"
    );
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert!(
        distinct.len() >= 3,
        "the readers saw too few versions: {seen:?}"
    );
    let clean = reg.path("clean");
    ingest(&clean, &reg.key, &reg.source());
    assert_eq!(events(&wh), events(&clean));
    eprintln!("readers: {} queries, counts seen {distinct:?}", seen.len());
}

/// A registry transaction still open when a later one commits, for a row whose recorded_at
/// is old (a late entry of a past vaccination, an import): its change_seq lies below the
/// watermark by the time it commits unless the pull waits for its transaction to end.
#[test]
fn a_backdated_row_of_an_open_transaction_is_not_lost() {
    use std::io::Write as _;
    let reg = Registry::new(100, 1, 1.0);
    reg.server.psql(&Registry::insert_sql(&reg.held));
    let wh = reg.path("wh");
    ingest(&wh, &reg.key, &reg.source());
    let head = reg.head();
    let cols = REGISTRY_COLUMNS.join(", ");
    let late = |id: &str| {
        let values = REGISTRY_COLUMNS
            .map(|c| match c {
                "event_id" => format!("'{id}'"),
                "recorded_at" => "'2024-06-01T10:00:00Z'".to_string(),
                "administered_on" => "'2024-06-01'".to_string(),
                other => other.to_string(),
            })
            .join(", ");
        format!(
            "INSERT INTO vaccination_events ({cols}) SELECT {values} FROM vaccination_events \
             WHERE status = 'completed' ORDER BY change_seq LIMIT 1;\n"
        )
    };
    // T1 takes change_seq head+1 and stays open.
    let mut t1 = reg.server.psql_session();
    let mut stdin = t1.stdin.take().unwrap();
    write!(stdin, "BEGIN;\n{}", late("late-1")).unwrap();
    stdin.flush().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while reg
        .server
        .psql("SELECT last_value FROM vaccination_events_change_seq")
        .parse::<i64>()
        .unwrap()
        <= head
    {
        assert!(Instant::now() < until, "T1 did not insert");
        std::thread::sleep(Duration::from_millis(50));
    }
    // T2 takes head+2 and commits; a pull runs; then T1 commits.
    reg.server.psql(&late("late-2"));
    let first = ingest(&wh, &reg.key, &reg.source()).0;
    writeln!(stdin, "COMMIT;").unwrap();
    drop(stdin);
    let t1 = t1.wait_with_output().unwrap();
    assert!(
        t1.status.success(),
        "{}",
        String::from_utf8_lossy(&t1.stderr)
    );
    let second = ingest(&wh, &reg.key, &reg.source()).0;
    let clean = reg.path("clean");
    ingest(&clean, &reg.key, &reg.source());
    assert_eq!(
        events(&wh),
        events(&clean),
        "late-1 (change_seq {}) was never read: pulls read {first:?} then {second:?}; status:\n{}",
        reg.server
            .psql("SELECT change_seq FROM vaccination_events WHERE event_id = 'late-1'"),
        reg.status(&wh)
    );
}
