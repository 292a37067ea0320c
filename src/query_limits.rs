//! `serve`'s flags for the SQL sandbox's limits (DESIGN.md invariant 5). Each one left out
//! keeps the library's default ([`QueryOptions::default`], `DEFAULT_MAX_CONCURRENT_QUERIES`),
//! so operators change only what their machine needs and tests can set small limits.

use clap::Args;
use vaxlake_query::api::ApiState;
use vaxlake_query::QueryOptions;

#[derive(Args, Debug, Default, Clone)]
pub struct QueryLimitArgs {
    /// Memory all running queries may hold together, in MiB (default 2048). Sorts,
    /// aggregates and joins spill to disk beyond it; other queries fail with 503.
    #[arg(long, value_name = "MIB")]
    pub memory_limit_mb: Option<usize>,
    /// Memory one SQL query may hold of that, in MiB (default half of it), so that one query
    /// cannot starve the others; beyond it the query spills or fails with 503.
    #[arg(long, value_name = "MIB")]
    pub query_memory_limit_mb: Option<usize>,
    /// Disk all running queries may spill to together, in MiB (default 16384).
    #[arg(long, value_name = "MIB")]
    pub spill_limit_mb: Option<u64>,
    /// Milliseconds a query may run before it is cancelled with 503 (default 60000).
    #[arg(long, value_name = "MS")]
    pub query_timeout_ms: Option<u64>,
    /// Rows one answer holds at most; more set `truncated` (default 100000).
    #[arg(long, value_name = "ROWS")]
    pub max_rows: Option<usize>,
    /// SQL queries running at once; more are answered 429 (default 4).
    #[arg(long, value_name = "N")]
    pub max_concurrent_queries: Option<usize>,
}

impl QueryLimitArgs {
    /// `options` with the limits given on the command line.
    pub fn query_options(&self, mut options: QueryOptions) -> QueryOptions {
        if let Some(mib) = self.memory_limit_mb {
            options = options.with_memory_limit(mib.max(1).saturating_mul(1 << 20));
        }
        if let Some(mib) = self.query_memory_limit_mb {
            options = options.with_query_memory_limit(mib.max(1).saturating_mul(1 << 20));
        }
        if let Some(mib) = self.spill_limit_mb {
            options = options.with_spill_limit(mib.saturating_mul(1 << 20));
        }
        if let Some(ms) = self.query_timeout_ms {
            options = options.with_query_timeout(std::time::Duration::from_millis(ms.max(1)));
        }
        if let Some(rows) = self.max_rows {
            options = options.with_max_rows(rows);
        }
        options
    }

    /// `state` with the concurrency limit given on the command line.
    pub fn api_state(&self, state: ApiState) -> ApiState {
        match self.max_concurrent_queries {
            Some(queries) => state.with_max_concurrent_queries(queries),
            None => state,
        }
    }
}
