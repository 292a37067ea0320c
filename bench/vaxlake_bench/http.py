"""HTTP under load: 100 concurrent clients on a running `vaxlake serve --auth`, auth and audit on.

Starts the server on the size's warehouse with an auth file holding one analyst (a token made
by `vaxlake token new`), asks every question of the mix once (the cold answers, timed, so the
load measures answers the server holds), then runs bench/http-load (one keep-alive
connection per client, the mix replayed for `--http-seconds`) twice:

- **coverage**: cached coverage answers only (every indicator × 3 cohorts × {national,
  commune, canton, sex}): the dashboards' traffic; the target is p99 < 50 ms;
- **mixed**: 70 % coverage, 15 % effectiveness (one season, two breakdowns), 15 % `/api/sql`
  (a small aggregate DataFusion runs every time: SQL answers are not cached).

The server's RSS is sampled every half second. Then the server gets SIGTERM (it drains the
audit) and `vaxlake audit` counts the rows recorded since the load began, by endpoint, against
the requests the clients sent: every request must be there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .common import VENV_PYTHON, wait_for_health, MiB, free_port, built_at, git_state, log, loud, utc_now
from .data import active_files
from .measure import rss_of

CLIENTS = 100
USER = "load-analyst"
SQL = ("SELECT vaccine_atc, count(*) AS doses FROM vaccinations "
       "WHERE administered_on >= DATE '2024-01-01' GROUP BY vaccine_atc ORDER BY vaccine_atc")
# Audit rows of the load's user since it began, by endpoint (run in the bench venv's Python).
AUDIT_COUNT = """
import duckdb, json, sys
files, user, since = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
rows = duckdb.execute(
    'SELECT endpoint, count(*) FROM read_parquet(?) WHERE "user" = ? AND "at" >= CAST(? AS TIMESTAMPTZ) '
    'GROUP BY endpoint', [files, user, since]).fetchall()
print(json.dumps(dict(rows)))
"""
EFFECTIVENESS = "antigen=influenza&disease=J1&from=2024-10-01&to=2025-04-30"


def _get(url: str, token: str, timeout: float = 900) -> tuple[float, int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return time.perf_counter() - started, r.status, r.read()
    except urllib.error.HTTPError as e:
        return time.perf_counter() - started, e.code, e.read()


def _post(url: str, token: str, body: str) -> tuple[float, int, bytes]:
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=900) as r:
            return time.perf_counter() - started, r.status, r.read()
    except urllib.error.HTTPError as e:
        return time.perf_counter() - started, e.code, e.read()


def run_load(load_bin: Path, port: int, clients: int, seconds: float, mix_path: Path, token: str) -> dict:
    """bench/http-load's report of `clients` replaying the mix at `mix_path` for `seconds` (the HTTP and
    soak parts)."""
    r = subprocess.run([str(load_bin), "--addr", f"127.0.0.1:{port}", "--clients", str(clients),
                        "--seconds", str(seconds), "--mix", str(mix_path)],
                       capture_output=True, text=True, env={**os.environ, "VAXLAKE_LOAD_TOKEN": token})
    if r.returncode != 0:
        raise RuntimeError(f"http-load failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def audit_by_endpoint(wh: Path, user: str, since: dt.datetime) -> tuple[dict | None, str | None]:
    """The audit rows of `user` since `since`, by endpoint, counted by DuckDB over the audit table's
    active files (`vaxlake audit` answers at most 10,000 rows at a time); or DuckDB's error."""
    files = active_files(wh / "audit")
    r = subprocess.run([str(VENV_PYTHON), "-c", AUDIT_COUNT, json.dumps([str(f) for f in files]), user,
                        since.isoformat()], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr[-2000:]
    return json.loads(r.stdout), None


def mixes(indicators: list[str], cohorts: list[int]) -> dict[str, list[dict]]:
    coverage = [{"name": "coverage", "path": f"/api/coverage?indicator={i}&cohort={c}" + (f"&by={b}" if b else "")}
                for i in indicators for c in cohorts for b in ("", "commune", "canton", "sex")]
    effectiveness = [{"name": "effectiveness", "path": f"/api/effectiveness?{EFFECTIVENESS}" + extra}
                     for extra in ("", "&by=age_band")]
    sql = [{"name": "sql", "method": "POST", "path": "/api/sql", "body": json.dumps({"sql": SQL})}]
    # Weights: every coverage question once per cycle; effectiveness and SQL each 15 % of it.
    n = len(coverage)
    share = max(1, round(n * 15 / 70))
    mixed = ([dict(q, weight=1) for q in coverage]
             + [dict(q, weight=max(1, share // len(effectiveness))) for q in effectiveness]
             + [dict(q, weight=share) for q in sql])
    return {"coverage": coverage, "mixed": mixed}


def run_http(args, binary: Path, load_bin: Path, base: Path, wh: Path, logs: Path) -> dict:
    h: dict = {"date": utc_now(), "clients": CLIENTS, "seconds": args.http_seconds,
               "vaxlake_binary_mtime": built_at(binary), "git": git_state(), "command": args.command,
               "sql": SQL}
    if not load_bin.exists():
        loud(f"HTTP load: {load_bin} is missing (cargo build --release -p vaxlake-http-load); skipped")
        h["error"] = f"{load_bin} missing"
        return h
    made = subprocess.run([str(binary), "token", "new", "--name", USER, "--role", "analyst"],
                          capture_output=True, text=True, check=True)
    token = made.stdout.strip().splitlines()[-1]
    auth = base / "load-auth.toml"
    auth.write_text(made.stderr[made.stderr.index("[[user]]"):])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve_log = open(logs / "http-serve.log", "w")
    server = subprocess.Popen([str(binary), "serve", "--warehouse", str(wh), "--listen", f"127.0.0.1:{port}",
                               "--auth", str(auth)], stdout=serve_log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_for_health(url)
        _, status, body = _get(url + "/api/coverage/indicators", token)
        listed = json.loads(body) if status == 200 else []
        if isinstance(listed, dict):
            listed = listed.get("indicators") or []
        indicators = [i["indicator"] if isinstance(i, dict) else i for i in listed]
        if not indicators:
            raise RuntimeError(f"/api/coverage/indicators answered {status}: {body[:200]!r}")
        cohorts = [2018, 2020, 2022]
        all_mixes = mixes(indicators, cohorts)
        # The cold answers: the first coverage question reads the counts, the rest are built
        # from them; each effectiveness question and the SQL once.
        warm: dict[str, list[float]] = {}
        dropped: set[str] = set()
        for q in all_mixes["mixed"]:
            if q.get("method") == "POST":
                took, status, _ = _post(url + q["path"], token, q["body"])
            else:
                took, status, _ = _get(url + q["path"], token)
            if status != 200:
                # A question this registry cannot answer (a cohort outside an indicator's
                # range) leaves the mix: the load measures answers, not refusals.
                dropped.add(q["path"])
                continue
            warm.setdefault(q["name"], []).append(took)
        if dropped:
            log(f"{base.name} http: {len(dropped)} questions not answered with 200 before the load; left out")
            all_mixes = {k: [q for q in v if q["path"] not in dropped] for k, v in all_mixes.items()}
        h["left_out"] = sorted(dropped)
        h["cold"] = {name: {"first_s": ts[0], "questions": len(ts), "total_s": sum(ts)} for name, ts in warm.items()}
        log(f"{base.name} http: {len(all_mixes['coverage'])} coverage questions; cold answers "
            + ", ".join(f"{k} first {v['first_s']:.2f}s" for k, v in h["cold"].items()))

        # The audit's clock is the server's: take the moment after the warm-up answers were
        # recorded and before the first load request (the warm-up ended above).
        time.sleep(2)
        since = dt.datetime.now(dt.timezone.utc)
        runs = {}
        for name in ("coverage", "mixed"):
            mix_path = logs / f"http-mix-{name}.json"
            mix_path.write_text(json.dumps(all_mixes[name]))
            samples: list[tuple[float, int]] = []
            stop = threading.Event()

            def sample() -> None:
                t0 = time.perf_counter()
                while not stop.is_set():
                    r = rss_of(server.pid)
                    if r is not None:
                        samples.append((round(time.perf_counter() - t0, 1), r))
                    stop.wait(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            log(f"{base.name} http: {CLIENTS} clients, {name} mix, {args.http_seconds:.0f}s ...")
            try:
                out = run_load(load_bin, port, CLIENTS, args.http_seconds, mix_path, token)
            finally:
                stop.set()
                sampler.join()
            out["rss_timeline"] = samples
            out["server_rss_max"] = max((s for _, s in samples), default=0)
            out["server_rss_first"] = samples[0][1] if samples else 0
            runs[name] = out
            a = out["all"]
            log(f"{base.name} http {name}: {out['sent']:,} requests, {a['per_second']:.0f}/s, "
                f"p50 {a['p50_ms']:.1f} ms, p99 {a['p99_ms']:.1f} ms, statuses {a['statuses']}, "
                f"server RSS {out['server_rss_first'] / MiB:.0f} → {out['server_rss_max'] / MiB:.0f} MiB")
        h["runs"] = runs
    except (RuntimeError, OSError, ValueError, subprocess.CalledProcessError) as err:
        loud(f"HTTP load failed at {base.name}: {err}")
        h["error"] = str(err)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            h["server_exit"] = server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            h["server_exit"] = "killed"
        serve_log.close()
    if "runs" not in h:
        return h
    # Every request the clients sent is in the audit table, once.
    by_endpoint, error = audit_by_endpoint(wh, USER, since)
    if by_endpoint is None:
        h["audit_error"] = error
        return h
    rows = sum(by_endpoint.values())
    sent = sum(run["sent"] for run in h["runs"].values())
    h["audit"] = {"rows": rows, "sent": sent, "by_endpoint": by_endpoint}
    log(f"{base.name} http: audit holds {rows:,} rows for {sent:,} requests sent")
    return h
