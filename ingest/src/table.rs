//! The warehouse's Delta tables: create with the key id in their metadata, append, upsert
//! and replace — each one atomic Delta commit.
//!
//! Upsert keeps the hot path append-only: it looks up which keys of a batch the table already
//! holds (reading only the key, version and hash columns), appends when none changes, and
//! otherwise runs one MERGE whose target scan is limited to the partitions the changes touch.

use crate::error::{IngestError, Result};
use crate::schema::TableSpec;
use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, TimestampMicrosecondType};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::StructType;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use url::Url;
use vaxlake_catalog::KeyError;

pub use vaxlake_catalog::{KEY_ID_PROPERTY, KEY_ROTATED_FROM_PROPERTY};

/// The warehouse root as a URL with a trailing slash; a local path is made absolute and
/// created if missing.
pub fn warehouse_url(location: &str) -> Result<Url> {
    // deltalake's `s3` feature: without its handlers it does not know `s3://` URLs.
    deltalake::aws::register_handlers(None);
    let bad = || IngestError::BadWarehouse(location.to_string());
    let mut url = if location.contains("://") {
        Url::parse(location).map_err(|_| bad())?
    } else {
        let abs = std::path::absolute(location).map_err(|_| bad())?;
        Url::from_directory_path(abs).map_err(|_| bad())?
    };
    if let Ok(dir) = url.to_file_path() {
        std::fs::create_dir_all(&dir).map_err(|source| IngestError::Read {
            path: dir.display().to_string(),
            source,
        })?;
    }
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

/// Whether a Delta table is at `url`: a look for `_delta_log` on the local file system (the
/// kernel reports a missing local directory as an error, not as "no table"), a listing of
/// the log on object storage.
pub(crate) async fn table_exists(url: &Url) -> Result<bool, deltalake::DeltaTableError> {
    if let Ok(dir) = url.to_file_path() {
        return Ok(dir.join("_delta_log").is_dir());
    }
    DeltaTableBuilder::from_url(url.clone())?
        .build()?
        .verify_deltatable_existence()
        .await
}

fn table_url(root: &Url, spec: &TableSpec) -> Result<Url> {
    root.join(&format!("{}/", spec.name))
        .map_err(|_| IngestError::BadWarehouse(root.to_string()))
}

/// What an upsert did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpsertStats {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
}

/// Whether a row of an upsert replaces the stored row of its key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Precedence {
    /// Only if its version is newer than the stored one: a file source (an export, which may
    /// be older than what the table holds, or ingested twice).
    #[default]
    NewestWins,
    /// Always: every row is the source's current state of its key, read in the source's
    /// change order above a committed watermark (`postgres:`), so it supersedes what the
    /// table holds whatever its version column says. An unchanged row (same content hash)
    /// is still left alone.
    Supersedes,
}

/// One open warehouse table.
pub struct Table {
    spec: &'static TableSpec,
    table: DeltaTable,
}

impl Table {
    fn delta_err(spec: &TableSpec) -> impl Fn(deltalake::DeltaTableError) -> IngestError + '_ {
        move |source| IngestError::Delta {
            table: spec.name.to_string(),
            source,
        }
    }

    /// Opens the table if it exists (checking its key id when `key_id` is given).
    pub async fn open(
        root: &Url,
        spec: &'static TableSpec,
        key_id: Option<&str>,
    ) -> Result<Option<Self>> {
        let url = table_url(root, spec)?;
        if !table_exists(&url).await.map_err(Self::delta_err(spec))? {
            return Ok(None);
        }
        let table = DeltaTable::try_from_url(url)
            .await
            .map_err(Self::delta_err(spec))?;
        if table.version().is_none() {
            return Ok(None);
        }
        let this = Self { spec, table };
        if let Some(given) = key_id {
            this.check_key(given)?;
        }
        Ok(Some(this))
    }

    /// Opens the table, creating it empty (with `key_id` in its metadata) if absent.
    pub async fn open_or_create(
        root: &Url,
        spec: &'static TableSpec,
        key_id: &str,
    ) -> Result<Self> {
        if let Some(t) = Self::open(root, spec, Some(key_id)).await? {
            return Ok(t);
        }
        let url = table_url(root, spec)?;
        if let Ok(dir) = url.to_file_path() {
            std::fs::create_dir_all(&dir).map_err(|source| IngestError::Read {
                path: dir.display().to_string(),
                source,
            })?;
        }
        // Not loaded: on object storage there is nothing to load yet.
        let table = DeltaTableBuilder::from_url(url)
            .and_then(DeltaTableBuilder::build)
            .map_err(Self::delta_err(spec))?;
        let schema: StructType =
            spec.schema()
                .as_ref()
                .try_into_kernel()
                .map_err(|e| IngestError::Delta {
                    table: spec.name.to_string(),
                    source: deltalake::DeltaTableError::Generic(e.to_string()),
                })?;
        let created = table
            .create()
            .with_table_name(spec.name)
            .with_columns(schema.fields().cloned())
            .with_partition_columns(spec.partition_columns.iter().copied())
            .with_configuration([(KEY_ID_PROPERTY, Some(key_id))])
            .with_raise_if_key_not_exists(false)
            .with_save_mode(SaveMode::Ignore)
            // No retry: a retried CREATE would land at version 1 over a table another writer
            // just created, with another table id. Failing lets us open theirs instead.
            .with_commit_properties(CommitProperties::default().with_max_retries(0))
            .await;
        let created = match created {
            Ok(created) => created,
            // Another writer created the table between our look and our commit (two ingests
            // starting on a fresh warehouse): its version 0 stands, so use that table.
            Err(error) => match Self::open(root, spec, Some(key_id)).await? {
                Some(raced) => {
                    tracing::debug!(table = spec.name, %error, "table created concurrently");
                    return Ok(raced);
                }
                None => return Err(Self::delta_err(spec)(error)),
            },
        };
        let this = Self {
            spec,
            table: created,
        };
        this.check_key(key_id)?;
        Ok(this)
    }

    /// Refuses a key other than the one the table was written with.
    pub fn check_key(&self, given: &str) -> Result<()> {
        let snapshot = self.table.snapshot().map_err(Self::delta_err(self.spec))?;
        match vaxlake_catalog::key_id(snapshot.metadata().configuration()) {
            Some(stored) if stored != given => Err(KeyError::KeyMismatch {
                table: self.spec.name.to_string(),
                stored: stored.to_string(),
                given: given.to_string(),
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// A table property (`None` if absent).
    pub fn property(&self, name: &str) -> Result<Option<String>> {
        let snapshot = self.table.snapshot().map_err(Self::delta_err(self.spec))?;
        Ok(snapshot.metadata().configuration().get(name).cloned())
    }

    /// The Delta table itself, for operations this wrapper does not offer (key rotation).
    pub(crate) fn into_delta(self) -> DeltaTable {
        self.table
    }

    /// The table's name (its directory under the warehouse root).
    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// The Delta table, to read at the version this handle holds (`facts.rs`).
    pub(crate) fn delta(&self) -> &DeltaTable {
        &self.table
    }

    /// The table's Delta version (`None` before its first commit).
    pub fn version(&self) -> Option<i64> {
        self.table
            .version()
            .and_then(|version| i64::try_from(version).ok())
    }

    /// When the table's last Delta commit was written, in milliseconds since the epoch: the
    /// time of its commit file, or the commit's own timestamp when the log no longer lists the
    /// file (behind a checkpoint). `None` before the first commit.
    pub async fn last_commit_millis(&self) -> Result<Option<i64>> {
        use futures::StreamExt;
        let Some(version) = self.table.version() else {
            return Ok(None);
        };
        let snapshot = self.table.snapshot().map_err(Self::delta_err(self.spec))?;
        if let Some(millis) = snapshot.version_timestamp(version) {
            return Ok(Some(millis));
        }
        match self.table.history(Some(1)).next().await {
            Some(info) => Ok(info.map_err(Self::delta_err(self.spec))?.timestamp),
            None => Ok(None),
        }
    }

    /// The last version an application recorded with a Delta transaction (`txn`) action in
    /// this table: the watermark of an incremental source.
    pub async fn app_version(&self, app_id: &str) -> Result<Option<i64>> {
        let snapshot = self.table.snapshot().map_err(Self::delta_err(self.spec))?;
        snapshot
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(Self::delta_err(self.spec))
    }

    /// Commits nothing but `commit`'s application transactions and metadata (a watermark
    /// whose rows were all quarantined or unchanged).
    pub async fn commit_marker(&mut self, commit: CommitProperties) -> Result<()> {
        crate::postgres::commit_watermark_only(&mut self.table, commit)
            .await
            .map_err(Self::delta_err(self.spec))
    }

    /// Writers that remove files (MERGE, replace) hold the table's rewrite lock shared and
    /// read the newest version under it, so that a compaction (which holds it alone from
    /// planning to commit) never makes them fail on a conflict (see `maintain.rs`).
    async fn rewrite_guard(&mut self) -> Result<crate::maintain::WarehouseLock> {
        let lock = crate::maintain::rewrite_lock(
            self.table.table_url(),
            crate::maintain::LockMode::Shared,
        )
        .await?;
        self.table
            .update_incremental(None)
            .await
            .map_err(Self::delta_err(self.spec))?;
        Ok(lock)
    }

    fn has_files(&self) -> bool {
        self.table
            .snapshot()
            .map(|s| s.log_data().num_files() > 0)
            .unwrap_or(false)
    }

    /// Appends rows in one commit.
    pub async fn append(&mut self, batch: RecordBatch, commit: CommitProperties) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.table = self
            .table
            .clone()
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(commit)
            .await
            .map_err(Self::delta_err(self.spec))?;
        Ok(())
    }

    /// Replaces the rows matching `predicate` (SQL over the table's columns), or every row
    /// when `None`, by `batches`, in one commit.
    pub async fn replace_where(
        &mut self,
        batches: Vec<RecordBatch>,
        predicate: Option<String>,
        commit: CommitProperties,
    ) -> Result<()> {
        self.overwrite(|table| table.write(batches), predicate, commit)
            .await
    }

    /// Replaces every row by what `plan` yields, written as it streams, in one commit.
    pub async fn replace_all_from(
        &mut self,
        plan: datafusion::logical_expr::LogicalPlan,
        commit: CommitProperties,
    ) -> Result<()> {
        self.overwrite(
            |table| table.write(Vec::new()).with_input_plan(plan),
            None,
            commit,
        )
        .await
    }

    async fn overwrite(
        &mut self,
        input: impl FnOnce(DeltaTable) -> deltalake::operations::write::WriteBuilder,
        predicate: Option<String>,
        commit: CommitProperties,
    ) -> Result<()> {
        let _lock = self.rewrite_guard().await?;
        let mut write = input(self.table.clone())
            .with_save_mode(SaveMode::Overwrite)
            .with_commit_properties(commit);
        if let Some(predicate) = predicate {
            write = write.with_replace_where(predicate);
        }
        self.table = write.await.map_err(Self::delta_err(self.spec))?;
        Ok(())
    }

    /// Inserts new keys, replaces keys whose version is newer and content different, deletes
    /// keys whose newer version says so (`deletes[i]`), and leaves everything else alone, in
    /// one commit. `batch` must hold one row per key (see `row::newest_versions`).
    pub async fn upsert(
        &mut self,
        batch: RecordBatch,
        deletes: &[bool],
        commit: CommitProperties,
    ) -> Result<UpsertStats> {
        self.upsert_with(batch, deletes, Precedence::NewestWins, commit)
            .await
    }

    /// [`Table::upsert`], with `precedence` saying whether a row must be newer than the stored
    /// one to replace or delete it.
    pub async fn upsert_with(
        &mut self,
        batch: RecordBatch,
        deletes: &[bool],
        precedence: Precedence,
        commit: CommitProperties,
    ) -> Result<UpsertStats> {
        let keys = self
            .spec
            .upsert
            .expect("upsert on a table without upsert keys");
        let mut stats = UpsertStats::default();
        let existing = if self.has_files() {
            self.lookup(&batch).await?
        } else {
            HashMap::new()
        };
        let key_col = column_str(&batch, keys.key);
        let version_col = batch
            .column(batch.schema().index_of(keys.version)?)
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let hash_col = column_str(&batch, keys.content_hash);
        let partition = self
            .spec
            .partition_columns
            .first()
            .map(|p| column_i32(&batch, p));

        // Per row: keep (insert / update / delete) or skip.
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut delete_flags = Vec::with_capacity(batch.num_rows());
        let mut touched_partitions = BTreeSet::new();
        for (i, &deletes_row) in deletes.iter().enumerate().take(batch.num_rows()) {
            let (take, delete) = match existing.get(key_col.value(i)) {
                None if deletes_row => (false, false),
                None => {
                    stats.inserted += 1;
                    (true, false)
                }
                Some(old)
                    if precedence == Precedence::NewestWins
                        && version_col.value(i) <= old.version =>
                {
                    stats.unchanged += 1;
                    (false, false)
                }
                Some(old) => {
                    if let Some(p) = old.partition {
                        touched_partitions.insert(p);
                    }
                    if let Some(p) = &partition {
                        touched_partitions.insert(p.value(i));
                    }
                    if deletes_row {
                        stats.deleted += 1;
                        (true, true)
                    } else if hash_col.value(i) == old.content_hash {
                        stats.unchanged += 1;
                        (false, false)
                    } else {
                        stats.updated += 1;
                        (true, false)
                    }
                }
            };
            keep.push(take);
            if take {
                delete_flags.push(delete);
            }
        }
        let chosen = arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))?;
        if chosen.num_rows() == 0 {
            return Ok(stats);
        }
        if stats.updated == 0 && stats.deleted == 0 {
            self.append(chosen, commit).await?;
            return Ok(stats);
        }
        self.merge(
            chosen,
            delete_flags,
            &touched_partitions,
            precedence,
            commit,
        )
        .await?;
        Ok(stats)
    }

    async fn merge(
        &mut self,
        chosen: RecordBatch,
        delete_flags: Vec<bool>,
        touched_partitions: &BTreeSet<i32>,
        precedence: Precedence,
        commit: CommitProperties,
    ) -> Result<()> {
        let _lock = self.rewrite_guard().await?;
        let keys = self.spec.upsert.expect("upsert keys");
        let mut fields: Vec<Field> = chosen
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("__vaxlake_delete", DataType::Boolean, false));
        let mut columns = chosen.columns().to_vec();
        columns.push(Arc::new(BooleanArray::from(delete_flags)));
        let source_batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;

        let ctx = SessionContext::new();
        let source = ctx
            .read_batch(source_batch)
            .map_err(|source| IngestError::DataFusion {
                table: self.spec.name.to_string(),
                source,
            })?;
        let mut predicate = format!("target.{k} = source.{k}", k = keys.key);
        if let Some(p) = self.spec.partition_columns.first() {
            if !touched_partitions.is_empty() {
                let list: Vec<String> = touched_partitions.iter().map(i32::to_string).collect();
                predicate.push_str(&format!(" AND target.{p} IN ({})", list.join(", ")));
            }
        }
        let names: Vec<String> = self
            .spec
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let update_names = names.clone();
        // Newest-wins re-checks the versions against the table as MERGE reads it (a writer
        // may have committed since the lookup); superseding rows replace whatever is there.
        let newer = match precedence {
            Precedence::NewestWins => format!(
                " AND source.{version} > target.{version}",
                version = keys.version
            ),
            Precedence::Supersedes => String::new(),
        };
        let (table, _metrics) = self
            .table
            .clone()
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_commit_properties(commit)
            .when_matched_delete(|d| d.predicate(format!("source.__vaxlake_delete{newer}")))
            .and_then(|m| {
                m.when_matched_update(|mut u| {
                    u = u.predicate(format!("NOT source.__vaxlake_delete{newer}"));
                    for n in &update_names {
                        u = u.update(n.as_str(), format!("source.{n}"));
                    }
                    u
                })
            })
            .and_then(|m| {
                m.when_not_matched_insert(|mut ins| {
                    ins = ins.predicate("NOT source.__vaxlake_delete");
                    for n in &names {
                        ins = ins.set(n.as_str(), format!("source.{n}"));
                    }
                    ins
                })
            })
            .map_err(Self::delta_err(self.spec))?
            .await
            .map_err(Self::delta_err(self.spec))?;
        self.table = table;
        Ok(())
    }

    /// Runs `sql` over the table, registered as `target` (small reads a writer needs, such
    /// as the deaths `persons` keeps).
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        if !self.has_files() {
            return Ok(Vec::new());
        }
        let ctx = SessionContext::new();
        self.register(&ctx, "target").await?;
        ctx.sql(sql)
            .await
            .map_err(self.df_err())?
            .collect()
            .await
            .map_err(self.df_err())
    }

    /// Registers the table, at the version this handle holds, as `name` in `ctx`.
    pub(crate) async fn register(&self, ctx: &SessionContext, name: &str) -> Result<()> {
        self.table
            .update_datafusion_session(&ctx.state())
            .map_err(Self::delta_err(self.spec))?;
        let provider = self.table.table_provider().await.map_err(self.df_err())?;
        ctx.register_table(name, provider).map_err(self.df_err())?;
        Ok(())
    }

    fn df_err(&self) -> impl Fn(datafusion::error::DataFusionError) -> IngestError + Copy + '_ {
        move |source| IngestError::DataFusion {
            table: self.spec.name.to_string(),
            source,
        }
    }

    /// The stored version, content hash and partition of every key of `batch` the table holds.
    async fn lookup(&self, batch: &RecordBatch) -> Result<HashMap<String, Existing>> {
        let keys = self.spec.upsert.expect("upsert keys");
        let df_err = self.df_err();
        let ctx = SessionContext::new();
        self.register(&ctx, "target").await?;
        let staged_keys = batch.project(&[batch.schema().index_of(keys.key)?])?;
        let mem =
            MemTable::try_new(staged_keys.schema(), vec![vec![staged_keys]]).map_err(df_err)?;
        ctx.register_table("staged", Arc::new(mem))
            .map_err(df_err)?;
        let partition = self
            .spec
            .partition_columns
            .first()
            .map(|p| format!(", t.{p}"))
            .unwrap_or_default();
        // The staged batch is the smaller side: it is listed first so the hash table is built
        // from it, and the table's key column only streams past.
        let sql = format!(
            "SELECT t.{k}, t.{v}, t.{h}{partition} FROM staged s JOIN target t ON s.{k} = t.{k}",
            k = keys.key,
            v = keys.version,
            h = keys.content_hash
        );
        let found = ctx
            .sql(&sql)
            .await
            .map_err(df_err)?
            .collect()
            .await
            .map_err(df_err)?;
        let mut out = HashMap::new();
        for b in found {
            let k = strings(b.column(0))?;
            let v = b.column(1).as_primitive::<TimestampMicrosecondType>();
            let h = strings(b.column(2))?;
            let part = (b.num_columns() > 3).then(|| {
                b.column(3)
                    .as_primitive::<arrow::datatypes::Int32Type>()
                    .clone()
            });
            for i in 0..b.num_rows() {
                out.insert(
                    k.value(i).to_string(),
                    Existing {
                        version: v.value(i),
                        content_hash: h.value(i).to_string(),
                        partition: part.as_ref().map(|p| p.value(i)),
                    },
                );
            }
        }
        Ok(out)
    }
}

struct Existing {
    version: i64,
    content_hash: String,
    partition: Option<i32>,
}

fn column_str(batch: &RecordBatch, name: &str) -> arrow::array::StringArray {
    batch
        .column_by_name(name)
        .expect("column of the table schema")
        .as_string::<i32>()
        .clone()
}

fn column_i32(batch: &RecordBatch, name: &str) -> arrow::array::Int32Array {
    batch
        .column_by_name(name)
        .expect("column of the table schema")
        .as_primitive::<arrow::datatypes::Int32Type>()
        .clone()
}

/// Query results may come back as `Utf8View` (DataFusion's default for Parquet strings).
pub(crate) fn strings(a: &arrow::array::ArrayRef) -> Result<arrow::array::StringArray> {
    Ok(arrow::compute::cast(a, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}
