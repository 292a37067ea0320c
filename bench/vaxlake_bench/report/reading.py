"""The Reading section: per size, what the figures say against the targets, where the ingest
spent its time, how its memory grew, and what shared the machine meanwhile."""

from __future__ import annotations

import statistics

from ..common import GiB, MiB
from .coverage import coverage_reading
from .effectiveness import effectiveness_reading
from .live import live_reading
from .targets import TARGET_EVENTS_PER_S, TARGET_INGEST_RATIO, TARGET_QUERY_RATIO, TARGET_RSS_BYTES


def reading(sizes: list[dict]) -> list[str]:
    lines = []
    for r in sizes:
        n = r["immunization_lines"]
        v, d, q = r.get("vaxlake_ingest", {}), r.get("duckdb_ingest", {}), r.get("query", {})
        head = f"- **{n:,} events** ({r['date']}): "
        if not v:  # only the coverage part was measured on this warehouse
            lines.append(f"- **{n:,} events**:")
            lines += coverage_reading(r)
            lines += effectiveness_reading(r)
            lines += live_reading(r)
            continue
        if not v.get("ok"):
            why = "timed out" if v.get("timed_out") else f"failed (exit {v.get('exit')})"
            lines.append(head + f"vaxlake ingest {why} after {v.get('seconds', 0):,.0f} s at a peak RSS of "
                         f"{v.get('peak_rss', 0) / GiB:.2f} GiB; no throughput figure. stderr tail:")
            lines += ["", "  ```", *("  " + l for l in v.get("stderr_tail", "").splitlines()[-10:]), "  ```", ""]
            continue
        rate = n / v["seconds"]
        parts = [f"{rate:,.0f} events/s end to end — target ≥ {TARGET_EVENTS_PER_S:,}: "
                 f"{'met' if rate >= TARGET_EVENTS_PER_S else 'missed'}"]
        if d.get("ok"):
            rr = d["seconds"] / v["seconds"]
            nd = r.get("duckdb_ingest_nodedup", {})
            floor = f" ({nd['seconds'] / v['seconds']:.2f}× the variant without version dedup)" if nd.get("ok") else ""
            parts.append(f"{rr:.2f}× DuckDB's throughput{floor} — target ≥ {TARGET_INGEST_RATIO}×: "
                         f"{'met' if rr >= TARGET_INGEST_RATIO else 'missed'}")
        rss = v["peak_rss"]
        parts.append(f"peak RSS {rss / GiB:.2f} GiB — target < {TARGET_RSS_BYTES / GiB:.0f} GiB at every size: "
                     f"{'met' if rss < TARGET_RSS_BYTES else 'missed'}")
        if "vaxlake_seconds" in q:
            qr = q["vaxlake_seconds"] / q["duckdb_seconds"]
            parts.append(f"query {qr:.2f}× DuckDB's time — target ≤ {TARGET_QUERY_RATIO}×: "
                         f"{'met' if qr <= TARGET_QUERY_RATIO else 'missed'}"
                         + ("" if q.get("same_rows") else " (**but the results differ**)"))
        lines.append(head + "; ".join(parts) + ".")
        phases = phases_text(v.get("phases"))
        if phases:
            lines.append(f"  {phases}.")
        growth = rss_profile(v.get("rss_timeline") or [])
        if growth:
            lines.append(f"  vaxlake RSS over the run (at 20/40/60/80/100% of its wall time): {growth}.")
        duck_growth = rss_profile(d.get("rss_timeline") or []) if d.get("ok") else ""
        if duck_growth:
            lines.append(f"  DuckDB RSS likewise: {duck_growth}.")
        busy = sorted({b for k in ("vaxlake_ingest", "duckdb_ingest", "duckdb_ingest_nodedup")
                       for b in (r.get(k) or {}).get("concurrent_builds", [])})
        if busy:
            lines.append(f"  **Caveat**: {', '.join(busy)} (another engineer's build) ran during this measurement; "
                         f"1-minute load average before the vaxlake ingest: {v.get('load_before', 0):.2f}.")
        lines.append(f"  Command: `{r.get('command', '?')}`; vaxlake binary built {r.get('vaxlake_binary_mtime')} "
                     f"(source {r.get('git')}).")
        lines += coverage_reading(r)
        lines += effectiveness_reading(r)
        lines += live_reading(r)
    return lines


def rss_profile(timeline: list) -> str:
    if len(timeline) < 5:
        return ""
    end = timeline[-1][0]
    picks = []
    for frac in (0.2, 0.4, 0.6, 0.8, 1.0):
        at = [rss for t, rss in timeline if t <= end * frac]
        picks.append(f"{max(at) / MiB:,.0f}" if at else "—")
    return " / ".join(picks) + " MiB"


def phases_text(p: dict | None) -> str:
    if not p or not p["commits"]:
        return ""
    commits = p["commits"]
    plain = [c["seconds"] for c in commits if not c.get("updated") and not c.get("deleted")]
    merges = [c for c in commits if c.get("updated") or c.get("deleted")]
    text = f"vaxlake phases: Patient index {p['patients_seconds']:.1f} s; {len(commits)} batches (parse, pseudonymise, commit)"
    if plain:
        text += f", {len(plain)} of them insert-only, median {statistics.median(plain):.1f} s each"
    for c in merges:
        text += (f"; the batch that also updated {c.get('updated', 0):,} and deleted {c.get('deleted', 0):,} rows "
                 f"of earlier batches (a MERGE rewriting their files) took {c['seconds']:.1f} s")
    return text
