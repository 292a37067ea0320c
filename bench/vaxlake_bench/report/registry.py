"""The Registry pull (PostgreSQL) section: the pull against the COPY peer and the csv: ingest,
and the freshness of --follow, with a line of detail per size."""

from __future__ import annotations

import statistics

from ..common import MiB
from .targets import TARGET_PULL_RATIO
from ..format import fmt_rate, ratio
from ..registry import FRESHNESS_ROWS


def postgres_section(sizes: list[dict]) -> list[str]:
    rows = [r for r in sizes if r.get("postgres")]
    if not rows:
        return []
    out = ["", "## Registry pull (PostgreSQL)", ""]
    out.append(
        "`vaxlake ingest --source postgres:` pulling the operational registry from a real PostgreSQL server on "
        "the same machine. The server is the tests' own: `tests/common/pg.rs`, run by `bench/pg-server` "
        "(a throwaway `initdb` under /tmp, run as `nobody` when the script runs as root, 127.0.0.1 on a free "
        "port, `fsync = off`; here `shared_buffers = 256MB`), with `vaccination_events` created by its "
        "`create_registry()` (primary key `event_id`, a trigger setting `change_seq` from a sequence on "
        "every INSERT and UPDATE, a unique index on it) and loaded with the export's `registry.csv` by its "
        "`load_registry_csv()` (COPY into a text staging table, safe casts dropping the rows a typed "
        "table cannot hold, first versions inserted and later versions of an `event_id` applied as updates, "
        "in file order), then `VACUUM (ANALYZE)`. So the registry holds one row per event: fewer rows than "
        "the CSV, whose corrections and entered-in-error rows are separate lines."
    )
    out.append("")
    out.append(
        "- **vaxlake pull**: `VAXLAKE_POSTGRES='host=127.0.0.1 port=P user=vaxlake_reader password=… "
        "dbname=registry' vaxlake ingest --warehouse W --source postgres: --key-file K` into a fresh "
        "warehouse (default `--batch-rows` 500,000: one `SELECT … WHERE change_seq > $1 ORDER BY change_seq "
        "LIMIT $2` per batch, every batch validated, pseudonymised, upserted and committed with its "
        "watermark); rows = `read=` of its last stdout line. Wall time spawn to exit, peak RSS from `wait4`, "
        "median of N runs.\n"
        "- **COPY export** (the peer): `psql -c \"\\copy (SELECT <vaxlake's column expressions>, change_seq "
        "FROM vaccination_events ORDER BY change_seq) TO '/dev/null' WITH (FORMAT csv)\"` as the same role, "
        "measured the same way (after one untimed warm-up export): what PostgreSQL itself takes to hand the "
        "same rows to a client. Neither figure includes the server backend's CPU (another process).\n"
        "- **csv: ingest** (context): `vaxlake ingest --source csv:registry.csv` of the same file into a "
        "fresh warehouse (all CSV lines, versions included).\n"
        "- **Freshness**: `vaxlake ingest --follow --every 1` on the pulled (caught-up) warehouse; "
        f"{FRESHNESS_ROWS} times, after a random 0–1 s pause, one row is inserted into the registry "
        "(a copy of an accepted row with a new `event_id` and a marker `lot_number`, `recorded_at = now()`), "
        "and `vaxlake sql --warehouse W --format csv \"SELECT count(*) FROM vaccinations WHERE lot_number = "
        "'<marker>'\"` runs every 100 ms (or back to back when one takes longer) until it counts the row; "
        "seconds from the insert (the server's `clock_timestamp()` at the INSERT) to the end of the query "
        "that saw it, so they include up to one query's duration (the poll column). Then the follower gets "
        "SIGTERM and must exit 0."
    )
    out.append("")
    out.append("Reproduce (after a `--keep` run, on its `registry.csv`): "
               "`scripts/bench --events 1M,10M --keep --only postgres`.")
    out.append("")
    out.append("| events | registry rows (CSV lines) | vaxlake pull | rows/s | peak RSS | COPY export | rows/s | "
               "pull / COPY rate | csv: ingest | rows/s | pull / csv: rate | freshness median / max (poll) | "
               "follower exit on SIGTERM | runs | date |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    notes = []
    for r in rows:
        p = r["postgres"]
        n = r["immunization_lines"]
        if p.get("error") and not p.get("pull_summary"):
            out.append(f"| {n:,} | {p.get('table_rows', '—')} | **failed** | | | | | | | | | | | | {p['date']} |")
            notes.append(f"- **{n:,} events**: failed: `{p['error'][-300:]}`")
            continue
        v, c, k = p.get("pull_summary"), p.get("copy_summary"), p.get("csv_summary")
        v_rate = v["rows"] / v["seconds"] if v else None
        c_rate = c["rows"] / c["seconds"] if c else None
        k_rate = k["rows"] / k["seconds"] if k else None
        fresh = (f"{p['freshness_median']:.2f} / {p['freshness_max']:.2f} s ({p['freshness_poll_median']:.2f} s)"
                 + ("" if p["freshness_seen"] == p["freshness_rows"]
                    else f", **{p['freshness_rows'] - p['freshness_seen']} not seen**")
                 if p.get("freshness_median") is not None else "—")
        out.append(
            f"| {n:,} | {p['table_rows']:,} ({p.get('csv_lines', p['csv_rows']):,}) | "
            + (f"{v['seconds']:.2f} s | {fmt_rate(v_rate)} | {v['peak_rss'] / MiB:,.0f} MiB | " if v else "— | — | — | ")
            + (f"{c['seconds']:.2f} s | {fmt_rate(c_rate)} | {ratio(v_rate, c_rate)} | " if c else "— | — | — | ")
            + (f"{k['seconds']:.2f} s | {fmt_rate(k_rate)} | {ratio(v_rate, k_rate)} | " if k else "— | — | — | ")
            + f"{fresh} | {'—' if p.get('follow_exit') is None else p['follow_exit']} | {p.get('runs', 1)} | "
            f"{p['date']} |"
        )
        parts = []
        def secs(ms_: list) -> str:
            return ", ".join("%.2f" % m["seconds"] for m in ms_ if m.get("ok"))
        if v:
            pulls = [m for m in p.get("pull", []) if m.get("ok")]
            own = [m["in_process_seconds"] for m in pulls if m.get("in_process_seconds")]
            parts.append(f"pull {fmt_rate(v_rate)} rows/s ({v['rows']:,} rows in {secs(pulls)} s; "
                         f"CPU {v['cpu_seconds']:.1f} s"
                         + (f"; own timer {statistics.median(own):.2f} s" if own else "") + ")")
        if c:
            parts.append(f"COPY export {fmt_rate(c_rate)} rows/s ({secs(p['copy'])} s; psql CPU "
                         f"{c['cpu_seconds']:.1f} s)")
        if v and c:
            pr = v_rate / c_rate
            parts.append(f"pull at {pr:.2f}× the COPY export rate — target ≥ {TARGET_PULL_RATIO}× at 10M: "
                         f"{'met' if pr >= TARGET_PULL_RATIO else 'missed'}")
        if k:
            kc = next((m["counts"] for m in p.get("csv", []) if m.get("ok")), {}) or {}
            parts.append(f"csv: {fmt_rate(k_rate)} rows/s ({kc.get('read', 0):,} lines, {kc.get('quarantined', 0):,} "
                         f"quarantined; CPU {k['cpu_seconds']:.1f} s, peak RSS {k['peak_rss'] / MiB:,.0f} MiB)")
        if p.get("freshness_median") is not None:
            each = ", ".join("%.2f" % x["seconds"] if x["seconds"] is not None else "not seen"
                             for x in p["freshness"])
            parts.append(f"freshness {p['freshness_seen']}/{p['freshness_rows']} rows seen, "
                         f"min {p['freshness_min']:.2f} s, median {p['freshness_median']:.2f} s, max "
                         f"{p['freshness_max']:.2f} s (each: {each}); "
                         f"the follower added {p.get('follow_rows_added')} rows and exited {p.get('follow_exit')} "
                         f"{p.get('follow_stop_seconds', 0):.1f} s after SIGTERM "
                         f"(peak RSS {(p.get('follow_peak_rss') or 0) / MiB:,.0f} MiB)")
        if p.get("error"):
            parts.append(f"**error**: `{p['error'][-300:]}`")
        line = (f"- **{n:,} events** (PostgreSQL {p.get('postgres_version', '?').split(' ')[0]}; "
                f"{p.get('csv_rows', 0):,} of {p.get('csv_lines', 0):,} CSV lines typed and applied, "
                f"registry loaded in {p.get('load_seconds', 0):.0f} s, "
                f"{p.get('table_bytes', 0) / MiB:,.0f} MiB with indexes): "
                + "; ".join(parts) + ".")
        busy = sorted({b for k2 in ("pull", "copy", "csv") for m in p.get(k2) or []
                       for b in m.get("concurrent_builds", [])})
        if busy:
            line += f" **Caveat**: {', '.join(busy)} ran during the measurement."
        if p.get("follow_stderr_errors"):
            line += f" Follower warnings/errors: `{p['follow_stderr_errors'][-1][-200:]}`."
        line += (f" Command: `{p.get('command')}`; vaxlake binary built {p.get('vaxlake_binary_mtime')} "
                 f"(source {p.get('git')}).")
        notes.append(line)
    out += [""] + notes
    return out
