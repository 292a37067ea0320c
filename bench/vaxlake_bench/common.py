"""Paths, units and logging every module of the benchmark shares, and the description of
the machine and the source tree a report cites."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# The launcher: the DuckDB workers are started through it, as `scripts/bench --worker ...`.
LAUNCHER = ROOT / "scripts" / "bench"
VENV = ROOT / "target" / "bench-venv"
VENV_PYTHON = VENV / "bin" / "python"
DEFAULT_DATA = ROOT / "target" / "bench-data"
REPORT = ROOT / "BENCHMARKS.md"
THREADS = 2
MiB = 1024 * 1024
GiB = 1024 * MiB


def free_port() -> int:
    """A loopback port nobody listens on now (for a server the benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, seconds: float = 120.0) -> None:
    """Waits until the server at `url` answers `/api/health` (at most `seconds`)."""
    import urllib.request
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/health", timeout=5).read()
            return
        except OSError:
            time.sleep(0.1)


def log(msg: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def loud(msg: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n!!! {msg}\n{bar}\n", file=sys.stderr, flush=True)


def utc_now() -> str:
    """The date a measurement is stamped with in the report."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def built_at(binary: Path) -> str:
    """When the measured vaxlake binary was built (its mtime), as the report cites it."""
    return dt.datetime.fromtimestamp(binary.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_bytes": mem, "kernel": platform.release(),
            "python": platform.python_version()}


def git_state() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except OSError:
        return "unknown"


def python_env() -> str | None:
    """The python of scripts/python-env (duckdb + deltalake, for tests/coverage_check.py)."""
    r = subprocess.run([str(ROOT / "scripts" / "python-env")], capture_output=True, text=True)
    if r.returncode != 0:
        loud(f"scripts/python-env failed; the coverage cross-check is skipped:\n{r.stderr[-2000:]}")
        return None
    return r.stdout.strip().splitlines()[-1]
