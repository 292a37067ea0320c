//! `vaxlake ingest`: one source into the warehouse (or, with `--follow`, a registry kept up
//! with; see `follow`).

use anyhow::Result;
use vaxlake_ingest::{IngestOptions, Source};
use vaxlake_pseudonymize::MasterKey;

use crate::cli::{KeyArg, WarehouseArg};
use crate::key_file::load_key;

/// Runs `vaxlake ingest`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    warehouse: WarehouseArg,
    source: String,
    key: KeyArg,
    batch_rows: usize,
    csv_source_system: String,
    table: Option<String>,
    follow: bool,
    every: u64,
) -> Result<()> {
    let key = load_key(key.key_file.as_deref())?;
    let stop = vaxlake_ingest::StopFlag::default();
    let options = IngestOptions::default()
        .with_batch_rows(batch_rows)
        .with_csv_source_system(csv_source_system)
        .with_progress(crate::progress::ingest_progress(!follow))
        .with_stop(stop.clone());
    let mut source = Source::parse(&source)?;
    if let Some(table) = table {
        source = source.with_table(&table)?;
    }
    if follow {
        return super::follow::follow_registry(
            &warehouse.warehouse,
            &source,
            &key,
            &options,
            every,
            stop,
        )
        .await;
    }
    ingest_source(&warehouse.warehouse, &source, &key, &options).await
}

/// Ingests the source written `source` (`fhir:DIR`, `csv:FILE`, ...), as `vaxlake demo` does.
pub async fn ingest(
    warehouse: &str,
    source: &str,
    key: &MasterKey,
    options: &IngestOptions,
) -> Result<()> {
    let source = Source::parse(source)?;
    ingest_source(warehouse, &source, key, options).await
}

/// Ingests `source` once and prints what was read, accepted and quarantined.
async fn ingest_source(
    warehouse: &str,
    source: &Source,
    key: &MasterKey,
    options: &IngestOptions,
) -> Result<()> {
    let started = std::time::Instant::now();
    let report = vaxlake_ingest::ingest(warehouse, source, key, options).await?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        inserted = report.inserted,
        updated = report.updated,
        deleted = report.deleted,
        unchanged = report.unchanged,
        "ingest done"
    );
    println!(
        "read={} accepted={} quarantined={}",
        report.read, report.accepted, report.quarantined
    );
    Ok(())
}
