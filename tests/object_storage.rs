//! Warehouses on S3-compatible object storage (`--warehouse s3://bucket/prefix`), against a
//! real S3 server on loopback (moto, `tests/common/s3.rs`): the same answers as the same
//! sources ingested on local disk, writers racing without losing a commit, and a killed
//! ingest completed by the next run once its lease runs out.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{counts, generate, key_file, ok, s3, BENCHMARK_QUERY, FLU_STUDY};

/// Queries whose answers must not depend on where the warehouse lives.
const QUERIES: &[&str] = &[
    BENCHMARK_QUERY,
    "SELECT count(*) AS n, count(DISTINCT person_key) AS persons FROM vaccinations",
    "SELECT birth_decade, status, count(*) AS n FROM vaccinations GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT antigen, count(*) AS n FROM antigen_doses GROUP BY 1 ORDER BY 1",
    "SELECT count(*) AS n FROM persons",
    "SELECT reference_year, sum(count) AS n FROM population GROUP BY 1 ORDER BY 1",
    "SELECT disease, count(*) AS n FROM cases GROUP BY 1 ORDER BY 1",
];

fn source(export: &Path, kind: &str) -> String {
    let path = match kind {
        "fhir" => export.join("fhir"),
        "csv" => export.join("registry.csv"),
        other => export.join(format!("{other}.csv")),
    };
    format!("{kind}:{}", path.display())
}

fn ingest(warehouse: &str, key: &Path, source: &str) -> (u64, u64, u64) {
    let (out, _) = ok(&[
        "ingest",
        "--warehouse",
        warehouse,
        "--source",
        source,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    counts(&out)
}

fn sql(warehouse: &str, query: &str) -> String {
    ok(&["sql", "--warehouse", warehouse, "--format", "csv", query]).0
}

fn coverage_table(warehouse: &str) -> String {
    ok(&[
        "coverage",
        "--warehouse",
        warehouse,
        "--all",
        "--format",
        "csv",
        // Nothing withheld: which complementary cells are withheld depends on the
        // warehouse's own complement-order secret, which two warehouses do not share.
        "--suppression-threshold",
        "1",
    ])
    .0
}

fn effectiveness(warehouse: &str) -> String {
    let mut args = vec!["effectiveness", "--warehouse", warehouse];
    args.extend_from_slice(FLU_STUDY);
    ok(&args).0
}

/// Fails with the first lines that differ (whole answers are too long to read).
fn assert_same(got: &str, want: &str, what: &str) {
    if got == want {
        return;
    }
    let first = got
        .lines()
        .zip(want.lines())
        .enumerate()
        .find(|(_, (g, w))| g != w);
    panic!(
        "{what}: answers differ ({} lines against {}); first difference: {first:?}",
        got.lines().count(),
        want.lines().count()
    );
}

/// A vaxlake child with the test's environment (the AWS variables of the S3 server), its
/// output in files: children running at once must never block on a full pipe.
struct Child {
    process: std::process::Child,
    stdout: tempfile::NamedTempFile,
    stderr: tempfile::NamedTempFile,
}

fn spawn(args: &[&str], extra_env: &[(&str, &str)]) -> Child {
    let stdout = tempfile::NamedTempFile::new().unwrap();
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new(common::bin());
    command
        .args(args)
        .env("VAXLAKE_LOG", "info")
        .env_remove("VAXLAKE_KEY_FILE")
        .stdout(stdout.reopen().unwrap())
        .stderr(stderr.reopen().unwrap());
    for (name, value) in extra_env {
        command.env(name, value);
    }
    Child {
        process: command.spawn().expect("vaxlake starts"),
        stdout,
        stderr,
    }
}

fn wait_ok(mut child: Child, what: &str) -> String {
    let status = child.process.wait().unwrap();
    let stdout = std::fs::read_to_string(child.stdout.path()).unwrap();
    assert!(
        status.success(),
        "{what} failed\nstdout: {stdout}\nstderr: {}",
        std::fs::read_to_string(child.stderr.path()).unwrap()
    );
    stdout
}

#[test]
fn an_s3_warehouse_answers_as_the_same_sources_on_local_disk() {
    let Some(moto) = s3::server("object_storage") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    generate(&export, 1_500, 11);
    let key = key_file(dir.path(), "master.key");
    let local = dir.path().join("wh");
    let local = local.to_str().unwrap();
    let remote = moto.bucket("same-answers");

    for kind in ["fhir", "csv", "population", "cases"] {
        let source = source(&export, kind);
        let on_disk = ingest(local, &key, &source);
        let on_s3 = ingest(&remote, &key, &source);
        assert_eq!(on_s3, on_disk, "{source}: counts differ on S3");
        assert!(on_s3.1 > 0, "{source} accepted nothing");
    }
    for query in QUERIES {
        assert_same(&sql(&remote, query), &sql(local, query), query);
    }
    let coverage = coverage_table(local);
    assert!(coverage.lines().count() > 10, "{coverage}");
    assert_same(&coverage_table(&remote), &coverage, "coverage --all");
    assert_same(
        &effectiveness(&remote),
        &effectiveness(local),
        "effectiveness",
    );

    // The warehouse is really on S3: the Delta logs and the complement-order secret are
    // objects under the prefix, and nothing was written next to the test.
    let keys = moto.keys("same-answers", "warehouse/");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("warehouse/vaccinations/_delta_log/")),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.contains("order")), "{keys:?}");
    // No lock is left behind by the finished runs.
    assert!(
        !keys.iter().any(|k| k.ends_with(".lock")),
        "a lease outlived its run: {keys:?}"
    );

    // Maintenance on S3 compacts and vacuums, and changes no answer.
    let (report, _) = ok(&["maintain", "--warehouse", &remote]);
    for table in ["vaccinations", "persons", "dose_facts", "quarantine"] {
        let line = report
            .lines()
            .find(|line| line.starts_with(&format!("{table} version ")))
            .unwrap_or_else(|| panic!("maintain reported nothing of {table}:\n{report}"));
        // `files A -> B`: compaction never leaves more files than it found.
        let files: Vec<u64> = line
            .split("files ")
            .nth(1)
            .and_then(|rest| {
                rest.split(' ')
                    .collect::<Vec<_>>()
                    .get(..3)
                    .map(|w| w.to_vec())
            })
            .map(|w| vec![w[0].parse().unwrap(), w[2].parse().unwrap()])
            .unwrap_or_else(|| panic!("{line}"));
        assert!(files[1] <= files[0] && files[1] > 0, "{line}");
    }
    for query in QUERIES {
        assert_same(&sql(&remote, query), &sql(local, query), query);
    }
    // Compaction added versions: all but the provenance's table versions is unchanged.
    let unversioned = |text: &str| {
        text.lines()
            .filter(|line| !line.starts_with("# table_versions"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_same(
        &unversioned(&coverage_table(&remote)),
        &unversioned(&coverage),
        "coverage --all after maintain",
    );
    let (status, _) = ok(&["status", "--warehouse", &remote]);
    assert!(status.contains("vaccinations"), "{status}");

    // The server reads the same warehouse.
    let port = common::doors::free_port();
    let mut server = common::doors::KillOnDrop(
        Command::new(common::bin())
            .args(["serve", "--warehouse", &remote])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        match common::http::request(port, "GET", "/api/health", &[], "") {
            Ok(answer) if answer.status == 200 => break answer.text(),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!(
                "the server on S3 did not come up: {:?}",
                other.map(|a| a.status)
            ),
        }
    };
    assert!(health.contains("vaccinations"), "{health}");
    let body = serde_json::json!({ "sql": QUERIES[1] }).to_string();
    let answer = common::http::request(
        port,
        "POST",
        "/api/sql",
        &[("Content-Type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{answer}");
    let json: serde_json::Value = serde_json::from_str(&answer.text()).unwrap();
    let served = json["rows"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let local_answer = sql(local, QUERIES[1]);
    assert_eq!(
        Some(served.as_str()),
        local_answer.lines().nth(1),
        "{answer}"
    );
    let _ = server.0.kill();

    // An extract of the S3 warehouse, written to the local directory VAXLAKE_EXTRACTS_DIR
    // names (extracts are files handed to people).
    let extracts = dir.path().join("extracts");
    let spec = dir.path().join("spec.toml");
    std::fs::write(
        &spec,
        "project = \"P-S3\"\npurpose = \"MMR by canton\"\ntable = \"antigen_doses\"\n\
         columns = [\"person_key\", \"antigen\", \"dose_seq\", \"sex\", \"canton\"]\n\
         where = \"antigen = 'measles'\"\nquasi_identifiers = [\"sex\", \"canton\"]\nk = 5\n\
         max_suppressed_share = 0.5\n",
    )
    .unwrap();
    let refused = common::run(&[
        "extract",
        "create",
        "--warehouse",
        &remote,
        "--spec",
        spec.to_str().unwrap(),
        "--by",
        "alice",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(
        !refused.status.success(),
        "an extract of an S3 warehouse without a local directory"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("VAXLAKE_EXTRACTS_DIR"),
        "{refused:?}"
    );
    let created = Command::new(common::bin())
        .args(["extract", "create", "--warehouse", &remote, "--spec"])
        .arg(&spec)
        .args(["--by", "alice", "--key-file"])
        .arg(&key)
        .env("VAXLAKE_EXTRACTS_DIR", &extracts)
        .env_remove("VAXLAKE_KEY_FILE")
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    assert!(
        extracts
            .join("P-S3")
            .join(&id)
            .join("manifest.json")
            .is_file(),
        "no manifest for extract {id} under {}",
        extracts.display()
    );

    // Key rotation on S3: every pseudonym re-keyed (a lease held on every table), the
    // counts unchanged.
    let next_key = key_file(dir.path(), "next.key");
    ok(&[
        "key",
        "rotate",
        "--warehouse",
        &remote,
        "--key-file",
        key.to_str().unwrap(),
        "--new-key-file",
        next_key.to_str().unwrap(),
    ]);
    assert_same(
        &sql(&remote, QUERIES[1]),
        &sql(local, QUERIES[1]),
        "after key rotate",
    );
    let some_pseudonym = "SELECT min(person_key) AS k FROM vaccinations";
    assert_ne!(sql(&remote, some_pseudonym), sql(local, some_pseudonym));
}

#[test]
fn writers_racing_on_one_s3_warehouse_lose_no_commit() {
    let Some(moto) = s3::server("object_storage") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    generate(&export, 800, 12);
    let key = key_file(dir.path(), "master.key");
    let local = dir.path().join("wh");
    let local = local.to_str().unwrap();
    for kind in ["fhir", "csv", "population"] {
        ingest(local, &key, &source(&export, kind));
    }

    let remote = moto.bucket("racing");
    let key_arg = key.to_str().unwrap().to_string();
    let ingest_args = |source: &str| -> Vec<String> {
        [
            "ingest",
            "--warehouse",
            &remote,
            "--source",
            source,
            "--key-file",
            &key_arg,
            "--batch-rows",
            "300",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // The same FHIR export twice at once (the duplicate insert the ingest lock prevents), and
    // the registry CSV beside them.
    let fhir = source(&export, "fhir");
    let csv = source(&export, "csv");
    let racers: Vec<_> = [&fhir, &fhir, &csv]
        .iter()
        .map(|source| {
            let args = ingest_args(source);
            spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        })
        .collect();
    for (index, racer) in racers.into_iter().enumerate() {
        wait_ok(racer, &format!("racing ingest {index}"));
    }
    // An ingest and a maintenance run at once.
    let population = ingest_args(&source(&export, "population"));
    let population = spawn(
        &population.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    let maintain = spawn(&["maintain", "--warehouse", &remote], &[]);
    wait_ok(population, "ingest racing maintain");
    wait_ok(maintain, "maintain racing an ingest");

    for query in QUERIES.iter().filter(|q| !q.contains("FROM cases")) {
        assert_same(&sql(&remote, query), &sql(local, query), query);
    }
    let keys = moto.keys("racing", "warehouse/");
    assert!(!keys.iter().any(|k| k.ends_with(".lock")), "{keys:?}");
}

#[test]
fn an_ingest_killed_on_s3_is_completed_by_the_next_run() {
    let Some(moto) = s3::server("object_storage") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    generate(&export, 3_000, 13);
    let key = key_file(dir.path(), "master.key");
    let local = dir.path().join("wh");
    let local = local.to_str().unwrap();
    let fhir = source(&export, "fhir");
    let clean = ingest(local, &key, &fhir);

    let remote = moto.bucket("killed");
    let args = [
        "ingest",
        "--warehouse",
        &remote,
        "--source",
        &fhir,
        "--key-file",
        key.to_str().unwrap(),
        "--batch-rows",
        "500",
    ];
    let lease = [("VAXLAKE_LEASE_SECONDS", "2")];
    let mut victim = spawn(&args, &lease);
    // Killed once its first commits are on S3, in the middle of the run.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let commits = moto
            .keys("killed", "warehouse/vaccinations/_delta_log/")
            .iter()
            .filter(|k| k.ends_with(".json"))
            .count();
        if commits >= 2 {
            break;
        }
        assert!(
            victim.process.try_wait().unwrap().is_none(),
            "the ingest ended before it could be killed (make the export larger)"
        );
        assert!(Instant::now() < deadline, "no commit appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    victim.process.kill().unwrap();
    victim.process.wait().unwrap();
    // Its lease is still there: the next run waits it out, then takes it over.
    let keys = moto.keys("killed", "warehouse/");
    assert!(
        keys.iter().any(|k| k.ends_with("_vaxlake_ingest.lock")),
        "the killed run's lease is not there: {keys:?}"
    );
    let started = Instant::now();
    let rerun = wait_ok(spawn(&args, &lease), "the run after the kill");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the lease was not waited for"
    );
    let (read, accepted, quarantined) = counts(&rerun);
    assert_eq!(read, accepted + quarantined);
    for query in QUERIES.iter().take(3) {
        assert_same(&sql(&remote, query), &sql(local, query), query);
    }
    // Once more, nothing new: the warehouse holds exactly one copy of each event.
    let again = counts(&wait_ok(spawn(&args, &lease), "a third run"));
    assert_eq!(again.0, clean.0);
    assert_eq!(
        sql(&remote, QUERIES[1]),
        sql(local, QUERIES[1]),
        "a re-run duplicated or lost events"
    );
}
