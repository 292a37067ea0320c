"""Freshness: the first coverage answer after an ingest commit, on a running server.

    scripts/bench --freshness WAREHOUSE EXPORT_DIR [--rounds 5] [--bin PATH]

Starts `vaxlake serve` on WAREHOUSE (no auth, loopback), asks
`/api/coverage?indicator=DTP3&cohort=2022&by=commune` cold and cached, then, per round,
ingests a small FHIR export (20 new completed doses, on new days, of persons already in the warehouse,
taken from EXPORT_DIR's Immunization.ndjson with new ids, plus their Patients) with
`vaxlake ingest` — what one `--follow` poll commits — and asks the same question every 20 ms
until the answer's `table_versions` show the new coverage facts (`dose_facts`). The latency of that request is the "first
answer after a commit": what a dashboard user waits for when the data just got fresher.
The server also warms its counts in the background after a new version; the figure is
whichever comes first, as a user would see it.

Prints one JSON line with the figures (seconds); the previous figure (before the coverage
facts were maintained at ingest) was the whole cold recomputation, 4,840 ms at 670k persons.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

from .common import free_port

QUESTION = "/api/coverage?indicator=DTP3&cohort=2022&by=commune"


def _get(base: str, path: str) -> tuple[float, dict]:
    started = time.perf_counter()
    with urllib.request.urlopen(base + path, timeout=600) as r:
        body = r.read()
    return time.perf_counter() - started, json.loads(body)


def _small_export(export: Path, out: Path, round_no: int, doses: int) -> None:
    """`doses` completed doses of existing persons, as new events, with their Patients."""
    fhir = export / "fhir"
    rng = random.Random(round_no)
    immunizations = []
    with open(fhir / "Immunization.ndjson", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i > 200_000:
                break
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("status") == "completed":
                immunizations.append(v)
    picked = rng.sample(immunizations, doses)
    wanted = {v["patient"]["reference"].split("/")[-1] for v in picked}
    patients = []
    with open(fhir / "Patient.ndjson", encoding="utf-8") as f:
        for line in f:
            try:
                p = json.loads(line)
            except ValueError:
                continue
            if p.get("id") in wanted:
                patients.append(p)
    out.mkdir(parents=True, exist_ok=True)
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    # New events on new days every run (a rerun on the same warehouse must change facts too;
    # a copy on a day the person already has a dose changes none).
    run = int(now)
    with open(out / "Immunization.ndjson", "w", encoding="utf-8") as f:
        for i, v in enumerate(picked):
            v = dict(v)
            v["id"] = f"bench-fresh-{run}-{round_no}-{i}"
            day = run // 60 + round_no * doses + i
            v["occurrenceDateTime"] = f"2026-{1 + day % 11:02d}-{1 + day % 28:02d}"
            v["meta"] = {"lastUpdated": stamp}
            f.write(json.dumps(v) + "\n")
    with open(out / "Patient.ndjson", "w", encoding="utf-8") as f:
        for p in patients:
            f.write(json.dumps(p) + "\n")


def run_freshness(binary: Path, warehouse: Path, export: Path, key: Path, work: Path,
                  rounds: int = 5, doses: int = 20) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / "serve.log"
    work.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log_file:
        server = subprocess.Popen([str(binary), "serve", "--warehouse", str(warehouse),
                                   "--listen", f"127.0.0.1:{port}"],
                                  stdout=log_file, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                _get(base, "/api/coverage/indicators")
                break
            except OSError:
                time.sleep(0.1)
        cold, answer = _get(base, QUESTION)
        cached = statistics.median(_get(base, QUESTION)[0] for _ in range(5))
        versions = answer["table_versions"]
        after, commits = [], []
        for r in range(rounds):
            small = work / f"fresh-{r}"
            _small_export(export, small, r, doses)
            started = time.perf_counter()
            subprocess.run([str(binary), "ingest", "--warehouse", str(warehouse), "--key-file", str(key),
                            "--source", f"fhir:{small}"], check=True, capture_output=True)
            commits.append(time.perf_counter() - started)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                took, answer = _get(base, QUESTION)
                if answer["table_versions"].get("dose_facts") != versions.get("dose_facts"):
                    versions = answer["table_versions"]
                    after.append(took)
                    break
                time.sleep(0.02)
        return {
            "cold_first_answer_s": round(cold, 4),
            "cached_answer_s": round(cached, 6),
            "first_answer_after_commit_s": [round(t, 4) for t in after],
            "first_answer_after_commit_median_s": round(statistics.median(after), 4) if after else None,
            "ingest_of_the_commit_s": [round(t, 3) for t in commits],
            "doses_per_commit": doses,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
