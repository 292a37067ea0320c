"""Ingest and query benchmark of vaxlake against a DuckDB peer doing the same work.

    scripts/bench [--events 1M,10M] [--keep [DIR]] [--repeat 5] [--seed 42]

For each size: generate a synthetic FHIR export (cached under target/bench-data/<size>/),
run `vaxlake ingest` as a child process (wall time, peak RSS from wait4), run the DuckDB peer
(read the same NDJSON, salted sha256 pseudonyms, COPY to Parquet) in a child process measured
the same way with the same thread count, then run one coverage-style aggregate over the
active Parquet files of vaxlake's `vaccinations` table with both engines, check that they
return the same rows, then the coverage indicator table (every indicator x cohort x
breakdown: `vaxlake coverage --all`, cold and cached) against DuckDB computing the same table
from the same files (tests/coverage_check.py's SQL), then one season's influenza vaccine
effectiveness by age band (`vaxlake effectiveness`, cold and cached) against DuckDB computing
the same strata and estimates (tests/effectiveness_check.py), then the registry pull
(`vaxlake ingest --source postgres:` from a throwaway PostgreSQL server loaded with the
export's registry.csv, against PostgreSQL's own COPY export and `csv:` ingest, and the
freshness of `--follow`), and write the figures into BENCHMARKS.md.

    scripts/bench --events 1M,10M --keep --only coverage
    scripts/bench --events 1M,10M --keep --only effectiveness
    scripts/bench --events 1M,10M --keep --only postgres
    scripts/bench --events 1M --keep --only doors
    scripts/bench --events 10M --keep --only scaling
    scripts/bench --events 1M --keep --only soak --soak-clients 100 --soak-seconds 600

rerun only the coverage (or effectiveness, or registry pull, or the 1M-row fetch through each
door: HTTP JSON and Arrow, PostgreSQL, Flight SQL, against psql from PostgreSQL; or the
benchmark query and coverage table on local disk vs loopback S3 vs a Ballista cluster) part
on the warehouses a previous `--keep` run left behind.

Needs target/release/vaxlake (cargo build --release; or --bin PATH), python3 and cargo (the
registry part builds bench/pg-server, the tests' PostgreSQL harness, in seconds); DuckDB is
pip-installed into target/bench-venv on first use. The generated data is deleted at the end
unless --keep. `--report PATH` writes the report elsewhere than BENCHMARKS.md.

The code lives in bench/vaxlake_bench/ (see its package doc); scripts/bench only launches it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shlex
import shutil
import signal
import sys
from pathlib import Path

from .common import DEFAULT_DATA, REPORT, GiB, log, machine
from .data import parse_size, size_label, vaxlake_bin
from .duckdb_peer import ensure_venv, worker
from .measure import busy_builds
from .report import write_report
from .run import only_part, run_size


def freshness_main(argv: list[str]) -> None:
    """`scripts/bench --freshness WAREHOUSE EXPORT KEY_FILE`: see freshness.py."""
    from .freshness import __doc__ as doc, run_freshness
    ap = argparse.ArgumentParser(prog="scripts/bench --freshness", description=doc.split("\n\n")[0])
    ap.add_argument("warehouse", type=Path)
    ap.add_argument("export", type=Path, help="the generated export the warehouse was ingested from")
    ap.add_argument("key_file", type=Path, help="the warehouse's key file")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bin", help="vaxlake binary (default target/release/vaxlake)")
    args = ap.parse_args(argv)
    work = args.warehouse.parent / "freshness"
    figures = run_freshness(vaxlake_bin(args), args.warehouse, args.export, args.key_file, work, args.rounds)
    print(json.dumps(figures))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--freshness":
        freshness_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", default="1M,10M",
                    help="comma-separated sizes in Immunization lines (default 1M,10M)")
    ap.add_argument("--keep", nargs="?", const=str(DEFAULT_DATA), metavar="DIR",
                    help="keep the generated data, warehouses and Parquet (in DIR, default target/bench-data)")
    ap.add_argument("--repeat", type=int, default=5,
                    help="query and coverage runs per process (default 5; run 1 is a warm-up, or the cold run)")
    ap.add_argument("--coverage-processes", type=int, default=3, metavar="P",
                    help="fresh processes per engine for the cold coverage figures (default 3; medians)")
    ap.add_argument("--only", choices=["coverage", "effectiveness", "http", "freshness", "postgres", "ingest",
                                       "doors", "scaling", "soak"],
                    help="only this part, on the warehouse (postgres: the registry.csv) a previous --keep run "
                         "left (implies --keep); `ingest`: vaxlake's ingest alone (the memory row at 30M), "
                         "generating the input if needed")
    ap.add_argument("--http-seconds", type=float, default=30.0, metavar="S",
                    help="HTTP part: seconds each load mix runs (default 30)")
    ap.add_argument("--soak-clients", type=int, default=100, metavar="N",
                    help="soak part: concurrent clients (default 100)")
    ap.add_argument("--soak-seconds", type=float, default=600.0, metavar="S",
                    help="soak part: seconds of load while --follow commits (default 600)")
    ap.add_argument("--soak-registry-persons", type=int, default=5000, metavar="N",
                    help="soak part: persons of the registry --follow pulls during the load (default 5000)")
    ap.add_argument("--freshness-rounds", type=int, default=5, metavar="N",
                    help="freshness part: commits measured (default 5)")
    ap.add_argument("--pg-runs", type=int, metavar="N",
                    help="timed runs of each postgres measurement (default 3 up to 2M events, else 1; medians)")
    ap.add_argument("--quiet-wait", type=float, default=1800.0, metavar="S",
                    help="postgres part: wait up to S seconds for concurrent builds to finish before timing "
                         "(default 1800; then it measures anyway and the report says so)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--timeout", type=float, default=900, help="seconds before an ingest is stopped (default 900)")
    ap.add_argument("--bin", help="vaxlake binary (default target/release/vaxlake)")
    ap.add_argument("--no-report", action="store_true", help="do not write BENCHMARKS.md")
    ap.add_argument("--report", type=Path, default=REPORT, metavar="PATH",
                    help="write the report to PATH instead of BENCHMARKS.md (its Notes are kept from PATH)")
    ap.add_argument("--report-only", action="store_true",
                    help="only rewrite BENCHMARKS.md from the stored results (target/bench-data/results.json)")
    args = ap.parse_args()
    args.command = "scripts/bench" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])

    sizes = [parse_size(s) for s in args.events.split(",") if s.strip()]
    if args.report_only:
        data = Path(args.keep).resolve() if args.keep else DEFAULT_DATA
        results = json.loads((data / "results.json").read_text())
        write_report(args.report, results, machine())
        log(f"wrote {args.report} from {data / 'results.json'}")
        return
    binary = vaxlake_bin(args)
    # The load client is built beside vaxlake (cargo build --release -p vaxlake-http-load).
    args.load_bin = binary.parent / "http-load"
    if args.only and not args.keep:
        args.keep = str(DEFAULT_DATA)
    data = Path(args.keep).resolve() if args.keep else DEFAULT_DATA
    data.mkdir(parents=True, exist_ok=True)
    duck_version = ensure_venv()
    mach = machine()
    log(f"{mach['nproc']} cores, {mach['cpu']}, {mach['ram_bytes'] / GiB:.1f} GiB; DuckDB {duck_version}; "
        f"free disk {shutil.disk_usage(data).free / GiB:.0f} GiB")

    # One run at a time per data directory: two would share the cores and the files.
    lock = open(data / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"another scripts/bench is running on {data}; wait for it to finish")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    busy = busy_builds()
    if busy:
        log(f"warning: running beside {', '.join(sorted(set(busy)))}; the timings will suffer")

    store = data / "results.json"
    try:
        results = json.loads(store.read_text())
    except (OSError, ValueError):
        results = {}
    try:
        for events in sizes:
            if args.only:
                r = only_part(args, binary, data, events, results)
                if r is None:
                    continue
            else:
                r = run_size(args, binary, data, events, duck_version)
            results[r["label"]] = r
            store.write_text(json.dumps(results, indent=1))
            if not args.no_report:
                write_report(args.report, results, mach)
            if args.only in (None, "ingest") and not r["vaxlake_ingest"]["ok"]:
                log("vaxlake ingest did not finish: not running larger sizes")
                break
    finally:
        if not args.keep:
            for events in sizes:
                base = data / size_label(events)
                if base.is_dir():
                    for entry in base.iterdir():
                        if entry.name != "logs":
                            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            log(f"deleted the bench data under {data} (kept results.json and the logs); --keep to keep it")
    if not args.no_report:
        log(f"wrote {args.report}")
