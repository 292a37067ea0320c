"""The SQL aggregate benchmark: one coverage-style aggregate over the active Parquet files of
vaxlake's `vaccinations` table, `vaxlake sql --repeat N` against DuckDB over the same files in
another process; the rows of both must be the same."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import subprocess
from pathlib import Path

from .common import log, loud
from .duckdb_peer import norm, worker_cmd

# The coverage-style aggregate: per birth year and commune, persons with at least three
# completed DTP-containing doses (on distinct days) before 12 completed months of age.
# One text for both engines (DataFusion and DuckDB both take it unchanged).
QUERY = (
    "SELECT CAST(date_part('year', birth_month) AS INTEGER) AS birth_year, commune, "
    "COUNT(*) AS persons "
    "FROM (SELECT person_key, birth_month, commune FROM vaccinations "
    "WHERE status = 'completed' "
    "AND vaccine_atc IN ('J07CA09', 'J07CA06', 'J07CA02', 'J07AJ52') "
    "AND age_months_at_dose < 12 "
    "GROUP BY person_key, birth_month, commune "
    "HAVING COUNT(DISTINCT administered_on) >= 3) AS t "
    "GROUP BY 1, 2 ORDER BY 1, 2"
)


def run_query(args, binary: Path, wh: Path, files: list[Path], logs: Path) -> dict:
    q = {"text": QUERY, "repeat": args.repeat}
    r = subprocess.run([str(binary), "sql", "--warehouse", str(wh), "--format", "csv", "--repeat", str(args.repeat), QUERY],
                       capture_output=True, text=True)
    (logs / "vaxlake-sql.err").write_text(r.stderr)
    if r.returncode != 0:
        loud(f"vaxlake sql failed:\n{r.stderr[-2000:]}")
        q["vaxlake_error"] = r.stderr[-2000:]
        return q
    v_times = [float(x) for x in re.findall(r"run=\d+ seconds=([0-9.]+)", r.stderr)]
    v_rows = [list(map(norm, row)) for row in list(csv.reader(io.StringIO(r.stdout)))[1:]]
    spec = {"files": [str(f) for f in files], "repeat": args.repeat, "query": QUERY, "tmp": str(logs)}
    d = subprocess.run(worker_cmd("query", spec), capture_output=True, text=True)
    if d.returncode != 0:
        loud(f"DuckDB query failed:\n{d.stderr[-2000:]}")
        q["duckdb_error"] = d.stderr[-2000:]
        return q
    dq = json.loads(d.stdout.strip().splitlines()[-1])
    d_rows = dq["rows"]
    q["vaxlake_times"], q["duckdb_times"] = v_times, dq["times"]
    q["vaxlake_seconds"] = statistics.median(v_times[1:] or v_times)
    q["duckdb_seconds"] = statistics.median(dq["times"][1:] or dq["times"])
    q["rows"] = len(v_rows)
    q["table_rows"] = dq.get("table_rows")
    q["persons"] = sum(int(r[2]) for r in v_rows)
    q["same_rows"] = sorted(v_rows) == sorted(d_rows)
    if not q["same_rows"]:
        only_v = [r for r in v_rows if r not in d_rows][:10]
        only_d = [r for r in d_rows if r not in v_rows][:10]
        q["only_vaxlake"], q["only_duckdb"] = only_v, only_d
        loud(f"QUERY RESULTS DIFFER: vaxlake {len(v_rows)} rows, DuckDB {len(d_rows)} rows\n"
             f"only in vaxlake: {only_v}\nonly in DuckDB: {only_d}")
    log(f"query: vaxlake {q['vaxlake_seconds']:.3f}s, DuckDB {q['duckdb_seconds']:.3f}s (median of runs 2..{args.repeat}), "
        f"{q['rows']} rows, same rows: {q['same_rows']}")
    return q
