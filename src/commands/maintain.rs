//! `vaxlake maintain`: compaction and vacuum, one line per table.

use anyhow::Result;

use crate::cli::WarehouseArg;

/// Runs `vaxlake maintain`.
pub async fn run(
    warehouse: WarehouseArg,
    retention_hours: u64,
    dry_run: bool,
    no_compact: bool,
    no_vacuum: bool,
) -> Result<()> {
    let options = vaxlake_ingest::MaintainOptions::default()
        .with_retention_hours(retention_hours)
        .with_dry_run(dry_run)
        .with_compact(!no_compact)
        .with_vacuum(!no_vacuum);
    let report = vaxlake_ingest::maintain(&warehouse.warehouse, &options).await?;
    if report.order_secret_created {
        println!("created the warehouse's complement-order secret (docs/coverage.md, \"Disclosure control\")");
    }
    for table in &report.tables {
        println!(
            "{} version {} -> {}: files {} -> {} (compaction +{} -{}{}), vacuumed {} files, {} bytes{}",
            table.table,
            table.version_before,
            table.version,
            table.files_before,
            table.files_after,
            table.compaction_files_added,
            table.compaction_files_removed,
            table
                .compaction_skipped
                .as_deref()
                .map(|why| format!(", compaction skipped: {why}"))
                .unwrap_or_default(),
            table.vacuumed_files.len(),
            table.vacuumed_bytes,
            if report.dry_run { " (dry run)" } else { "" }
        );
    }
    Ok(())
}
