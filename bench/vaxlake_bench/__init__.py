"""vaxlake's benchmarks against peers, run by `scripts/bench` (a thin launcher).

One module per concern, data moving one way (measure → results.json → BENCHMARKS.md):

- `cli` — the command line (`scripts/bench --events 1M,10M ...`) and the loop over sizes;
  `run` — one size: every benchmark in turn, or one part (`--only`) on a kept warehouse.
- `measure` — a child process's wall time, peak RSS (`ru_maxrss` from `wait4`), CPU and RSS
  timeline; page-cache warm-up; busy-machine detection. `format` — how figures are written.
- `data` — sizes, the generated export, the pinned binary, a Delta table's active files.
- `duckdb_peer` — the DuckDB side (`scripts/bench --worker ...` in target/bench-venv).
- `postgres` — the throwaway registry server: the tests' own harness (tests/common/pg.rs)
  run through `bench/pg-server`, not a copy of it.
- the benchmarks: `ingest`, `query` (the SQL aggregate), `coverage`, `effectiveness`,
  `registry` (pull and `--follow` freshness).
- `report` — the BENCHMARKS.md writer, a module per section.

Repeats and medians: each benchmark runs its processes `--repeat`/`--coverage-processes`/
`--pg-runs` times and reports medians (`statistics.median`), run 1 of a repeating process
being its warm-up or cold run.
"""
