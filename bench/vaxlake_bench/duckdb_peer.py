"""The DuckDB peer: the same work done by DuckDB in a child Python process of the benchmark
venv (`scripts/bench --worker KIND SPEC`), measured by the parent exactly as vaxlake is.

- ingest: one `COPY (...) TO` statement doing what vaxlake's FHIR ingest does (BENCHMARKS.md,
  "What the DuckDB peer does, and what it does not");
- query: the coverage-style aggregate over the given Parquet files;
- coverage / effectiveness: the SQL and Python of the independent cross-checks
  (tests/coverage_check.py, tests/effectiveness_check.py) over the given Parquet files.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

from .common import LAUNCHER, ROOT, THREADS, VENV, VENV_PYTHON, log

PATIENT_COLUMNS = (
    "{'resourceType': 'VARCHAR', 'id': 'VARCHAR', 'meta': 'STRUCT(lastUpdated VARCHAR)', "
    "'identifier': 'STRUCT(system VARCHAR, value VARCHAR)[]', 'birthDate': 'VARCHAR', "
    "'gender': 'VARCHAR', 'address': 'STRUCT(city VARCHAR, district VARCHAR)[]'}"
)

IMMUNIZATION_COLUMNS = (
    "{'resourceType': 'VARCHAR', 'id': 'VARCHAR', "
    "'meta': 'STRUCT(lastUpdated VARCHAR, source VARCHAR)', "
    "'identifier': 'STRUCT(system VARCHAR, value VARCHAR)[]', 'status': 'VARCHAR', "
    "'vaccineCode': 'STRUCT(coding STRUCT(system VARCHAR, code VARCHAR)[])', "
    "'patient': 'STRUCT(reference VARCHAR)', 'occurrenceDateTime': 'VARCHAR', "
    "'recorded': 'VARCHAR', 'lotNumber': 'VARCHAR', "
    "'performer': 'STRUCT(actor STRUCT(reference VARCHAR, identifier STRUCT(system VARCHAR, value VARCHAR)))[]', "
    "'protocolApplied': 'STRUCT(doseNumberPositiveInt BIGINT)[]'}"
)


def duckdb_ingest_sql(fhir: str, out: str, salt: str, dedup: bool) -> str:
    """One COPY statement: what vaxlake's FHIR ingest does, minus what is listed in
    BENCHMARKS.md ("What the DuckDB peer does")."""
    communes = ROOT / "sql" / "reference" / "communes.csv"
    vaccines = ROOT / "sql" / "reference" / "vaccines.csv"
    nat = "list_filter(identifier, lambda x: x.system = 'urn:oid:1.3.182.4.4')[1].value"
    newest = (
        "QUALIFY row_number() OVER (PARTITION BY event_key ORDER BY i.last_updated DESC) = 1"
        if dedup
        else ""
    )
    return f"""
COPY (
WITH communes AS (
  SELECT commune, canton FROM read_csv('{communes}', header = true)
), vaccines AS (
  SELECT atc_code, vaccine_name FROM read_csv('{vaccines}', header = true)
), p AS (
  SELECT pt.id,
         left(sha256('{salt}' || 'person|' || {nat}), 32) AS person_key,
         try_cast(pt.birthDate AS DATE) AS birth_date,
         CASE WHEN pt.gender IN ('male', 'female', 'other') THEN pt.gender ELSE 'unknown' END AS sex,
         c.commune, c.canton
  FROM read_ndjson('{fhir}/Patient.ndjson', columns = {PATIENT_COLUMNS}, ignore_errors = true) AS pt
  LEFT JOIN communes c ON lower(c.commune) = lower(trim(pt.address[1].city))
  WHERE pt.resourceType = 'Patient' AND {nat} IS NOT NULL
    AND try_cast(pt.birthDate AS DATE) <= current_date
), i AS (
  SELECT coalesce(
           list_filter(im.identifier, lambda x: starts_with(x.system, 'urn:vaxlake:source-system:'))[1],
           {{'system': 'urn:vaxlake:source-system:registry', 'value': im.id}}) AS origin,
         im.status,
         try_cast(im.meta.lastUpdated AS TIMESTAMPTZ) AS last_updated,
         coalesce(im.meta.source, 'registry') AS source_system,
         list_filter(im.vaccineCode.coding, lambda x: x.system = 'http://www.whocc.no/atc')[1].code AS atc,
         replace(im.patient.reference, 'Patient/', '') AS patient_id,
         try_cast(left(im.occurrenceDateTime, 10) AS DATE) AS administered_on,
         try_cast(im.recorded AS TIMESTAMPTZ) AS recorded_at,
         nullif(trim(im.lotNumber), '') AS lot_number,
         coalesce(im.performer[1].actor.reference, im.performer[1].actor.identifier.value) AS vaccinator,
         im.protocolApplied[1].doseNumberPositiveInt::INTEGER AS dose_number_recorded
  FROM read_ndjson('{fhir}/Immunization.ndjson', columns = {IMMUNIZATION_COLUMNS}, ignore_errors = true) AS im
  WHERE im.resourceType = 'Immunization' AND im.id <> ''
), joined AS (
  SELECT left(sha256('{salt}' || 'event|' || substr(i.origin.system, 27) || '|' || i.origin.value), 32) AS event_key,
         p.person_key,
         date_trunc('month', p.birth_date)::DATE AS birth_month,
         p.sex, p.commune, p.canton,
         i.administered_on,
         ((year(i.administered_on) - year(p.birth_date)) * 12
           + month(i.administered_on) - month(p.birth_date)
           - CASE WHEN day(i.administered_on) < least(day(p.birth_date), day(last_day(i.administered_on)))
                  THEN 1 ELSE 0 END)::INTEGER AS age_months_at_dose,
         i.atc AS vaccine_atc, v.vaccine_name, i.lot_number, i.dose_number_recorded, i.status,
         left(sha256('{salt}' || 'practitioner|' || trim(i.vaccinator)), 32) AS vaccinator_key,
         i.source_system, i.recorded_at, i.last_updated,
         now() AS ingested_at,
         (year(p.birth_date) // 10 * 10)::INTEGER AS birth_decade
  FROM i
  JOIN p ON p.id = i.patient_id
  JOIN vaccines v ON v.atc_code = i.atc
  WHERE i.status IN ('completed', 'not-done', 'entered-in-error')
    AND i.last_updated IS NOT NULL
    AND i.administered_on BETWEEN p.birth_date AND current_date
  {newest}
)
SELECT * EXCLUDE (birth_decade),
       md5(concat_ws('|', person_key, birth_month, sex, commune, administered_on, vaccine_atc,
                     lot_number, dose_number_recorded, status, vaccinator_key, source_system,
                     recorded_at)) AS content_hash,
       birth_decade
FROM joined WHERE status <> 'entered-in-error'
) TO '{out}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (birth_decade), OVERWRITE_OR_IGNORE)
"""


def duckdb_connect(tmp: str):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {THREADS}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET temp_directory = '{tmp}'")
    return con


def worker(kind: str, spec_json: str) -> None:
    import duckdb

    spec = json.loads(spec_json)
    con = duckdb_connect(spec["tmp"])
    if kind == "ingest":
        sql = duckdb_ingest_sql(spec["fhir"], spec["out"], spec["salt"], spec["dedup"])
        started = time.perf_counter()
        con.execute(sql).fetchall()
        seconds = time.perf_counter() - started
        rows = con.execute(
            f"SELECT count(*) FROM read_parquet('{spec['out']}/**/*.parquet', hive_partitioning = false)"
        ).fetchone()[0]
        print(json.dumps({"seconds": seconds, "rows": rows, "duckdb": duckdb.__version__}))
    elif kind == "query":
        files = spec["files"]
        con.execute(
            f"CREATE VIEW vaccinations AS SELECT * FROM read_parquet({files!r}, hive_partitioning = false)"
        )
        table_rows = con.execute("SELECT count(*) FROM vaccinations").fetchone()[0]
        times, rows = [], None
        for _ in range(spec["repeat"]):
            started = time.perf_counter()
            rows = con.execute(spec["query"]).fetchall()
            times.append(time.perf_counter() - started)
        print(json.dumps({"times": times, "rows": [list(map(norm, r)) for r in rows], "table_rows": table_rows,
                          "duckdb": duckdb.__version__}))
    elif kind == "coverage":
        coverage_worker(spec)
    elif kind == "effectiveness":
        effectiveness_worker(spec)
    else:
        sys.exit(f"unknown worker {kind}")


def coverage_worker(spec: dict) -> None:
    """The whole coverage table in DuckDB, with tests/coverage_check.py's SQL (cell counts)
    and its Python finishing (Wilson intervals, primary and secondary suppression, the CSV
    vaxlake's --all prints), over the given Parquet files; `repeat` times, each on a new
    connection (DuckDB keeps nothing between them but the OS page cache)."""
    import types

    import duckdb

    # The checker imports deltalake to list a table's files; here the files are given, so
    # the DuckDB process loads DuckDB only (as the other workers do).
    sys.modules.setdefault("deltalake", types.SimpleNamespace(DeltaTable=None))
    sys.path.insert(0, str(ROOT / "tests"))
    import coverage_check as cc

    runs = []
    for _ in range(spec["repeat"]):
        started = time.perf_counter()
        con = cc.connect_files(spec["vacc"], spec["pop"], spec["reference_dir"], spec.get("persons"))
        con.execute(f"SET threads = {THREADS}")
        expected = cc.expected_cells(con, spec["reference_dir"])
        sql_done = time.perf_counter()
        cc.dump(expected, spec["threshold"], spec["out"])
        finished = time.perf_counter()
        con.close()
        runs.append({"seconds": finished - started, "sql_seconds": sql_done - started, "rows": len(expected)})
    print(json.dumps({"runs": runs, "duckdb": duckdb.__version__}))


def effectiveness_worker(spec: dict) -> None:
    """One season's VE by age band in DuckDB, with tests/effectiveness_check.py's SQL (the
    strata) and Python (rate ratios, Mantel-Haenszel, crude, suppression), over the given
    Parquet files; `repeat` times, each on a new connection."""
    import duckdb

    sys.path.insert(0, str(ROOT / "tests"))
    import effectiveness_check as ec

    params = {"antigen": spec["antigen"], "disease": spec["disease"],
              "from": dt.date.fromisoformat(spec["from"]), "to": dt.date.fromisoformat(spec["to"]),
              "lag_days": 14, "dose": 1, "outcome": "any", "doses_since": None}
    runs, result = [], None
    for _ in range(spec["repeat"]):
        started = time.perf_counter()
        con = ec.connect_files(spec["vacc"], spec["pop"], spec["cases"], spec["reference_dir"], THREADS,
                                 persons=spec.get("persons"))
        result = ec.compute(con, params, spec["threshold"])
        finished = time.perf_counter()
        con.close()
        runs.append({"seconds": finished - started})
    with open(spec["out"], "w") as f:
        json.dump(result, f, indent=1, default=str)
    print(json.dumps({"runs": runs, "duckdb": duckdb.__version__}))


def norm(v) -> str:
    """Canonical text of a result cell, so both engines' rows compare equal."""
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def worker_cmd(kind: str, spec: dict) -> list[str]:
    """The command line of a DuckDB worker: the venv's python running the launcher."""
    return [str(VENV_PYTHON), str(LAUNCHER), "--worker", kind, json.dumps(spec)]


def ensure_venv() -> str:
    """The DuckDB version of target/bench-venv, which is created (pip install duckdb) on first
    use."""
    def version() -> str | None:
        if not VENV_PYTHON.exists():
            return None
        r = subprocess.run([str(VENV_PYTHON), "-c", "import duckdb; print(duckdb.__version__)"],
                           capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    v = version()
    if v:
        return v
    log(f"creating {VENV} and installing duckdb from PyPI")
    if not VENV_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "duckdb"], check=True)
    v = version()
    if not v:
        sys.exit("duckdb does not import in target/bench-venv")
    return v
