"""The Ingest and Query sections: the ingest table (vaxlake and the DuckDB peer per size),
the ratios with the row checks, and the aggregate's timings."""

from __future__ import annotations

from ..common import MiB
from ..format import fmt_rate, ratio
from ..query import QUERY


def ingest_section(sizes: list[dict]) -> list[str]:
    out = []
    out += ["## Ingest", ""]
    out.append("| events | persons | NDJSON input | engine | wall s | own timer s | events/s | MB/s | peak RSS | CPU s (user+sys) | date |")
    out.append("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in sizes:
        n, b = r["immunization_lines"], r["input_bytes"]
        for name, key in (("vaxlake", "vaxlake_ingest"), ("DuckDB", "duckdb_ingest"),
                          ("DuckDB, no version dedup", "duckdb_ingest_nodedup")):
            m = r.get(key)
            if not m:
                continue
            s = m["seconds"]
            state = "" if m.get("ok") else (" (timed out)" if m.get("timed_out") else f" (failed, exit {m.get('exit')})")
            own = m.get("in_process_seconds")
            out.append(
                f"| {n:,} | {r['persons']:,} | {b / 1e6:,.0f} MB | {name}{state} | {s:,.1f} | "
                f"{f'{own:,.1f}' if own else '—'} | "
                f"{fmt_rate(n / s) if m.get('ok') else '—'} | {b / 1e6 / s:,.1f} | "
                f"{m['peak_rss'] / MiB:,.0f} MiB | {m['user_seconds'] + m['system_seconds']:,.0f} | {r['date']} |"
            )
    out.append("")
    out.append(
        "Events are `Immunization.ndjson` lines; wall seconds (spawn to exit) are what events/s, MB/s and "
        "the ratios use; \"own timer\" is the engine's in-process figure (vaxlake's `ingest done seconds=` "
        "log line, DuckDB's `perf_counter` around the `COPY`), shown to separate start-up costs."
    )
    out.append("")
    out.append("| events | vaxlake/DuckDB throughput | (vs. DuckDB without dedup) | vaxlake/DuckDB peak RSS | rows written vaxlake / DuckDB | rows check | Parquet vaxlake / DuckDB |")
    out.append("|---:|---:|---:|---:|---:|---|---:|")
    for r in sizes:
        v, d = r.get("vaxlake_ingest", {}), r.get("duckdb_ingest", {})
        nd = r.get("duckdb_ingest_nodedup", {})
        if not (v.get("ok") and d.get("ok")):
            continue
        out.append(
            f"| {r['immunization_lines']:,} | {ratio(d['seconds'], v['seconds'])} | "
            f"{ratio(nd['seconds'], v['seconds']) if nd.get('ok') else '—'} | "
            f"{ratio(v['peak_rss'], d['peak_rss'])} | "
            f"{r.get('vaxlake_rows') or 0:,} / {d.get('rows', 0):,} | "
            f"{rows_check(r)} | "
            f"{r.get('parquet_bytes', 0) / 1e6:,.0f} MB / {r.get('duckdb_parquet_bytes', 0) / 1e6:,.0f} MB |"
        )
    return out


def query_section(sizes: list[dict]) -> list[str]:
    out = []
    out += ["", "## Query", ""]
    out.append(
        "Per birth year and commune, persons with at least 3 completed doses of a DTP-containing vaccine "
        "(J07CA09, J07CA06, J07CA02, J07AJ52) on distinct days before 12 completed months of age, over "
        "the active Parquet files of vaxlake's `vaccinations` table (both engines read the same files). "
        "Seconds are the median of runs 2..N of N in one process (run 1 is a warm-up); vaxlake's are its "
        "own `--repeat` timings (planning + execution + collecting the result, excluding process start "
        "and table registration), DuckDB's are `perf_counter` around `con.execute(q).fetchall()`."
    )
    out += ["", "```sql", QUERY, "```", ""]
    out.append("| events | Parquet files | vaxlake s | DuckDB s | vaxlake/DuckDB time | result rows | persons counted | same rows |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in sizes:
        q = r.get("query")
        if not q or "vaxlake_seconds" not in q:
            continue
        out.append(
            f"| {r['immunization_lines']:,} | {r['parquet_files']} | {q['vaxlake_seconds']:.3f} | "
            f"{q['duckdb_seconds']:.3f} | {ratio(q['vaxlake_seconds'], q['duckdb_seconds'])} | "
            f"{q['rows']:,} | {q['persons']:,} | {'yes' if q['same_rows'] else '**NO — results differ**'} |"
        )
    return out


def rows_check(r: dict) -> str:
    """vaxlake's rows against what the generator planted; DuckDB's extra rows against the
    Immunizations of Patients whose national number fails a check digit (which it keeps)."""
    v, d = r.get("vaxlake_rows"), (r.get("duckdb_ingest") or {}).get("rows")
    want, bad = r.get("current_events_expected"), r.get("immunizations_of_invalid_patients")
    parts = []
    if v is not None and want is not None:
        parts.append("vaxlake = manifest's current events" if v == want else f"vaxlake {v - want:+,} vs manifest")
    if v is not None and d is not None and bad is not None:
        parts.append(f"DuckDB extra {d - v:,} = Immunizations of bad-check-digit Patients" if d - v == bad
                     else f"DuckDB extra {d - v:,} (bad-check-digit Patients' Immunizations: {bad:,})")
    return "; ".join(parts) or "—"
