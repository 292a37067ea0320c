//! Helpers shared by the end-to-end tests: run the real `vaxlake` binary.
#![allow(dead_code)]

pub mod corpus;
pub mod doors;
pub mod http;
pub mod pg;
pub mod s3;
pub mod tables;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where a warehouse is, as `--warehouse` takes it: a local path or an object-store URL
/// (`s3://bucket/prefix`, tests/common/s3.rs).
pub trait WarehouseLocation {
    fn location(&self) -> String;
}

impl WarehouseLocation for Path {
    fn location(&self) -> String {
        self.to_str().expect("a UTF-8 path").to_string()
    }
}

impl WarehouseLocation for PathBuf {
    fn location(&self) -> String {
        self.as_path().location()
    }
}

impl WarehouseLocation for str {
    fn location(&self) -> String {
        self.to_string()
    }
}

impl WarehouseLocation for String {
    fn location(&self) -> String {
        self.clone()
    }
}

impl<T: WarehouseLocation + ?Sized> WarehouseLocation for &T {
    fn location(&self) -> String {
        (**self).location()
    }
}

/// The benchmark's aggregate (bench/vaxlake_bench/query.py): infants with three doses of a
/// hexavalent vaccine before their first birthday, by birth year and commune.
pub const BENCHMARK_QUERY: &str =
    "SELECT CAST(date_part('year', birth_month) AS INTEGER) AS birth_year, commune, \
    COUNT(*) AS persons \
    FROM (SELECT person_key, birth_month, commune FROM vaccinations \
    WHERE status = 'completed' \
    AND vaccine_atc IN ('J07CA09', 'J07CA06', 'J07CA02', 'J07AJ52') \
    AND age_months_at_dose < 12 \
    GROUP BY person_key, birth_month, commune \
    HAVING COUNT(DISTINCT administered_on) >= 3) AS t \
    GROUP BY 1, 2 ORDER BY 1, 2";

/// One season's influenza effectiveness study (`vaxlake effectiveness` after `--warehouse`),
/// nothing withheld, as JSON.
pub const FLU_STUDY: &[&str] = &[
    "--antigen",
    "influenza",
    "--disease",
    "J1",
    "--from",
    "2024-10-01",
    "--to",
    "2025-04-30",
    "--suppression-threshold",
    "1",
    "--format",
    "json",
];

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vaxlake")
}

/// Runs vaxlake, returning (stdout, stderr) and failing the test with both on error.
pub fn ok(args: &[&str]) -> (String, String) {
    let out = run(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "vaxlake {args:?} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("VAXLAKE_LOG", "debug,datafusion=warn,deltalake=warn,deltalake_core=warn,buoyant_kernel=warn,delta_kernel=warn,object_store=warn,hyper=warn,h2=warn,reqwest=warn")
        .env_remove("VAXLAKE_KEY_FILE")
        .output()
        .expect("vaxlake runs")
}

/// Writes a fresh key file with mode 600 and returns its path.
pub fn key_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let (_, _) = ok(&["key", "new", "--out", path.to_str().unwrap()]);
    path
}

/// Ingests `source` with `key`, returning the run's (read, accepted, quarantined) and its
/// stdout and stderr (for the leak scan).
pub fn ingest(
    warehouse: &(impl WarehouseLocation + ?Sized),
    key: &Path,
    source: &str,
) -> ((u64, u64, u64), String, String) {
    let (out, err) = ok(&[
        "ingest",
        "--warehouse",
        &warehouse.location(),
        "--source",
        source,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    (counts(&out), out, err)
}

/// Ingests `source`, which a hand-built test writes without a single bad record: everything
/// read must be accepted.
pub fn load(wh: &Path, key: &Path, source: &str) {
    let ((read, accepted, quarantined), out, err) = ingest(wh, key, source);
    assert_eq!(
        (accepted, quarantined),
        (read, 0),
        "{source} quarantined something\nstdout: {out}\nstderr: {err}"
    );
}

/// Parses the last stdout line `read=N accepted=A quarantined=Q`.
pub fn counts(stdout: &str) -> (u64, u64, u64) {
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("a last line");
    let mut it = last.split(' ').map(|kv| {
        kv.split_once('=')
            .expect("k=v")
            .1
            .parse::<u64>()
            .expect("number")
    });
    let c = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    assert!(last.starts_with("read="), "{last}");
    c
}

/// One value from `vaxlake sql --format csv` (header + one row, one column).
pub fn sql_value(warehouse: &(impl WarehouseLocation + ?Sized), query: &str) -> String {
    let out = sql_csv(warehouse, query);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "expected header + one row for {query}: {out}"
    );
    lines[1].trim().to_string()
}

pub fn sql_u64(warehouse: &(impl WarehouseLocation + ?Sized), query: &str) -> u64 {
    sql_value(warehouse, query)
        .parse()
        .unwrap_or_else(|_| panic!("not a number from {query}"))
}

pub fn sql_csv(warehouse: &(impl WarehouseLocation + ?Sized), query: &str) -> String {
    ok(&[
        "sql",
        "--warehouse",
        &warehouse.location(),
        "--format",
        "csv",
        query,
    ])
    .0
    .replace("\r\n", "\n")
}

pub fn manifest(export: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(export.join("manifest.json")).unwrap()).unwrap()
}

pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A valid 13-digit national number: YYYYMMDD + serial + Luhn + Verhoeff over the first 11.
pub fn national_number(birth: &str, serial: u16) -> String {
    use vaxlake_pseudonymize::national_id::{luhn_digit, verhoeff_digit};
    let mut s = format!("{}{:03}", birth.replace('-', ""), serial % 1000);
    let (luhn, verhoeff) = (luhn_digit(s.as_bytes()), verhoeff_digit(s.as_bytes()));
    s.push((b'0' + luhn) as char);
    s.push((b'0' + verhoeff) as char);
    s
}

/// `GET path` on 127.0.0.1:`port`: (status, body), `None` if the server is not (yet)
/// answering.
pub use http::get as http_get;

/// A `vaxlake serve` child process, killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub port: u16,
}

impl Server {
    /// Whether the process is still running (it has not exited or been killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Sends SIGTERM (a clean stop) and waits up to a minute for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < until,
                "serve did not stop on SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The server's process id (to read its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `vaxlake serve` on a free loopback port with `extra` arguments and waits (up to a
/// minute) until `/api/health` answers.
pub fn serve(warehouse: &Path, extra: &[&str]) -> Server {
    serve_logged(warehouse, extra, None)
}

/// [`serve`], with the server's stderr (its logs) written to `log` when given.
pub fn serve_logged(warehouse: &Path, extra: &[&str], log: Option<&Path>) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let stderr = match log {
        Some(path) => std::process::Stdio::from(std::fs::File::create(path).unwrap()),
        None => std::process::Stdio::null(),
    };
    let child = Command::new(bin())
        .args([
            "serve",
            "--warehouse",
            warehouse.to_str().unwrap(),
            "--listen",
            &listen,
        ])
        .args(extra)
        .env("VAXLAKE_LOG", "debug,datafusion=warn,deltalake=warn,deltalake_core=warn,buoyant_kernel=warn,delta_kernel=warn,object_store=warn,hyper=warn,hyper_util=warn,h2=warn")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut server = Server { child, port };
    let started = std::time::Instant::now();
    while http_get(port, "/api/health").is_none() {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("serve exited before answering: {status}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "server did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server
}

/// The Python of the DuckDB cross-checks (`VAXLAKE_PYTHON`, set by `scripts/test`), or
/// `None` after saying loudly that `test` is skipped; with `VAXLAKE_REQUIRE_PYTHON=1` a
/// missing Python fails instead.
pub fn cross_check_python(test: &str) -> Option<String> {
    match std::env::var("VAXLAKE_PYTHON") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("VAXLAKE_REQUIRE_PYTHON").as_deref() != Ok("1"),
                "VAXLAKE_REQUIRE_PYTHON=1 but VAXLAKE_PYTHON is not set (run scripts/test)"
            );
            eprintln!(
                "\n*** {test} SKIPPED: VAXLAKE_PYTHON is not set; \
                 run scripts/test for the DuckDB cross-check ***\n"
            );
            None
        }
    }
}

/// Runs the cross-check `script` (under `tests/`) with `args`, failing with its output when
/// it disagrees with vaxlake.
pub fn run_cross_check(python: &str, script: &str, args: &[std::ffi::OsString]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python)
        .arg(root.join("tests").join(script))
        .args(args)
        .output()
        .expect("the cross-check runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{script} stdout:\n{stdout}");
    eprintln!("{script} stderr:\n{stderr}");
    assert!(
        out.status.success(),
        "{script} {args:?} disagrees with vaxlake ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}

/// `vaxlake generate --out EXPORT --persons N --seed S`, failing the test if it fails.
pub fn generate(export: &Path, persons: impl std::fmt::Display, seed: impl std::fmt::Display) {
    ok(&[
        "generate",
        "--out",
        export.to_str().unwrap(),
        "--persons",
        &persons.to_string(),
        "--seed",
        &seed.to_string(),
    ]);
}

/// Generates a registry of `persons` (seed `seed`) under `dir/export` and ingests the
/// export's `sources` (`fhir`, `csv`, `population`, `cases`) into `dir/wh` with a fresh key,
/// checking every run's counts; returns the warehouse.
pub fn generated_warehouse(dir: &Path, persons: u64, seed: u64, sources: &[&str]) -> PathBuf {
    let export = dir.join("export");
    let wh = dir.join("wh");
    let key = key_file(dir, "master.key");
    generate(&export, persons, seed);
    for kind in sources {
        let path = match *kind {
            "fhir" => export.join("fhir"),
            "csv" => export.join("registry.csv"),
            other => export.join(format!("{other}.csv")),
        };
        let source = format!("{kind}:{}", path.display());
        let ((read, accepted, quarantined), _, _) = ingest(&wh, &key, &source);
        assert_eq!(read, accepted + quarantined, "{source}");
        assert!(accepted > 0, "{source} accepted nothing");
    }
    wh
}

/// Every national number a generated export holds (FHIR patients, registry CSV, cases), to
/// scan what vaxlake wrote for them.
pub fn national_numbers(export: &Path) -> std::collections::BTreeSet<String> {
    let mut ids = std::collections::BTreeSet::new();
    let text = std::fs::read_to_string(export.join("fhir/Patient.ndjson")).unwrap();
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            for i in v["identifier"].as_array().into_iter().flatten() {
                if let Some(s) = i["value"].as_str().filter(|s| s.len() >= 11) {
                    ids.insert(s.to_string());
                }
            }
        }
    }
    for file in ["registry.csv", "cases.csv"] {
        let text = std::fs::read_to_string(export.join(file)).unwrap();
        for line in text.lines().skip(1) {
            if let Some(id) = line.split(',').nth(1) {
                if id.len() >= 11 && id.chars().all(|c| c.is_ascii_digit()) {
                    ids.insert(id.to_string());
                }
            }
        }
    }
    ids
}

/// Every string value of every Parquet file under `dir`, plus the raw text of other files.
pub fn everything_written(dir: &Path) -> Vec<String> {
    use arrow::array::{Array, AsArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut texts = Vec::new();
    for path in all_files(dir) {
        let raw = std::fs::read(&path).unwrap();
        texts.push(String::from_utf8_lossy(&raw).into_owned());
        if path.extension().is_some_and(|e| e == "parquet") {
            let file = std::fs::File::open(&path).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                for col in batch.unwrap().columns() {
                    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
                    let s = col.as_string::<i32>();
                    texts.extend(
                        (0..s.len())
                            .filter(|i| s.is_valid(*i))
                            .map(|i| s.value(i).to_string()),
                    );
                }
            }
        }
    }
    texts
}
