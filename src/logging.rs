//! What `vaxlake` logs: tracing's filter, read from `VAXLAKE_LOG`.

/// `VAXLAKE_LOG` (tracing's filter syntax) or vaxlake's info default. Whatever is asked for,
/// the SQL parser and planner stay at warnings: at debug level they print every literal of
/// a query, and an analyst may type an identity into one.
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VAXLAKE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,vaxlake=info,vaxlake_ingest=info,vaxlake_query=info,buoyant_kernel::snapshot::builder=off,deltalake_core::operations::merge=error")
    });
    [
        "sqlparser=warn",
        "datafusion_sql=warn",
        "datafusion_optimizer=warn",
        "tokio_postgres=info",
    ]
    .into_iter()
    .filter_map(|directive| directive.parse().ok())
    .fold(filter, |filter, directive| filter.add_directive(directive))
}
