"""The Effectiveness section, and the effectiveness lines of Reading."""

from __future__ import annotations

from ..common import MiB
from ..effectiveness import EFFECTIVENESS
from .targets import TARGET_VE_RATIO
from ..format import fmt_ve, ms, ratio


def effectiveness_section(sizes: list[dict]) -> list[str]:
    rows = [r for r in sizes if (r.get("effectiveness") or {}).get("vaxlake_cold_seconds") is not None]
    if not rows:
        return []
    p = rows[-1]["effectiveness"].get("params") or EFFECTIVENESS
    out = ["", "## Effectiveness", ""]
    out.append(
        f"One season's influenza vaccine effectiveness at national scale: `vaxlake effectiveness --warehouse W "
        f"--antigen {p['antigen']} --disease {p['disease']} --from {p['from']} --to {p['to']} --by age_band "
        f"--format json` (what `/api/effectiveness?antigen={p['antigen']}&disease={p['disease']}&from={p['from']}"
        f"&to={p['to']}&by=age_band` answers): the cohort method of docs/effectiveness.md, per age band the "
        "cases and person-days among the vaccinated (from 14 days after the season's first dose, doses since "
        "1 September) and the unvaccinated, the rate ratio, the Mantel–Haenszel and crude VE, the screening "
        "method, default suppression (threshold 8). Against DuckDB computing the same strata and estimates "
        "from the same Parquet files (the active files of `vaccinations`, `population` and `cases`) with the "
        "SQL and Python of `tests/effectiveness_check.py`, the independent cross-check. Both start from a warm "
        "OS page cache and use 2 threads; timed as for Coverage."
    )
    out.append("")
    out.append(
        "- **vaxlake cold**: run 1 of `--repeat N` in a fresh process (its own timer: one answer from the "
        "warehouse, the strata queries and the estimates; excludes process start, opening the warehouse and "
        "printing), median of P processes; **process**: that process's wall time, spawn to exit; **cached**: "
        "runs 2..N, median (the in-process answer cache, per table version)."
    )
    out.append(
        "- **DuckDB cold**: `perf_counter` around connecting, the SQL and the Python estimates in a fresh process "
        "(`scripts/bench --worker effectiveness`, `SET threads = 2`), median of P + 1 processes; **process**: "
        "wall time of the P processes that compute the answer once; **warm**: runs 2..N in one process (each on "
        "a new connection)."
    )
    out.append(
        "- **Ratios** are vaxlake / DuckDB times (below 1 means vaxlake is faster). Peak RSS is the largest "
        "`ru_maxrss` over the processes. **Same strata**: `tests/effectiveness_check.py --vaxlake-json` on "
        "vaxlake's answer (every band's four counts exactly; VE, interval, IRR and screening within 1e-4; "
        "suppression; overall and crude)."
    )
    out.append("")
    out.append("Reproduce (after a `--keep` run, on its warehouses): "
               "`scripts/bench --events 1M,10M --keep --only effectiveness`.")
    out.append("")
    out.append("| events | cases in season (vacc. / unvacc.) | VE (MH) [95 % CI] | crude VE | vaxlake cold | "
               "vaxlake process | cached | DuckDB cold | DuckDB process | DuckDB warm | cold vaxlake/DuckDB | "
               "process vaxlake/DuckDB | peak RSS vaxlake / DuckDB | same strata | date |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        e = r["effectiveness"]
        a = e.get("answer") or {}
        cases = (f"{a['cases_vaccinated']:,} / {a['cases_unvaccinated']:,}"
                 if a.get("cases_vaccinated") is not None else "suppressed")
        ve = (f"{fmt_ve(a.get('ve'))} [{fmt_ve(a.get('ci_low'))}, {fmt_ve(a.get('ci_high'))}]"
              if a.get("ve") is not None else "—")
        d_ok = e.get("duckdb_cold_seconds") is not None
        same = ("yes" if e.get("check_agrees") else
                "not checked" if "check_exit" not in e else f"**NO — checker exit {e['check_exit']}**")
        out.append(
            f"| {r['immunization_lines']:,} | {cases} | {ve} | {fmt_ve(a.get('crude_ve'))} | "
            f"{ms(e['vaxlake_cold_seconds'])} | {e['vaxlake_process_seconds']:.2f} s | "
            f"{ms(e['vaxlake_cached_seconds'])} | "
            + (f"{ms(e['duckdb_cold_seconds'])} | {e['duckdb_process_seconds']:.2f} s | "
               f"{ms(e['duckdb_warm_seconds'])} | "
               f"{ratio(e['vaxlake_cold_seconds'], e['duckdb_cold_seconds'])} | "
               f"{ratio(e['vaxlake_process_seconds'], e['duckdb_process_seconds'])} | "
               f"{e['vaxlake_peak_rss'] / MiB:,.0f} / {e['duckdb_peak_rss'] / MiB:,.0f} MiB | "
               if d_ok else
               f"— | — | — | — | — | {e['vaxlake_peak_rss'] / MiB:,.0f} MiB / — | ")
            + f"{same} | {e['date']} |"
        )
    return out


def effectiveness_reading(r: dict) -> list[str]:
    e = r.get("effectiveness") or {}
    if e.get("error") or e.get("vaxlake_error") or e.get("duckdb_error"):
        return [f"  **Effectiveness failed**: {(e.get('error') or e.get('vaxlake_error') or e.get('duckdb_error'))[-400:]}"]
    if e.get("vaxlake_cold_seconds") is None:
        return []
    cold, cached = e["vaxlake_cold_seconds"], e["vaxlake_cached_seconds"]
    a = e.get("answer") or {}
    parts = [f"one season's VE by age band cold {ms(cold)} in-process ({e['vaxlake_process_seconds']:.2f} s as a "
             f"process), cached {ms(cached)} (median; slowest cached run {ms(e.get('vaxlake_cached_max_seconds'))})"]
    if e.get("duckdb_cold_seconds") is not None:
        vr = cold / e['duckdb_cold_seconds']
        parts.append(f"{vr:.2f}× DuckDB's cold time ({ms(e['duckdb_cold_seconds'])}; "
                     f"{e['vaxlake_process_seconds'] / e['duckdb_process_seconds']:.2f}× as processes, "
                     f"{cold / e['duckdb_warm_seconds']:.2f}× DuckDB warm) — target ≤ {TARGET_VE_RATIO}×: "
                     f"{'met' if vr <= TARGET_VE_RATIO else 'missed'}")
        parts.append(f"peak RSS {e['vaxlake_peak_rss'] / MiB:,.0f} MiB (DuckDB {e['duckdb_peak_rss'] / MiB:,.0f} MiB)")
    if a.get("ve") is not None:
        parts.append(f"VE {a['ve']:.3f} (Mantel–Haenszel; crude {fmt_ve(a.get('crude_ve'))}) from "
                     f"{a['cases_vaccinated']:,} vaccinated and {a['cases_unvaccinated']:,} unvaccinated cases, "
                     f"{a['bands_suppressed']} of 6 bands suppressed")
    if "check_exit" not in e:
        parts.append("answers not cross-checked")
    elif e.get("check_agrees"):
        parts.append("tests/effectiveness_check.py: the strata and estimates agree")
    else:
        parts.append(f"**tests/effectiveness_check.py: THE ANSWERS DIFFER** (exit {e['check_exit']})")
    lines = [f"  Effectiveness ({e['date']}): " + "; ".join(parts) + "."]
    if not e.get("check_agrees") and e.get("check_output"):
        lines += ["", "  ```", *("  " + l for l in e["check_output"].splitlines()[-14:]), "  ```", ""]
    busy = sorted({b for k in ("vaxlake_processes", "duckdb_processes") for p in e.get(k) or []
                   for b in p.get("concurrent_builds", [])})
    if busy:
        lines.append(f"  **Caveat**: {', '.join(busy)} ran during the effectiveness measurement.")
    if e.get("command") and e["command"] != r.get("command"):
        lines.append(f"  Effectiveness command: `{e['command']}`; vaxlake binary built {e.get('vaxlake_binary_mtime')} "
                     f"(source {e.get('git')}).")
    return lines
