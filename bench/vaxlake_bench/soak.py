"""The long soak (issue 19): `--soak-clients` clients (100) for `--soak-seconds` (600) mixing
coverage, effectiveness, SQL and the dashboards' API calls against `vaxlake serve --auth` on the
size's warehouse, while `vaxlake ingest --follow --every 5` pulls a throwaway PostgreSQL registry
into the same warehouse and a writer moves 500 registry rows in every 5 s (so the follower
commits every few seconds through the whole run).

The registry is a small generated export (`--soak-registry-persons`, 5,000 persons, seed 7):
the soak adds its COVID-19 doses to the warehouse it runs on (other parts measured afterwards
see them). bench/http-load replays the mix and checks every answer on its own (`check`: no
coverage numerator above its denominator unless flagged, no count in a suppressed cell, the
SQL's three scans of `vaccinations` summing to its total: one table version per answer); the
server's RSS is sampled every 5 s; after SIGTERM the audit rows of the load's user are counted
with DuckDB against the requests sent.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from .common import MiB, built_at, free_port, git_state, log, loud, utc_now, wait_for_health
from .data import ensure_key
from .http import EFFECTIVENESS, audit_by_endpoint, run_load
from .measure import rss_of, tail
from .postgres import PG_TABLE, REGISTRY_COLUMNS, Registry

USER = "soak-analyst"
MOVE_ROWS = 500
MOVE_EVERY_S = 5.0
RSS_EVERY_S = 5.0
CONSISTENCY_SQL = ("SELECT (SELECT count(*) FROM vaccinations) AS total, "
                   "(SELECT count(*) FROM vaccinations WHERE administered_on < DATE '2024-01-01') "
                   "+ (SELECT count(*) FROM vaccinations WHERE administered_on >= DATE '2024-01-01') "
                   "+ (SELECT count(*) FROM vaccinations WHERE administered_on IS NULL) AS parts")


def soak_mix() -> list[dict]:
    coverage = [{"name": "coverage", "path": f"/api/coverage?indicator={i}&cohort={c}" + (f"&by={b}" if b else ""),
                 "check": "coverage", "weight": 1}
                for i in ("DTP3", "MCV1", "MCV2", "HPVc") for c in (2020, 2022) for b in ("", "commune", "canton")]
    effectiveness = [{"name": "effectiveness", "path": f"/api/effectiveness?{EFFECTIVENESS}" + extra, "weight": 2}
                     for extra in ("", "&by=age_band")]
    sql = [{"name": "sql", "method": "POST", "path": "/api/sql", "body": json.dumps({"sql": CONSISTENCY_SQL}),
            "check": "sql_parts", "weight": 4}]
    dashboard = [{"name": "dashboard", "path": p, "weight": 2}
                 for p in ("/api/freshness", "/api/coverage/indicators", "/api/geography",
                           "/api/coverage/curve?indicator=MCV1&cohort=2020")]
    return coverage + effectiveness + sql + dashboard


def _versions(table: Path) -> int:
    return len(list((table / "_delta_log").glob("*.json")))


def run_soak(args, binary: Path, load_bin: Path, base: Path, wh: Path, logs: Path) -> dict:
    s: dict = {"date": utc_now(), "clients": args.soak_clients, "seconds": args.soak_seconds,
               "registry_persons": args.soak_registry_persons, "vaxlake_binary_mtime": built_at(binary),
               "git": git_state(), "command": args.command}
    if not load_bin.exists():
        loud(f"soak: {load_bin} is missing (cargo build --release -p vaxlake-http-load); skipped")
        s["error"] = f"{load_bin} missing"
        return s
    key = ensure_key(binary, base)
    export = base / "soak-registry"
    subprocess.run([str(binary), "generate", "--out", str(export), "--persons", str(args.soak_registry_persons),
                    "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
    made = subprocess.run([str(binary), "token", "new", "--name", USER, "--role", "analyst"],
                          capture_output=True, text=True, check=True)
    token = made.stdout.strip().splitlines()[-1]
    auth = base / "soak-auth.toml"
    auth.write_text(made.stderr[made.stderr.index("[[user]]"):])
    mix_path = logs / "soak-mix.json"
    mix_path.write_text(json.dumps(soak_mix()))
    pg = server = follower = None
    stop = threading.Event()
    try:
        pg = Registry(export / "registry.csv", logs)
        cols = ", ".join(REGISTRY_COLUMNS)
        pg.psql(f"CREATE TABLE held AS SELECT * FROM {PG_TABLE}; DELETE FROM {PG_TABLE};")
        s["registry_rows"] = int(pg.psql("SELECT count(*) FROM held"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve_log = open(logs / "soak-serve.log", "w")
        server = subprocess.Popen([str(binary), "serve", "--warehouse", str(wh), "--listen", f"127.0.0.1:{port}",
                                   "--auth", str(auth)], stdout=serve_log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        wait_for_health(url)
        follow_err = open(logs / "soak-follow.err", "wb")
        follower = subprocess.Popen([str(binary), "ingest", "--warehouse", str(wh), "--source", "postgres:",
                                     "--key-file", str(key), "--follow", "--every", "5"],
                                    stdout=subprocess.DEVNULL, stderr=follow_err,
                                    env=dict(os.environ, VAXLAKE_POSTGRES=pg.reader_conn), start_new_session=True)
        versions_before = _versions(wh / "vaccinations")
        moved = [0]

        def writer() -> None:
            while not stop.wait(MOVE_EVERY_S):
                pg.psql(f"WITH moved AS (DELETE FROM held WHERE event_id IN (SELECT event_id FROM held "
                        f"ORDER BY change_seq LIMIT {MOVE_ROWS}) RETURNING *) "
                        f"INSERT INTO {PG_TABLE} ({cols}) SELECT {cols} FROM moved ORDER BY change_seq;")
                moved[0] += MOVE_ROWS

        samples: list[tuple[float, int]] = []

        def sampler() -> None:
            t0 = time.perf_counter()
            while not stop.is_set():
                r = rss_of(server.pid)
                if r is not None:
                    samples.append((round(time.perf_counter() - t0, 1), r))
                stop.wait(RSS_EVERY_S)

        threads = [threading.Thread(target=writer, daemon=True), threading.Thread(target=sampler, daemon=True)]
        time.sleep(2)
        since = dt.datetime.now(dt.timezone.utc)
        for t in threads:
            t.start()
        log(f"{base.name} soak: {args.soak_clients} clients for {args.soak_seconds:.0f}s while --follow commits ...")
        try:
            out = run_load(load_bin, port, args.soak_clients, args.soak_seconds, mix_path, token)
        finally:
            stop.set()
            for t in threads:
                t.join()
        s["load"] = out
        s["rows_moved_into_registry"] = moved[0]
        s["rss_timeline"] = samples
        s["vaccinations_commits"] = _versions(wh / "vaccinations") - versions_before
        a = out["all"]
        log(f"{base.name} soak: {out['sent']:,} requests, {a['per_second']:.0f}/s, p50 {a['p50_ms']:.1f} ms, "
            f"p99 {a['p99_ms']:.1f} ms, statuses {a['statuses']}, inconsistent {out['inconsistent']}, "
            f"{s['vaccinations_commits']} commits, RSS {samples[0][1] / MiB:.0f} -> max "
            f"{max(v for _, v in samples) / MiB:.0f} MiB")
    except (RuntimeError, OSError, ValueError, subprocess.CalledProcessError) as err:
        loud(f"soak failed at {base.name}: {err}")
        s["error"] = str(err)[-3000:]
    finally:
        stop.set()
        for name, proc in (("follow", follower), ("server", server)):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                try:
                    s[f"{name}_exit"] = proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    s[f"{name}_exit"] = "killed"
        if pg is not None:
            pg.stop()
    if "load" not in s:
        return s
    by_endpoint, error = audit_by_endpoint(wh, USER, since)
    if by_endpoint is None:
        s["audit_error"] = error
        return s
    s["audit"] = {"rows": sum(by_endpoint.values()), "sent": s["load"]["sent"], "by_endpoint": by_endpoint}
    log(f"{base.name} soak: audit holds {s['audit']['rows']:,} rows for {s['audit']['sent']:,} requests sent")
    if s.get("follow_exit") not in (0, None):
        s["follow_stderr_tail"] = tail(logs / "soak-follow.err", 20)
    return s
