//! Key rotation: re-keys every pseudonym stored in the warehouse from the current key to the
//! chain current + one fresh key ([`KeyRotation`]), one Delta commit per table.
//!
//! Pseudonyms are one-way, so the identities cannot be hashed again: each stored pseudonym
//! is hashed once more under the fresh key, which is what the chain does to every new
//! identifier (see `vaxlake_pseudonymize::Pseudonymizer`), so new data keeps joining. Values
//! computed from pseudonyms (content hashes, the quarantine key) are recomputed, so that
//! re-ingesting unchanged data after a rotation still changes nothing.
//!
//! [`rekey`] holds the warehouse's ingest lock throughout and each table's rewrite lock
//! exclusively from its read to its commit, so no ingest and no compaction runs meanwhile.
//! It writes the new files of every table first and commits the tables only then, each as
//! one new version (all rows replaced, partitioning kept, the new key id in the metadata):
//! a failure while writing commits nothing, and the window in which tables disagree is the
//! few commits at the end. A table already at the new key id is skipped, so a rotation
//! interrupted between commits is completed by running it again; ingest refuses the mix
//! meanwhile (`IngestError::RotationUnfinished`).

use crate::error::{IngestError, Result};
use crate::progress::Progress;
use crate::row::{quarantine_key, CaseContent, VaccinationContent};
use crate::schema::{self, TableSpec, CASES, QUARANTINE, VACCINATIONS};
use crate::table::{warehouse_url, Table, KEY_ID_PROPERTY, KEY_ROTATED_FROM_PROPERTY};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type, TimestampMicrosecondType};
use datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, MetadataExt};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use url::Url;
use vaxlake_pseudonymize::{IdKind, KeyRotation};

/// Options of a key rotation, with `with_*` builders.
#[derive(Debug, Clone, Default)]
pub struct RekeyOptions {
    /// Where progress (rows re-keyed) is reported; nowhere by default. The binary draws it
    /// as a bar on terminals.
    pub progress: Progress,
    /// Re-key only these tables (by name); the others keep their key until the next run,
    /// and ingest refuses the warehouse meanwhile. `None`: every table.
    pub tables: Option<Vec<String>>,
}

impl RekeyOptions {
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
    pub fn with_tables(mut self, tables: &[&str]) -> Self {
        self.tables = Some(tables.iter().map(|t| t.to_string()).collect());
        self
    }
}

/// What a rotation did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RekeyOutcome {
    /// Every row rewritten with re-keyed pseudonyms, in one new version.
    Rewritten,
    /// No pseudonyms in it: only the key id changed, in one new version.
    KeyIdOnly,
    /// Already at the new key id (a rotation run before); untouched.
    AlreadyRotated,
    /// Left out by [`RekeyOptions::tables`]; untouched.
    NotSelected,
}

/// One table of a [`RekeyReport`].
#[derive(Debug, Clone)]
pub struct TableRekey {
    pub table: String,
    pub outcome: RekeyOutcome,
    pub version_before: u64,
    pub version: u64,
    /// Rows rewritten (0 unless [`RekeyOutcome::Rewritten`]).
    pub rows: u64,
}

/// What a rotation did, one entry per table present.
#[derive(Debug, Clone)]
pub struct RekeyReport {
    pub from_key_id: String,
    pub to_key_id: String,
    pub tables: Vec<TableRekey>,
}

impl RekeyReport {
    /// True when every table of the warehouse is now at the new key id.
    pub fn complete(&self) -> bool {
        self.tables
            .iter()
            .all(|t| t.outcome != RekeyOutcome::NotSelected)
    }
}

/// The columns holding pseudonyms, with the kind each was made as (the catalogue's
/// identity columns).
fn keyed_columns(spec: &TableSpec) -> Vec<(&'static str, IdKind)> {
    spec.identity_columns().collect()
}

/// Columns computed from pseudonyms (unkeyed hashes over them): recomputed after re-keying.
fn derived_columns(spec: &TableSpec) -> Vec<&'static str> {
    spec.derived_columns().collect()
}

/// A table of the warehouse as the rotation found it.
struct Found {
    spec: &'static TableSpec,
    table: DeltaTable,
    outcome: RekeyOutcome,
}

/// A table whose new version is written but not yet committed.
struct Prepared {
    index: usize,
    actions: Vec<Action>,
    rows: u64,
    /// Held until the commit: no compaction in between.
    _lock: crate::maintain::WarehouseLock,
}

fn delta_err(spec: &TableSpec) -> impl Fn(DeltaTableError) -> IngestError + '_ {
    move |source| IngestError::Delta {
        table: spec.name.to_string(),
        source,
    }
}

fn df_err(spec: &TableSpec) -> impl Fn(datafusion::error::DataFusionError) -> IngestError + '_ {
    move |source| IngestError::DataFusion {
        table: spec.name.to_string(),
        source,
    }
}

fn property(table: &DeltaTable, spec: &TableSpec, name: &str) -> Result<Option<String>> {
    Ok(table
        .snapshot()
        .map_err(delta_err(spec))?
        .metadata()
        .configuration()
        .get(name)
        .cloned())
}

/// Re-keys the warehouse at `warehouse` (a path or URL) with `rotation`. Refuses, before
/// changing anything, a warehouse with a table at a key id other than the rotation's old
/// and new ones. See the module documentation.
pub async fn rekey(
    warehouse: &str,
    rotation: &KeyRotation,
    options: &RekeyOptions,
) -> Result<RekeyReport> {
    if !warehouse.contains("://") && !std::path::Path::new(warehouse).is_dir() {
        return Err(IngestError::BadWarehouse(warehouse.to_string()));
    }
    let root = warehouse_url(warehouse)?;
    let _turn = crate::maintain::ingest_lock(&root).await?;
    let (from, to) = (rotation.from_key_id().to_string(), rotation.to_key_id());
    tracing::info!(from_key_id = %from, to_key_id = %to, "key rotation started");

    let mut found = find_tables(&root, rotation, options).await?;
    if found.is_empty() {
        return Err(IngestError::BadInput {
            path: warehouse.to_string(),
            message: "no warehouse table here: nothing to rotate".into(),
        });
    }

    let total_rows: u64 = found
        .iter()
        .filter(|f| f.outcome == RekeyOutcome::Rewritten)
        .map(|f| row_estimate(&f.table))
        .sum();
    let progress = &options.progress;
    progress.start(total_rows);

    // Phase 1: write every table's new files; nothing is committed yet.
    let mut prepared = Vec::new();
    for (index, f) in found.iter_mut().enumerate() {
        if !matches!(f.outcome, RekeyOutcome::Rewritten | RekeyOutcome::KeyIdOnly) {
            continue;
        }
        let lock = crate::maintain::rewrite_lock(
            f.table.table_url(),
            crate::maintain::LockMode::Exclusive,
        )
        .await?;
        f.table.update_state().await.map_err(delta_err(f.spec))?;
        // Under the ingest lock nothing changes key ids, but be sure before rewriting.
        let stored = property(&f.table, f.spec, KEY_ID_PROPERTY)?;
        if stored.as_deref() != Some(from.as_str()) {
            return Err(IngestError::RotationKeyMismatch {
                table: f.spec.name.to_string(),
                stored: stored.unwrap_or_else(|| "none".into()),
                from: from.clone(),
                to: to.clone(),
            });
        }
        progress.set_message(f.spec.name);
        let (mut actions, rows) = if f.outcome == RekeyOutcome::Rewritten {
            rewrite_in_task(f.spec, &f.table, rotation, progress).await?
        } else {
            (Vec::new(), 0)
        };
        let metadata = f
            .table
            .snapshot()
            .map_err(delta_err(f.spec))?
            .metadata()
            .clone()
            .add_config_key(KEY_ID_PROPERTY.to_string(), to.clone())
            .and_then(|m| m.add_config_key(KEY_ROTATED_FROM_PROPERTY.to_string(), from.clone()))
            .map_err(|e| delta_err(f.spec)(e.into()))?;
        actions.insert(0, Action::Metadata(metadata));
        tracing::info!(
            table = f.spec.name,
            rows,
            "table re-keyed, not yet committed"
        );
        prepared.push(Prepared {
            index,
            actions,
            rows,
            _lock: lock,
        });
    }
    progress.finish();

    // Phase 2: one commit per table.
    let mut report = RekeyReport {
        from_key_id: from.clone(),
        to_key_id: to.clone(),
        tables: Vec::new(),
    };
    let mut versions_before = HashMap::new();
    let mut rows_of = HashMap::new();
    for p in prepared {
        let f = &mut found[p.index];
        versions_before.insert(p.index, f.table.version().unwrap_or(0));
        rows_of.insert(p.index, p.rows);
        commit(f, p.actions, &from).await?;
        tracing::info!(
            table = f.spec.name,
            version = f.table.version(),
            rows = p.rows,
            to_key_id = %to,
            "table committed under the new key id"
        );
    }
    for (index, f) in found.into_iter().enumerate() {
        let version = f.table.version().unwrap_or(0);
        report.tables.push(TableRekey {
            table: f.spec.name.to_string(),
            version_before: versions_before.get(&index).copied().unwrap_or(version),
            version,
            rows: rows_of.get(&index).copied().unwrap_or(0),
            outcome: f.outcome,
        });
    }
    tracing::info!(
        from_key_id = %from,
        to_key_id = %to,
        complete = report.complete(),
        "key rotation finished"
    );
    Ok(report)
}

/// Opens every table present and decides what to do with it; refuses a foreign key id.
async fn find_tables(
    root: &Url,
    rotation: &KeyRotation,
    options: &RekeyOptions,
) -> Result<Vec<Found>> {
    let (from, to) = (rotation.from_key_id(), rotation.to_key_id());
    if let Some(names) = &options.tables {
        if let Some(unknown) = names
            .iter()
            .find(|n| !schema::warehouse_tables().any(|s| s.name == n.as_str()))
        {
            return Err(IngestError::BadInput {
                path: root.to_string(),
                message: format!("no table named '{unknown}' in a warehouse"),
            });
        }
    }
    let mut found = Vec::new();
    for spec in schema::warehouse_tables() {
        let Some(table) = Table::open(root, spec, None).await? else {
            continue;
        };
        let table = table.into_delta();
        let stored = property(&table, spec, KEY_ID_PROPERTY)?;
        let selected = options
            .tables
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == spec.name));
        let outcome = match stored.as_deref() {
            Some(id) if id == to => RekeyOutcome::AlreadyRotated,
            Some(id) if id == from => {
                if !selected {
                    RekeyOutcome::NotSelected
                } else if keyed_columns(spec).is_empty() {
                    RekeyOutcome::KeyIdOnly
                } else {
                    RekeyOutcome::Rewritten
                }
            }
            other => {
                return Err(IngestError::RotationKeyMismatch {
                    table: spec.name.to_string(),
                    stored: other.unwrap_or("none").to_string(),
                    from: from.to_string(),
                    to,
                })
            }
        };
        tracing::info!(table = spec.name, outcome = ?outcome, "table found");
        found.push(Found {
            spec,
            table,
            outcome,
        });
    }
    Ok(found)
}

/// Rows of the table's current version, from the file statistics (0 where they are missing:
/// only the progress bar uses it).
fn row_estimate(table: &DeltaTable) -> u64 {
    table
        .snapshot()
        .map(|s| {
            s.log_data()
                .iter()
                .map(|f| f.num_records().unwrap_or(0) as u64)
                .sum()
        })
        .unwrap_or(0)
}

/// [`rewrite`] in a task of its own: a panic in the Parquet reader or writer below it (the
/// parquet crate asserts, rather than reports, that a store returned every byte of a range
/// it asked for) fails this rotation with an error instead of unwinding through the caller.
async fn rewrite_in_task(
    spec: &'static TableSpec,
    table: &DeltaTable,
    rotation: &KeyRotation,
    progress: &Progress,
) -> Result<(Vec<Action>, u64)> {
    let (table, rotation, progress) = (table.clone(), rotation.clone(), progress.clone());
    tokio::spawn(async move { rewrite(spec, &table, &rotation, &progress).await })
        .await
        .map_err(|error| IngestError::Worker(format!("re-keying {} stopped: {error}", spec.name)))?
}

/// Streams every row of `table` through [`rekey_batch`] into new files (partitioned as the
/// table is); returns the actions replacing the current files by them, and the row count.
async fn rewrite(
    spec: &'static TableSpec,
    table: &DeltaTable,
    rotation: &KeyRotation,
    progress: &Progress,
) -> Result<(Vec<Action>, u64)> {
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(delta_err(spec))?;
    let provider = table.table_provider().await.map_err(df_err(spec))?;
    ctx.register_table("t", provider).map_err(df_err(spec))?;
    let mut stream = ctx
        .table("t")
        .await
        .map_err(df_err(spec))?
        .execute_stream()
        .await
        .map_err(df_err(spec))?;
    let mut writer = RecordBatchWriter::for_table(table)
        .map_err(delta_err(spec))?
        .with_target_file_size(crate::maintain::DEFAULT_TARGET_FILE_SIZE);
    let mut rows = 0u64;
    while let Some(batch) = stream.try_next().await.map_err(df_err(spec))? {
        if batch.num_rows() == 0 {
            continue;
        }
        let batch = rekey_batch(spec, &conform(spec, &batch)?, rotation)?;
        rows += batch.num_rows() as u64;
        progress.advance(batch.num_rows() as u64);
        writer.write(batch).await.map_err(delta_err(spec))?;
    }
    let adds = writer.flush().await.map_err(delta_err(spec))?;
    let removes = table
        .snapshot()
        .map_err(delta_err(spec))?
        .log_data()
        .iter()
        .map(|f| Action::Remove(f.remove_action(true)))
        .collect::<Vec<_>>();
    let mut actions = removes;
    actions.extend(adds.into_iter().map(Action::Add));
    Ok((actions, rows))
}

/// The batch in the table's own schema: columns by name, in order, with the stored types
/// (scans may hand back `Utf8View` strings or dictionary-encoded partition values).
fn conform(spec: &TableSpec, batch: &RecordBatch) -> Result<RecordBatch> {
    let columns = spec
        .schema()
        .fields()
        .iter()
        .map(|field| {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!(
                    "{}: column {} missing from the scan",
                    spec.name,
                    field.name()
                ))
            })?;
            Ok(arrow::compute::cast(column, field.data_type())?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(spec.schema().clone(), columns)?)
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch
        .column_by_name(name)
        .expect("a column of the table schema")
        .as_string::<i32>()
}

/// Re-keys one column of pseudonyms (nulls stay null).
fn rekey_column(
    spec: &TableSpec,
    column: &str,
    values: &StringArray,
    kind: IdKind,
    rotation: &KeyRotation,
) -> Result<StringArray> {
    let mut out = StringBuilder::with_capacity(values.len(), values.len() * 32);
    for value in values.iter() {
        match value {
            None => out.append_null(),
            Some(v) => {
                let rekeyed =
                    rotation
                        .rekey_hex(kind, v)
                        .ok_or_else(|| IngestError::NotAPseudonym {
                            table: spec.name.to_string(),
                            column: column.to_string(),
                        })?;
                out.append_value(rekeyed);
            }
        }
    }
    Ok(out.finish())
}

/// A batch of `spec` (in its schema) with every pseudonym re-keyed and every value derived
/// from pseudonyms recomputed.
fn rekey_batch(
    spec: &TableSpec,
    batch: &RecordBatch,
    rotation: &KeyRotation,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let index = |name: &str| batch.schema().index_of(name);
    for (name, kind) in keyed_columns(spec) {
        let rekeyed = rekey_column(spec, name, strings(batch, name), kind, rotation)?;
        columns[index(name)?] = Arc::new(rekeyed);
    }
    let rekeyed = RecordBatch::try_new(batch.schema(), columns.clone())?;
    let n = batch.num_rows();
    let derived: Vec<(&str, StringArray)> = match spec.name {
        name if name == VACCINATIONS.name => {
            let b = &rekeyed;
            let date = |c: &str| {
                b.column_by_name(c)
                    .expect("column")
                    .as_primitive::<Date32Type>()
                    .clone()
            };
            let int = |c: &str| {
                b.column_by_name(c)
                    .expect("column")
                    .as_primitive::<Int32Type>()
                    .clone()
            };
            let (person, sex, commune, atc, lot, status, vaccinator, system) = (
                strings(b, "person_key"),
                strings(b, "sex"),
                strings(b, "commune"),
                strings(b, "vaccine_atc"),
                strings(b, "lot_number"),
                strings(b, "status"),
                strings(b, "vaccinator_key"),
                strings(b, "source_system"),
            );
            let (birth_month, administered_on, dose) = (
                date("birth_month"),
                date("administered_on"),
                int("dose_number_recorded"),
            );
            let recorded_at = b
                .column_by_name("recorded_at")
                .expect("column")
                .as_primitive::<TimestampMicrosecondType>();
            let hashes = (0..n)
                .map(|i| {
                    Some(
                        VaccinationContent {
                            person_key: person.value(i),
                            birth_month: birth_month.value(i),
                            sex: sex.value(i),
                            commune: commune.is_valid(i).then(|| commune.value(i)),
                            administered_on: administered_on.value(i),
                            vaccine_atc: atc.value(i),
                            lot_number: lot.is_valid(i).then(|| lot.value(i)),
                            dose_number_recorded: dose.is_valid(i).then(|| dose.value(i)),
                            status: status.value(i),
                            vaccinator_key: vaccinator.is_valid(i).then(|| vaccinator.value(i)),
                            source_system: system.value(i),
                            recorded_at: recorded_at.is_valid(i).then(|| recorded_at.value(i)),
                        }
                        .hash(),
                    )
                })
                .collect();
            vec![("content_hash", hashes)]
        }
        name if name == CASES.name => {
            let b = &rekeyed;
            let date = |c: &str| {
                b.column_by_name(c)
                    .expect("column")
                    .as_primitive::<Date32Type>()
                    .clone()
            };
            let flag = |c: &str| b.column_by_name(c).expect("column").as_boolean().clone();
            let (person, disease, sex, commune) = (
                strings(b, "person_key"),
                strings(b, "disease"),
                strings(b, "sex"),
                strings(b, "commune"),
            );
            let (onset, birth_month) = (date("onset_date"), date("birth_month"));
            let (hospitalised, died) = (flag("hospitalised"), flag("died"));
            let hashes = (0..n)
                .map(|i| {
                    Some(
                        CaseContent {
                            person_key: person.value(i),
                            disease: disease.value(i),
                            onset_date: onset.value(i),
                            hospitalised: hospitalised.value(i),
                            died: died.value(i),
                            birth_month: birth_month.value(i),
                            sex: sex.value(i),
                            commune: commune.is_valid(i).then(|| commune.value(i)),
                        }
                        .hash(),
                    )
                })
                .collect();
            vec![("content_hash", hashes)]
        }
        name if name == QUARANTINE.name => {
            let b = &rekeyed;
            let (source, record_hash) = (strings(b, "source"), strings(b, "record_hash"));
            let position = b
                .column_by_name("position")
                .expect("column")
                .as_primitive::<Int64Type>();
            let mut keys = StringBuilder::with_capacity(n, n * 32);
            for i in 0..n {
                let mut hash = [0u8; 16];
                hex::decode_to_slice(record_hash.value(i), &mut hash).map_err(|_| {
                    IngestError::NotAPseudonym {
                        table: spec.name.to_string(),
                        column: "record_hash".into(),
                    }
                })?;
                let line = u64::try_from(position.value(i)).unwrap_or(0);
                keys.append_value(hex::encode(quarantine_key(source.value(i), line, &hash)));
            }
            vec![("quarantine_key", keys.finish())]
        }
        _ => Vec::new(),
    };
    debug_assert_eq!(
        derived.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        derived_columns(spec)
    );
    for (name, values) in derived {
        columns[index(name)?] = Arc::new(values);
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Commits a prepared table: its new files, the removal of the old ones and the new key id,
/// as one version.
async fn commit(f: &mut Found, actions: Vec<Action>, from: &str) -> Result<()> {
    let spec = f.spec;
    let snapshot = f.table.snapshot().map_err(delta_err(spec))?.clone();
    let operation = if f.outcome == RekeyOutcome::Rewritten {
        DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: (!spec.partition_columns.is_empty()).then(|| {
                spec.partition_columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect()
            }),
            predicate: None,
        }
    } else {
        DeltaOperation::SetTableProperties {
            properties: HashMap::new(),
        }
    };
    let properties = CommitProperties::default().with_metadata([
        (
            "vaxlake.operation".to_string(),
            serde_json::Value::from("key rotate"),
        ),
        (
            KEY_ROTATED_FROM_PROPERTY.to_string(),
            serde_json::Value::from(from),
        ),
    ]);
    CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(&snapshot), f.table.log_store(), operation)
        .await
        .map_err(delta_err(spec))?;
    f.table
        .update_incremental(None)
        .await
        .map_err(delta_err(spec))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns reviewed as holding nothing derived from a key. A new column makes this test
    /// fail until someone decides whether rotation must rewrite it.
    fn plain_columns(table: &str) -> &'static [&'static str] {
        match table {
            "vaccinations" => &[
                "birth_month",
                "sex",
                "commune",
                "canton",
                "administered_on",
                "age_months_at_dose",
                "vaccine_atc",
                "vaccine_name",
                "lot_number",
                "dose_number_recorded",
                "status",
                "source_system",
                "recorded_at",
                "last_updated",
                "ingested_at",
                "birth_decade",
            ],
            "cases" => &[
                "disease",
                "onset_date",
                "hospitalised",
                "died",
                "birth_month",
                "sex",
                "commune",
                "canton",
                "age_years_at_onset",
                "last_updated",
                "ingested_at",
            ],
            // content_hash covers the attributes alone, no pseudonym.
            "persons" => &[
                "birth_month",
                "sex",
                "commune",
                "canton",
                "resident",
                "deceased_month",
                "last_updated",
                "known_from",
                "ranked_at",
                "ingested_at",
                "content_hash",
            ],
            "quarantine" => &[
                "source",
                "position",
                "reason",
                "received_at",
                "run_id",
                // A hash of the reason alone.
                "content_hash",
            ],
            "population" => &[
                "reference_year",
                "commune",
                "canton",
                "sex",
                "birth_year",
                "count",
                "ingested_at",
            ],
            "optout" => &["ingested_at"],
            "dose_facts" => &[
                "antigen",
                "administered_on",
                "age_months_at_dose",
                "valid",
                "invalid_reason",
                "dose_seq",
                "completes_series",
                "completes_schedule",
                "first_in_season",
                "resident",
                "birth_year",
                "commune",
                "canton",
                "sex",
                "death_year",
                "weight",
            ],
            // key_id is the public id of the key of each past run: history, not a pseudonym.
            "ingest_runs" => &[
                "run_id",
                "source",
                "started_at",
                "finished_at",
                "read",
                "accepted",
                "quarantined",
                "key_id",
            ],
            _ => &[],
        }
    }

    #[test]
    fn every_column_of_every_table_is_classified_once() {
        for spec in schema::warehouse_tables() {
            let mut classified: Vec<&str> = keyed_columns(spec).iter().map(|(c, _)| *c).collect();
            classified.extend(derived_columns(spec));
            classified.extend(plain_columns(spec.name));
            let mut sorted = classified.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(
                sorted.len(),
                classified.len(),
                "{}: a column twice",
                spec.name
            );
            let mut schema: Vec<&str> = spec
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            schema.sort();
            assert_eq!(sorted, schema, "{}", spec.name);
        }
    }
}
