"""The targets the report says were met or missed (issue 16, "National-scale speed")."""

from __future__ import annotations

from ..common import GiB

TARGET_EVENTS_PER_S = 300_000
TARGET_INGEST_RATIO = 1.5  # vaxlake throughput / DuckDB throughput, at least
TARGET_RSS_BYTES = 1 * GiB  # ingest peak RSS, at every size (flat from 1M to 30M)
TARGET_QUERY_RATIO = 1.0  # vaxlake time / DuckDB time, at most
TARGET_COVERAGE_COLD_S = 2.0  # the whole indicator table, first computation, 2 cores
TARGET_COVERAGE_RATIO = 0.2  # vaxlake cold / DuckDB cold, at most (≥ 5× faster)
TARGET_COVERAGE_CACHED_S = 0.010  # an answer from the cache
TARGET_VE_RATIO = 0.5  # one season's VE cold, vaxlake / DuckDB, at most
TARGET_PULL_RATIO = 0.5  # registry pull rate / PostgreSQL's COPY export rate, at least
TARGET_FRESH_S = 0.300  # first coverage answer after a commit, running server
TARGET_HTTP_P99_S = 0.050  # cached coverage answers at 100 concurrent clients
