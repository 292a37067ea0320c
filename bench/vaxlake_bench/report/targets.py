"""The targets the report says were met or missed (from the issue that set them)."""

from __future__ import annotations

from ..common import GiB

TARGET_EVENTS_PER_S = 300_000
TARGET_INGEST_RATIO = 1.5  # vaxlake throughput / DuckDB throughput, at least
TARGET_RSS_BYTES_10M = 1.5 * GiB
TARGET_QUERY_RATIO = 1.0  # vaxlake time / DuckDB time, at most
TARGET_COVERAGE_COLD_S = 2.0  # the whole indicator table, first computation, 2 cores
TARGET_COVERAGE_RATIO = 1.0  # vaxlake cold / DuckDB cold, at most
TARGET_COVERAGE_CACHED_S = 0.010  # an answer from the cache
