"""The section about the doors: a 1M-row result fetched through `/api/sql` (JSON, Arrow),
the PostgreSQL protocol and Arrow Flight SQL, against psql from a real PostgreSQL."""

from __future__ import annotations

DOORS = [
    ("http_json", "vaxlake `/api/sql`, JSON (Python: read + `json.loads`)"),
    ("http_arrow", "vaxlake `/api/sql`, Arrow IPC (Python: read + `pyarrow.ipc`)"),
    ("pgwire_psql", "vaxlake PostgreSQL door, `psql -c SELECT -o FILE`"),
    ("flight_adbc", "vaxlake Flight SQL, ADBC `fetch_arrow_table()`"),
    ("postgres_psql_select", "PostgreSQL 15, `psql -c SELECT -o FILE` (peer)"),
    ("postgres_psql_copy", "PostgreSQL 15, psql `\\copy (SELECT ...) TO FILE` (peer)"),
]


def doors_section(sizes: list[dict]) -> list[str]:
    measured = [r for r in sizes if (r.get("doors") or {}).get("postgres_psql_copy")]
    if not measured:
        return []
    out = ["", "## A 1M-row result through each door", ""]
    out.append(
        "One `vaxlake serve --auth --pg-listen --flight-listen --max-rows 1000000` on the size's warehouse; the "
        "query `SELECT event_key, person_key, administered_on, vaccine_atc, status, age_months_at_dose FROM "
        "vaccinations LIMIT 1000000` fetched whole by each client in its own process (the client's decoding "
        "counts), median of the runs. The peer is PostgreSQL 15 holding the same rows (the answer, fetched "
        "once as CSV, loaded into a table of the same six columns), read back whole through psql. "
        "Ratio: the door's time over psql's `\\copy` (lower is faster). Client, server and peer share the "
        "2 cores (bench/vaxlake_bench/doors.py)."
    )
    out += ["", "| events | door | rows | seconds (median) | × psql `\\copy` | × psql SELECT | date |",
            "|---:|---|---:|---:|---:|---:|---|"]
    for r in measured:
        d = r["doors"]
        copy = d["postgres_psql_copy"]["seconds"]
        select = d["postgres_psql_select"]["seconds"]
        for key, label in DOORS:
            f = d.get(key)
            if not f:
                continue
            out.append(f"| {r['immunization_lines']:,} | {label} | {f['rows']:,} | {f['seconds']:.2f} | "
                       f"{f['seconds'] / copy:.2f}× | {f['seconds'] / select:.2f}× | {d['date']} |")
    return out
