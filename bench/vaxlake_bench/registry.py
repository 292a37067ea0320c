"""The registry pull benchmark: `vaxlake ingest --source postgres:` (a full pull into a fresh
warehouse) from the throwaway registry, against PostgreSQL exporting the same rows with COPY
and against `vaxlake ingest --source csv:` of the same file; then the end-to-end freshness of
`--follow --every 1`, one inserted row at a time."""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path

from .common import MiB, built_at, git_state, log, loud, utc_now
from .data import ensure_key, ingest_counts, parse_size
from .measure import measure, tail, wait_quiet, warm_page_cache
from .postgres import PG_EXPORT_SELECT, PG_TABLE, REGISTRY_COLUMNS, Registry, pg_env

FRESHNESS_ROWS = 10
FRESHNESS_TIMEOUT_S = 120.0
FRESHNESS_POLL_S = 0.1


def vaxlake_count(binary: Path, wh: Path, where: str) -> tuple[int | None, float]:
    started = time.perf_counter()
    r = subprocess.run([str(binary), "sql", "--warehouse", str(wh), "--format", "csv",
                        f"SELECT count(*) AS n FROM vaccinations WHERE {where}"],
                       capture_output=True, text=True)
    took = time.perf_counter() - started
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or len(lines) < 2:
        return None, took
    return int(lines[1].strip()), took


def run_postgres(args, binary: Path, base: Path, logs: Path) -> dict:
    """Loads the export's registry.csv into a throwaway PostgreSQL registry, then times
    `vaxlake ingest --source postgres:` (a full pull into a fresh warehouse) against
    PostgreSQL exporting the same rows with COPY and against `vaxlake ingest --source csv:` of
    the same file, then the end-to-end freshness of `--follow --every 1`."""
    label = base.name
    p: dict = {"date": utc_now(), "command": args.command, "git": git_state(),
               "vaxlake_binary_mtime": built_at(binary)}
    csv_path = base / "input" / "registry.csv"
    runs = args.pg_runs or (3 if parse_size(label) <= 2_000_000 else 1)
    p["runs"] = runs
    key = ensure_key(binary, base)
    pg = None
    try:
        pg = Registry(csv_path, logs)  # started, registry created and loaded by the harness
        p["postgres_version"] = pg.psql("SHOW server_version").strip()
        p["csv_rows"] = pg.csv_rows  # applied (typed) rows
        p["csv_lines"] = pg.csv_lines
        started = time.perf_counter()
        pg.psql(f"VACUUM (ANALYZE) {PG_TABLE}; CHECKPOINT;")
        p["load_seconds"] = pg.load_seconds + time.perf_counter() - started
        p["table_rows"] = int(pg.psql(f"SELECT count(*) FROM {PG_TABLE}"))
        p["table_bytes"] = int(pg.psql(f"SELECT pg_total_relation_size('{PG_TABLE}')"))
        p["head"] = int(pg.psql(f"SELECT max(change_seq) FROM {PG_TABLE}"))
        log(f"{label} postgres: PostgreSQL {p['postgres_version']} on port {pg.port}; loaded {p['csv_rows']:,} "
            f"CSV rows into {p['table_rows']:,} registry rows ({p['table_bytes'] / MiB:,.0f} MiB with indexes) "
            f"in {p['load_seconds']:.1f}s")
        env = dict(os.environ, VAXLAKE_POSTGRES=pg.reader_conn)

        # The peer: PostgreSQL exporting the same expressions, in change_seq order, to psql.
        copy_cmd = [pg.psql_exe, "-X", "-d", pg.reader_conn, "-c",
                    f"\\copy ({PG_EXPORT_SELECT}) TO '/dev/null' WITH (FORMAT csv)"]
        p["copy_sql"] = f"\\copy ({PG_EXPORT_SELECT}) TO '/dev/null' WITH (FORMAT csv)"
        subprocess.run(copy_cmd, capture_output=True, env=pg_env(), check=True)  # warm-up, untimed
        wait_quiet(f"{label} postgres", args.quiet_wait)
        copies = []
        for i in range(runs):
            out, err = logs / f"pg-copy-{i}.out", logs / f"pg-copy-{i}.err"
            m = measure(copy_cmd, out, err, args.timeout, env=pg_env())
            n = re.search(r"COPY (\d+)", out.read_text(errors="replace"))
            m["rows"] = int(n.group(1)) if n else None
            m["ok"] = m["exit"] == 0 and m["rows"] is not None
            if not m["ok"]:
                m["stderr_tail"] = tail(err, 10)
                loud(f"COPY export failed at {label}:\n{m['stderr_tail']}")
            log(f"{label} postgres: COPY export {i + 1}/{runs}: {m['seconds']:.2f}s, {m['rows']} rows")
            copies.append(m)
        p["copy"] = copies

        # vaxlake's pull, into a fresh warehouse each time (the last one is kept for --follow).
        pulls = []
        wh = base / "pg-warehouse"
        for i in range(runs):
            shutil.rmtree(wh, ignore_errors=True)
            out, err = logs / f"vaxlake-pull-{i}.out", logs / f"vaxlake-pull-{i}.err"
            m = measure([str(binary), "ingest", "--warehouse", str(wh), "--source", "postgres:",
                         "--key-file", str(key)], out, err, args.timeout, env=env)
            m["counts"] = ingest_counts(out)
            m["ok"] = m["exit"] == 0 and not m["timed_out"] and m["counts"] is not None
            own = re.findall(r"ingest done seconds=([0-9.]+)", err.read_text(errors="replace"))
            m["in_process_seconds"] = float(own[-1]) if own else None
            if not m["ok"]:
                m["stderr_tail"] = tail(err, 25)
                loud(f"vaxlake postgres pull failed at {label} (exit {m['exit']}):\n{m['stderr_tail']}")
            log(f"{label} postgres: vaxlake pull {i + 1}/{runs}: {m['seconds']:.2f}s, peak RSS "
                f"{m['peak_rss'] / MiB:,.0f} MiB, {m['counts']}")
            pulls.append(m)
            if not m["ok"]:
                break
        p["pull"] = pulls

        # Context: the same file through `csv:`.
        csvs = []
        cwh = base / "pg-csv-warehouse"
        warm_page_cache([csv_path])
        for i in range(runs):
            shutil.rmtree(cwh, ignore_errors=True)
            out, err = logs / f"vaxlake-csv-{i}.out", logs / f"vaxlake-csv-{i}.err"
            m = measure([str(binary), "ingest", "--warehouse", str(cwh), "--source", f"csv:{csv_path}",
                         "--key-file", str(key)], out, err, args.timeout)
            m["counts"] = ingest_counts(out)
            m["ok"] = m["exit"] == 0 and not m["timed_out"] and m["counts"] is not None
            if not m["ok"]:
                m["stderr_tail"] = tail(err, 25)
                loud(f"vaxlake csv ingest failed at {label} (exit {m['exit']}):\n{m['stderr_tail']}")
            log(f"{label} postgres: vaxlake csv: ingest {i + 1}/{runs}: {m['seconds']:.2f}s, peak RSS "
                f"{m['peak_rss'] / MiB:,.0f} MiB, {m['counts']}")
            csvs.append(m)
        shutil.rmtree(cwh, ignore_errors=True)
        p["csv"] = csvs

        def med(ms_: list[dict]) -> dict | None:
            ok = [m for m in ms_ if m.get("ok")]
            if not ok:
                return None
            return {"seconds": statistics.median(m["seconds"] for m in ok),
                    "peak_rss": max(m["peak_rss"] for m in ok),
                    "cpu_seconds": statistics.median(m["user_seconds"] + m["system_seconds"] for m in ok),
                    "rows": (ok[0].get("counts") or {}).get("read", ok[0].get("rows"))}
        p["pull_summary"], p["copy_summary"], p["csv_summary"] = med(pulls), med(copies), med(csvs)
        if p["pull_summary"] is None:
            return p
        if (pulls[-1]["counts"] or {}).get("read") != p["table_rows"]:
            loud(f"vaxlake pulled {(pulls[-1]['counts'] or {}).get('read')} rows; the registry holds {p['table_rows']}")

        measure_freshness(args, binary, pg, wh, key, env, logs, label, p)
    except Exception as error:  # noqa: BLE001 — recorded in the report, not fatal for the rest
        loud(f"postgres benchmark failed at {label}: {error}")
        p["error"] = str(error)[-3000:]
    finally:
        if pg is not None:
            # A second SIGTERM (`timeout` signals its whole process group) must not cut the
            # server's shutdown short and leave it running.
            previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                pg.stop()
            finally:
                signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(base / "pg-warehouse", ignore_errors=True)
        shutil.rmtree(base / "pg-csv-warehouse", ignore_errors=True)
    return p


def measure_freshness(args, binary: Path, pg: Registry, wh: Path, key: Path, env: dict, logs: Path,
                      label: str, p: dict) -> None:
    """A follower (`--follow --every 1`) on the caught-up warehouse `wh`; FRESHNESS_ROWS
    times one row is inserted into the registry and `vaxlake sql` polls until it counts it.
    Writes the figures into `p` (also when it fails half-way)."""
    quarantined = set()
    r = subprocess.run([str(binary), "sql", "--warehouse", str(wh), "--format", "csv",
                        f"SELECT position FROM quarantine WHERE source = 'postgres:{PG_TABLE}'"],
                       capture_output=True, text=True)
    if r.returncode == 0:
        quarantined = {int(x) for x in r.stdout.split()[1:] if x.strip().isdigit()}
    templates = [int(x) for x in pg.psql(
        f"SELECT change_seq FROM {PG_TABLE} WHERE status = 'completed' ORDER BY change_seq LIMIT 200").split()]
    templates = [s for s in templates if s not in quarantined][:FRESHNESS_ROWS]
    base_count, _ = vaxlake_count(binary, wh, "true")
    fout, ferr = logs / "vaxlake-follow.out", logs / "vaxlake-follow.err"
    wait_quiet(f"{label} postgres freshness", args.quiet_wait)
    with open(fout, "wb") as o, open(ferr, "wb") as e:
        follower = subprocess.Popen([str(binary), "ingest", "--warehouse", str(wh), "--source", "postgres:",
                                     "--key-file", str(key), "--follow", "--every", "1"],
                                    stdout=o, stderr=e, env=env, start_new_session=True)
    fresh = []
    try:
        time.sleep(3)  # its first poll (nothing new: the warehouse is caught up)
        if follower.poll() is not None:
            raise RuntimeError(f"the follower exited early ({follower.returncode}):\n{tail(ferr, 20)}")
        rng = random.Random(args.seed)
        tag = secrets.token_hex(3)
        for i, seq in enumerate(templates):
            time.sleep(rng.uniform(0, 1))  # desynchronise from the follower's polls
            marker = f"FRESH-{tag}-{i}"
            cols = ", ".join(REGISTRY_COLUMNS)
            sel = ", ".join({"event_id": f"'BENCH-{marker}'", "lot_number": f"'{marker}'",
                             "recorded_at": "now()"}.get(c, c) for c in REGISTRY_COLUMNS)
            t0 = float(pg.psql(f"INSERT INTO {PG_TABLE} ({cols}) SELECT {sel} FROM {PG_TABLE} "
                               f"WHERE change_seq = {seq} RETURNING extract(epoch FROM clock_timestamp());"
                               ).strip())
            polls, seen, first_poll = [], None, None
            while time.time() - t0 < FRESHNESS_TIMEOUT_S:
                poll_start = time.time()
                n, took = vaxlake_count(binary, wh, f"lot_number = '{marker}'")
                polls.append(took)
                if n:
                    seen, first_poll = time.time(), poll_start
                    break
                time.sleep(max(0.0, FRESHNESS_POLL_S - (time.time() - poll_start)))
            f = {"template_change_seq": seq, "seconds": (seen - t0) if seen else None,
                 "poll_started_seconds": (first_poll - t0) if seen else None,
                 "polls": len(polls), "poll_median_seconds": statistics.median(polls) if polls else None}
            log(f"{label} postgres freshness {i + 1}/{len(templates)}: "
                + (f"seen after {f['seconds']:.2f}s (that poll started at {f['poll_started_seconds']:.2f}s; "
                   f"{f['polls']} polls of {f['poll_median_seconds']:.2f}s)" if seen else
                   f"NOT SEEN within {FRESHNESS_TIMEOUT_S:.0f}s"))
            fresh.append(f)
    finally:
        stop_at, usage = time.time(), None
        if follower.returncode is None:
            follower.send_signal(signal.SIGTERM)
            deadline = time.time() + 120
            while True:
                pid, status, usage = os.wait4(follower.pid, os.WNOHANG)
                if pid:
                    follower.returncode = os.waitstatus_to_exitcode(status)
                    break
                if time.time() > deadline:
                    log("the follower did not stop 120 s after SIGTERM: killing it")
                    os.killpg(follower.pid, signal.SIGKILL)
                    _, status, usage = os.wait4(follower.pid, 0)
                    follower.returncode = os.waitstatus_to_exitcode(status)
                    break
                time.sleep(0.05)
        code = follower.returncode
        p["follow_exit"] = code
        p["follow_stop_seconds"] = time.time() - stop_at
        p["follow_peak_rss"] = usage.ru_maxrss * 1024 if usage else None
    p["freshness"] = fresh
    p["follow_stderr_errors"] = [l for l in ferr.read_text(errors="replace").splitlines()
                                 if " ERROR " in l or " WARN " in l][-10:]
    after, _ = vaxlake_count(binary, wh, "true")
    p["follow_rows_added"] = (after - base_count) if after is not None and base_count is not None else None
    seen = [f["seconds"] for f in fresh if f["seconds"] is not None]
    if seen:
        p["freshness_median"], p["freshness_max"] = statistics.median(seen), max(seen)
        p["freshness_min"] = min(seen)
        p["freshness_poll_median"] = statistics.median(f["poll_median_seconds"] for f in fresh
                                                       if f["poll_median_seconds"] is not None)
    p["freshness_seen"], p["freshness_rows"] = len(seen), len(fresh)
    log(f"{label} postgres: freshness median {p.get('freshness_median', float('nan')):.2f}s, max "
        f"{p.get('freshness_max', float('nan')):.2f}s ({len(seen)}/{len(fresh)} seen); follower exit "
        f"{code} {p['follow_stop_seconds']:.1f}s after SIGTERM; rows added {p['follow_rows_added']}")
    if code != 0:
        loud(f"the follower exited {code} after SIGTERM:\n{tail(ferr, 20)}")
