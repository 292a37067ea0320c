//! `pg-server`: the throwaway PostgreSQL server of the `postgres:` tests, as a program.
//!
//! The benchmarks (`scripts/bench`, Python) need the same registry server the Rust tests
//! start: initdb in a temporary directory, `postgres` on a free 127.0.0.1 port (as `nobody`
//! when run as root), the `vaccination_events` outbox table and its read-only role, loaded
//! from a generated `registry.csv`. Rather than a second copy of that harness, this binary
//! compiles the tests' own `tests/common/pg.rs` and drives it:
//!
//! ```text
//! pg-server [--set NAME=VALUE]... [--load registry.csv]
//! ```
//!
//! It starts the server (with the extra `postgresql.conf` settings), creates the registry,
//! loads the CSV if asked, prints one JSON line on stdout (port, directory, psql, connection
//! strings, rows loaded) and then holds the server until its stdin closes; then it stops the
//! server and removes the directory. If it dies instead, the harness's watchdog cleans up.

#[path = "../../../tests/common/pg.rs"]
mod pg;

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Runs the tests' throwaway PostgreSQL registry until stdin closes")]
struct Args {
    /// A postgresql.conf setting over the test defaults, e.g. shared_buffers=256MB.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = setting)]
    settings: Vec<(String, String)>,
    /// A generated registry.csv to load into vaccination_events (as the tests load it).
    #[arg(long, value_name = "CSV")]
    load: Option<PathBuf>,
}

fn setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

fn main() {
    let args = Args::parse();
    let settings: Vec<(&str, &str)> = args
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let server = pg::PgServer::start_with(&settings);
    server.create_registry();
    let mut ready = serde_json::json!({
        "port": server.port(),
        "dir": server.dir(),
        "bin_dir": server.bin_dir(),
        "psql": server.psql_bin(),
        "pid": server.pid(),
        "conn": server.conn_string(),
        "reader_conn": server.reader_conn_string(),
    });
    if let Some(csv) = &args.load {
        let started = Instant::now();
        let (applied, records) = server.load_registry_csv_counted(csv);
        ready["csv_rows_applied"] = applied.into();
        ready["csv_records"] = records.into();
        ready["load_seconds"] = started.elapsed().as_secs_f64().into();
    }
    println!("{ready}");
    // Hold the server until the driver closes our stdin (or exits).
    let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
    drop(server);
}
