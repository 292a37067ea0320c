"""The effectiveness benchmark: one influenza season's vaccine effectiveness by age band
(`vaxlake effectiveness`, cold in a fresh process and cached), against DuckDB computing the
same strata and estimates from the same Parquet files with tests/effectiveness_check.py;
then that checker compares the two answers."""

from __future__ import annotations

import json
import re
import shlex
import statistics
import subprocess
from pathlib import Path

from .common import ROOT, MiB, built_at, git_state, log, loud, python_env, utc_now
from .data import active_files, ensure_loaded
from .duckdb_peer import worker_cmd
from .format import ms
from .measure import measure, run_times, tail, warm_page_cache

# The effectiveness answer measured: one influenza season, by age band (what
# `/api/effectiveness?antigen=influenza&disease=J1&from=2024-10-01&to=2025-04-30&by=age_band`
# answers). J1 counts J10 (influenza) and J11 (influenza, virus not identified).
EFFECTIVENESS = {"antigen": "influenza", "disease": "J1", "from": "2024-10-01", "to": "2025-04-30"}
EFFECTIVENESS_ARGS = ["--antigen", EFFECTIVENESS["antigen"], "--disease", EFFECTIVENESS["disease"],
                      "--from", EFFECTIVENESS["from"], "--to", EFFECTIVENESS["to"]]


def effectiveness_ms(stderr_text: str) -> list[int]:
    """vaxlake's `effectiveness computed ... elapsed_ms=N` log lines (the engine's own timer)."""
    return [int(x) for x in re.findall(r"effectiveness computed.*?elapsed_ms=(\d+)", stderr_text)]


def ve_summary(answer: dict) -> dict:
    """The figures of an answer the report quotes."""
    o, c = answer.get("overall") or {}, answer.get("crude") or {}
    return {"cases_vaccinated": o.get("cases_vaccinated"), "cases_unvaccinated": o.get("cases_unvaccinated"),
            "person_days_vaccinated": o.get("person_days_vaccinated"),
            "person_days_unvaccinated": o.get("person_days_unvaccinated"),
            "ve": o.get("ve"), "ci_low": o.get("ci_low"), "ci_high": o.get("ci_high"), "crude_ve": c.get("ve"),
            "bands_suppressed": sum(1 for r in answer.get("rows") or [] if r.get("suppressed")),
            "population_source": answer.get("population_source")}


def run_effectiveness(args, binary: Path, base: Path, wh: Path, logs: Path) -> dict:
    """`vaxlake effectiveness` for one influenza season by age band (cold in-process, cold
    process, cached), against DuckDB computing the same strata and estimates from the same
    files; then the checker's comparison of the two answers."""
    e: dict = {"date": utc_now(),
               "repeat": args.repeat, "processes": args.coverage_processes, "params": EFFECTIVENESS,
               "vaxlake_binary_mtime": built_at(binary), "git": git_state(), "command": args.command}
    try:
        e["population_ingest"] = ensure_loaded(binary, base, wh, logs, "population")
        e["cases_ingest"] = ensure_loaded(binary, base, wh, logs, "cases")
    except RuntimeError as err:
        loud(str(err))
        e["error"] = str(err)
        return e
    vacc, pop, cases = (active_files(wh / t) for t in ("vaccinations", "population", "cases"))
    e["parquet_files"] = {"vaccinations": len(vacc), "population": len(pop), "cases": len(cases)}
    e["parquet_bytes"] = sum(f.stat().st_size for f in vacc + pop + cases)
    label = base.name
    command = ["effectiveness", "--warehouse", str(wh), *EFFECTIVENESS_ARGS, "--by", "age_band",
               "--format", "json", "--repeat", str(args.repeat)]
    e["vaxlake_command"] = "vaxlake " + " ".join(shlex.quote(a) for a in command).replace(str(wh), "W")

    # vaxlake: P processes; run 1 of each is cold (reads the warehouse), runs 2..N cached.
    log(f"{label} effectiveness: page cache warm-up read {warm_page_cache(vacc + pop + cases):.1f}s; "
        f"vaxlake effectiveness ...")
    procs = []
    for i in range(1, args.coverage_processes + 1):
        out, err = logs / f"vaxlake-effectiveness-{i}.json", logs / f"vaxlake-effectiveness-{i}.err"
        m = measure([str(binary), *command], out, err, args.timeout)
        text = err.read_text(errors="replace")
        m["runs"], m["engine_ms"] = run_times(text), effectiveness_ms(text)
        m["ok"] = m["exit"] == 0 and not m["timed_out"] and len(m["runs"]) == args.repeat
        if not m["ok"]:
            m["stderr_tail"] = tail(err, 25)
            loud(f"vaxlake effectiveness failed at {label} (exit {m['exit']}):\n{m['stderr_tail']}")
            e["vaxlake_error"] = m["stderr_tail"]
            e["vaxlake_processes"] = procs + [m]
            return e
        del m["rss_timeline"]
        procs.append(m)
        log(f"{label} effectiveness: vaxlake process {i}: wall {m['seconds']:.2f}s, run 1 {m['runs'][0]:.3f}s, "
            f"cached {ms(statistics.median(m['runs'][1:] or [0]))}, peak RSS {m['peak_rss'] / MiB:,.0f} MiB")
    e["vaxlake_processes"] = procs
    answer_path = logs / "vaxlake-effectiveness-1.json"
    answer = json.loads(answer_path.read_text())
    e["answer"] = ve_summary(answer)
    e["vaxlake_cold_seconds"] = statistics.median(p["runs"][0] for p in procs)
    e["vaxlake_cold_runs"] = [p["runs"][0] for p in procs]
    e["vaxlake_process_seconds"] = statistics.median(p["seconds"] for p in procs)
    e["vaxlake_cached_seconds"] = statistics.median(t for p in procs for t in p["runs"][1:])
    e["vaxlake_cached_max_seconds"] = max(t for p in procs for t in p["runs"][1:] or [0])
    e["vaxlake_peak_rss"] = max(p["peak_rss"] for p in procs)
    e["vaxlake_cpu_seconds"] = statistics.median(p["user_seconds"] + p["system_seconds"] for p in procs)

    # DuckDB: P processes computing the answer once (cold), then one computing it N times
    # (warm: runs 2..N), each measured like vaxlake.
    spec = {"vacc": [str(f) for f in vacc], "pop": [str(f) for f in pop], "cases": [str(f) for f in cases],
            "persons": [str(f) for f in active_files(wh / "persons")],
            "reference_dir": str(ROOT / "sql" / "reference"), "threshold": answer.get("suppression_threshold", 8),
            "tmp": str(logs), "out": str(logs / "duckdb-effectiveness.json"), **EFFECTIVENESS}
    log(f"{label} effectiveness: page cache warm-up read {warm_page_cache(vacc + pop + cases):.1f}s; "
        f"DuckDB effectiveness ...")
    dprocs = []
    for i, repeat in enumerate([1] * args.coverage_processes + [args.repeat], start=1):
        name = f"duckdb-effectiveness-{i}"
        d = measure(worker_cmd("effectiveness", {**spec, "repeat": repeat}), logs / f"{name}.out",
                    logs / f"{name}.err", args.timeout)
        d["ok"] = d["exit"] == 0 and not d["timed_out"]
        if not d["ok"]:
            d["stderr_tail"] = tail(logs / f"{name}.err", 25)
            loud(f"DuckDB effectiveness failed at {label} (exit {d['exit']}):\n{d['stderr_tail']}")
            e["duckdb_error"] = d["stderr_tail"]
            return e
        d["runs"] = json.loads((logs / f"{name}.out").read_text().strip().splitlines()[-1])["runs"]
        del d["rss_timeline"]
        dprocs.append(d)
        log(f"{label} effectiveness: DuckDB process {i}: wall {d['seconds']:.2f}s, runs "
            + ", ".join(f"{r['seconds']:.3f}s" for r in d["runs"]) + f", peak RSS {d['peak_rss'] / MiB:,.0f} MiB")
    e["duckdb_processes"] = dprocs
    single = dprocs[:-1]
    e["duckdb_cold_seconds"] = statistics.median(p["runs"][0]["seconds"] for p in dprocs)
    e["duckdb_process_seconds"] = statistics.median(p["seconds"] for p in single)
    warm = dprocs[-1]["runs"][1:] or dprocs[-1]["runs"]
    e["duckdb_warm_seconds"] = statistics.median(r["seconds"] for r in warm)
    e["duckdb_peak_rss"] = max(p["peak_rss"] for p in single)
    e["duckdb_cpu_seconds"] = statistics.median(p["user_seconds"] + p["system_seconds"] for p in single)

    # The checker: are vaxlake's strata and estimates the ones the definitions give? (Not timed.)
    py = python_env()
    if py:
        log(f"{label} effectiveness: tests/effectiveness_check.py on vaxlake's answer ...")
        check = [py, str(ROOT / "tests" / "effectiveness_check.py"), "--warehouse", str(wh),
                 *EFFECTIVENESS_ARGS, "--vaxlake-json", str(answer_path)]
        r = subprocess.run(check, capture_output=True, text=True)
        (logs / "effectiveness-check.out").write_text(r.stdout + r.stderr)
        e["check_exit"] = r.returncode
        e["check_output"] = "\n".join(l for l in r.stderr.splitlines() if l.strip())[:4000]
        e["check_agrees"] = r.returncode == 0 and "agrees" in r.stderr
        log(f"{label} effectiveness: checker exit {r.returncode}:\n{r.stderr[-2500:]}")
        if not e["check_agrees"]:
            loud(f"EFFECTIVENESS ANSWERS DIFFER at {label}: tests/effectiveness_check.py exit {r.returncode}\n"
                 f"{r.stderr[-3000:]}")
    log(f"{label} effectiveness: vaxlake cold {e['vaxlake_cold_seconds']:.3f}s (process "
        f"{e['vaxlake_process_seconds']:.2f}s), cached {ms(e['vaxlake_cached_seconds'])}; DuckDB cold "
        f"{e['duckdb_cold_seconds']:.3f}s (process {e['duckdb_process_seconds']:.2f}s), warm "
        f"{e['duckdb_warm_seconds']:.3f}s; checker agrees: {e.get('check_agrees')}")
    return e
