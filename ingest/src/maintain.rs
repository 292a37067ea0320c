//! Table maintenance: compaction of small files and vacuum of unreferenced ones, safe while
//! ingest runs and queries read.
//!
//! Frequent small commits (a following ingest commits every few seconds) leave many small
//! Parquet files; MERGE and replace leave files no version references any more. For every
//! warehouse table present, [`maintain`]:
//!
//! 1. **compacts** with deltalake's OPTIMIZE (bin-packing per partition up to
//!    [`MaintainOptions::target_file_size`], one Delta commit whose removes and adds carry
//!    `dataChange = false`). The rows do not change, only the files holding them. The commit
//!    is conflict-checked against what was committed since the plan was read: a concurrent
//!    append does not conflict and is kept (the compaction only removes the files it read);
//!    a conflicting commit (e.g. a MERGE that removed a file the compaction also read) makes
//!    this table's compaction start over from the new version, up to
//!    [`MaintainOptions::conflict_retries`] times, then it is skipped with a warning — the
//!    other tables go on.
//! 2. **vacuums** with deltalake's VACUUM in its `Lite` mode: deletes the data files whose
//!    `remove` is older than [`MaintainOptions::retention_hours`] (default 168). A file
//!    removed less than that long ago is still referenced by some version committed within
//!    the retention, so a reader (or a writer's read snapshot) on such a version keeps
//!    working. Then, when the retention is at least [`ORPHAN_MIN_AGE_HOURS`], a `Full`
//!    pass also deletes the data files no version ever referenced (a writer killed between
//!    writing its Parquet and committing leaves them) once they are older than the retention:
//!    a writer in flight wrote its files seconds ago, so they are never touched. With a
//!    shorter (unsafe) retention only the `Lite` pass runs, since a young orphan may be a
//!    running writer's.
//!
//! The key id table property ([`KEY_ID_PROPERTY`]) is checked to be unchanged after the
//! compaction.
//!
//! **A writer that removes files** (MERGE of a correcting ingest, `replace_where` of a
//! population load) and whose read snapshot predates a compaction commit is rejected when it
//! commits after it (deltalake 1.1.3, WriteSerializable: the compaction's added files are
//! not a blind append, so they count as "files the transaction should have read",
//! `ConcurrentAppend`); it does not silently bring replaced rows back, but that ingest run
//! fails and must be rerun (re-ingesting is idempotent). Note that deltalake does *not* flag
//! the compaction's own `dataChange = false` removes as a conflict, so that rejection is the
//! only guard. [`rewrite_lock`] avoids the failure: the
//! compaction holds it exclusively from plan to commit, and a file-removing writer that holds
//! it shared and refreshes its table state before it reads never races a compaction. Appends
//! need no lock. On object stores the lock is a lease object ([`crate::lease`]) held alone in
//! both modes.

use crate::error::{IngestError, Result};
use crate::schema::{warehouse_tables, TableSpec};
use crate::table::{warehouse_url, KEY_ID_PROPERTY};
use deltalake::kernel::transaction::{CommitProperties, TransactionError};
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::num::NonZeroU64;
use url::Url;

/// Default target size of compacted files: 128 MiB.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;
/// Default vacuum retention: 7 days, deltalake's (and Delta's) default minimum.
pub const DEFAULT_RETENTION_HOURS: u64 = 168;
/// Shortest retention under which files no version references (crash leftovers) are deleted
/// too: younger untracked files may belong to a writer that has not committed yet.
pub const ORPHAN_MIN_AGE_HOURS: u64 = 1;

/// Options of a maintenance run, with `with_*` builders.
#[derive(Debug, Clone)]
pub struct MaintainOptions {
    /// Target size of compacted files, in bytes (default 128 MiB).
    pub target_file_size: u64,
    /// Files removed from the table less than this long ago are kept (default 168 hours).
    /// Below the table's `delta.deletedFileRetentionDuration` (7 days unless configured),
    /// deltalake refuses unless `unsafe_zero_retention` is set; 0 needs that flag.
    pub retention_hours: u64,
    /// Allows `retention_hours` 0 (and any value below the table's minimum) by disabling
    /// deltalake's retention check. Readers and writers on older versions may then fail:
    /// for tests and emergencies only.
    pub unsafe_zero_retention: bool,
    /// Only list what vacuum would delete; nothing is compacted or deleted.
    pub dry_run: bool,
    /// Run the compaction (default true).
    pub compact: bool,
    /// Run the vacuum (default true).
    pub vacuum: bool,
    /// How many times a table's compaction starts over after a commit conflict before it is
    /// skipped (default 3).
    pub conflict_retries: u32,
}

impl Default for MaintainOptions {
    fn default() -> Self {
        Self {
            target_file_size: DEFAULT_TARGET_FILE_SIZE,
            retention_hours: DEFAULT_RETENTION_HOURS,
            unsafe_zero_retention: false,
            dry_run: false,
            compact: true,
            vacuum: true,
            conflict_retries: 3,
        }
    }
}

impl MaintainOptions {
    pub fn with_target_file_size(mut self, bytes: u64) -> Self {
        self.target_file_size = bytes.max(1);
        self
    }
    pub fn with_retention_hours(mut self, hours: u64) -> Self {
        self.retention_hours = hours;
        self
    }
    pub fn with_unsafe_zero_retention(mut self, allow: bool) -> Self {
        self.unsafe_zero_retention = allow;
        self
    }
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
    pub fn with_compact(mut self, compact: bool) -> Self {
        self.compact = compact;
        self
    }
    pub fn with_vacuum(mut self, vacuum: bool) -> Self {
        self.vacuum = vacuum;
        self
    }
    pub fn with_conflict_retries(mut self, retries: u32) -> Self {
        self.conflict_retries = retries;
        self
    }
}

/// What maintenance did to one table.
#[derive(Debug, Clone, Default)]
pub struct TableMaintenance {
    pub table: String,
    /// Table version before maintenance.
    pub version_before: u64,
    /// Table version after maintenance (compaction and vacuum commits included; concurrent
    /// writers' commits too).
    pub version: u64,
    /// Data files of the table's snapshot before and after.
    pub files_before: u64,
    pub files_after: u64,
    /// Files the compaction wrote and the (small) files it replaced.
    pub compaction_files_added: u64,
    pub compaction_files_removed: u64,
    /// Compaction attempts (more than 1 after commit conflicts).
    pub compaction_attempts: u32,
    /// Why compaction was skipped (conflicts after all retries), if it was.
    pub compaction_skipped: Option<String>,
    /// Files vacuum deleted (or, in a dry run, would delete), relative to the table root.
    pub vacuumed_files: Vec<String>,
    /// Their total size in bytes.
    pub vacuumed_bytes: u64,
}

/// What a maintenance run did, one entry per table present.
#[derive(Debug, Clone, Default)]
pub struct MaintainReport {
    pub dry_run: bool,
    /// Whether this run created the warehouse's complement-order secret (a warehouse
    /// written before it existed; see [`crate::ensure_order_secret`]).
    pub order_secret_created: bool,
    pub tables: Vec<TableMaintenance>,
}

fn delta_err(spec: &TableSpec) -> impl Fn(DeltaTableError) -> IngestError + '_ {
    move |source| IngestError::Delta {
        table: spec.name.to_string(),
        source,
    }
}

/// Whether starting the compaction over from the newest version may succeed.
fn is_conflict(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_)
        } | DeltaTableError::VersionAlreadyExists(_)
    )
}

/// Opens the newest version of a table, `None` if the warehouse has no such table.
async fn open(root: &Url, spec: &'static TableSpec) -> Result<Option<DeltaTable>> {
    let url = root
        .join(&format!("{}/", spec.name))
        .map_err(|_| IngestError::BadWarehouse(root.to_string()))?;
    if !crate::table::table_exists(&url)
        .await
        .map_err(delta_err(spec))?
    {
        return Ok(None);
    }
    let table = DeltaTable::try_from_url(url)
        .await
        .map_err(delta_err(spec))?;
    Ok(table.version().map(|_| table))
}

fn num_files(table: &DeltaTable, spec: &TableSpec) -> Result<u64> {
    Ok(table
        .snapshot()
        .map_err(delta_err(spec))?
        .log_data()
        .num_files() as u64)
}

fn key_id(table: &DeltaTable, spec: &TableSpec) -> Result<Option<String>> {
    let snapshot = table.snapshot().map_err(delta_err(spec))?;
    Ok(vaxlake_catalog::key_id(snapshot.metadata().configuration()).map(str::to_string))
}

fn commit_properties() -> CommitProperties {
    CommitProperties::default().with_metadata([(
        "vaxlake.operation".to_string(),
        serde_json::Value::from("maintain"),
    )])
}

/// Compacts and vacuums every table of the warehouse at `warehouse` (a path or URL); absent
/// tables are skipped. See the module documentation for what is safe alongside writers.
pub async fn maintain(warehouse: &str, options: &MaintainOptions) -> Result<MaintainReport> {
    if options.retention_hours == 0 && !options.unsafe_zero_retention && options.vacuum {
        return Err(IngestError::BadInput {
            path: warehouse.to_string(),
            message: "a vacuum retention of 0 hours deletes files that running readers and \
                      writers may still need; it needs the explicit unsafe-zero-retention flag"
                .into(),
        });
    }
    let root = warehouse_url(warehouse)?;
    let mut report = MaintainReport {
        dry_run: options.dry_run,
        order_secret_created: false,
        tables: Vec::new(),
    };
    // A warehouse from before the secret existed gets one here, not only at the next ingest.
    if !options.dry_run {
        report.order_secret_created = crate::order_secret::ensure_order_secret(&root).await?;
    }
    // The coverage facts written again netted (their retractions gone), under the key the
    // tables were written with; compaction below then finds them in few files.
    if options.compact && !options.dry_run {
        if let Some(vaccinations) =
            crate::table::Table::open(&root, &crate::schema::VACCINATIONS, None).await?
        {
            if let Some(key_id) = vaccinations.property(KEY_ID_PROPERTY)? {
                let facts = crate::facts::rebuild(&root, &key_id).await?;
                tracing::info!(rows = facts.rows, "coverage facts rebuilt");
            }
        }
    }
    for spec in warehouse_tables() {
        let Some(table) = open(&root, spec).await? else {
            tracing::debug!(table = spec.name, "absent, skipped");
            continue;
        };
        report
            .tables
            .push(maintain_table(spec, table, options).await?);
    }
    Ok(report)
}

async fn maintain_table(
    spec: &'static TableSpec,
    mut table: DeltaTable,
    options: &MaintainOptions,
) -> Result<TableMaintenance> {
    let mut out = TableMaintenance {
        table: spec.name.to_string(),
        version_before: table.version().unwrap_or(0),
        files_before: num_files(&table, spec)?,
        ..Default::default()
    };
    let key_before = key_id(&table, spec)?;
    tracing::info!(
        table = spec.name,
        version = out.version_before,
        files = out.files_before,
        "maintenance started"
    );

    if options.compact && !options.dry_run {
        table = compact(spec, table, options, &mut out).await?;
        let key_after = key_id(&table, spec)?;
        if key_after != key_before {
            return Err(IngestError::Delta {
                table: spec.name.to_string(),
                source: DeltaTableError::Generic(format!(
                    "the {KEY_ID_PROPERTY} property changed during maintenance: \
                     {key_before:?} before, {key_after:?} after"
                )),
            });
        }
    }

    if options.vacuum {
        table = vacuum(spec, table, options, &mut out).await?;
    }

    // Report the newest state, concurrent writers' commits included.
    table.update_state().await.map_err(delta_err(spec))?;
    out.version = table.version().unwrap_or(0);
    out.files_after = num_files(&table, spec)?;
    tracing::info!(
        table = spec.name,
        version = out.version,
        files_before = out.files_before,
        files_after = out.files_after,
        compaction_files_added = out.compaction_files_added,
        compaction_files_removed = out.compaction_files_removed,
        vacuumed_files = out.vacuumed_files.len(),
        vacuumed_bytes = out.vacuumed_bytes,
        "maintenance finished"
    );
    Ok(out)
}

/// How [`rewrite_lock`] is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// By writers that remove files (MERGE, replace): many at once.
    Shared,
    /// By compaction: alone.
    Exclusive,
}

/// Name of the advisory lock file in a table's directory (hidden from Delta readers and from
/// vacuum, as its name starts with `_`).
pub const REWRITE_LOCK_FILE: &str = "_vaxlake_rewrite.lock";

/// A held lock of the warehouse: an advisory file lock on the local file system, a lease
/// object on object storage (see [`crate::lease`]). Released when dropped.
#[derive(Debug)]
pub enum WarehouseLock {
    File(std::fs::File),
    Lease(crate::lease::Lease),
}

/// Takes the lock that keeps a compaction and a file-removing writer of the same table
/// apart (see the module documentation), waiting for it. `table_url` is the table's root.
/// On object storage the lease has one mode: shared holders take turns too.
pub async fn rewrite_lock(table_url: &Url, mode: LockMode) -> Result<WarehouseLock> {
    match table_url.to_file_path() {
        Ok(dir) => file_lock(dir, REWRITE_LOCK_FILE, mode).await,
        Err(()) => lease(table_url, REWRITE_LOCK_FILE, "the rewrite lock").await,
    }
}

/// Name of the lock at the warehouse root that one ingest holds for its run.
pub const INGEST_LOCK_FILE: &str = "_vaxlake_ingest.lock";

/// Takes the warehouse's ingest lock, waiting for it (logged when another ingest holds it).
/// Two ingests MERGE-ing into the same table at once can both insert a new event: Delta's
/// conflict check sees each MERGE's added files as compatible appends. Ingests of one
/// warehouse therefore take turns; a crashed one releases the lock with its process (on
/// object storage: when its lease runs out, see [`crate::lease`]).
pub async fn ingest_lock(root: &Url) -> Result<WarehouseLock> {
    let Ok(dir) = root.to_file_path() else {
        return lease(root, INGEST_LOCK_FILE, "the ingest lock").await;
    };
    std::fs::create_dir_all(&dir).map_err(|source| IngestError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    let path = dir.join(INGEST_LOCK_FILE);
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => return Ok(WarehouseLock::File(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::info!("another ingest is writing this warehouse: waiting for it to finish");
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(IngestError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    }
    file_lock(dir, INGEST_LOCK_FILE, LockMode::Exclusive).await
}

/// The lease `name` under the object-store directory `dir_url`.
async fn lease(dir_url: &Url, name: &str, what: &str) -> Result<WarehouseLock> {
    let what = format!("{what} of {dir_url}");
    let store = deltalake::logstore::store_for(dir_url, std::iter::empty::<(&str, &str)>())
        .map_err(|error| IngestError::Lock {
            lock: what.clone(),
            reason: error.to_string(),
        })?;
    let lease =
        crate::lease::Lease::acquire(store, object_store::path::Path::from(name), &what).await?;
    Ok(WarehouseLock::Lease(lease))
}

fn open_lock_file(path: &std::path::Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| IngestError::Read {
            path: path.display().to_string(),
            source,
        })
}

/// An advisory lock on the file `name` in the local directory `dir`, waited for.
async fn file_lock(dir: std::path::PathBuf, name: &str, mode: LockMode) -> Result<WarehouseLock> {
    let path = dir.join(name);
    let file = open_lock_file(&path)?;
    let locked = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        match mode {
            LockMode::Shared => file.lock_shared()?,
            LockMode::Exclusive => file.lock()?,
        }
        Ok(file)
    })
    .await
    .map_err(|e| IngestError::Worker(e.to_string()))?;
    locked
        .map(WarehouseLock::File)
        .map_err(|source| IngestError::Read {
            path: path.display().to_string(),
            source,
        })
}

/// One compaction commit, started over from the newest version after a conflict.
async fn compact(
    spec: &'static TableSpec,
    mut table: DeltaTable,
    options: &MaintainOptions,
    out: &mut TableMaintenance,
) -> Result<DeltaTable> {
    let target = NonZeroU64::new(options.target_file_size.max(1)).expect("at least 1");
    let table_url = table.table_url().clone();
    loop {
        out.compaction_attempts += 1;
        // Plan on the newest version, with file-removing writers held off until the commit.
        let _lock = rewrite_lock(&table_url, LockMode::Exclusive).await?;
        table.update_state().await.map_err(delta_err(spec))?;
        let result = table
            .clone()
            .optimize()
            .with_type(OptimizeType::Compact)
            .with_target_size(target)
            .with_commit_properties(commit_properties())
            .await;
        match result {
            Ok((compacted, metrics)) => {
                out.compaction_files_added = metrics.num_files_added;
                out.compaction_files_removed = metrics.num_files_removed;
                tracing::info!(
                    table = spec.name,
                    files_added = metrics.num_files_added,
                    files_removed = metrics.num_files_removed,
                    partitions = metrics.partitions_optimized,
                    bytes_added = metrics.files_added.total_size,
                    bytes_removed = metrics.files_removed.total_size,
                    version = compacted.version(),
                    "compacted"
                );
                return Ok(compacted);
            }
            Err(e) if is_conflict(&e) => {
                if out.compaction_attempts > options.conflict_retries {
                    tracing::warn!(
                        table = spec.name,
                        attempts = out.compaction_attempts,
                        error = %e,
                        "compaction skipped: it kept conflicting with concurrent commits"
                    );
                    out.compaction_skipped = Some(e.to_string());
                    return Ok(table);
                }
                tracing::warn!(
                    table = spec.name,
                    attempt = out.compaction_attempts,
                    error = %e,
                    "compaction conflicted with a concurrent commit; starting over"
                );
            }
            Err(e) => return Err(delta_err(spec)(e)),
        }
    }
}

/// Deletes (or lists, in a dry run) the files removed longer than the retention ago.
async fn vacuum(
    spec: &'static TableSpec,
    mut table: DeltaTable,
    options: &MaintainOptions,
    out: &mut TableMaintenance,
) -> Result<DeltaTable> {
    // Make the vacuum see the newest version: files a concurrent writer removed since are
    // tombstones too (and their removal times decide whether they may go).
    table.update_state().await.map_err(delta_err(spec))?;
    // Sizes of the removed files, from their `remove` actions (vacuum reports names only).
    let log_store = table.log_store();
    let sizes: HashMap<String, i64> = table
        .snapshot()
        .map_err(delta_err(spec))?
        .all_tombstones(log_store.as_ref())
        .map_ok(|t| (normalise(&t.path()), t.size().unwrap_or(0)))
        .try_collect()
        .await
        .map_err(delta_err(spec))?;
    let retention = chrono::Duration::hours(options.retention_hours as i64);
    // Full also lists the table's directory for untracked files older than the retention.
    let mode = if options.retention_hours >= ORPHAN_MIN_AGE_HOURS {
        VacuumMode::Full
    } else {
        VacuumMode::Lite
    };
    let (vacuumed, metrics) = table
        .vacuum()
        .with_mode(mode)
        .with_retention_period(retention)
        .with_enforce_retention_duration(!options.unsafe_zero_retention)
        .with_dry_run(options.dry_run)
        .with_commit_properties(commit_properties())
        .await
        .map_err(delta_err(spec))?;
    out.vacuumed_bytes = metrics
        .files_deleted
        .iter()
        .map(|f| sizes.get(&normalise(f)).copied().unwrap_or(0).max(0) as u64)
        .sum();
    out.vacuumed_files = metrics.files_deleted;
    tracing::info!(
        table = spec.name,
        dry_run = options.dry_run,
        retention_hours = options.retention_hours,
        files = out.vacuumed_files.len(),
        bytes = out.vacuumed_bytes,
        "vacuumed"
    );
    Ok(vacuumed)
}

/// A table-relative path as the object store spells it (vacuum's names), from a path as the
/// log spells it (tombstones, possibly percent-encoded).
fn normalise(path: &str) -> String {
    object_store::path::Path::parse(path)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| path.to_string())
}
