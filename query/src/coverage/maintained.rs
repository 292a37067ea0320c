//! The coverage counts kept across table versions: after a commit of the coverage facts,
//! the engine adds up the rows of the files that commit added instead of reading the whole
//! table again, so the first answer after a `--follow` commit costs about the commit's size,
//! not the country's.
//!
//! Only appends are followed: the ingest appends facts and their retractions (weight −1),
//! and compaction moves rows without changing them (`dataChange: false`). Anything else
//! (`vaxlake maintain` writing the facts again, a commit file gone, a file that cannot be
//! read) reads the table from scratch, which gives the same counts.

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

/// Counts of the facts table up to one of its versions, and how they were last had.
pub(super) struct Maintained {
    version: i64,
    counts: FactCounts,
    last_read: CountsRead,
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

impl Maintained {
    pub(super) fn counts(&self) -> &FactCounts {
        &self.counts
    }

    pub(super) fn last_read(&self) -> CountsRead {
        self.last_read
    }
}

/// The counts of `snapshot`'s facts version, updating `slot` from what it held.
pub(super) async fn counts_for<'a>(
    slot: &'a mut Option<Maintained>,
    snapshot: &Snapshot,
    catalogue: &Catalogue,
) -> Result<&'a Maintained, QueryError> {
    let target = snapshot.versions.get(TABLE).copied();
    let read = match (slot.as_mut(), target, snapshot.logs.get(TABLE)) {
        (Some(held), Some(target), _) if held.version == target => CountsRead::Kept,
        (Some(held), Some(target), Some(log)) if held.version < target => {
            match catch_up(held, log, target).await {
                Ok(files) => CountsRead::Added { files },
                Err(why) => {
                    tracing::info!(%why, "reading the coverage facts whole");
                    CountsRead::Whole
                }
            }
        }
        _ => CountsRead::Whole,
    };
    if read == CountsRead::Whole {
        // Whatever a failed catch-up added is dropped with the counts it was added to.
        *slot = None;
        let counts = FactCounts::load(&snapshot.ctx, catalogue).await?;
        let version = target.ok_or_else(|| {
            QueryError::Unavailable("this warehouse has no coverage facts".into())
        })?;
        *slot = Some(Maintained {
            version,
            counts,
            last_read: read,
        });
    }
    let held = slot.as_mut().expect("counted above");
    held.last_read = read;
    Ok(held)
}

/// Adds to `held` the facts the commits after its version up to `target` added; the number
/// of files. An error when a commit removed rows, or a commit or file cannot be read (`held`
/// is then half-updated and must be read whole).
async fn catch_up(held: &mut Maintained, log: &LogStoreRef, target: i64) -> Result<usize, String> {
    let files = added_files(log, held.version, target)
        .await
        .map_err(|error| format!("the facts' log: {error}"))?
        .ok_or("a commit removed facts or is gone")?;
    apply_files(log, &files, &mut held.counts).await?;
    held.version = target;
    Ok(files.len())
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
) -> Result<(), String> {
    let store = log.object_store(None);
    let columns: Vec<&str> = COUNTED_COLUMNS.split(',').map(str::trim).collect();
    for path in files {
        apply_file(store.as_ref(), path, &columns, counts)
            .await
            .map_err(|error| format!("facts file {path}: {error}"))?;
    }
    Ok(())
}

async fn apply_file(
    store: &dyn object_store::ObjectStore,
    path: &str,
    columns: &[&str],
    counts: &mut FactCounts,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let location = object_store::path::Path::from_url_path(path)?;
    let bytes = store.get(&location).await?.bytes().await?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().copied());
    for batch in builder.with_projection(mask).build()? {
        counts.apply(&batch?)?;
    }
    Ok(())
}
