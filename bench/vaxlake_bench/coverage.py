"""The coverage benchmark: the whole indicator table (`vaxlake coverage --all`, cold in a fresh
process and cached) and one cached single answer, against DuckDB computing the same table
from the same Parquet files with tests/coverage_check.py's SQL; then that checker compares
the two tables."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from pathlib import Path

from .common import ROOT, MiB, built_at, git_state, log, loud, python_env, utc_now
from .data import active_files, ensure_loaded
from .duckdb_peer import worker_cmd
from .format import ms
from .measure import measure, run_times, tail, warm_page_cache

# The single `/api/coverage`-like answer whose cached time is measured.
COVERAGE_SINGLE = ["--indicator", "DTP3", "--cohort", "2020", "--by", "commune"]


def counts_read_ms(stderr_text: str) -> list[int]:
    """vaxlake's `coverage counts read ... elapsed_ms=N` log lines (the grouped counts query)."""
    return [int(x) for x in re.findall(r"coverage counts read.*?elapsed_ms=(\d+)", stderr_text)]


def run_coverage(args, binary: Path, base: Path, wh: Path, logs: Path) -> dict:
    """`vaxlake coverage --all` (cold in-process, cold process, cached) and one cached
    single answer, against DuckDB computing the same table from the same files; then the
    checker's comparison of the two tables."""
    c: dict = {"date": utc_now(),
               "repeat": args.repeat, "processes": args.coverage_processes,
               "vaxlake_binary_mtime": built_at(binary), "git": git_state(), "command": args.command}
    try:
        c["population_ingest"] = ensure_loaded(binary, base, wh, logs, "population")
    except RuntimeError as e:
        loud(str(e))
        c["error"] = str(e)
        return c
    vacc, pop = active_files(wh / "vaccinations"), active_files(wh / "population")
    c["parquet_files"] = len(vacc)
    c["parquet_bytes"] = sum(f.stat().st_size for f in vacc) + sum(f.stat().st_size for f in pop)
    c["population_files"] = len(pop)
    label = base.name

    # vaxlake: P processes of `coverage --all --repeat N`; run 1 of each is cold (reads the
    # warehouse), runs 2..N come from the in-process cache.
    log(f"{label} coverage: page cache warm-up read {warm_page_cache(vacc + pop):.1f}s; vaxlake coverage --all ...")
    procs = []
    for i in range(1, args.coverage_processes + 1):
        out, err = logs / f"vaxlake-coverage-all-{i}.csv", logs / f"vaxlake-coverage-all-{i}.err"
        m = measure([str(binary), "coverage", "--warehouse", str(wh), "--all", "--format", "csv",
                     "--repeat", str(args.repeat)], out, err, args.timeout)
        text = err.read_text(errors="replace")
        m["runs"], m["counts_read_ms"] = run_times(text), counts_read_ms(text)
        m["ok"] = m["exit"] == 0 and not m["timed_out"] and len(m["runs"]) == args.repeat
        if not m["ok"]:
            m["stderr_tail"] = tail(err, 25)
            loud(f"vaxlake coverage --all failed at {label} (exit {m['exit']}):\n{m['stderr_tail']}")
            c["vaxlake_error"] = m["stderr_tail"]
            c["vaxlake_processes"] = procs + [m]
            return c
        del m["rss_timeline"]
        procs.append(m)
        log(f"{label} coverage: vaxlake process {i}: wall {m['seconds']:.2f}s, run 1 {m['runs'][0]:.3f}s, "
            f"counts read {m['counts_read_ms']} ms, cached {ms(statistics.median(m['runs'][1:] or [0]))}, "
            f"peak RSS {m['peak_rss'] / MiB:,.0f} MiB")
    c["vaxlake_processes"] = procs
    csv_path = logs / "vaxlake-coverage-all-1.csv"
    c["rows"] = max(0, len([line for line in csv_path.read_text().splitlines() if not line.startswith("#")]) - 1)
    c["vaxlake_cold_seconds"] = statistics.median(p["runs"][0] for p in procs)
    c["vaxlake_cold_runs"] = [p["runs"][0] for p in procs]
    c["vaxlake_counts_read_seconds"] = statistics.median(p["counts_read_ms"][0] / 1e3 for p in procs
                                                         if p["counts_read_ms"]) if all(p["counts_read_ms"] for p in procs) else None
    c["vaxlake_process_seconds"] = statistics.median(p["seconds"] for p in procs)
    c["vaxlake_cached_all_seconds"] = statistics.median(t for p in procs for t in p["runs"][1:])
    c["vaxlake_peak_rss"] = max(p["peak_rss"] for p in procs)
    c["vaxlake_cpu_seconds"] = statistics.median(p["user_seconds"] + p["system_seconds"] for p in procs)

    # One /api/coverage-like answer: run 1 reads the counts, runs 2..N are cached.
    err = logs / "vaxlake-coverage-single.err"
    m = measure([str(binary), "coverage", "--warehouse", str(wh), *COVERAGE_SINGLE, "--format", "json",
                 "--repeat", str(args.repeat)], logs / "vaxlake-coverage-single.json", err, args.timeout)
    runs = run_times(err.read_text(errors="replace"))
    if m["exit"] == 0 and len(runs) == args.repeat:
        c["single_runs"] = runs
        c["single_cached_seconds"] = statistics.median(runs[1:] or runs)
        log(f"{label} coverage: single answer ({' '.join(COVERAGE_SINGLE)}): run 1 {runs[0]:.3f}s, "
            f"cached {ms(c['single_cached_seconds'])}")
    else:
        loud(f"vaxlake coverage {' '.join(COVERAGE_SINGLE)} failed (exit {m['exit']}):\n{tail(err, 25)}")
        c["single_error"] = tail(err, 25)

    # DuckDB: P processes computing the table once (cold: a fresh process), then one
    # computing it N times (warm: runs 2..N), each measured like vaxlake.
    spec = {"vacc": [str(f) for f in vacc], "pop": [str(f) for f in pop],
            "persons": [str(f) for f in active_files(wh / "persons")],
            "reference_dir": str(ROOT / "sql" / "reference"), "threshold": 8, "tmp": str(logs),
            "out": str(logs / "duckdb-coverage-all.csv")}
    log(f"{label} coverage: page cache warm-up read {warm_page_cache(vacc + pop):.1f}s; DuckDB coverage table ...")
    dprocs = []
    for i, repeat in enumerate([1] * args.coverage_processes + [args.repeat], start=1):
        name = f"duckdb-coverage-{i}"
        d = measure(worker_cmd("coverage", {**spec, "repeat": repeat}), logs / f"{name}.out", logs / f"{name}.err",
                    args.timeout)
        d["ok"] = d["exit"] == 0 and not d["timed_out"]
        if not d["ok"]:
            d["stderr_tail"] = tail(logs / f"{name}.err", 25)
            loud(f"DuckDB coverage failed at {label} (exit {d['exit']}):\n{d['stderr_tail']}")
            c["duckdb_error"] = d["stderr_tail"]
            return c
        d["runs"] = json.loads((logs / f"{name}.out").read_text().strip().splitlines()[-1])["runs"]
        del d["rss_timeline"]
        dprocs.append(d)
        log(f"{label} coverage: DuckDB process {i}: wall {d['seconds']:.2f}s, runs "
            + ", ".join(f"{r['seconds']:.3f}s (SQL {r['sql_seconds']:.3f}s)" for r in d["runs"])
            + f", peak RSS {d['peak_rss'] / MiB:,.0f} MiB")
    c["duckdb_processes"] = dprocs
    single = dprocs[:-1]
    c["duckdb_rows"] = dprocs[0]["runs"][0]["rows"]
    c["duckdb_cold_seconds"] = statistics.median(p["runs"][0]["seconds"] for p in dprocs)
    c["duckdb_cold_sql_seconds"] = statistics.median(p["runs"][0]["sql_seconds"] for p in dprocs)
    c["duckdb_process_seconds"] = statistics.median(p["seconds"] for p in single)
    warm = dprocs[-1]["runs"][1:] or dprocs[-1]["runs"]
    c["duckdb_warm_seconds"] = statistics.median(r["seconds"] for r in warm)
    c["duckdb_warm_sql_seconds"] = statistics.median(r["sql_seconds"] for r in warm)
    c["duckdb_peak_rss"] = max(p["peak_rss"] for p in single)
    c["duckdb_cpu_seconds"] = statistics.median(p["user_seconds"] + p["system_seconds"] for p in single)

    # The checker: is vaxlake's table the one the definitions give? (Not timed.)
    py = python_env()
    if py:
        log(f"{label} coverage: tests/coverage_check.py on vaxlake's table ...")
        started = time.perf_counter()
        r = subprocess.run([py, str(ROOT / "tests" / "coverage_check.py"), "--warehouse", str(wh),
                            "--vaxlake-csv", str(csv_path), "--reference-dir", str(ROOT / "sql" / "reference"),
                            "--threshold", "8"], capture_output=True, text=True)
        (logs / "coverage-check.out").write_text(r.stdout + r.stderr)
        c["check_exit"] = r.returncode
        c["check_output"] = "\n".join(l for l in r.stdout.splitlines() if l.strip())[:4000]
        c["check_agrees"] = r.returncode == 0 and "agrees" in r.stdout
        log(f"{label} coverage: checker exit {r.returncode} in {time.perf_counter() - started:.0f}s:\n{r.stdout[-1500:]}")
        if not c["check_agrees"]:
            loud(f"COVERAGE TABLES DIFFER at {label}: tests/coverage_check.py exit {r.returncode}\n"
                 f"{r.stdout[-3000:]}\n{r.stderr[-1500:]}")
    log(f"{label} coverage: vaxlake cold {c['vaxlake_cold_seconds']:.3f}s (process {c['vaxlake_process_seconds']:.2f}s), "
        f"cached {ms(c['vaxlake_cached_all_seconds'])}; DuckDB cold {c['duckdb_cold_seconds']:.3f}s "
        f"(process {c['duckdb_process_seconds']:.2f}s), warm {c['duckdb_warm_seconds']:.3f}s; rows {c['rows']:,} / "
        f"{c['duckdb_rows']:,}; checker agrees: {c.get('check_agrees')}")
    return c
