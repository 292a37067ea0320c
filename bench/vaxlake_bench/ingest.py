"""The ingest benchmark: `vaxlake ingest --source fhir:` into a fresh warehouse against the
DuckDB peer doing the same transformation (with and without version deduplication), each a
child process measured from spawn to exit after the same page-cache warm-up."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import shutil
from pathlib import Path

from .common import GiB, MiB, log, loud
from .data import ingest_counts
from .duckdb_peer import worker_cmd
from .measure import measure, tail, warm_page_cache


def run_vaxlake_ingest(args, label: str, binary: Path, fhir: Path, ndjson: list[Path], key: Path, wh: Path,
                       logs: Path, imm_lines: int) -> tuple[dict, int | None]:
    """`vaxlake ingest` of the FHIR export into a fresh warehouse `wh`: the measurement, its
    phases, and the rows the fresh table holds by its log (inserted minus deleted)."""
    if wh.exists():
        shutil.rmtree(wh)
    log(f"{label}: page cache warm-up read {warm_page_cache(ndjson):.1f}s; vaxlake ingest ...")
    m = measure([str(binary), "ingest", "--warehouse", str(wh), "--source", f"fhir:{fhir}", "--key-file", str(key)],
                logs / "vaxlake-ingest.out", logs / "vaxlake-ingest.err", args.timeout)
    m["counts"] = ingest_counts(logs / "vaxlake-ingest.out")
    m["ok"] = m["exit"] == 0 and not m["timed_out"] and m["counts"] is not None
    if not m["ok"]:
        m["stderr_tail"] = tail(logs / "vaxlake-ingest.err", 25)
        loud(f"vaxlake ingest {'timed out' if m['timed_out'] else 'failed'} at {label} "
             f"(exit {m['exit']}, {m['seconds']:.0f}s, peak RSS {m['peak_rss'] / GiB:.2f} GiB):\n{m['stderr_tail']}")
    err_text = (logs / "vaxlake-ingest.err").read_text(errors="replace")
    m["phases"] = ingest_phases(err_text)
    own = re.findall(r"ingest done seconds=([0-9.]+)", err_text)
    m["in_process_seconds"] = float(own[-1]) if own else None
    # Rows the fresh table holds: inserted minus deleted (an entered-in-error version deletes a
    # row an earlier batch of the same run inserted); checked against the Parquet files later.
    done = re.findall(r"ingest finished .*?inserted=(\d+) updated=(\d+) deleted=(\d+)", err_text)
    rows = int(done[-1][0]) - int(done[-1][2]) if done else None
    log(f"{label}: vaxlake ingest {m['seconds']:.1f}s, {imm_lines / m['seconds']:,.0f} events/s, "
        f"peak RSS {m['peak_rss'] / MiB:,.0f} MiB, {m['counts']}")
    return m, rows


def ingest_phases(log_text: str) -> dict | None:
    """Where vaxlake's ingest spent its time, from the timestamps of its log lines."""
    def at(line: str) -> float:
        return dt.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()

    lines = [l for l in log_text.splitlines() if l[:4].isdigit()]
    try:
        start = at(next(l for l in lines if "ingest started" in l))
        patients = at(next(l for l in lines if "patient index built" in l))
        commits = [(at(l), l) for l in lines if "batch committed" in l]
        end = at(next(l for l in lines if "ingest finished" in l))
    except (StopIteration, ValueError, IndexError):
        return None
    durations, previous = [], patients
    for t, line in commits:
        numbers = dict(re.findall(r"(inserted|updated|deleted|unchanged): (\d+)", line))
        durations.append({"seconds": round(t - previous, 2), **{k: int(v) for k, v in numbers.items()}})
        previous = t
    return {"patients_seconds": round(patients - start, 2), "commits": durations,
            "after_last_commit_seconds": round(end - previous, 2)}


def run_duckdb_ingest(args, label, fhir, ndjson, out_dir, tmp, logs, name, dedup, imm_lines) -> dict:
    for directory in (out_dir, tmp):
        if directory.exists():
            shutil.rmtree(directory)
    tmp.mkdir()
    spec = {"fhir": str(fhir), "out": str(out_dir), "tmp": str(tmp), "salt": secrets.token_hex(32), "dedup": dedup}
    what = "DuckDB ingest" + ("" if dedup else " without version dedup")
    log(f"{label}: page cache warm-up read {warm_page_cache(ndjson):.1f}s; {what} ...")
    d = measure(worker_cmd("ingest", spec), logs / f"{name}.out", logs / f"{name}.err", args.timeout)
    d["ok"] = d["exit"] == 0 and not d["timed_out"]
    d["dedup"] = dedup
    if d["ok"]:
        # The worker's own figures; measure()'s wall time is what is compared.
        inner = json.loads((logs / f"{name}.out").read_text().strip().splitlines()[-1])
        d["in_process_seconds"], d["rows"] = inner["seconds"], inner["rows"]
        d["parquet_bytes"] = sum(f.stat().st_size for f in out_dir.rglob("*.parquet"))
        log(f"{label}: {what} {d['seconds']:.1f}s (in-process {d['in_process_seconds']:.1f}s), "
            f"{imm_lines / d['seconds']:,.0f} events/s, peak RSS {d['peak_rss'] / MiB:,.0f} MiB, rows {d['rows']:,}")
    else:
        d["stderr_tail"] = tail(logs / f"{name}.err", 25)
        loud(f"{what} failed at {label}:\n{d['stderr_tail']}")
    shutil.rmtree(tmp, ignore_errors=True)
    return d
