"""The throwaway PostgreSQL registry of the registry-pull benchmark, started by the tests' own
harness rather than a copy of it.

The `postgres:` tests start their server with `tests/common/pg.rs` (initdb under a temporary
directory, `postgres` on a free 127.0.0.1 port, as `nobody` when run as root, fsync off; the
`vaccination_events` outbox table, its change_seq trigger and the read-only role; a
generated `registry.csv` loaded with safe casts, later versions applied as updates).
`bench/pg-server` is a small binary that compiles that very file and runs it: it starts the
server, loads the CSV, prints one JSON line (port, psql, connection strings, rows loaded)
and holds the server until its stdin closes. So there is one implementation of the harness,
in Rust where the tests need it; this module only builds that binary (cargo, dev profile, a
few seconds; or VAXLAKE_PG_SERVER names one built beforehand) and talks to the server with psql.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from .common import ROOT, log
from .measure import tail

# The registry CSV's columns (CONTRACTS "Registry CSV"); the table has these plus change_seq.
REGISTRY_COLUMNS = ["event_id", "national_id", "birth_date", "sex", "commune", "vaccine_atc",
                    "vaccine_name", "lot_number", "dose_number", "administered_on", "vaccinator_id",
                    "status", "recorded_at"]
PG_TABLE = "vaccination_events"

# What `vaxlake ingest --source postgres:` selects per batch (ingest/src/postgres.rs
# select_sql): every column as text, recorded_at as UTC ISO text, change_seq. The COPY peer
# exports the same expressions, in the same order, in one statement.
PG_EXPORT_SELECT = (
    "SELECT " + ", ".join(
        "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" if c == "recorded_at"
        else f"{c}::text" for c in REGISTRY_COLUMNS)
    + f", change_seq FROM {PG_TABLE} ORDER BY change_seq"
)

# postgresql.conf settings of the benchmark's server over the tests' defaults.
BENCH_SETTINGS = {"shared_buffers": "'256MB'", "max_wal_size": "'4GB'"}


def pg_env() -> dict:
    """The caller's environment without libpq/server variables (PGHOST, PGDATA, ...)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "VAXLAKE_POSTGRES"}
    env["LC_ALL"] = "C"
    return env


def build_harness() -> Path:
    """Builds bench/pg-server (a no-op when it is up to date) and returns its executable;
    VAXLAKE_PG_SERVER names an executable built beforehand instead (no cargo then)."""
    if os.environ.get("VAXLAKE_PG_SERVER"):
        return Path(os.environ["VAXLAKE_PG_SERVER"])
    r = subprocess.run(["cargo", "build", "--quiet", "-p", "vaxlake-pg-server", "--bin", "pg-server",
                        "--message-format=json"], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cargo build -p vaxlake-pg-server failed ({r.returncode}):\n{r.stderr[-3000:]}")
    for line in r.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["name"] == "pg-server":
            return Path(msg["executable"])
    raise RuntimeError("cargo build -p vaxlake-pg-server reported no pg-server executable")


class Registry:
    """A running throwaway registry loaded with `csv_path` (or empty), until `stop()`."""

    def __init__(self, csv_path: Path | None, logs: Path):
        exe = build_harness()
        self.err = logs / "pg-server.err"
        cmd = [str(exe), *(f"--set={k}={v}" for k, v in BENCH_SETTINGS.items())]
        if csv_path is not None:
            cmd += ["--load", str(csv_path)]
        with open(self.err, "wb") as err:
            # Its own session: a Ctrl-C or `timeout` signalling our group must not cut the
            # server's shutdown short; it stops when its stdin closes (stop(), or our death).
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True)
        ready = self.proc.stdout.readline()
        if not ready:
            code = self.proc.wait()
            raise RuntimeError(f"bench/pg-server exited ({code}):\n{tail(self.err, 40)}")
        info = json.loads(ready)
        self.port = info["port"]
        self.psql_exe = info["psql"]
        self.superuser_conn = info["conn"]
        self.reader_conn = info["reader_conn"]
        self.csv_rows = info.get("csv_rows_applied", 0)
        self.csv_lines = info.get("csv_records", 0)
        self.load_seconds = info.get("load_seconds", 0.0)

    def psql_cmd(self) -> list[str]:
        return [self.psql_exe, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.superuser_conn]

    def psql(self, sql: str) -> str:
        """Runs `sql` as the superuser in database `registry`; psql's unaligned output."""
        r = subprocess.run(self.psql_cmd() + ["-f", "-"], input=sql, capture_output=True, text=True,
                           env=pg_env())
        if r.returncode != 0:
            raise RuntimeError(f"psql failed ({r.returncode}):\n{sql[:3000]}\n--- stderr ---\n{r.stderr}"
                               f"\n--- harness ---\n{tail(self.err, 30)}")
        return r.stdout.rstrip("\n")

    def stop(self) -> None:
        """Closes the harness's stdin: it stops the server and removes its directory."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                log(f"bench/pg-server {self.proc.pid} did not stop: killing it (its watchdog cleans up)")
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
