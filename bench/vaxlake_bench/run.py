"""One size: every benchmark in turn on one generated export (or, with --only, one part on the
warehouse a previous --keep run left), collected into that size's results."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .common import built_at, git_state, log, loud, utc_now
from .coverage import run_coverage
from .data import active_files, ensure_input, ensure_key, pin_binary, read_manifest, size_label
from .doors import run_doors
from .scaling import run_scaling
from .soak import run_soak
from .effectiveness import run_effectiveness
from .freshness import run_freshness
from .http import run_http
from .ingest import run_duckdb_ingest, run_vaxlake_ingest
from .query import run_query
from .registry import run_postgres


def size_input(args, binary: Path, data: Path, events: int) -> tuple[Path, Path, Path, list[Path], dict]:
    """A size's directory, pinned binary, generated export, NDJSON files and the figures every
    stored size starts with (what was measured, from what input, by which build)."""
    label = size_label(events)
    base = data / label
    base.mkdir(parents=True, exist_ok=True)
    binary = pin_binary(binary, base)
    inp, manifest = ensure_input(binary, data, events, args.seed)
    fhir = inp / "fhir"
    ndjson = [fhir / "Patient.ndjson", fhir / "Immunization.ndjson"]
    head = {
        "label": label,
        "date": utc_now(),
        "persons": manifest["persons"],
        "immunization_lines": manifest["fhir"]["immunization_lines"],
        "patient_lines": manifest["fhir"]["patient_lines"],
        "input_bytes": sum(p.stat().st_size for p in ndjson),
        "immunization_bytes": ndjson[1].stat().st_size,
        "vaxlake_binary_mtime": built_at(binary),
        "git": git_state(),
        "immunization_quarantined_expected": manifest["fhir"].get("immunization_quarantined"),
        "current_events_expected": manifest["fhir"].get("current_events"),
        "immunizations_of_invalid_patients": manifest["fhir"].get("bad", {}).get("immunizations_of_invalid_patients"),
        "command": args.command,
    }
    return base, binary, inp, ndjson, head


def run_size(args, binary: Path, data: Path, events: int, duck_version: str) -> dict:
    base, binary, inp, ndjson, res = size_input(args, binary, data, events)
    res["duckdb_version"] = duck_version
    label, fhir, imm_lines = res["label"], inp / "fhir", res["immunization_lines"]
    logs = base / "logs"
    logs.mkdir(exist_ok=True)

    # vaxlake ingest, into a fresh warehouse.
    key = ensure_key(binary, base)
    wh = base / "warehouse"
    m, res["vaxlake_rows"] = run_vaxlake_ingest(args, label, binary, fhir, ndjson, key, wh, logs, imm_lines)
    res["vaxlake_ingest"] = m

    # The DuckDB peer, measured the same way: the like-for-like variant (newest version of
    # each event) and, as a floor, one that skips the version deduplication.
    duck_out = base / "duckdb-parquet"
    for name, dedup in (("duckdb_ingest", True), ("duckdb_ingest_nodedup", False)):
        out_dir = duck_out if dedup else base / "duckdb-parquet-nodedup"
        res[name] = run_duckdb_ingest(args, label, fhir, ndjson, out_dir, base / "duckdb-tmp", logs, name, dedup,
                                      imm_lines)
        if not dedup:
            shutil.rmtree(out_dir, ignore_errors=True)
    d = res["duckdb_ingest"]

    # The query, over vaxlake's own table.
    if m["ok"]:
        files = active_files(wh / "vaccinations")
        res["parquet_files"] = len(files)
        res["parquet_bytes"] = sum(f.stat().st_size for f in files)
        res["duckdb_parquet_bytes"] = d.get("parquet_bytes", 0)
        res["query"] = run_query(args, binary, wh, files, logs)
        parquet_rows = res["query"].get("table_rows")
        if parquet_rows is not None:
            if res["vaxlake_rows"] not in (None, parquet_rows):
                log(f"note: the log says {res['vaxlake_rows']:,} rows, the active Parquet files hold {parquet_rows:,}")
            res["vaxlake_rows"] = parquet_rows
        res["coverage"] = run_coverage(args, binary, base, wh, logs)
        res["effectiveness"] = run_effectiveness(args, binary, base, wh, logs)
        res["http"] = run_http(args, binary, args.load_bin, base, wh, logs)
        # Last on this warehouse: it commits new doses.
        res["freshness"] = freshness_part(args, binary, base, wh, inp, key)
    res["postgres"] = run_postgres(args, binary, base, logs)
    return res


def freshness_part(args, binary: Path, base: Path, wh: Path, export: Path, key: Path) -> dict:
    """The first coverage answer after a commit (freshness.py), stamped like the other parts."""
    f: dict = {"date": utc_now(), "vaxlake_binary_mtime": built_at(binary), "git": git_state(),
               "command": args.command, "rounds": args.freshness_rounds}
    log(f"{base.name} freshness: {args.freshness_rounds} commits of 20 doses on a running server ...")
    try:
        f.update(run_freshness(binary, wh, export, key, base / "freshness", args.freshness_rounds))
    except (OSError, ValueError, RuntimeError, subprocess.CalledProcessError) as err:
        loud(f"freshness failed at {base.name}: {err}")
        f["error"] = str(err)
    return f


def ingest_only(args, binary: Path, data: Path, events: int, results: dict) -> dict:
    """`--only ingest`: vaxlake's ingest of a size into a fresh warehouse, nothing else (the
    memory row at 30M, where the peers and queries would take the rest of the day)."""
    base, binary, inp, ndjson, head = size_input(args, binary, data, events)
    r = dict(results.get(head["label"]) or {})
    r.update(head, ingest_only=True)
    label, fhir = head["label"], inp / "fhir"
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    key = ensure_key(binary, base)
    wh = base / "warehouse"
    r["vaxlake_ingest"], r["vaxlake_rows"] = run_vaxlake_ingest(args, label, binary, fhir, ndjson, key, wh, logs,
                                                                r["immunization_lines"])
    return r


def only_part(args, binary: Path, data: Path, events: int, results: dict) -> dict | None:
    """`--only coverage|effectiveness|postgres`: that part on a kept warehouse, into that size's
    stored results."""
    if args.only == "ingest":
        return ingest_only(args, binary, data, events, results)
    label = size_label(events)
    base = data / label
    wh = base / "warehouse"
    if args.only in ("postgres", "doors") and not (base / "input" / "registry.csv").exists():
        loud(f"--only {args.only}: no kept input at {base / 'input'}; run `scripts/bench --events {label} --keep` first")
        return None
    if args.only == "postgres":
        if not (base / "input" / "registry.csv").exists():
            loud(f"--only postgres: no kept input at {base / 'input'}; run `scripts/bench --events {label} --keep` first")
            return None
    elif not (wh / "vaccinations" / "_delta_log").is_dir() or not (base / "master.key").exists():
        loud(f"--only {args.only}: no kept warehouse at {wh}; run `scripts/bench --events {label} --keep` first")
        return None
    pinned = pin_binary(binary, base)
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    r = results.get(label)
    if r is None:  # a warehouse without stored ingest figures: the coverage row only
        m = read_manifest(base / "input") or {"persons": 0, "fhir": {}}
        r = {"label": label, "date": "—", "persons": m["persons"],
             "immunization_lines": m["fhir"].get("immunization_lines", events), "input_bytes": 0}
    if args.only == "coverage":
        r["coverage"] = run_coverage(args, pinned, base, wh, logs)
    elif args.only == "postgres":
        r["postgres"] = run_postgres(args, pinned, base, logs)
    elif args.only == "http":
        r["http"] = run_http(args, pinned, args.load_bin, base, wh, logs)
    elif args.only == "doors":
        r["doors"] = run_doors(args, pinned, base, wh, logs)
    elif args.only == "soak":
        r["soak"] = run_soak(args, pinned, args.load_bin, base, wh, logs)
    elif args.only == "scaling":
        r["scaling"] = run_scaling(args, pinned, base, wh, logs)
    elif args.only == "freshness":
        r["freshness"] = freshness_part(args, pinned, base, wh, base / "input", base / "master.key")
    else:
        r["effectiveness"] = run_effectiveness(args, pinned, base, wh, logs)
    return r
