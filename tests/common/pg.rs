//! A throwaway PostgreSQL server for the `postgres:` ingest tests: a real server, started by
//! the test in a temporary directory and stopped (and the directory removed) on drop.
//!
//! - Binaries: `VAXLAKE_PG_BIN` (the directory holding `initdb`, `pg_ctl`, `postgres`; `.ci/run`
//!   exports it), else `initdb` on `PATH` (symlinks followed), else the newest
//!   `/usr/lib/postgresql/*/bin`. Not found is a test failure, not a skip.
//! - `postgres` runs as a child of the test process (reaped on drop, after
//!   `pg_ctl stop -m immediate`); it listens on 127.0.0.1 at a free port and on a unix socket inside its directory
//!   only; fsync is off. Authentication: the superuser `vaxlake` is trusted; every other role
//!   (e.g. `vaxlake_reader`) must give its password (scram-sha-256), so a client that drops
//!   the password from a connection string fails as it would against a real registry.
//! - PostgreSQL refuses to run as root: when the tests run as uid 0, the server runs as
//!   `VAXLAKE_PG_USER` (default `nobody`) via `setpriv` (or `runuser`), and owns the directory.
//! - A watchdog shell holding a pipe from the test process stops the server and removes the
//!   directory if the test process dies without dropping the `PgServer` (killed, aborted).
//!   Use one `PgServer` per test (a `static` one is never dropped; the watchdog then cleans up
//!   when the test binary exits).
//! - The benchmarks (`scripts/bench`) start this same server through `bench/pg-server`, a
//!   small binary that includes this file, so there is one harness for both.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The registry CSV's columns (CONTRACTS "Registry CSV"), in order; the table has these plus
/// `change_seq`.
#[allow(unused_imports)]
pub use vaxlake_catalog::sources::REGISTRY_COLUMNS;

pub const SUPERUSER: &str = "vaxlake";
pub const DATABASE: &str = "registry";
pub const TABLE: &str = "vaccination_events";
pub const READER: &str = "vaxlake_reader";
pub const READER_PASSWORD: &str = "reader";

pub struct PgServer {
    bin: PathBuf,
    /// The temporary directory: `data/`, `server.log`, the unix socket. Removed on drop.
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// `Some((uid, gid, name))` when the server runs as another user (the tests run as root).
    run_as: Option<(u32, u32, String)>,
    watchdog: Option<(Child, ChildStdin)>,
    /// The postmaster (or the `runuser` running it).
    server: Option<Child>,
    /// `postgresql.conf` settings written after the defaults (so they win).
    settings: Vec<(String, String)>,
}

impl PgServer {
    /// Creates, starts and waits for a fresh server; panics with the server log on failure.
    pub fn start() -> PgServer {
        Self::start_with(&[])
    }

    /// As [`start`](Self::start), with `postgresql.conf` settings that override the test
    /// defaults (the benchmarks give the server more `shared_buffers`).
    pub fn start_with(settings: &[(&str, &str)]) -> PgServer {
        let bin = find_bin();
        let run_as = if effective_uid() == 0 {
            let user = std::env::var("VAXLAKE_PG_USER").unwrap_or_else(|_| "nobody".into());
            Some((id_of(&user, "-u"), id_of(&user, "-g"), user))
        } else {
            None
        };
        // The socket path must fit in sun_path (108 bytes): keep the directory short, and
        // under /tmp when the server runs as another user (TMPDIR may not be reachable).
        let base = match std::env::temp_dir() {
            t if run_as.is_none() && t.as_os_str().len() <= 60 => t,
            _ => PathBuf::from("/tmp"),
        };
        let dir = tempfile::Builder::new()
            .prefix("vaxlake-pg-")
            .tempdir_in(&base)
            .unwrap_or_else(|e| {
                panic!(
                    "PgServer: cannot create a temporary directory in {}: {e}",
                    base.display()
                )
            });
        let root = dir.path().to_path_buf();
        if let Some((uid, gid, _)) = &run_as {
            let (uid, gid) = (*uid, *gid);
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!("PgServer: chown {} to {uid}:{gid}: {e}", root.display())
            });
        }
        let mut pg = PgServer {
            bin,
            data: root.join("data"),
            log: root.join("server.log"),
            root,
            dir: Some(dir),
            port: 0,
            run_as,
            watchdog: None,
            server: None,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        pg.spawn_watchdog();
        pg.initdb();
        pg.start_server();
        pg
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory (data directory, log, socket); gone after drop.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The unix socket directory (the temporary directory).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The binaries' directory.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The postmaster's process id (first line of `postmaster.pid`).
    pub fn pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .unwrap_or_else(|e| panic!("PgServer: reading postmaster.pid: {e}{}", self.log_tail()));
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("PgServer: no pid in postmaster.pid: {text:?}"))
    }

    /// The superuser's libpq connection string to database `registry`.
    pub fn conn_string(&self) -> String {
        self.conn_string_for(SUPERUSER, None, DATABASE)
    }

    /// The read-only role's connection string (`vaxlake_reader`, password `reader`).
    pub fn reader_conn_string(&self) -> String {
        self.conn_string_for(READER, Some(READER_PASSWORD), DATABASE)
    }

    /// `host=127.0.0.1 port=P user=U [password=W] dbname=D`.
    pub fn conn_string_for(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        let mut s = format!("host=127.0.0.1 port={} user={user}", self.port);
        if let Some(p) = password {
            write!(s, " password={p}").unwrap();
        }
        write!(s, " dbname={dbname}").unwrap();
        s
    }

    /// The superuser's URL form: `postgresql://vaxlake@127.0.0.1:P/registry`.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{SUPERUSER}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }

    /// The read-only role's URL form.
    pub fn reader_url(&self) -> String {
        format!(
            "postgresql://{READER}:{READER_PASSWORD}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }

    /// Runs `sql` (one or more statements, psql meta-commands allowed) as the superuser in
    /// database `registry`; returns psql's unaligned, tuples-only output without the final
    /// newline (`-At`, command tags suppressed). Panics with psql's stderr and the server
    /// log on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_conn(&self.conn_string(), sql)
    }

    /// As [`psql`](Self::psql), in another database (e.g. `postgres`).
    pub fn psql_in(&self, dbname: &str, sql: &str) -> String {
        self.psql_conn(&self.conn_string_for(SUPERUSER, None, dbname), sql)
    }

    /// As [`psql`](Self::psql), over any connection string.
    pub fn psql_conn(&self, conn: &str, sql: &str) -> String {
        self.try_psql(conn, sql).unwrap_or_else(|err| {
            panic!(
                "psql failed on {conn:?}\n--- sql ---\n{}\n--- stderr ---\n{err}{}",
                truncate(sql, 4000),
                self.log_tail()
            )
        })
    }

    /// Runs `sql` over `conn` with `ON_ERROR_STOP`; `Err(stderr)` when psql fails (e.g. the
    /// read-only role trying to write).
    pub fn try_psql(&self, conn: &str, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(self.psql_bin());
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
            "-d",
            conn,
        ]);
        clean_env(&mut cmd);
        cmd.env("PGCONNECT_TIMEOUT", "10")
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.psql_bin().display()));
        let mut stdin = child.stdin.take().unwrap();
        let out = std::thread::scope(|s| {
            s.spawn(move || {
                // A failing psql may exit before reading everything: ignore EPIPE.
                let _ = stdin.write_all(sql.as_bytes());
            });
            child.wait_with_output().expect("psql runs")
        });
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_string())
        } else {
            Err(format!("{}\n{stderr}", out.status))
        }
    }

    /// Creates database `registry` with the operational registry's `vaccination_events`
    /// (CONTRACTS "Operational registry in PostgreSQL"): `event_id` is the primary key;
    /// a trigger sets `change_seq = nextval('vaccination_events_change_seq')` on every INSERT
    /// and UPDATE (the outbox); a unique index on `change_seq`; and the login role
    /// `vaxlake_reader` (password `reader`) with SELECT on that table and nothing else.
    pub fn create_registry(&self) {
        self.psql_in(
            "postgres",
            &format!(
                "CREATE DATABASE {DATABASE};\n\
                 REVOKE ALL ON DATABASE {DATABASE} FROM PUBLIC;\n\
                 CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}';\n\
                 GRANT CONNECT ON DATABASE {DATABASE} TO {READER};\n"
            ),
        );
        self.psql(&format!(
            r#"
SET client_min_messages = warning;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
CREATE SEQUENCE {TABLE}_change_seq;
CREATE TABLE {TABLE} (
    event_id text PRIMARY KEY,
    national_id text,
    birth_date date,
    sex text,
    commune text,
    vaccine_atc text,
    vaccine_name text,
    lot_number text,
    dose_number integer,
    administered_on date,
    vaccinator_id text,
    status text,
    recorded_at timestamptz,
    change_seq bigint NOT NULL
);
ALTER SEQUENCE {TABLE}_change_seq OWNED BY {TABLE}.change_seq;
CREATE FUNCTION {TABLE}_bump_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := nextval('{TABLE}_change_seq');
    RETURN NEW;
END
$$;
CREATE TRIGGER {TABLE}_change_seq BEFORE INSERT OR UPDATE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION {TABLE}_bump_change_seq();
CREATE UNIQUE INDEX {TABLE}_change_seq_idx ON {TABLE} (change_seq);
REVOKE ALL ON {TABLE} FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {READER};
GRANT SELECT ON {TABLE} TO {READER};
"#
        ));
    }

    /// Loads a generated `registry.csv` (header = [`REGISTRY_COLUMNS`]) into
    /// `vaccination_events` as the registry's application would have stored it, in file
    /// order, in one transaction; returns how many CSV rows were applied.
    ///
    /// - Empty fields are NULL.
    /// - A row that a typed registry cannot hold is dropped: a wrong field count, an empty
    ///   `event_id`, a date that is not a valid `YYYY-MM-DD`, a `dose_number` that is not an
    ///   integer, an unparsable `recorded_at`. (In a generated file: `bad_date` and
    ///   `bad_field_count` of the manifest.)
    /// - A later row with an `event_id` already present (a correction, an entered-in-error)
    ///   UPDATEs that row, so the table holds one row per event and the update gets a new
    ///   `change_seq`. Hence `count(*)` = returned − repeated event ids.
    pub fn load_registry_csv(&self, path: &Path) -> u64 {
        self.load_registry_csv_counted(path).0
    }

    /// As [`load_registry_csv`](Self::load_registry_csv), returning (rows applied, data
    /// records in the file).
    pub fn load_registry_csv_counted(&self, path: &Path) -> (u64, u64) {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("load_registry_csv: reading {}: {e}", path.display()));
        let mut records = parse_csv(&text).into_iter();
        let header = records.next().unwrap_or_default();
        let record_count = records.len() as u64;
        assert_eq!(
            header,
            REGISTRY_COLUMNS,
            "load_registry_csv: unexpected header in {}",
            path.display()
        );
        // Stage: the file order, then the 13 fields, all as text and all quoted.
        let mut staged = String::with_capacity(text.len() + text.len() / 4);
        for (ord, rec) in records.enumerate() {
            if rec.len() != REGISTRY_COLUMNS.len() {
                continue; // a typed table cannot hold a row with 12 or 14 fields
            }
            write!(staged, "{ord}").unwrap();
            for f in &rec {
                staged.push_str(",\"");
                staged.push_str(&f.replace('"', "\"\""));
                staged.push('"');
            }
            staged.push('\n');
        }
        static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stage_file = self.root.join(format!("stage-{n}.csv"));
        std::fs::write(&stage_file, &staged)
            .unwrap_or_else(|e| panic!("load_registry_csv: writing {}: {e}", stage_file.display()));

        let cols = REGISTRY_COLUMNS.join(", ");
        let raw_cols = REGISTRY_COLUMNS.map(|c| format!("{c} text")).join(", ");
        let typed = REGISTRY_COLUMNS
            .map(|c| match c {
                "birth_date" | "administered_on" => {
                    format!("pg_temp.vx_date(NULLIF({c}, '')) AS {c}")
                }
                "dose_number" => format!("pg_temp.vx_int(NULLIF({c}, '')) AS {c}"),
                "recorded_at" => format!("pg_temp.vx_ts(NULLIF({c}, '')) AS {c}"),
                _ => format!("NULLIF({c}, '') AS {c}"),
            })
            .join(",\n    ");
        // A typed value that is NULL although its text was not empty: unparsable.
        let ok = [
            "birth_date",
            "administered_on",
            "dose_number",
            "recorded_at",
        ]
        .map(|c| format!("(NULLIF(s.{c}, '') IS NULL) = (t.{c} IS NULL)"))
        .join(" AND ");
        let updates = REGISTRY_COLUMNS[1..]
            .iter()
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let script = format!(
            r#"
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.vx_date(t text) RETURNS date LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF t IS NULL OR t !~ '^\d{{4}}-\d{{2}}-\d{{2}}$' THEN RETURN NULL; END IF;
    RETURN t::date;
EXCEPTION WHEN others THEN RETURN NULL;
END $$;
CREATE FUNCTION pg_temp.vx_int(t text) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF t IS NULL OR t !~ '^[+-]?\d+$' THEN RETURN NULL; END IF;
    RETURN t::integer;
EXCEPTION WHEN others THEN RETURN NULL;
END $$;
CREATE FUNCTION pg_temp.vx_ts(t text) RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF t IS NULL OR t !~ '^\d{{4}}-\d{{2}}-\d{{2}}[T ]\d{{2}}:\d{{2}}' THEN RETURN NULL; END IF;
    RETURN t::timestamptz;
EXCEPTION WHEN others THEN RETURN NULL;
END $$;
CREATE TEMP TABLE vx_stage (ord bigint, {raw_cols});
\copy vx_stage FROM '{stage}' WITH (FORMAT csv)
CREATE TEMP TABLE vx_typed AS
SELECT s.ord, t.*, ({ok}) AND t.event_id IS NOT NULL AS ok
FROM vx_stage s CROSS JOIN LATERAL (SELECT
    {typed}
) t;
CREATE TEMP TABLE vx_rows AS
SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY ord) AS version
FROM vx_typed WHERE ok;
DO $$
DECLARE v bigint;
BEGIN
    FOR v IN 1 .. (SELECT coalesce(max(version), 0) FROM vx_rows) LOOP
        INSERT INTO {TABLE} ({cols})
        SELECT {cols} FROM vx_rows WHERE version = v ORDER BY ord
        ON CONFLICT (event_id) DO UPDATE SET {updates};
    END LOOP;
END $$;
SELECT count(*) FROM vx_rows;
"#,
            stage = stage_file.display().to_string().replace('\'', "''"),
        );
        let out = self.psql_single_transaction(&script);
        let _ = std::fs::remove_file(&stage_file);
        let applied = out
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("load_registry_csv: unexpected psql output {out:?}"));
        (applied, record_count)
    }

    /// A psql session as the superuser in database `registry` that runs each statement as
    /// it is written to its stdin (e.g. `BEGIN; INSERT ...;` now, `COMMIT;` later, to hold a
    /// transaction open); close stdin and wait to end it. Output goes to piped stdout/stderr.
    pub fn psql_session(&self) -> Child {
        let mut cmd = Command::new(self.psql_bin());
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.conn_string());
        clean_env(&mut cmd);
        cmd.env("PGCONNECT_TIMEOUT", "10")
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.psql_bin().display()))
    }

    /// The last lines of the server log, for panic messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("\n--- server log {} (tail) ---\n{tail}", self.log.display())
    }

    // ----- internals -----

    fn psql_single_transaction(&self, sql: &str) -> String {
        self.psql(&format!("BEGIN;\n{sql}\nCOMMIT;\n"))
    }

    /// `psql` of the server's binaries, else the one on `PATH`.
    pub fn psql_bin(&self) -> PathBuf {
        let p = self.bin.join("psql");
        if p.exists() {
            p
        } else {
            PathBuf::from("psql")
        }
    }

    /// A command for a server binary, run as the unprivileged user when we are root.
    fn server_cmd(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        let mut cmd = match &self.run_as {
            None => Command::new(exe),
            Some((uid, gid, user)) => {
                if has_setpriv() {
                    let mut c = Command::new("setpriv");
                    c.arg(format!("--reuid={uid}"))
                        .arg(format!("--regid={gid}"))
                        .arg("--clear-groups")
                        .arg("--")
                        .arg(exe);
                    c
                } else {
                    let mut c = Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(exe);
                    c
                }
            }
        };
        clean_env(&mut cmd);
        cmd.current_dir(&self.root);
        cmd
    }

    /// The same prefix as a shell word list, for the watchdog.
    fn server_cmd_shell(&self, program: &str) -> String {
        let exe = sh_quote(&self.bin.join(program).display().to_string());
        match &self.run_as {
            None => exe,
            Some((uid, gid, _)) if has_setpriv() => {
                format!("setpriv --reuid={uid} --regid={gid} --clear-groups -- {exe}")
            }
            Some((_, _, user)) => format!("runuser -u {} -- {exe}", sh_quote(user)),
        }
    }

    fn run(&self, what: &str, mut cmd: Command) -> Output {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("PgServer: cannot run {what} ({cmd:?}): {e}"));
        if !out.status.success() {
            panic!(
                "PgServer: {what} failed ({})\n{cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
        }
        out
    }

    /// A shell, in its own process group and deaf to terminal signals, that waits for EOF on
    /// a pipe only this process holds, then stops the server and removes the directory: it
    /// cleans up after a test process that died without running `Drop`.
    fn spawn_watchdog(&mut self) {
        let script = format!(
            "trap '' INT HUP TERM QUIT PIPE\n\
             while read -r _; do :; done\n\
             {pg_ctl} stop -D {data} -m immediate -w -t 30 >/dev/null 2>&1\n\
             rm -rf {root}\n",
            pg_ctl = self.server_cmd_shell("pg_ctl"),
            data = sh_quote(&self.data.display().to_string()),
            root = sh_quote(&self.root.display().to_string()),
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        clean_env(&mut cmd);
        let mut child = cmd
            .spawn()
            .expect("PgServer: cannot start the watchdog shell");
        let stdin = child.stdin.take().unwrap();
        self.watchdog = Some((child, stdin));
    }

    fn initdb(&self) {
        let mut cmd = self.server_cmd("initdb");
        cmd.arg("-D").arg(&self.data).args([
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
            "--auth=trust",
            "--no-sync",
        ]);
        self.run("initdb", cmd);
        let mut conf = String::from("\n# vaxlake test server\n");
        for (k, v) in [
            ("listen_addresses", "'127.0.0.1'".to_string()),
            (
                "unix_socket_directories",
                format!("'{}'", self.root.display().to_string().replace('\'', "''")),
            ),
            ("fsync", "off".into()),
            ("synchronous_commit", "off".into()),
            ("full_page_writes", "off".into()),
            ("timezone", "'UTC'".into()),
            ("log_timezone", "'UTC'".into()),
            ("shared_buffers", "'16MB'".into()),
            ("max_connections", "40".into()),
            ("password_encryption", "'scram-sha-256'".into()),
        ] {
            writeln!(conf, "{k} = {v}").unwrap();
        }
        for (k, v) in &self.settings {
            writeln!(conf, "{k} = {v}").unwrap();
        }
        append(&self.data.join("postgresql.conf"), &conf);
        // First match wins: the superuser is trusted, every other role needs its password.
        std::fs::write(
            self.data.join("pg_hba.conf"),
            format!(
                "local all all trust\n\
                 host all {SUPERUSER} 127.0.0.1/32 trust\n\
                 host all all 127.0.0.1/32 scram-sha-256\n"
            ),
        )
        .expect("PgServer: writing pg_hba.conf");
    }

    /// Starts `postgres` as a child of this process (so that it is reaped, whatever the
    /// system's init does) on a free port, and waits until it answers `select 1`; another
    /// port when that one was taken meanwhile.
    fn start_server(&mut self) {
        for attempt in 1..=5 {
            self.port = free_port();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .unwrap_or_else(|e| panic!("PgServer: opening {}: {e}", self.log.display()));
            let mut cmd = self.server_cmd("postgres");
            cmd.arg("-D")
                .arg(&self.data)
                .arg("-p")
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("PgServer: dup the log"))
                .stderr(log);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("PgServer: cannot start postgres ({cmd:?}): {e}"));
            self.server = Some(child);
            match self.wait_ready() {
                Ok(()) => return,
                Err(exited) => {
                    self.server = None;
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    let taken = log.contains("could not bind") || log.contains("already in use");
                    if exited && taken && attempt < 5 {
                        continue;
                    }
                    panic!(
                        "PgServer: postgres {} on port {}\n{cmd:?}{}",
                        if exited {
                            "exited"
                        } else {
                            "does not accept connections after 60 s"
                        },
                        self.port,
                        self.log_tail()
                    );
                }
            }
        }
    }

    /// Until `select 1` succeeds over the server's own unix socket (a probe over TCP could
    /// reach whoever else holds the port), then over TCP. `Err(true)`: the server exited;
    /// `Err(false)`: it did not answer in time and was stopped.
    fn wait_ready(&mut self) -> Result<(), bool> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let socket = self
            .root
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('\'', "\\'");
        let conn = format!(
            "host='{socket}' port={} user={SUPERUSER} dbname=postgres",
            self.port
        );
        loop {
            let child = self.server.as_mut().expect("a server process");
            if let Ok(Some(_)) = child.try_wait() {
                return Err(true);
            }
            match self.try_psql(&conn, "select 1") {
                Ok(out) if out.trim() == "1" => {
                    let tcp = self.conn_string_for(SUPERUSER, None, "postgres");
                    self.psql_conn(&tcp, "select 1");
                    return Ok(());
                }
                Ok(out) => panic!("PgServer: select 1 gave {out:?}{}", self.log_tail()),
                Err(_) if Instant::now() > deadline => {
                    self.stop_server();
                    return Err(false);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// `pg_ctl stop -m immediate`, then reaps the postmaster (killing it after 30 s).
    fn stop_server(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let mut cmd = self.server_cmd("pg_ctl");
            cmd.arg("stop")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "immediate", "-w", "-t", "30"])
                .stdin(Stdio::null());
            match cmd.output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "PgServer: pg_ctl stop failed: {}{}",
                    String::from_utf8_lossy(&o.stderr),
                    self.log_tail()
                ),
                Err(e) => eprintln!("PgServer: cannot run pg_ctl stop: {e}"),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!("PgServer: postgres {} did not stop; killing it", child.id());
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // The watchdog first, so that it does not race the stop below.
        if let Some((mut child, stdin)) = self.watchdog.take() {
            let _ = child.kill();
            let _ = child.wait();
            drop(stdin);
        }
        self.stop_server();
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.close() {
                eprintln!("PgServer: removing {}: {e}", self.root.display());
            }
        }
    }
}

/// The directory with `initdb`, `pg_ctl` and `postgres`.
/// The directory of the PostgreSQL binaries (`psql` among them), as [`PgServer`] finds it.
pub fn bin_dir() -> PathBuf {
    find_bin()
}

fn find_bin() -> PathBuf {
    let complete = |d: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(d) = std::env::var_os("VAXLAKE_PG_BIN").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        assert!(
            complete(&d),
            "VAXLAKE_PG_BIN={} does not hold initdb, pg_ctl and postgres",
            d.display()
        );
        return d;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                if let Some(real) = initdb
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                {
                    if complete(&real) {
                        return real;
                    }
                }
            }
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v: Vec<u32> = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in VAXLAKE_PG_BIN, \
             PATH or /usr/lib/postgresql/*/bin: install them (Debian: apt-get install postgresql; \
             .ci/run does) or set VAXLAKE_PG_BIN"
        )
    })
}

fn effective_uid() -> u32 {
    // /proc/self belongs to the process's effective uid.
    if let Ok(m) = std::fs::metadata("/proc/self") {
        return m.uid();
    }
    let out = Command::new("id").arg("-u").output().expect("id -u runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("id -u prints a number")
}

fn id_of(user: &str, flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .unwrap_or_else(|e| panic!("cannot run id {flag} {user}: {e}"));
    assert!(
        out.status.success(),
        "PgServer: running as root, the server needs an unprivileged user, but `id {flag} {user}` failed: {} \
         (set VAXLAKE_PG_USER)",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("id prints a number");
    assert!(
        flag != "-u" || id != 0,
        "PgServer: VAXLAKE_PG_USER={user} is root; PostgreSQL refuses to run as root"
    );
    id
}

fn has_setpriv() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new("setpriv")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// Removes the libpq and server variables of the caller's environment, which would
/// otherwise redirect psql or the server (PGHOST, PGDATA, PGOPTIONS, ...).
fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("LC_ALL", "C");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("PgServer: no free TCP port on 127.0.0.1")
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("PgServer: opening {}: {e}", path.display()));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("PgServer: writing {}: {e}", path.display()));
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// RFC 4180 records (the csv crate): commas, double quotes with `""` escapes, LF or CRLF
/// line ends; blank lines are skipped.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
        .into_records()
        .map(|record| {
            record
                .expect("psql writes valid CSV")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}
