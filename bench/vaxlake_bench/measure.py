"""Measuring a child process: wall time, peak RSS (`ru_maxrss` from `wait4`), CPU time and an
RSS timeline; the page-cache warm-up both engines start from; and noticing (or waiting out)
compilers and other benchmarks that would share the cores."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from .common import MiB, log


def warm_page_cache(paths: list[Path]) -> float:
    """Reads the inputs once so both engines start from the same (warm) page cache."""
    started = time.perf_counter()
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(16 * MiB):
                pass
    return time.perf_counter() - started


def rss_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def busy_builds() -> list[str]:
    """Compilers and other vaxlake processes running now (they would share the cores with the
    benchmark), other than this script and its children."""
    found = []
    me = os.getpid()
    mine = {me}  # this script and the shells that started it
    pid = me
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        mine.add(pid)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in mine:
            continue
        try:
            name = (d / "comm").read_text().strip()
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == me:
            continue
        if name == "postgres":  # the bench's own registry server (its backends name the user)
            continue
        if name in ("rustc", "cargo", "cc", "ld", "c++"):
            found.append(name)
        elif "vaxlake " in cmdline or "scripts/bench" in cmdline or "duckdb" in cmdline:
            found.append(" ".join(cmdline.split()[:2])[:60])
    return found


def measure(cmd: list[str], stdout: Path, stderr: Path, timeout: float, env=None) -> dict:
    """Runs `cmd`, returning wall seconds, peak RSS (ru_maxrss of that child, via wait4),
    exit status and an RSS timeline sampled every second. Kills it after `timeout` s."""
    load_before = os.getloadavg()[0]
    builds = busy_builds()
    if builds:
        log(f"warning: {', '.join(sorted(set(builds)))} running beside the benchmark; timings will suffer")
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        timeline: list[tuple[float, int]] = []
        try:
            _, status, usage, timed_out = poll_child(proc, started, timeout, timeline)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): the child runs in its own session, so stop it too.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            raise
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "cmd": cmd,
        "seconds": wall,
        "peak_rss": usage.ru_maxrss * 1024,  # Linux: KiB
        "user_seconds": usage.ru_utime,
        "system_seconds": usage.ru_stime,
        "exit": proc.returncode,
        "timed_out": timed_out,
        "rss_timeline": timeline,
        "load_before": load_before,
        "concurrent_builds": sorted(set(builds)),
    }


def poll_child(proc, started: float, timeout: float, timeline: list):
    """Waits for `proc`, sampling its RSS every second; stops it after `timeout` s."""
    timed_out = False
    next_sample = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        elapsed = time.perf_counter() - started
        if elapsed >= next_sample:
            r = rss_of(proc.pid)
            if r is not None:
                timeline.append((round(elapsed, 1), r))
            next_sample = elapsed + 1.0
        if elapsed > timeout and not timed_out:
            timed_out = True
            log(f"timeout after {elapsed:.0f}s: stopping pid {proc.pid}")
            os.killpg(proc.pid, signal.SIGTERM)
            kill_at = time.perf_counter() + 20
            while time.perf_counter() < kill_at:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(0.2)
            if not pid:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    return pid, status, usage, timed_out


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

def wait_quiet(what: str, limit_s: float) -> None:
    """Waits (up to `limit_s`, --quiet-wait) until no compiler or other benchmark shares the
    cores."""
    started = time.time()
    while True:
        busy = busy_builds()
        if not busy:
            return
        if time.time() - started >= limit_s:
            log(f"{what}: still busy after {limit_s:.0f}s ({', '.join(sorted(set(busy)))}); measuring anyway")
            return
        log(f"{what}: waiting for {', '.join(sorted(set(busy)))} to finish")
        time.sleep(20)


def run_times(stderr_text: str) -> list[float]:
    """The `run=N seconds=S` lines vaxlake's `--repeat` prints, in order."""
    return [float(x) for x in re.findall(r"^run=\d+ seconds=([0-9.]+)", stderr_text, re.M)]
