//! The coverage counts kept across table versions: after a commit of the coverage facts,
//! the engine adds up the rows of the files that commit added instead of reading the whole
//! table again, so the first answer after a `--follow` commit costs about the commit's size,
//! not the country's.
//!
//! Only appends are followed: the ingest appends facts and their retractions (weight −1),
//! and compaction moves rows without changing them (`dataChange: false`). Anything else
//! (`vaxlake maintain` writing the facts again, a commit file gone, a file that cannot be
//! read) reads the table from scratch, which gives the same counts.

use arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use deltalake::kernel::Action;
use deltalake::logstore::LogStoreRef;
use object_store::ObjectStoreExt;

use super::catalogue::Catalogue;
use super::facts::{FactCounts, COUNTED_COLUMNS};
use crate::warehouse::Snapshot;
use crate::QueryError;

const TABLE: &str = "dose_facts";

/// Counts of the facts table up to one of its versions.
pub(super) struct Maintained {
    version: i64,
    counts: FactCounts,
}

/// How the counts of a snapshot were had (for the log and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountsRead {
    /// Already counted for this facts version.
    Kept,
    /// Counted from the files added since the version last counted.
    Added { files: usize },
    /// Counted from the whole table.
    Whole,
}

/// The counts of `snapshot`'s facts version, updating `slot` from what it held.
pub(super) async fn counts_for<'a>(
    slot: &'a mut Option<Maintained>,
    snapshot: &Snapshot,
    catalogue: &Catalogue,
) -> Result<(&'a FactCounts, CountsRead), QueryError> {
    let target = snapshot.versions.get(TABLE).copied();
    let held = slot.as_ref().map(|m| m.version);
    let read = match (target, held, snapshot.logs.get(TABLE)) {
        (Some(target), Some(held), _) if held == target => CountsRead::Kept,
        (Some(target), Some(held), Some(log)) if held < target => {
            let maintained = slot.as_mut().expect("held");
            match added_files(log, held, target).await {
                Ok(Some(files)) => {
                    let applied = apply_files(log, &files, &mut maintained.counts).await;
                    match applied {
                        Ok(()) => {
                            maintained.version = target;
                            CountsRead::Added { files: files.len() }
                        }
                        Err(error) => {
                            // Half-applied counts are worthless: start over.
                            tracing::warn!(%error, "coverage facts could not be added up; reading them all");
                            *slot = None;
                            CountsRead::Whole
                        }
                    }
                }
                Ok(None) => CountsRead::Whole,
                Err(error) => {
                    tracing::warn!(%error, "coverage facts log could not be read; reading them all");
                    CountsRead::Whole
                }
            }
        }
        _ => CountsRead::Whole,
    };
    if read == CountsRead::Whole {
        let counts = FactCounts::load(&snapshot.ctx, catalogue).await?;
        *slot = target.map(|version| Maintained { version, counts });
        if slot.is_none() {
            return Err(QueryError::Unavailable(
                "this warehouse has no coverage facts".into(),
            ));
        }
    }
    Ok((&slot.as_ref().expect("set above").counts, read))
}

/// The data files the commits after `from` up to `to` added, when they only added rows
/// (or moved them without change); `None` when one removed rows or is gone.
async fn added_files(
    log: &LogStoreRef,
    from: i64,
    to: i64,
) -> Result<Option<Vec<String>>, deltalake::DeltaTableError> {
    let mut files = Vec::new();
    for version in (from + 1)..=to {
        let version = version as u64;
        let Some(bytes) = log.read_commit_entry(version).await? else {
            return Ok(None);
        };
        for action in deltalake::logstore::get_actions(version, &bytes)? {
            match action {
                Action::Add(add) if add.data_change => files.push(add.path),
                Action::Remove(remove) if remove.data_change => return Ok(None),
                _ => {}
            }
        }
    }
    Ok(Some(files))
}

/// Adds up the facts of `files` (paths relative to the table, as the log writes them).
async fn apply_files(
    log: &LogStoreRef,
    files: &[String],
    counts: &mut FactCounts,
) -> Result<(), QueryError> {
    let store = log.object_store(None);
    let columns: Vec<&str> = COUNTED_COLUMNS.split(',').map(str::trim).collect();
    for path in files {
        let location = object_store::path::Path::from_url_path(path)
            .map_err(|error| QueryError::Format(format!("facts file {path}: {error}")))?;
        let bytes = store
            .get(&location)
            .await
            .map_err(|error| QueryError::Format(format!("facts file {path}: {error}")))?
            .bytes()
            .await
            .map_err(|error| QueryError::Format(format!("facts file {path}: {error}")))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|error| QueryError::Format(format!("facts file {path}: {error}")))?;
        let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(|error| QueryError::Format(format!("facts file {path}: {error}")))?;
        for batch in reader {
            let batch: RecordBatch = batch?;
            counts.apply(&batch)?;
        }
    }
    Ok(())
}
