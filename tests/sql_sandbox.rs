//! The SQL sandbox under fire (DESIGN.md invariant 5): every statement of
//! `tests/sql_sandbox_corpus.tsv` against a real `vaxlake serve` with small limits, several
//! at once, while a probe keeps checking that the server goes on answering everyone else.
//! Afterwards the process is alive, its peak memory stayed bounded, the warehouse holds the
//! same bytes and nothing was written outside it.

mod common;
use common::corpus::Places;
use common::*;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const MAX_ROWS: usize = 50;
const MAX_CONCURRENT_QUERIES: usize = 4;
const QUERY_TIMEOUT: Duration = Duration::from_millis(1_500);
const MEMORY_LIMIT_MIB: u64 = 64;
/// Corpus statements in flight at once; with the probe's query, exactly the permits.
const CORPUS_WORKERS: usize = MAX_CONCURRENT_QUERIES - 1;
/// How long the probe's health check and cheap query may take, at worst.
const PROBE_PATIENCE: Duration = Duration::from_secs(5);
/// Peak resident memory of the server. Idle it holds about 100 MiB (debug build); without
/// the fences, single statements of the corpus took it past 4 GiB or aborted it.
const PEAK_RSS_BOUND_MIB: u64 = 768;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Refused,
    Invalid,
    Memory,
    Timeout,
    Bounded,
    Truncated,
    Answered,
    Empty,
    Busy,
    Crowd,
}

impl Outcome {
    fn parse(word: &str) -> Outcome {
        match word {
            "refused" => Outcome::Refused,
            "invalid" => Outcome::Invalid,
            "memory" => Outcome::Memory,
            "timeout" => Outcome::Timeout,
            "bounded" => Outcome::Bounded,
            "truncated" => Outcome::Truncated,
            "answered" => Outcome::Answered,
            "empty" => Outcome::Empty,
            "busy" => Outcome::Busy,
            "crowd" => Outcome::Crowd,
            other => panic!("unknown outcome {other:?} in the corpus"),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    outcome: Outcome,
    abuse: String,
    sql: String,
}

fn corpus(places: &Places) -> Vec<Entry> {
    common::corpus::entries(places)
        .into_iter()
        .map(|entry| Entry {
            line: entry.line,
            outcome: Outcome::parse(&entry.outcome),
            abuse: entry.abuse,
            sql: entry.sql,
        })
        .collect()
}

/// `POST /api/sql`: (status, body, time taken).
fn post_sql(port: u16, sql: &str) -> (u16, String, Duration) {
    let body = serde_json::json!({ "sql": sql }).to_string();
    let started = Instant::now();
    let (status, answer) = http::request(
        port,
        "POST",
        "/api/sql",
        &[("Content-Type", "application/json")],
        &body,
    )
    .map(|answer| (answer.status, answer.text()))
    .unwrap_or((0, "no answer (connection failed or closed)".to_string()));
    (status, answer, started.elapsed())
}

/// Whether an answer is what `entry` expects; the reason why not otherwise.
fn judge(
    outcome: Outcome,
    status: u16,
    body: &str,
    elapsed: Duration,
    context: &Judging,
) -> Result<(), String> {
    let json: Value =
        serde_json::from_str(body).map_err(|_| format!("not JSON: {}", clip(body)))?;
    let error = || -> Result<&str, String> {
        let object = json.as_object().ok_or("not a JSON object")?;
        let reason = object
            .get("error")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no \"error\" string: {}", clip(body)))?;
        if object.len() != 1 {
            return Err(format!("more than the error in the answer: {}", clip(body)));
        }
        if reason.len() < 20 {
            return Err(format!("reason too short to be clear: {reason:?}"));
        }
        if let Some(key) = context.person_keys.iter().find(|key| reason.contains(*key)) {
            return Err(format!("the reason echoes a person_key ({key}): {reason}"));
        }
        Ok(reason)
    };
    let expect_status = |wanted: u16| match status == wanted {
        true => Ok(()),
        false => Err(format!("status {status}, wanted {wanted}: {}", clip(body))),
    };
    let bounded_in_time = || match elapsed < QUERY_TIMEOUT + Duration::from_secs(10) {
        true => Ok(()),
        false => Err(format!("answered only after {elapsed:?}")),
    };
    let memory = |reason: &str| reason.contains("more memory");
    let timeout = |reason: &str| reason.contains("ran longer than");
    match outcome {
        Outcome::Refused | Outcome::Invalid => {
            expect_status(400)?;
            let reason = error()?;
            let refused = reason.starts_with("refused: ");
            match (outcome, refused) {
                (Outcome::Refused, false) => Err(format!("not a sandbox refusal: {reason}")),
                (Outcome::Invalid, true) => Err(format!("refused, not invalid: {reason}")),
                _ => Ok(()),
            }
        }
        Outcome::Memory | Outcome::Timeout | Outcome::Bounded => {
            expect_status(503)?;
            let reason = error()?;
            let fits = match outcome {
                Outcome::Memory => memory(reason),
                Outcome::Timeout => timeout(reason),
                _ => memory(reason) || timeout(reason),
            };
            match fits {
                true => bounded_in_time(),
                false => Err(format!("bounded the wrong way: {reason}")),
            }
        }
        Outcome::Truncated => {
            expect_status(200)?;
            let rows = json["rows"].as_array().map_or(0, Vec::len);
            match (json["truncated"].as_bool(), rows) {
                (Some(true), MAX_ROWS) => bounded_in_time(),
                _ => Err(format!("{rows} rows, truncated = {}", json["truncated"])),
            }
        }
        Outcome::Answered | Outcome::Empty => {
            expect_status(200)?;
            let rows = json["rows"].as_array().map_or(0, Vec::len);
            if outcome == Outcome::Empty && (rows != 0 || json["truncated"] != false) {
                return Err(format!("{rows} rows, wanted none: {}", clip(body)));
            }
            // Scans print object store paths, without the leading slash.
            let path = context.server_paths.as_str();
            match body.contains(path) || body.contains(path.trim_start_matches('/')) {
                true => Err(format!("the answer shows a server path: {}", clip(body))),
                false => Ok(()),
            }
        }
        Outcome::Busy => match status {
            429 if error()?.contains("too many") => Ok(()),
            503 if timeout(error()?) => bounded_in_time(),
            _ => Err(format!("status {status}: {}", clip(body))),
        },
        Outcome::Crowd => match status {
            429 if error()?.contains("too many") => Ok(()),
            503 if memory(error()?) || timeout(error()?) => bounded_in_time(),
            _ => Err(format!("status {status}: {}", clip(body))),
        },
    }
}

struct Judging {
    /// Data values no reason may echo.
    person_keys: Vec<String>,
    /// The temporary directory holding the warehouse, the export and `outside`.
    server_paths: String,
}

fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

/// Every file under `dir` with its bytes, by path relative to `dir`.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    all_files(dir)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path.strip_prefix(dir).unwrap().to_path_buf(), bytes)
        })
        .collect()
}

/// Peak resident memory of process `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .expect("VmHWM in kB");
    kib / 1024
}

/// Keeps asking for `/api/health` and a cheap query until `stop`; returns what went wrong.
fn probe(port: u16, stop: Arc<AtomicBool>, busy_phase: Arc<AtomicBool>) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut rounds = 0;
    while !stop.load(Ordering::SeqCst) {
        rounds += 1;
        let started = Instant::now();
        let health = http_get(port, "/api/health");
        let waited = started.elapsed();
        if !matches!(&health, Some((200, _))) || waited > PROBE_PATIENCE {
            failures.push(format!("health: {health:?} after {waited:?}"));
        }
        let (status, body, waited) = post_sql(port, "SELECT count(*) AS n FROM vaccinations");
        let allowed = status == 200 || (status == 429 && busy_phase.load(Ordering::SeqCst));
        if !allowed || waited > PROBE_PATIENCE {
            failures.push(format!(
                "cheap query: {status} after {waited:?}: {}",
                clip(&body)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (failures, rounds)
}

#[test]
fn hostile_sql_is_refused_or_bounded_and_the_server_keeps_answering() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let wh = generated_warehouse(dir.path(), 300, 21, &["fhir", "population"]);
    let places = Places {
        warehouse: wh.clone(),
        export: dir.path().join("export"),
        outside: dir.path().join("outside"),
    };
    std::fs::create_dir(&places.outside).unwrap();
    let entries = corpus(&places);
    assert!(
        entries.len() >= 40,
        "the corpus has {} statements",
        entries.len()
    );

    let warehouse_before = contents(&wh);
    let export_before = contents(&places.export);
    let escape = std::env::current_dir()
        .unwrap()
        .join("vaxlake-sandbox-escape.csv");
    assert!(
        !escape.exists(),
        "{} exists before the test",
        escape.display()
    );

    let mut server = serve(
        &wh,
        &[
            "--memory-limit-mb",
            &MEMORY_LIMIT_MIB.to_string(),
            "--query-timeout-ms",
            &QUERY_TIMEOUT.as_millis().to_string(),
            "--max-rows",
            &MAX_ROWS.to_string(),
            "--max-concurrent-queries",
            &MAX_CONCURRENT_QUERIES.to_string(),
        ],
    );
    let port = server.port;
    let idle_rss = peak_rss_mib(server.pid());

    let (status, body, _) = post_sql(port, "SELECT count(*) AS n FROM vaccinations");
    assert_eq!(status, 200, "{body}");
    let doses: Value = serde_json::from_str(&body).unwrap();
    let (status, body, _) = post_sql(port, "SELECT DISTINCT person_key FROM vaccinations");
    assert_eq!(status, 200, "{body}");
    let person_keys: Vec<String> = serde_json::from_str::<Value>(&body).unwrap()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row[0].as_str().map(str::to_string))
        .collect();
    assert!(!person_keys.is_empty());
    let context = Arc::new(Judging {
        person_keys,
        server_paths: dir.path().to_str().unwrap().to_string(),
    });

    let stop = Arc::new(AtomicBool::new(false));
    let busy_phase = Arc::new(AtomicBool::new(false));
    let prober = std::thread::spawn({
        let (stop, busy_phase) = (stop.clone(), busy_phase.clone());
        move || probe(port, stop, busy_phase)
    });

    // Everything but the bursts, CORPUS_WORKERS at a time.
    let (bursts, singles): (Vec<Entry>, Vec<Entry>) = entries
        .iter()
        .cloned()
        .partition(|entry| matches!(entry.outcome, Outcome::Busy | Outcome::Crowd));
    let queue = Arc::new(Mutex::new(VecDeque::from(singles)));
    let report = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..CORPUS_WORKERS)
        .map(|_| {
            let (queue, report, context) = (queue.clone(), report.clone(), context.clone());
            std::thread::spawn(move || loop {
                let Some(entry) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let (status, body, elapsed) = post_sql(port, &entry.sql);
                let verdict = judge(entry.outcome, status, &body, elapsed, &context);
                report
                    .lock()
                    .unwrap()
                    .push((entry, status, elapsed, verdict, clip(&body)));
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    // The bursts: more at once than there are permits.
    busy_phase.store(true, Ordering::SeqCst);
    for entry in bursts {
        let burst = MAX_CONCURRENT_QUERIES + 2;
        let barrier = Arc::new(Barrier::new(burst));
        let threads: Vec<_> = (0..burst)
            .map(|_| {
                let (barrier, sql) = (barrier.clone(), entry.sql.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    post_sql(port, &sql)
                })
            })
            .collect();
        let answers: Vec<_> = threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        let throttled = answers.iter().filter(|(status, ..)| *status == 429).count();
        for (status, body, elapsed) in answers {
            let mut verdict = judge(entry.outcome, status, &body, elapsed, &context);
            if verdict.is_ok() && throttled == 0 && entry.outcome == Outcome::Busy {
                verdict = Err(format!("none of {burst} at once was answered 429"));
            }
            report
                .lock()
                .unwrap()
                .push((entry.clone(), status, elapsed, verdict, clip(&body)));
        }
    }
    busy_phase.store(false, Ordering::SeqCst);
    // A last round of probes after the storm, then stop.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let (probe_failures, probe_rounds) = prober.join().unwrap();

    let mut report = Arc::try_unwrap(report).unwrap().into_inner().unwrap();
    report.sort_by_key(|(entry, ..)| entry.line);
    let mut failures = Vec::new();
    for (entry, status, elapsed, verdict, body) in &report {
        println!(
            "line {:3} {:9} {status} {:>6} ms  {}",
            entry.line,
            format!("{:?}", entry.outcome).to_lowercase(),
            elapsed.as_millis(),
            entry.abuse
        );
        if let Err(why) = verdict {
            failures.push(format!(
                "line {} ({}), expected {:?}: {why}\n    answer: {body}",
                entry.line, entry.abuse, entry.outcome
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} answers were not what the corpus expects:\n{}",
        failures.len(),
        report.len(),
        failures.join("\n")
    );
    assert!(
        probe_failures.is_empty(),
        "the server did not keep answering others ({} of {probe_rounds} probe rounds failed):\n{}",
        probe_failures.len(),
        probe_failures.join("\n")
    );
    assert!(probe_rounds >= 5, "only {probe_rounds} probe rounds");

    // Still alive, still answering the same, memory bounded.
    assert!(server.is_running(), "the server process died");
    let (status, body, _) = post_sql(port, "SELECT count(*) AS n FROM vaccinations");
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), doses);
    let peak = peak_rss_mib(server.pid());
    println!("server peak RSS {peak} MiB (idle {idle_rss} MiB), {probe_rounds} probe rounds");
    assert!(
        peak < PEAK_RSS_BOUND_MIB,
        "the server's peak RSS was {peak} MiB (bound {PEAK_RSS_BOUND_MIB} MiB)"
    );

    // Nothing written outside the warehouse; inside it, only the server's own audit trail.
    assert!(
        all_files(&places.outside).is_empty(),
        "files appeared outside the warehouse: {:?}",
        all_files(&places.outside)
    );
    assert!(!escape.exists(), "COPY wrote {}", escape.display());
    assert!(
        contents(&places.export) == export_before,
        "the export changed"
    );
    let warehouse_after = contents(&wh);
    for (path, bytes) in &warehouse_before {
        assert!(
            warehouse_after.get(path) == Some(bytes),
            "{} changed or vanished",
            path.display()
        );
    }
    let added: Vec<&PathBuf> = warehouse_after
        .keys()
        .filter(|path| !warehouse_before.contains_key(*path))
        .collect();
    assert!(
        added.iter().all(|path| path.starts_with("audit")),
        "files appeared in the warehouse beyond the audit trail: {added:?}"
    );
    println!("{} statements in {:?}", report.len(), started.elapsed());
}
