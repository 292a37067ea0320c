"""The BENCHMARKS.md writer: the figures of every size measured so far (results.json), as the
sections Ingest, Query, Coverage, Effectiveness, Registry pull, Reading, Method and Notes.
Each section is written by the module named after it; the hand-written Notes (between the
notes markers) and anything after them are kept from the report being replaced."""

from __future__ import annotations

from pathlib import Path

from ..common import GiB
from .coverage import coverage_section
from .doors import doors_section
from .effectiveness import effectiveness_section
from .ingest import ingest_section, query_section
from .live import live_section
from .method import METHOD
from .reading import reading
from .registry import postgres_section
from .scaling import scaling_section
from .soak import soak_section

NOTES_BEGIN = "<!-- notes:begin (kept by scripts/bench) -->"
NOTES_END = "<!-- notes:end -->"


def write_report(path: Path, results: dict, mach: dict) -> None:
    """Rewrites the report at `path` from `results`, keeping its Notes and what follows them."""
    every = sorted(results.values(), key=lambda x: x["immunization_lines"])
    command = "scripts/bench --events " + ",".join(x["label"] for x in every)
    notes, after = kept_text(path)
    text = render(results, command, mach, notes)
    if after.strip():  # hand-written sections after the Notes (e.g. the dashboards' figures)
        text = text.removesuffix("\n") + after
    path.write_text(text)

def render(results: dict, command: str, mach: dict, notes: str) -> str:
    sizes = sorted(results.values(), key=lambda r: r["immunization_lines"])
    out = ["# Benchmarks", ""]
    out.append(
        "Ingest throughput, peak memory and one coverage-style query of vaxlake, against DuckDB doing "
        "the same work in the same script. Written by `scripts/bench` (the package `bench/vaxlake_bench/`); "
        "rerun it to refresh the tables (the Notes section at the end, and what follows it, is kept)."
    )
    out += ["", "Reproduce (after `cargo build --release`):", "", f"    {command}", ""]
    out.append(
        f"Machine: {mach['nproc']} cores ({mach['cpu']}), {mach['ram_bytes'] / GiB:.1f} GiB RAM, "
        f"Linux {mach['kernel']}, Python {mach['python']}, DuckDB {sizes[0].get('duckdb_version', '?') if sizes else '?'}."
    )
    out.append("")
    out += ingest_section(sizes)
    out += query_section(sizes)
    out += coverage_section(sizes)
    out += effectiveness_section(sizes)
    out += live_section(sizes)
    out += doors_section(sizes)
    out += postgres_section(sizes)
    out += scaling_section(sizes)
    out += soak_section(sizes)
    out += ["", "## Reading", ""]
    out += reading(sizes)
    out += ["", "## Method", ""]
    out += METHOD
    out += ["", "## Notes", "", NOTES_BEGIN, notes.strip("\n"), NOTES_END, ""]
    return "\n".join(out)


def kept_text(path: Path) -> tuple[str, str]:
    """The Notes of the report at `path` (between the markers) and the text after them."""
    try:
        text = path.read_text()
    except OSError:
        return "(none yet)", ""
    if NOTES_BEGIN in text and NOTES_END in text:
        notes, after = text.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)
        return notes, after
    return "(none yet)", ""
