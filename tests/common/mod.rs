//! Helpers shared by the end-to-end tests: run the real `vaxlake` binary.
#![allow(dead_code)]

pub mod pg;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
pub fn ingest(warehouse: &Path, key: &Path, source: &str) -> ((u64, u64, u64), String, String) {
    let (out, err) = ok(&[
        "ingest",
        "--warehouse",
        warehouse.to_str().unwrap(),
        "--source",
        source,
        "--key-file",
        key.to_str().unwrap(),
    ]);
    (counts(&out), out, err)
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
pub fn sql_value(warehouse: &Path, query: &str) -> String {
    let out = sql_csv(warehouse, query);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "expected header + one row for {query}: {out}"
    );
    lines[1].trim().to_string()
}

pub fn sql_u64(warehouse: &Path, query: &str) -> u64 {
    sql_value(warehouse, query)
        .parse()
        .unwrap_or_else(|_| panic!("not a number from {query}"))
}

pub fn sql_csv(warehouse: &Path, query: &str) -> String {
    ok(&[
        "sql",
        "--warehouse",
        warehouse.to_str().unwrap(),
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
