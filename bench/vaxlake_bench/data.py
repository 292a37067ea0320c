"""The inputs: sizes, the generated export (cached per size), the vaxlake binary pinned for a
run, the active Parquet files of a Delta table, and the untimed loads of the reference
tables (population, cases) that coverage and effectiveness need."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from .common import ROOT, log

CALIBRATION_PERSONS = 20_000


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1M, 500k, 10M)")
    factor = {"": 1, "k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000}[m.group(2)]
    return int(float(m.group(1)) * factor)


def size_label(events: int) -> str:
    if events % 1_000_000 == 0:
        return f"{events // 1_000_000}M"
    if events % 1_000 == 0:
        return f"{events // 1_000}k"
    return str(events)


def vaxlake_bin(args) -> Path:
    b = Path(args.bin) if args.bin else ROOT / "target" / "release" / "vaxlake"
    if not b.exists():
        sys.exit(f"{b} does not exist: run `cargo build --release` first")
    return b


def read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def generate(binary: Path, out: Path, persons: int, seed: int) -> dict:
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    subprocess.run(
        [str(binary), "generate", "--out", str(out), "--persons", str(persons), "--seed", str(seed)],
        check=True,
        capture_output=True,
    )
    log(f"generated {persons} persons in {time.perf_counter() - started:.1f}s under {out}")
    return read_manifest(out)


def lines_per_person(binary: Path, data: Path, seed: int) -> float:
    """Immunization lines per person, from a small generated export (cached)."""
    cal = data / "calibration.json"
    try:
        c = json.loads(cal.read_text())
        if c["seed"] == seed and c["persons"] == CALIBRATION_PERSONS:
            return c["immunization_lines"] / c["persons"]
    except (OSError, ValueError, KeyError):
        pass
    tmp = data / "calibration"
    m = generate(binary, tmp, CALIBRATION_PERSONS, seed)
    shutil.rmtree(tmp)
    lines = m["fhir"]["immunization_lines"]
    cal.write_text(json.dumps({"seed": seed, "persons": CALIBRATION_PERSONS, "immunization_lines": lines}))
    return lines / CALIBRATION_PERSONS


def ensure_input(binary: Path, data: Path, events: int, seed: int) -> tuple[Path, dict]:
    """The generated export for `events` Immunization lines, generated once."""
    out = data / size_label(events) / "input"
    m = read_manifest(out)
    fhir = out / "fhir"
    if m and m.get("seed") == seed and (fhir / "Immunization.ndjson").exists():
        log(f"reusing {out} ({m['fhir']['immunization_lines']:,} Immunization lines)")
        return out, m
    ratio = lines_per_person(binary, data, seed)
    persons = max(1, round(events / ratio))
    log(f"{ratio:.3f} Immunization lines per person: generating {persons:,} persons for ~{events:,} events")
    return out, generate(binary, out, persons, seed)


def active_files(table: Path) -> list[Path]:
    """Active Parquet files of a Delta table: added minus removed, in log order."""
    log_dir = table / "_delta_log"
    if (log_dir / "_last_checkpoint").exists():
        log("note: the table has a checkpoint; reading the JSON commits only (all still present)")
    active: dict[str, None] = {}
    for commit in sorted(log_dir.glob("*.json")):
        for line in commit.read_text().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                active[action["add"]["path"]] = None
            elif "remove" in action:
                active.pop(action["remove"]["path"], None)
    return [table / urllib.parse.unquote(p) for p in active]


COUNTS = re.compile(r"read=(\d+) accepted=(\d+) quarantined=(\d+)")


def counts_of(line: str) -> dict | None:
    """The `read= accepted= quarantined=` summary `vaxlake ingest` prints last on stdout."""
    m = COUNTS.search(line)
    return dict(zip(("read", "accepted", "quarantined"), map(int, m.groups()), strict=True)) if m else None


def ingest_counts(out_path: Path) -> dict | None:
    last = out_path.read_text(errors="replace").strip().splitlines() if out_path.exists() else []
    return counts_of(last[-1] if last else "")


def pin_binary(binary: Path, base: Path) -> Path:
    """A hard link to `binary` under `base`: it pins this build, since a concurrent `cargo
    build` replaces target/release/vaxlake by a new file and leaves this one alone."""
    pinned = base / "vaxlake"
    pinned.unlink(missing_ok=True)
    try:
        os.link(binary, pinned)
    except OSError:
        shutil.copy2(binary, pinned)
    return pinned


def ensure_key(binary: Path, base: Path) -> Path:
    """The size's master key file, made once."""
    key = base / "master.key"
    if not key.exists():
        subprocess.run([str(binary), "key", "new", "--out", str(key)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return key


# What each table loaded before the coverage and effectiveness parts holds.
LOADED_TABLES = {"population": "the coverage denominators", "cases": "the notifications VE counts"}


def ensure_loaded(binary: Path, base: Path, wh: Path, logs: Path, table: str) -> dict | None:
    """Loads the export's `<table>.csv` (population or cases) into the warehouse, once; not
    timed. Returns the ingest counts when it ran now."""
    if (wh / table / "_delta_log").is_dir():
        return None
    source = base / "input" / f"{table}.csv"
    r = subprocess.run([str(binary), "ingest", "--warehouse", str(wh), "--source", f"{table}:{source}",
                        "--key-file", str(base / "master.key")], capture_output=True, text=True)
    (logs / f"vaxlake-ingest-{table}.err").write_text(r.stderr)
    counts = COUNTS.search(r.stdout)
    if r.returncode != 0 or not counts:
        raise RuntimeError(f"{table} ingest failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
    log(f"{table} ingested: {counts.group(0)}")
    return counts_of(counts.group(0))
