//! `vaxlake status`: one line per fact, for operators and scripts. The report itself is the
//! server's (`vaxlake_server::status`), shared with the operators' API; here only the
//! registry named by `--source` (which `serve` watches too).

use anyhow::{bail, Result};
use vaxlake_ingest::postgres::PostgresSource;
use vaxlake_ingest::Source;
use vaxlake_server::status::StatusReport;

/// Parses `--source` (and `--table`) into the registry that `status` and `serve` watch.
pub fn registry_source(source: &str, table: Option<&str>) -> Result<PostgresSource> {
    let mut source = Source::parse(source)?;
    if let Some(table) = table {
        source = source.with_table(table)?;
    }
    let Source::Postgres(registry) = source else {
        bail!("--source must be a postgres: source");
    };
    Ok(registry)
}

/// `vaxlake status`: one line per fact, for operators and scripts.
pub async fn run(warehouse: &str, source: Option<&str>, table: Option<&str>) -> Result<()> {
    let wh =
        vaxlake_query::Warehouse::open(warehouse, vaxlake_query::QueryOptions::default()).await?;
    let registry = source
        .map(|source| registry_source(source, table))
        .transpose()?;
    for line in StatusReport::read(&wh, registry.as_ref()).await?.lines() {
        println!("{line}");
    }
    Ok(())
}
