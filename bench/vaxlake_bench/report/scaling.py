"""The section about object storage and the cluster: the benchmark query and the coverage
table on local disk, on a loopback S3 server, and on a Ballista cluster of 1 and 2 executors
(bench/vaxlake_bench/scaling.py)."""

from __future__ import annotations

ROWS = [
    ("local", "embedded engine, local disk (peer)"),
    ("s3", "embedded engine, S3 on loopback (moto)"),
    ("cluster1", "Ballista, 1 executor × 2 tasks, S3 on loopback"),
    ("cluster2", "Ballista, 2 executors × 2 tasks, S3 on loopback"),
]


def _cell(figure: dict, peer: dict) -> str:
    if not figure or "seconds" not in figure:
        return "failed"
    same = "" if figure.get("same_answer") else " (answer differs!)"
    return f"{figure['seconds']:.2f} s ({figure['seconds'] / peer['seconds']:.2f}×){same}"


def scaling_section(sizes: list[dict]) -> list[str]:
    measured = [r for r in sizes if (r.get("scaling") or {}).get("rows", {}).get("local")]
    if not measured:
        return []
    out = ["", "## Object storage and the cluster", ""]
    out.append(
        "The benchmark query (median of `vaxlake sql --repeat` runs 2..N) and the whole coverage table (the cold "
        "run of fresh `vaxlake coverage --all` processes, median) on the size's kept warehouse: on local disk "
        "(the peer), copied as is to an S3-compatible server on loopback (moto in server mode: one Python "
        "process, so this measures the request path, not S3), and on a Ballista cluster (`vaxlake cluster`) "
        "over that S3 warehouse with 1 and then 2 executors of 2 tasks each. All on the same 2 cores: the "
        "cluster rows show the cost of distribution (planning, shuffles, Flight transfers), not its gain, "
        "which needs machines of its own (docs/scaling.md). Ratio: over local disk. Every answer is compared "
        "byte for byte with the local one."
    )
    out += ["", "| events | where | benchmark query | coverage table | date |", "|---:|---|---:|---:|---|"]
    for r in measured:
        rows = r["scaling"]["rows"]
        peer = rows["local"]
        for key, label in ROWS:
            row = rows.get(key)
            if not row:
                continue
            out.append(f"| {r['immunization_lines']:,} | {label} | {_cell(row['query'], peer['query'])} | "
                       f"{_cell(row['coverage'], peer['coverage'])} | {r['scaling']['date']} |")
    last = measured[-1]["scaling"]
    binary = last.get("binary", "")
    out += ["", f"Binary: `{binary}`" + (" (a dev build: our crates unoptimised, the dependencies at opt-level 1; "
                                          "compare the rows with each other, not with the release figures above)"
                                          if "/debug/" in binary else "") + "."]
    for part, label in (("requests_query", "one benchmark query"), ("requests_coverage", "one cold coverage table")):
        counts = last.get(part)
        if counts:
            listed = ", ".join(f"{counts[k]:,} {k}" for k in ("GET", "HEAD", "LIST", "PUT") if counts.get(k))
            out += ["", f"S3 requests of {label} at {measured[-1]['immunization_lines']:,} events (the loopback "
                    f"server's access log): {listed}."]
    upload = last.get("upload")
    if upload:
        out += ["", f"Copying the warehouse to the loopback server: {upload['objects']:,} objects, "
                f"{upload['bytes'] / 2**30:.2f} GiB in {upload['seconds']:.0f} s."]
    return out
