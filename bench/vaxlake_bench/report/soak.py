"""The Soak section: many clients for minutes while `--follow` commits (bench/vaxlake_bench/soak.py)."""

from __future__ import annotations

from ..common import MiB


def soak_section(sizes: list[dict]) -> list[str]:
    runs = [r for r in sizes if (r.get("soak") or {}).get("load")]
    if not runs:
        return []
    out = ["", "## Soak", ""]
    out.append(
        "`vaxlake serve --auth` on the size's warehouse, bench/http-load's clients (one keep-alive connection "
        "each) mixing coverage (checked: no numerator above its denominator unless flagged, no count in a "
        "suppressed cell), effectiveness, `/api/sql` (three scans of `vaccinations` in one query that must sum "
        "to its total: one table version per answer) and the dashboards' API calls, while `vaxlake ingest "
        "--follow --every 5` pulls a throwaway PostgreSQL registry that a writer feeds 500 rows every 5 s "
        "(bench/vaxlake_bench/soak.py). RSS of the server every 5 s; the audit rows of the load's user counted "
        "after SIGTERM against the requests sent."
    )
    out += ["", "| events | clients × seconds | requests (per s) | statuses | inconsistent answers | follow commits | "
                "audit rows / sent | server RSS first → max (last) | date |",
            "|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in runs:
        s = r["soak"]
        a = s["load"]["all"]
        rss = [v for _, v in s.get("rss_timeline", [])] or [0]
        audit = s.get("audit") or {}
        out.append(
            f"| {r['immunization_lines']:,} | {s['clients']} × {s['seconds']:.0f} | {s['load']['sent']:,} "
            f"({a['per_second']:.0f}) | {a['statuses']} | {sum(s['load'].get('inconsistent', {}).values())} | "
            f"{s.get('vaccinations_commits', '?')} | {audit.get('rows', '?')} / {audit.get('sent', '?')} | "
            f"{rss[0] / MiB:.0f} → {max(rss) / MiB:.0f} ({rss[-1] / MiB:.0f}) MiB | {s['date'][:10]} |")
    for r in runs:
        s = r["soak"]
        timeline = ", ".join(f"{t:.0f}s {v / MiB:.0f}" for t, v in s.get("rss_timeline", [])[::6])
        out += ["", f"RSS over time at {r['immunization_lines']:,} events (MiB, every 30 s): {timeline}.",
                "", f"Reproduce: `{s.get('command', 'scripts/bench --only soak')}`"]
    return out
