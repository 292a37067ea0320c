"""The Method section: how each figure is measured, and what the DuckDB peer does and does not."""

from __future__ import annotations

from ..common import THREADS

METHOD = [
    "- **Input**: `vaxlake generate --persons N --seed 42` (N chosen so that `Immunization.ndjson` has "
    "about the requested number of lines, calibrated on a 20,000-person export); events = lines of "
    "`Immunization.ndjson` (including the ~1.7% the generator plants as invalid, which vaxlake "
    "quarantines); MB/s = bytes of "
    "`Patient.ndjson` + `Immunization.ndjson` (10^6 bytes a MB) over wall seconds. Both files are read "
    "once before each engine runs, so both start from a warm page cache.",
    "- **vaxlake**: `vaxlake ingest --warehouse W --source fhir:DIR --key-file K` into a fresh warehouse, "
    "default options (parser threads = cores = 2, 500,000 rows per Delta commit). Wall time is the child "
    "process's, from spawn to exit; peak RSS is its `ru_maxrss` from `wait4`.",
    f"- **DuckDB**: a child Python process (`scripts/bench --worker ingest`), `SET threads = {THREADS}`, "
    "default memory limit (80% of RAM), `preserve_insertion_order = false`; one `COPY (...) TO` statement. "
    "Wall time and peak RSS measured exactly as for vaxlake (so they include starting Python and "
    "importing DuckDB, about half a second, as vaxlake's include its own start-up and Delta table "
    "creation).",
    "- **Query**: `vaxlake sql --warehouse W --format csv --repeat 5 Q` and, in another process, DuckDB "
    "over `read_parquet([active files], hive_partitioning = false)` (the active files are the Delta log's "
    "`add` actions minus its `remove` actions). Rows are compared after sorting, as text; "
    "a mismatch is printed loudly and marked in the table.",
    "- **Coverage**: after the query, the export's `population.csv` is ingested (`--source population:...`, "
    "not timed; the denominators), then `vaxlake coverage --all` and DuckDB as described under Coverage; "
    "`--coverage-processes` (default 3) fresh processes per engine, `--repeat` (default 5) runs in the "
    "processes that repeat. The DuckDB side reuses `tests/coverage_check.py` (`connect_files`, "
    "`expected_cells`, `dump`), so what it computes is exactly what the cross-check compares against.",
    "- **Effectiveness**: after coverage, the export's `cases.csv` is ingested (`--source cases:...`, not "
    "timed), then `vaxlake effectiveness` and DuckDB as described under Effectiveness, with the same "
    "process and run counts. The DuckDB side reuses `tests/effectiveness_check.py` (`connect_files`, "
    "`compute`), the independent cross-check.",
    "",
    "### What the DuckDB peer does, and what it does not",
    "",
    "It reads `Patient.ndjson` and `Immunization.ndjson` with `read_ndjson` and explicit columns "
    "(`ignore_errors = true` drops the broken-JSON lines), takes the national number from the "
    "identifier of system `urn:oid:1.3.182.4.4`, joins `Immunization.patient.reference` to `Patient.id`, "
    "computes `left(sha256(salt || kind || value), 32)` for the person (once per Patient), the event "
    "(originating system + id, as vaxlake does for COVID-19 copies) and the vaccinator, the birth month "
    "(`date_trunc`), the age in completed months at the dose (month anniversary clamped to month end, as "
    "vaxlake), commune and canton from `address[1].city` through `sql/reference/communes.csv`, the "
    "vaccine name through `sql/reference/vaccines.csv` (an unknown ATC code drops the row), drops doses "
    "before birth or in the future, keeps the newest version of each event "
    "(`QUALIFY row_number() OVER (PARTITION BY event_key ORDER BY last_updated DESC) = 1`) and drops it "
    "if that version is `entered-in-error` (the row \"DuckDB, no version dedup\" skips that window, as "
    "a floor; the ratios use the full variant), adds an md5 content hash, and writes snappy Parquet "
    "partitioned by birth decade (`PARTITION_BY (birth_decade)`), like vaxlake's table.",
    "",
    "It does **not**: validate the national number's Luhn and Verhoeff check digits (so it keeps the "
    "Immunizations of Patients vaxlake quarantines — the \"rows check\" column shows the row counts "
    "differ by exactly those), record a "
    "quarantine entry (with a keyed record hash) for each rejected line, keep the newest of several "
    "versions of a Patient, use a keyed hash (sha256 of salt || value is what was asked for; vaxlake "
    "derives per-kind BLAKE3 sub-keys), or write a Delta table: no transaction log, no commit, no "
    "upsert (vaxlake looks up every batch's keys in the table and MERGEs, so that re-ingesting is "
    "idempotent), no `ingest_runs` row. Its output is not usable as a warehouse; it is the floor of "
    "what the same transformation costs in a good general-purpose engine.",
]
