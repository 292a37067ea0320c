//! `vaxlake cluster scheduler | executor` and `--cluster`: a scheduler and two executors on
//! loopback over a warehouse on S3 (moto, `tests/common/s3.rs`) give byte-identical answers
//! to the embedded engine for the benchmark query, the whole coverage table and one
//! effectiveness answer; the sandbox refuses before anything reaches the cluster.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::doors::{free_port, KillOnDrop};
use common::{generate, key_file, ok, run, s3, BENCHMARK_QUERY, FLU_STUDY};

fn node(args: &[&str], log: &Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(common::bin())
            .args(args)
            .env("VAXLAKE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn with_cluster<'a>(args: &[&'a str], cluster: Option<&'a str>) -> Vec<&'a str> {
    let mut all = args.to_vec();
    if let Some(cluster) = cluster {
        all.extend(["--cluster", cluster]);
    }
    all
}

#[test]
fn a_cluster_of_two_executors_answers_byte_for_byte_as_the_embedded_engine() {
    let Some(moto) = s3::server("cluster") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    generate(&export, 1_500, 21);
    let key = key_file(dir.path(), "master.key");
    let wh = moto.bucket("cluster");
    for (kind, path) in [
        ("fhir", export.join("fhir")),
        ("csv", export.join("registry.csv")),
        ("population", export.join("population.csv")),
        ("cases", export.join("cases.csv")),
    ] {
        ok(&[
            "ingest",
            "--warehouse",
            &wh,
            "--source",
            &format!("{kind}:{}", path.display()),
            "--key-file",
            key.to_str().unwrap(),
            "--batch-rows",
            "2000",
        ]);
    }

    let scheduler_port = free_port();
    let scheduler = format!("127.0.0.1:{scheduler_port}");
    let _scheduler = node(
        &["cluster", "scheduler", "--listen", &scheduler],
        &dir.path().join("scheduler.log"),
    );
    let mut executors = Vec::new();
    for index in 0..2 {
        // Two ports each: Flight and gRPC.
        let port = loop {
            let port = free_port();
            if std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break port;
            }
        };
        let work = dir.path().join(format!("executor-{index}"));
        std::fs::create_dir_all(&work).unwrap();
        executors.push(node(
            &[
                "cluster",
                "executor",
                "--scheduler",
                &scheduler,
                "--port",
                &port.to_string(),
                "--concurrent-tasks",
                "2",
                "--work-dir",
                work.to_str().unwrap(),
            ],
            &dir.path().join(format!("executor-{index}.log")),
        ));
    }
    let cluster = format!("df://{scheduler}");

    // The first query waits for the executors to register.
    let sql = |cluster: Option<&str>, query: &str| {
        run(&with_cluster(
            &["sql", "--warehouse", &wh, "--format", "csv", query],
            cluster,
        ))
    };
    let embedded = sql(None, BENCHMARK_QUERY);
    assert!(embedded.status.success(), "{embedded:?}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let on_cluster = loop {
        let out = sql(Some(&cluster), BENCHMARK_QUERY);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let logs = || {
        ["scheduler.log", "executor-0.log", "executor-1.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
                format!("--- {name}\n{}", &text[text.len().saturating_sub(3000)..])
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        on_cluster.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&on_cluster.stderr),
        logs()
    );
    assert!(embedded.stdout.len() > 100, "{embedded:?}");
    assert_eq!(
        on_cluster.stdout, embedded.stdout,
        "the benchmark query differs on the cluster"
    );

    // The whole coverage table (it reads the facts through the cluster).
    let coverage = |cluster: Option<&str>| {
        ok(&with_cluster(
            &["coverage", "--warehouse", &wh, "--all", "--format", "csv"],
            cluster,
        ))
        .0
    };
    let table = coverage(None);
    assert!(table.lines().count() > 10, "{table}");
    assert_eq!(
        coverage(Some(&cluster)),
        table,
        "the coverage table differs"
    );

    // One effectiveness answer.
    let effectiveness = |cluster: Option<&str>| {
        let mut args = vec!["effectiveness", "--warehouse", &wh];
        args.extend_from_slice(FLU_STUDY);
        ok(&with_cluster(&args, cluster)).0
    };
    assert_eq!(effectiveness(Some(&cluster)), effectiveness(None));

    // The sandbox judges before a plan is sent: the same refusal as without the cluster.
    let refused = sql(Some(&cluster), "DROP TABLE vaccinations");
    let refused_here = sql(None, "DROP TABLE vaccinations");
    assert!(!refused.status.success());
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).lines().last(),
        String::from_utf8_lossy(&refused_here.stderr).lines().last()
    );

    // `serve --cluster`: the HTTP API's SQL and coverage answers are the embedded server's.
    let serve = |cluster: Option<&str>, name: &str| {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let server = node(
            &with_cluster(&["serve", "--warehouse", &wh, "--listen", &listen], cluster),
            &dir.path().join(format!("{name}.log")),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while common::http::request(port, "GET", "/api/health", &[], "").is_err() {
            assert!(Instant::now() < deadline, "{name} did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        (server, port)
    };
    let answers = |port: u16| {
        let body = serde_json::json!({ "sql": BENCHMARK_QUERY }).to_string();
        let sql = common::http::request(
            port,
            "POST",
            "/api/sql",
            &[("Content-Type", "application/json")],
            &body,
        )
        .unwrap();
        let coverage = common::http::request(
            port,
            "GET",
            "/api/coverage?indicator=DTP3&cohort=2022",
            &[],
            "",
        )
        .unwrap();
        assert_eq!(
            (sql.status, coverage.status),
            (200, 200),
            "{sql} {coverage}"
        );
        (sql.text(), coverage.text())
    };
    let (_embedded_server, embedded_port) = serve(None, "serve-embedded");
    let (_cluster_server, cluster_port) = serve(Some(&cluster), "serve-cluster");
    assert_eq!(answers(cluster_port), answers(embedded_port));
    let served = std::fs::read_to_string(dir.path().join("serve-cluster.log")).unwrap();
    assert!(
        served.contains("Ballista scheduler"),
        "serve --cluster answered without the cluster"
    );

    // Both executors ran tasks (the scheduler deals them in turn).
    let text = logs();
    for index in 0..2 {
        let log =
            std::fs::read_to_string(dir.path().join(format!("executor-{index}.log"))).unwrap();
        assert!(
            log.matches("Execute task").count() > 0,
            "executor {index} ran no task\n{text}"
        );
    }
    drop(executors);
}
