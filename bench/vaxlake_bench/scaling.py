"""The benchmark query and the coverage table on one kept warehouse in four places: the
embedded engine on local disk (the peer every other figure is a ratio of), the embedded
engine over S3 (the same Delta files copied to an S3-compatible server on loopback: moto,
which keeps objects in one Python process, so this row measures the request path, not a
real S3), and a Ballista cluster over that S3 warehouse with one and then two executors
(`vaxlake cluster`, all on this machine).

    scripts/bench --events 10M --keep --only scaling

Query: `vaxlake sql --repeat N`, median of runs 2..N. Coverage: `vaxlake coverage --all`, the
cold run of each of `--coverage-processes` fresh processes (its grouped counts query is
what reaches the store or the cluster; later runs in a process answer from its counts), median.
Every answer must be byte-identical to the local one, or the row says so.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from .common import VENV_PYTHON, free_port, log, loud, utc_now
from .query import QUERY

MOTO = "moto[server]==5.2.6"
BUCKET = "vaxlake-bench"

SERVER = r"""
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=True)
server.start()
print("ready", flush=True)
sys.stdin.read()
server.stop()
"""

UPLOAD = r"""
import os, sys, boto3
endpoint, bucket, root, prefix = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="bench", aws_secret_access_key="bench")
s3.create_bucket(Bucket=bucket)
count = size = 0
for directory, _, files in os.walk(root):
    for name in files:
        path = os.path.join(directory, name)
        key = prefix + "/" + os.path.relpath(path, root)
        s3.upload_file(path, bucket, key)
        count += 1
        size += os.path.getsize(path)
print(count, size)
"""


def _env(port: int) -> dict:
    env = dict(os.environ)
    env.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true",
                "VAXLAKE_LOG": "info"})
    return env


class Requests:
    """Counts the S3 requests the loopback server logged (one line per request, werkzeug's
    access log) since the last call, by kind: GET of a range or object, HEAD, LIST, PUT."""

    def __init__(self, log_path: Path):
        self.path = log_path
        self.offset = 0

    def since_last(self) -> dict:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read().decode("utf-8", "replace")
            self.offset = f.tell()
        counts = {"GET": 0, "LIST": 0, "HEAD": 0, "PUT": 0, "other": 0}
        for line in text.splitlines():
            m = re.search(r'"(GET|HEAD|PUT|POST|DELETE) (\S+)', line)
            if not m:
                continue
            method, path = m.groups()
            if method == "GET" and ("list-type" in path or "prefix=" in path):
                counts["LIST"] += 1
            elif method in counts:
                counts[method] += 1
            else:
                counts["other"] += 1
        return counts


def _query(binary: Path, wh: str, env: dict, repeat: int, cluster: str | None, logs: Path, name: str) -> dict:
    cmd = [str(binary), "sql", "--warehouse", wh, "--format", "csv", "--repeat", str(repeat), QUERY]
    if cluster:
        cmd += ["--cluster", cluster]
    started = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    (logs / f"scaling-{name}-sql.err").write_text(r.stderr)
    if r.returncode != 0:
        loud(f"scaling {name}: sql failed:\n{r.stderr[-2000:]}")
        return {"error": r.stderr[-1000:]}
    # `--repeat 1` reports no run times: the process's wall time then.
    times = [float(x) for x in re.findall(r"run=\d+ seconds=([0-9.]+)", r.stderr)] or [elapsed]
    return {"seconds": statistics.median(times[1:] or times), "times": times, "answer": r.stdout}


def _coverage(binary: Path, wh: str, env: dict, processes: int, cluster: str | None, logs: Path,
              name: str) -> dict:
    times, answer = [], None
    for index in range(processes):
        cmd = [str(binary), "coverage", "--warehouse", wh, "--all", "--format", "csv"]
        if cluster:
            cmd += ["--cluster", cluster]
        started = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        elapsed = time.perf_counter() - started
        (logs / f"scaling-{name}-coverage-{index}.err").write_text(r.stderr)
        if r.returncode != 0:
            loud(f"scaling {name}: coverage failed:\n{r.stderr[-2000:]}")
            return {"error": r.stderr[-1000:]}
        times.append(elapsed)
        answer = r.stdout
    return {"seconds": statistics.median(times), "times": times, "answer": answer}


def run_scaling(args, binary: Path, base: Path, wh: Path, logs: Path) -> dict:
    subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", MOTO], check=True)
    out: dict = {"date": utc_now(), "repeat": args.repeat, "processes": args.coverage_processes,
                 "binary": str(args.bin or "target/release/vaxlake")}
    local_env = dict(os.environ, VAXLAKE_LOG="info")
    rows = {}
    rows["local"] = {"query": _query(binary, str(wh), local_env, args.repeat, None, logs, "local"),
                     "coverage": _coverage(binary, str(wh), local_env, args.coverage_processes, None, logs,
                                           "local")}
    port = free_port()
    moto_log = logs / "scaling-moto.log"
    moto = subprocess.Popen([str(VENV_PYTHON), "-c", SERVER, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=open(moto_log, "w"), text=True)
    requests = Requests(moto_log)
    nodes: list[subprocess.Popen] = []
    try:
        # moto announces itself on stdout before our "ready".
        for _ in range(5):
            if moto.stdout.readline().strip() == "ready":
                break
        else:
            raise RuntimeError("moto did not start")
        env = _env(port)
        started = time.perf_counter()
        up = subprocess.run([str(VENV_PYTHON), "-c", UPLOAD, env["AWS_ENDPOINT_URL"], BUCKET, str(wh), "warehouse"],
                            capture_output=True, text=True, check=True)
        objects, size = map(int, up.stdout.split())
        out["upload"] = {"objects": objects, "bytes": size, "seconds": time.perf_counter() - started}
        log(f"scaling: copied {objects} objects ({size / 2**30:.2f} GiB) to the loopback S3 server")
        s3 = f"s3://{BUCKET}/warehouse"
        requests.since_last()
        # Request counts of one query run and one cold coverage run, for docs/scaling.md.
        _query(binary, s3, env, 1, None, logs, "s3-count")
        out["requests_query"] = requests.since_last()
        _coverage(binary, s3, env, 1, None, logs, "s3-count")
        out["requests_coverage"] = requests.since_last()
        rows["s3"] = {"query": _query(binary, s3, env, args.repeat, None, logs, "s3"),
                      "coverage": _coverage(binary, s3, env, args.coverage_processes, None, logs, "s3")}
        scheduler = f"127.0.0.1:{free_port()}"
        nodes.append(subprocess.Popen([str(binary), "cluster", "scheduler", "--listen", scheduler], env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(logs / "scaling-scheduler.err", "w")))
        for executors in (1, 2):
            port_a = free_port()
            work = base / f"executor-{executors}"
            work.mkdir(exist_ok=True)
            nodes.append(subprocess.Popen(
                [str(binary), "cluster", "executor", "--scheduler", scheduler, "--port", str(port_a),
                 "--concurrent-tasks", "2", "--work-dir", str(work)],
                env=env, stdout=subprocess.DEVNULL, stderr=open(logs / f"scaling-executor-{executors}.err", "w")))
            time.sleep(5)  # registration with the scheduler
            cluster = f"df://{scheduler}"
            name = f"cluster{executors}"
            rows[name] = {"query": _query(binary, s3, env, args.repeat, cluster, logs, name),
                          "coverage": _coverage(binary, s3, env, args.coverage_processes, cluster, logs, name)}
    finally:
        for node in reversed(nodes):
            node.terminate()
            node.wait()
        # The executors' shuffle files (gigabytes at 10M).
        for work in base.glob("executor-*"):
            shutil.rmtree(work, ignore_errors=True)
        moto.stdin.close()
        moto.wait()
    base_answers = {part: rows["local"][part].get("answer") for part in ("query", "coverage")}
    for name, row in rows.items():
        for part in ("query", "coverage"):
            figure = row[part]
            figure["same_answer"] = figure.pop("answer", None) == base_answers[part]
            if not figure["same_answer"] and "error" not in figure:
                loud(f"scaling {name}: the {part} answer differs from the local one")
        log(f"scaling {name}: query {row['query'].get('seconds', float('nan')):.2f}s, "
            f"coverage {row['coverage'].get('seconds', float('nan')):.2f}s")
    out["rows"] = rows
    return out
