//! What `serve` does with its flags for the SQL sandbox's limits (DESIGN.md invariant 5). Each one left out
//! keeps the library's default ([`QueryOptions::default`],
//! `vaxlake_server::api::DEFAULT_MAX_CONCURRENT_QUERIES`),
//! so operators change only what their machine needs and tests can set small limits.

use vaxlake_query::QueryOptions;
use vaxlake_server::ServerConfig;

use crate::cli::{ClusterArg, QueryLimitArgs};

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

    /// `config` with the sandbox's limits, the concurrency limit and the cluster given on the
    /// command line.
    pub fn server_config(&self, config: ServerConfig, cluster: &ClusterArg) -> ServerConfig {
        let options = cluster.query_options(self.query_options(QueryOptions::default()));
        let config = config.with_query_options(options);
        match self.max_concurrent_queries {
            Some(queries) => config.with_max_concurrent_queries(queries),
            None => config,
        }
    }
}
