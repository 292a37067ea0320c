"""The sections about a running server: Freshness (the first coverage answer after an ingest
commit) and HTTP under load (100 concurrent clients, auth and audit on), with their readings."""

from __future__ import annotations

from ..common import MiB
from ..format import ms
from .targets import TARGET_FRESH_S, TARGET_HTTP_P99_S


def live_section(sizes: list[dict]) -> list[str]:
    out = []
    fresh = [r for r in sizes if (r.get("freshness") or {}).get("first_answer_after_commit_median_s") is not None]
    if fresh:
        out += ["", "## Freshness", ""]
        out.append(
            "The first coverage answer after an ingest commit, on a running server: `vaxlake serve` on the size's "
            "warehouse answers `/api/coverage?indicator=DTP3&cohort=2022&by=commune`; each round ingests 20 new "
            "completed doses on new days (what one `--follow` poll commits: `vaxlake ingest` of a small FHIR "
            "export), then asks every 20 ms until the answer's `table_versions` show the new `dose_facts` "
            "version; the figure is that request's latency (bench/vaxlake_bench/freshness.py). Cold: the "
            "server's first answer (the whole facts table read); cached: the same answer again."
        )
        out += ["", "| events | first answer after a commit, median (each) | cold first answer | cached | "
                    "ingest of the 20-dose commit | date |", "|---:|---:|---:|---:|---:|---|"]
        for r in fresh:
            f = r["freshness"]
            each = ", ".join(ms(t) for t in f["first_answer_after_commit_s"])
            commits = f["ingest_of_the_commit_s"]
            out.append(f"| {r['immunization_lines']:,} | **{ms(f['first_answer_after_commit_median_s'])}** ({each}) | "
                       f"{ms(f['cold_first_answer_s'])} | {ms(f['cached_answer_s'])} | "
                       f"{min(commits):.2f}–{max(commits):.2f} s | {f['date']} |")
    loads = [r for r in sizes if (r.get("http") or {}).get("runs")]
    if loads:
        out += ["", "## HTTP under load", ""]
        out.append(
            "`vaxlake serve --auth` on the size's warehouse (one analyst token; every request authenticated and "
            "audited), after every question of the mix was asked once (the cold answers); then bench/http-load, "
            "100 concurrent clients each on its own keep-alive connection, replays a mix for the stated seconds: "
            "**coverage** (every indicator × cohorts 2018, 2020, 2022 × {national, commune, canton, sex}: the "
            "dashboards' cached answers) and **mixed** (the same coverage questions 70 %, one influenza season's "
            "effectiveness overall and by age band 15 %, `/api/sql` 15 % with a small aggregate that DataFusion "
            "runs every time). Latencies are from sending a request to the last byte of its answer, "
            "nearest-rank percentiles. Client and server share the 2 cores. After the runs the server gets "
            "SIGTERM (it drains the audit) and DuckDB counts the rows of the `audit` Delta table's active files "
            "recorded for the load's user since the load began."
        )
        out += ["", "| events | mix | endpoint | requests | per s | p50 | p95 | p99 | max | non-200 | "
                    "server RSS start → max | date |",
                "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in loads:
            h = r["http"]
            for mix, run in h["runs"].items():
                rows = [("all", run["all"])] + (list(run["by_name"].items()) if len(run["by_name"]) > 1 else [])
                for name, s in rows:
                    bad = sum(n for code, n in s["statuses"].items() if code != "200")
                    out.append(
                        f"| {r['immunization_lines']:,} | {mix} | {name} | {s['count']:,} | {s['per_second']:,.0f} | "
                        f"{s['p50_ms']:.1f} ms | {s['p95_ms']:.1f} ms | {s['p99_ms']:.1f} ms | {s['max_ms']:.0f} ms | "
                        f"{bad:,} | "
                        + (f"{run['server_rss_first'] / MiB:,.0f} → {run['server_rss_max'] / MiB:,.0f} MiB"
                           if name == "all" else "") + f" | {h['date']} |")
    return out


def live_reading(r: dict) -> list[str]:
    lines = []
    f = r.get("freshness") or {}
    if f.get("first_answer_after_commit_median_s") is not None:
        med = f["first_answer_after_commit_median_s"]
        worst = max(f["first_answer_after_commit_s"])
        lines.append(f"  Freshness ({f['date']}): first coverage answer after a commit {ms(med)} median, "
                     f"{ms(worst)} at worst, over {len(f['first_answer_after_commit_s'])} commits — target "
                     f"< {TARGET_FRESH_S * 1e3:.0f} ms: {'met' if worst < TARGET_FRESH_S else 'missed'}; "
                     f"cold first answer {ms(f['cold_first_answer_s'])}.")
    elif f.get("error"):
        lines.append(f"  Freshness: **failed**: `{f['error'][-300:]}`.")
    h = r.get("http") or {}
    if h.get("runs"):
        cov = h["runs"].get("coverage", {}).get("all")
        parts = []
        if cov:
            p99 = cov["p99_ms"] / 1e3
            parts.append(f"cached coverage answers at {h['clients']} clients p99 {cov['p99_ms']:.1f} ms "
                         f"({cov['per_second']:,.0f} requests/s) — target < {TARGET_HTTP_P99_S * 1e3:.0f} ms: "
                         f"{'met' if p99 < TARGET_HTTP_P99_S else 'missed'}")
        mixed = h["runs"].get("mixed")
        if mixed:
            each = ", ".join(f"{k} p99 {v['p99_ms']:.0f} ms" for k, v in mixed["by_name"].items())
            throttled = sum(v["statuses"].get("429", 0) for v in mixed["by_name"].values())
            parts.append(f"mixed: {each}"
                         + (f"; {throttled:,} SQL requests answered 429 (more than `--max-concurrent-queries`, "
                            f"default 4, running: the sandbox's limit, by design)" if throttled else ""))
        a = h.get("audit")
        if a:
            parts.append(f"audit: {a['rows']:,} rows for {a['sent']:,} requests sent — "
                         + ("every request recorded" if a["rows"] == a["sent"] else "**requests missing**"))
        elif h.get("audit_error"):
            parts.append(f"audit not read: `{h['audit_error'][-200:]}`")
        parts.append(f"server exit on SIGTERM {h.get('server_exit')}")
        lines.append(f"  HTTP ({h['date']}): " + "; ".join(parts) + ".")
    elif h.get("error"):
        lines.append(f"  HTTP under load: **failed**: `{h['error'][-300:]}`.")
    return lines
