"""Fetching a 1M-row result through each door of one `vaxlake serve --auth`: `/api/sql` as
JSON and as Arrow IPC, the PostgreSQL protocol (psql, like an analyst's terminal) and Arrow
Flight SQL (ADBC's driver, `fetch_arrow_table`, as pandas/polars users get it).

The peer is a real PostgreSQL (the registry-pull benchmark's throwaway server) holding the
same rows: the 1M-row answer, fetched once as CSV from `/api/sql`, is loaded into a table
`doses` with the same six columns (two pseudonyms, a date, two short texts, an integer), and
psql reads it back, both as a result set (`-c SELECT`) and with `\\copy (SELECT ...) TO` a
file, psql's fastest way out.

Every fetch runs in its own child process (the client's cost counts: parsing JSON, decoding
Arrow, psql formatting), `--pg-runs` times (default 3), median wall time; rows are counted
and must be 1,000,000 (or the table's size, if smaller) everywhere.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

from .common import VENV_PYTHON, wait_for_health, free_port, built_at, git_state, log, loud, utc_now
from .postgres import Registry, pg_env

ROWS = 1_000_000
USER = "door-analyst"
VAXLAKE_SQL = (f"SELECT event_key, person_key, administered_on, vaccine_atc, status, "
               f"age_months_at_dose FROM vaccinations LIMIT {ROWS}")
PG_SQL = "SELECT event_key, person_key, administered_on, vaccine_atc, status, age_months_at_dose FROM doses"
PG_TABLE = ("CREATE TABLE doses (event_key text, person_key text, administered_on date, vaccine_atc text, "
            "status text, age_months_at_dose integer)")
CLIENT_PACKAGES = ["adbc-driver-manager==1.13.0", "adbc-driver-flightsql==1.13.0", "pyarrow==26.0.1"]

# One fetch, run in the bench venv's Python: prints {"rows": N, "seconds": S}.
FETCH = r"""
import json, sys, time, urllib.request
kind, target, token, sql = sys.argv[1:5]
started = time.perf_counter()
if kind in ("http-json", "http-arrow"):
    arrow = kind == "http-arrow"
    request = urllib.request.Request(target + "/api/sql", data=json.dumps({"sql": sql}).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json",
                 "Accept": "application/vnd.apache.arrow.stream" if arrow else "application/json"})
    body = urllib.request.urlopen(request, timeout=3600).read()
    if arrow:
        import pyarrow.ipc
        rows = pyarrow.ipc.open_stream(body).read_all().num_rows
    else:
        rows = len(json.loads(body)["rows"])
elif kind == "flight":
    import adbc_driver_flightsql, adbc_driver_flightsql.dbapi as flight_sql
    header = adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value
    with flight_sql.connect(target, db_kwargs={header: "Bearer " + token}, autocommit=True) as conn:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetch_arrow_table().num_rows
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))
"""


def _client_venv() -> None:
    r = subprocess.run([str(VENV_PYTHON), "-c", "import adbc_driver_flightsql, pyarrow"], capture_output=True)
    if r.returncode != 0:
        log("installing the Flight SQL client (ADBC, pyarrow) into the bench venv")
        subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", *CLIENT_PACKAGES], check=True)


def _python_fetch(kind: str, target: str, token: str) -> dict:
    r = subprocess.run([str(VENV_PYTHON), "-c", FETCH, kind, target, token, VAXLAKE_SQL],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"{kind} fetch failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout)


def _psql(psql: str, args: list[str], env: dict) -> dict:
    started = time.perf_counter()
    r = subprocess.run([psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", *args],
                       capture_output=True, text=True, env=env, timeout=3600)
    seconds = time.perf_counter() - started
    if r.returncode != 0:
        raise RuntimeError(f"psql {args[:2]} failed:\n{r.stderr[-2000:]}")
    return {"seconds": seconds, "stdout": r.stdout}


def _lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def run_doors(args, binary: Path, base: Path, wh: Path, logs: Path) -> dict:
    d: dict = {"date": utc_now(), "rows": ROWS, "vaxlake_sql": VAXLAKE_SQL, "pg_sql": PG_SQL,
               "vaxlake_binary_mtime": built_at(binary), "git": git_state(), "command": args.command}
    runs = args.pg_runs or 3
    _client_venv()
    made = subprocess.run([str(binary), "token", "new", "--name", USER, "--role", "analyst"],
                          capture_output=True, text=True, check=True)
    token = made.stdout.strip().splitlines()[-1]
    auth = base / "doors-auth.toml"
    auth.write_text(made.stderr[made.stderr.index("[[user]]"):])
    http_port, pg_port, flight_port = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{http_port}"
    serve_log = open(logs / "doors-serve.log", "w")
    server = subprocess.Popen(
        [str(binary), "serve", "--warehouse", str(wh), "--listen", f"127.0.0.1:{http_port}",
         "--auth", str(auth), "--pg-listen", f"127.0.0.1:{pg_port}",
         "--flight-listen", f"127.0.0.1:{flight_port}", "--max-rows", str(ROWS),
         "--memory-limit-mb", "12288", "--query-timeout-ms", "3600000",
         "--request-timeout-secs", "3600"],
        stdout=serve_log, stderr=subprocess.STDOUT, start_new_session=True)
    registry = None
    try:
        wait_for_health(url)
        registry = Registry(None, logs)
        psql = registry.psql_exe
        # The peer holds the very rows: the answer as CSV, loaded into `doses`.
        rows_csv = base / "doors-rows.csv"
        request = urllib.request.Request(url + "/api/sql", data=json.dumps({"sql": VAXLAKE_SQL}).encode(),
                                         headers={"Authorization": f"Bearer {token}", "Accept": "text/csv",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=3600) as answer, open(rows_csv, "wb") as f:
            while chunk := answer.read(1 << 20):
                f.write(chunk)
        registry.psql(PG_TABLE)
        _psql(psql, ["-d", registry.superuser_conn, "-c",
                     f"\\copy doses FROM '{rows_csv}' WITH (FORMAT csv, HEADER true)"], pg_env())
        registry.psql("ANALYZE doses")
        d["peer_rows"] = int(registry.psql("SELECT count(*) FROM doses"))
        rows_csv.unlink(missing_ok=True)
        door_env = dict(pg_env(), PGPASSWORD=token)
        door_conn = f"host=127.0.0.1 port={pg_port} dbname=vaxlake user={USER} sslmode=disable"
        out = logs / "doors-copy.csv"

        def vaxlake_psql() -> dict:
            o = _psql(psql, ["-d", door_conn, "-o", str(out), "-c", VAXLAKE_SQL], door_env)
            return {"rows": _lines(out), "seconds": o["seconds"]}

        def peer_select() -> dict:
            o = _psql(psql, ["-d", registry.superuser_conn, "-o", str(out), "-c", PG_SQL], pg_env())
            return {"rows": _lines(out), "seconds": o["seconds"]}

        def peer_copy() -> dict:
            o = _psql(psql, ["-d", registry.superuser_conn, "-c",
                             f"\\copy ({PG_SQL}) TO '{out}' WITH (FORMAT csv)"], pg_env())
            return {"rows": _lines(out), "seconds": o["seconds"]}

        doors = {
            "http_json": lambda: _python_fetch("http-json", url, token),
            "http_arrow": lambda: _python_fetch("http-arrow", url, token),
            "pgwire_psql": vaxlake_psql,
            "flight_adbc": lambda: _python_fetch("flight", f"grpc://127.0.0.1:{flight_port}", token),
            "postgres_psql_select": peer_select,
            "postgres_psql_copy": peer_copy,
        }
        for name, fetch in doors.items():
            taken = []
            rows = None
            for _ in range(runs):
                f = fetch()
                rows = f["rows"]
                taken.append(f["seconds"])
            d[name] = {"seconds": statistics.median(taken), "runs": taken, "rows": rows}
            log(f"{base.name} doors: {name}: {rows} rows in {statistics.median(taken):.2f} s (median of {runs})")
        out.unlink(missing_ok=True)
    except Exception as error:  # the report says what failed; the other parts still run
        loud(f"doors: {error}")
        d["error"] = str(error)[:2000]
    finally:
        if registry is not None:
            registry.stop()
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
    return d
